//! `projector gc`: drops the schemas of a cluster's retired versions that
//! no version served or built uses (see [`projector::cluster::gc`]), and
//! says what it dropped, or with `--dry-run` what it would drop.
//!
//! Exit status: 0 when every schema found was dropped (or none was
//! found), 75 when one was left in place for now (its tables busy, its
//! unit still claimed, or read by a view elsewhere), 65 when the schema is
//! no cluster's, 74 when the database cannot be reached.

use super::{log, plural, shell_word, EX_USAGE};
use clap::Args;
use projector::cluster::gc::{self, Outcome};
use projector::state::postgres::client as pg;
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use projector::state::StateError;
use std::process::ExitCode;
use std::time::Duration;

/// sysexits.h EX_TEMPFAIL: something was left for later.
const EX_TEMPFAIL: u8 = 75;
/// How often a schema whose tables are busy is tried, and how far apart.
const TRIES: (u32, Duration) = (5, Duration::from_secs(1));

#[derive(Args)]
pub struct GcArgs {
    /// The PostgreSQL state of the cluster: postgres://USER@HOST:PORT/DATABASE or "host=HOST
    /// dbname=DATABASE …" (libpq's settings; PGHOST, PGPASSWORD, ~/.pgpass… fill in the rest).
    #[arg(long, value_name = "URL")]
    state: String,
    /// The cluster's main schema.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// Only the schemas of versions retired at least this long ago.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    older_than: f64,
    /// Say what would be dropped, and drop nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn gc(args: &GcArgs) -> ExitCode {
    if !Target::is_url(&args.state) {
        log("projector: --state: gc works on a cluster's PostgreSQL state: postgres://USER@HOST:PORT/DATABASE or \"host=HOST dbname=DATABASE …\"");
        return ExitCode::from(EX_USAGE);
    }
    if !(args.older_than.is_finite() && args.older_than >= 0.0) {
        log("projector: --older-than: a number of seconds, 0 or more");
        return ExitCode::from(EX_USAGE);
    }
    let target = Target::new(&args.state, &args.schema);
    match collect(args, &target) {
        Ok(code) => code,
        Err(e) => {
            log(&format!("projector: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

fn collect(args: &GcArgs, target: &Target) -> Result<ExitCode, StateError> {
    let mut client = target.connect()?;
    let failed = |e| target.failed("dropping retired schemas", e);
    if !is_cluster(&mut client, target).map_err(failed)? {
        return Err(StateError::NotAState {
            path: target.path(),
            reason: format!(
                "schema \"{}\" holds no cluster's versions: gc drops what `projector run --source …` retired; name a cluster's main schema with --schema",
                target.schema
            ),
        });
    }
    let older = Duration::from_secs_f64(args.older_than);
    let found = gc::retired(&mut client, target, older).map_err(failed)?;
    if found.is_empty() {
        outln!("no retired schema to drop: every unit schema is used by a version served or built, or already dropped");
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        for retired in &found {
            outln!("would drop schema {}", retired.describe());
        }
        outln!(
            "{} would be dropped: {}",
            plural(found.len() as u64, "schema"),
            command(target)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut left = 0;
    for retired in &found {
        let outcome = gc::drop_schema(&mut client, target, &retired.unit.schema, TRIES);
        let line = match outcome.map_err(failed)? {
            Outcome::Dropped => format!("dropped schema {}", retired.describe()),
            Outcome::Kept => continue,
            other => {
                left += 1;
                format!(
                    "left schema {} in place: {}",
                    retired.unit.schema,
                    why(&other)
                )
            }
        };
        outln!("{line}");
    }
    Ok(match left {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(EX_TEMPFAIL),
    })
}

fn is_cluster(client: &mut pg::Client, target: &Target) -> Result<bool, pg::Error> {
    let row = client.query_one(
        "SELECT to_regclass(format('%I._projector_versions', $1::text)) IS NOT NULL",
        &[&target.schema],
    )?;
    Ok(row.get(0))
}

/// Why a schema was left in place.
fn why(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Busy => format!(
            "its tables stayed locked (a transaction reading or writing them) each of {} tries; run gc again later",
            TRIES.0
        ),
        Outcome::Claimed(holder) => format!("its unit is still claimed by {holder}"),
        Outcome::Read(views) => format!(
            "{} outside it read{} its tables: drop or change {} first",
            views.join(", "),
            if views.len() == 1 { "s" } else { "" },
            if views.len() == 1 { "that view" } else { "those views" }
        ),
        Outcome::Dropped | Outcome::Kept => String::new(),
    }
}

/// The command that drops them.
pub fn command(target: &Target) -> String {
    let state = projector::state::postgres::secret::redacted(&target.url);
    let mut command = format!("projector gc --state {}", shell_word(&state));
    if target.schema != DEFAULT_SCHEMA {
        command.push_str(&format!(" --schema {}", shell_word(&target.schema)));
    }
    command
}
