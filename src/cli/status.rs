//! `projector status`: how far a PostgreSQL state stands behind its
//! JetStream source, and who is applying it.

use super::{load_plan, log, Format, EX_IOERR, EX_USAGE};
use clap::Args;
use projector::cluster::{
    self,
    registry::{self, UnitState},
};
use projector::input::nats::{StreamAddress, Tail};
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct StatusArgs {
    /// The configuration. Default: ./projections.toml.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// The stream the state consumes: nats://HOST:PORT/STREAM.
    #[arg(long, value_name = "URL")]
    source: String,
    /// The PostgreSQL state: postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, value_name = "URL")]
    state: String,
    /// The PostgreSQL schema of the state.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// `human` (aligned lines) or `json` (one object on stdout, with a top-level integer "lag").
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

pub fn status(args: &StatusArgs) -> ExitCode {
    let address = match StreamAddress::parse(&args.source) {
        Ok(address) => address,
        Err(e) => {
            log(&format!("projector: --source: {e}"));
            return ExitCode::from(EX_USAGE);
        }
    };
    if !Target::is_url(&args.state) {
        log("projector: --state: status reads a PostgreSQL state: postgres://USER@HOST:PORT/DATABASE");
        return ExitCode::from(EX_USAGE);
    }
    let config = match load_plan(args.config.as_deref(), false) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let target = Target::new(&args.state, &args.schema);
    let read = target.connect().and_then(|mut client| {
        let listed = registry::listed(&mut client, &target)?;
        let known = listed.is_some();
        let units = listed.unwrap_or_else(|| {
            cluster::layout(&config.plan, cluster::DEFAULT_PARTS, &target.schema)
        });
        let states = registry::unit_states(&mut client, &units)
            .map_err(|e| target.failed("reading the units", e))?;
        Ok((units, states, known))
    });
    let (units, states, known) = match read {
        Ok(read) => read,
        Err(e) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(e.exit_code());
        }
    };
    let last = match Tail::new(&address).last() {
        Ok(last) => last,
        Err(e) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(EX_IOERR);
        }
    };
    let lag_of = |state: &UnitState| last.saturating_sub(state.checkpoint.unwrap_or(0));
    let lag = states.iter().map(lag_of).max().unwrap_or(0);
    let owned = states.iter().filter(|s| s.owner.is_some()).count();
    match args.format {
        Format::Json => {
            let units: Vec<Value> = units
                .iter()
                .zip(&states)
                .map(|(unit, state)| {
                    json!({
                        "unit": unit.name,
                        "models": unit.models,
                        "schema": unit.schema,
                        "owner": state.owner.as_ref().map(|(holder, _)| holder),
                        "lease_expires_in": state.owner.as_ref().map(|(_, left)| (left * 10.0).round() / 10.0),
                        "checkpoint": state.checkpoint,
                        "lag": lag_of(state),
                    })
                })
                .collect();
            let report = json!({
                "source": address.to_string(),
                "state": target.display(),
                "lag": lag,
                "stream_last_sequence": last,
                "units_owned": owned,
                "units": units,
            });
            println!("{report}");
        }
        Format::Human => {
            println!(
                "{} from {address}: lag {lag} (stream at sequence {last}); {owned} of {} units owned{}",
                target.display(),
                units.len(),
                if known { "" } else { " (no instance has run yet)" }
            );
            for (unit, state) in units.iter().zip(&states) {
                let owner = match &state.owner {
                    Some((holder, left)) => {
                        format!("owned by {holder}, lease expires in {left:.1} s")
                    }
                    None => "not owned".to_owned(),
                };
                let at = state
                    .checkpoint
                    .map_or("no checkpoint".to_owned(), |c| format!("checkpoint {c}"));
                println!(
                    "  unit {} ({}): {owner}; {at}; lag {}",
                    unit.name,
                    unit.models.join(", "),
                    lag_of(state)
                );
            }
        }
    }
    ExitCode::SUCCESS
}
