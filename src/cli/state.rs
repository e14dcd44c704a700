//! Opening a run's engine, in memory or over a state, and saying what was
//! resumed; refusals of a state, printed.

use super::{log, plan, plural, Loaded, EX_IOERR};
use projector::engine::durable::{Budget, DEFAULT_CACHE_MB};
use projector::engine::{DumpError, Engine};
use projector::state::background::Background;
use projector::state::open::Report;
use projector::state::reconcile::Request;
use projector::state::{Location, Rebuilding, StateError};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// An engine over the state at `state` (or in memory), with the models
/// `request` rebuilds, if any, still to be rebuilt.
pub fn open_engine(
    config: Loaded,
    state: Option<&Location>,
    request: &Request,
    cache_mb: Option<u64>,
) -> Result<(Engine, Option<Rebuilding>), ExitCode> {
    let Some(location) = state else {
        return Ok((Engine::in_memory(config.plan), None));
    };
    let started = Instant::now();
    let opened = location
        .open(&config.plan, request)
        .map_err(|e| refused(&e, &config.name, Some(location)))?;
    log(&resumed(&location.path(), &opened.report, started));
    let when = match opened.rebuilding {
        None => "dropped",
        Some(_) => "to be dropped with the rebuild's swap:",
    };
    for (name, documents) in &opened.report.dropped {
        log(&format!(
            "projector: read model \"{name}\" is no longer configured: {when} {} (--drop {name})",
            plural(*documents, "document")
        ));
    }
    let budget = Budget::of_megabytes(cache_size(cache_mb, &config.plan));
    let engine = Engine::durable(
        config.plan,
        opened.restored,
        Box::new(Background::start(opened.state)),
        opened.reader,
        location.path(),
        budget,
    );
    Ok((engine, opened.rebuilding))
}

/// The cache's size in MiB: `--cache-mb`, else the configuration's
/// `cache_mb`, else the default.
pub fn cache_size(flag: Option<u64>, plan: &projector::plan::Plan) -> usize {
    flag.map(|mb| mb as usize)
        .or(plan.cache_mb())
        .unwrap_or(DEFAULT_CACHE_MB)
}

/// The line that says what a run starts from.
fn resumed(path: &Path, report: &Report, started: Instant) -> String {
    let documents: Vec<String> = report
        .documents
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let subscriptions = match &report.subscriptions {
        None => "all event types".to_owned(),
        Some(names) if names.is_empty() => "no event types".to_owned(),
        Some(names) => names.join(", "),
    };
    format!(
        "projector: {} {} in {:.2} s: documents: {}; processed event ids: {}; subscribed to: {subscriptions}",
        if report.created { "created the state" } else { "resumed the state" },
        path.display(),
        started.elapsed().as_secs_f64(),
        if documents.is_empty() { "none".to_owned() } else { documents.join(", ") },
        report.processed,
    )
}

/// Prints why a state was refused; returns the exit status.
pub fn refused(e: &StateError, config: &str, state: Option<&Location>) -> ExitCode {
    match (e, state) {
        (StateError::Mismatch { reconciliation, .. }, Some(state)) => {
            log(&plan::refusal(reconciliation, config, state));
        }
        _ => log(&format!("projector: {e}")),
    }
    ExitCode::from(e.exit_code())
}

/// Writes every read model to `path` as `{"model": {"key": document}}`.
pub fn write_dump(engine: &mut Engine, path: &Path) -> ExitCode {
    let written = std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(DumpError::Io)
        .and_then(|mut out| {
            engine.dump(&mut out)?;
            out.flush().map_err(DumpError::Io)
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(DumpError::State(e)) => refused(&e, "", None),
        Err(DumpError::Io(e)) => {
            log(&format!(
                "projector: cannot write the dump to {}: {e}",
                path.display()
            ));
            ExitCode::from(EX_IOERR)
        }
    }
}

/// Writes the dump, if one is asked for, and closes the engine.
pub fn finish(mut engine: Engine, dump: Option<&Path>) -> ExitCode {
    let code = match dump {
        Some(path) => write_dump(&mut engine, path),
        None => ExitCode::SUCCESS,
    };
    engine.close();
    code
}
