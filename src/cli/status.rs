//! `projector status`: what a state is and who applies it: a cluster's
//! (see [`super::status_cluster`]) or a stdin-mode state's (see
//! [`super::status_stdin`]).

use super::{log, status_cluster, status_stdin, Format};
use clap::Args;
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use projector::state::StateError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct StatusArgs {
    /// The configuration, for a cluster no instance has run on yet. Default: ./projections.toml.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// The stream a cluster's state consumes, for its lag: nats://HOST:PORT/STREAM. A
    /// stdin-mode state needs none.
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// The state: postgres://USER@HOST:PORT/DATABASE or "host=HOST dbname=DATABASE …", or the
    /// SQLite file of a projector reading stdin.
    #[arg(long, value_name = "PATH|URL")]
    state: String,
    /// The PostgreSQL schema of the state.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// `human` (aligned lines) or `json` (one object on stdout; a cluster's has a top-level
    /// integer "lag").
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

pub fn status(args: &StatusArgs) -> ExitCode {
    if !Target::is_url(&args.state) {
        return status_stdin::sqlite(Path::new(&args.state), args.format);
    }
    let target = Target::new(&args.state, &args.schema);
    match held(&target) {
        Ok(Held::Stdin) => status_stdin::postgres(&target, args.format),
        Ok(Held::Nothing) if args.source.is_none() => {
            outln!(
                "{}: there is no state here: no projector has run with it",
                target.display()
            );
            ExitCode::SUCCESS
        }
        Ok(_) => status_cluster::status(
            args.config.as_deref(),
            args.source.as_deref(),
            &target,
            args.format,
        ),
        Err(e) => {
            log(&format!("projector: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

/// What a PostgreSQL schema holds.
enum Held {
    /// The state of a projector reading stdin.
    Stdin,
    /// A cluster's main schema.
    Cluster,
    Nothing,
}

fn held(target: &Target) -> Result<Held, StateError> {
    let mut client = target.connect()?;
    let row = client
        .query_one(
            "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL,
                    to_regclass(format('%I._projector_versions', $1::text)) IS NOT NULL",
            &[&target.schema],
        )
        .map_err(|e| target.failed("reading the state", e))?;
    Ok(match (row.get(0), row.get(1)) {
        (true, _) => Held::Stdin,
        (false, true) => Held::Cluster,
        (false, false) => Held::Nothing,
    })
}
