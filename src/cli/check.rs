//! `projector check`: reads every row of a state and checks it, the way a
//! run checks only the rows it reads.

use super::state::refused;
use super::{log, plural};
use clap::Args;
use projector::state::postgres::DEFAULT_SCHEMA;
use projector::state::Location;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct CheckArgs {
    /// The state: an SQLite file, or postgres://USER@HOST:PORT/DATABASE or "host=HOST
    /// dbname=DATABASE …" (libpq's settings; PGHOST, PGPASSWORD, ~/.pgpass… fill in the rest).
    #[arg(long, value_name = "PATH|URL")]
    state: PathBuf,
    /// The PostgreSQL schema of a `postgres://` state.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
}

pub fn check(args: &CheckArgs) -> ExitCode {
    let location = Location::new(&args.state, &args.schema);
    let started = Instant::now();
    match location.check() {
        Ok(Some(stored)) => {
            let documents: u64 = stored.documents.values().sum();
            outln!(
                "{}: sound: {} in {}, {}, every row read and checked in {:.2} s",
                location.path().display(),
                plural(documents, "document"),
                plural(stored.documents.len() as u64, "read model"),
                plural(stored.processed_total(), "processed event id"),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            log(&format!(
                "projector: there is no state at {}",
                location.path().display()
            ));
            ExitCode::from(super::EX_IOERR)
        }
        Err(e) => refused(&e, "", Some(&location)),
    }
}
