//! `projector status`: how far a PostgreSQL state stands behind its
//! JetStream source, and who is applying it.

use super::{load_plan, log, Format, EX_IOERR, EX_USAGE};
use clap::Args;
use projector::cluster;
use projector::cluster::registry::{self, UnitState, Version};
use projector::input::nats::{StreamAddress, Tail};
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use projector::state::StateError;
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
        let failed = |e| target.failed("reading the units", e);
        let mut versions = registry::active(&mut client, &target).map_err(failed)?;
        let known = !versions.is_empty();
        if !known {
            versions.push(Version {
                number: 0,
                config: String::new(),
                building: false,
                views: false,
                units: cluster::layout(&config.plan, cluster::DEFAULT_PARTS, &target.schema),
            });
        }
        let read = versions
            .into_iter()
            .map(|v| {
                let states = registry::unit_states(&mut client, &v.units).map_err(failed)?;
                Ok((v, states))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok((read, known))
    });
    let (versions, known) = match read {
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
    let lag_over = |states: &[UnitState]| states.iter().map(lag_of).max().unwrap_or(0);
    let (serving, states) = versions
        .iter()
        .find(|(v, _)| !v.building)
        .unwrap_or(&versions[0]);
    let building = versions.iter().find(|(v, _)| v.building);
    let lag = lag_over(states);
    let owned = versions
        .iter()
        .flat_map(|(_, states)| states)
        .filter(|s| s.owner.is_some())
        .count();
    let total: usize = versions.iter().map(|(v, _)| v.units.len()).sum();
    let units_json = |version: &Version, states: &[UnitState]| -> Vec<Value> {
        version
            .units
            .iter()
            .zip(states)
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
            .collect()
    };
    let unit_lines = |version: &Version, states: &[UnitState]| {
        for (unit, state) in version.units.iter().zip(states) {
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
    };
    match args.format {
        Format::Json => {
            let report = json!({
                "source": address.to_string(),
                "state": target.display(),
                "lag": lag,
                "stream_last_sequence": last,
                "version": known.then_some(serving.number),
                "units_owned": owned,
                "units": units_json(serving, states),
                "building": building.map(|(v, states)| json!({
                    "version": v.number,
                    "lag": lag_over(states),
                    "units": units_json(v, states),
                })),
            });
            println!("{report}");
        }
        Format::Human => {
            println!(
                "{} from {address}: lag {lag} (stream at sequence {last}); {owned} of {total} units owned{}",
                target.display(),
                if known { "" } else { " (no instance has run yet)" }
            );
            if known {
                println!("serving version {}:", serving.number);
            }
            unit_lines(serving, states);
            if let Some((version, states)) = building {
                println!(
                    "building version {} beside it (lag {}; the views switch to it when it catches up):",
                    version.number,
                    lag_over(states)
                );
                unit_lines(version, states);
            }
        }
    }
    ExitCode::SUCCESS
}
