//! Opening a run's engine, in memory or over a state, and saying what was
//! resumed; refusals of a state, printed.

use super::{log, plan, plural, Loaded, EX_IOERR};
use projector::engine::Engine;
use projector::state::background::Background;
use projector::state::open::Report;
use projector::state::reconcile::Request;
use projector::state::{Location, Rebuilding, StateError};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// An engine over the state at `state` (or in memory), with the models
/// `request` rebuilds, if any, still to be rebuilt.
pub fn open_engine(
    config: Loaded,
    state: Option<&Location>,
    request: &Request,
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
    let engine = Engine::new(
        config.plan,
        opened.restored,
        Box::new(Background::start(opened.state)),
    );
    Ok((engine, opened.rebuilding))
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
pub fn write_dump(engine: &Engine, path: &Path) -> ExitCode {
    let mut out = Vec::new();
    engine.dump(&mut out);
    match std::fs::write(path, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&format!(
                "projector: cannot write the dump to {}: {e}",
                path.display()
            ));
            ExitCode::from(EX_IOERR)
        }
    }
}

/// Writes the dump, if one is asked for, and closes the engine.
pub fn finish(engine: Engine, dump: Option<&Path>) -> ExitCode {
    let code = match dump {
        Some(path) => write_dump(&engine, path),
        None => ExitCode::SUCCESS,
    };
    engine.close();
    code
}
