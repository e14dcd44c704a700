//! `projector status` on the state of a projector reading stdin (`projector
//! run --state`, an SQLite file or a PostgreSQL schema): what it is, who
//! holds it now, its read models and their documents, its processed event
//! ids, its subscriptions and its checkpoint, if any. It has no units and
//! no stream, so no lag.

use super::{log, plural, Format};
use projector::state::postgres::{claim_of, Claim, Target};
use projector::state::sqlite::lock_holder;
use projector::state::stored::Stored;
use projector::state::{Location, StateError};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// Who holds the state now, as far as can be told.
enum Holder {
    /// A projector holds it: its name, and its lease's seconds left (a
    /// file's lock has no lease).
    Held(String, Option<f64>),
    /// The claim's projector is gone (its connection ended) before its
    /// lease lapsed: the next projector claims it at once.
    Gone(String),
    Free,
}

/// The status of the SQLite state at `path`.
pub fn sqlite(path: &Path, format: Format) -> ExitCode {
    let location = Location::Sqlite(path.to_owned());
    let holder = match lock_holder(path) {
        Some(pid) => Holder::Held(holder_name(pid), None),
        None => Holder::Free,
    };
    show(
        &location,
        &path.display().to_string(),
        || Ok(holder),
        format,
    )
}

/// The status of the PostgreSQL state at `target`.
pub fn postgres(target: &Target, format: Format) -> ExitCode {
    let location = Location::Postgres(target.clone());
    let holder = || {
        let mut client = target.connect()?;
        let claim = claim_of(&mut client, &target.schema)
            .map_err(|e| target.failed("reading the state's claim", e))?;
        Ok(match claim {
            Some(c) if c.is_live() => Holder::Held(c.holder, Some(c.seconds_left)),
            Some(Claim {
                holder,
                seconds_left,
                writer_connected: false,
            }) if seconds_left > 0.0 => Holder::Gone(holder),
            _ => Holder::Free,
        })
    };
    show(&location, &target.display(), holder, format)
}

/// `projector pid N on HOST`, as a PostgreSQL claim names its holder.
fn holder_name(pid: u32) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("projector pid {pid} on {}", host.trim())
}

fn show(
    location: &Location,
    name: &str,
    holder: impl FnOnce() -> Result<Holder, StateError>,
    format: Format,
) -> ExitCode {
    let read = location
        .inspect()
        .and_then(|stored| Ok((stored, holder()?)));
    let (stored, holder) = match read {
        Ok((Some(stored), holder)) => (stored, holder),
        Ok((None, _)) => {
            outln!("{name}: there is no state here: no projector has run with it");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(e.exit_code());
        }
    };
    match format {
        Format::Human => outln!("{}", human(name, &stored, &holder)),
        Format::Json => outln!("{}", report(name, &stored, &holder)),
    }
    ExitCode::SUCCESS
}

fn human(name: &str, stored: &Stored, holder: &Holder) -> String {
    let held = match holder {
        Holder::Held(who, Some(left)) => {
            format!("held by {who}, lease expires in {left:.1} s")
        }
        Holder::Held(who, None) => format!("held by {who}"),
        Holder::Gone(who) => format!(
            "not held: its claim by {who} ended with that projector's connection to the database; the next projector claims it at once"
        ),
        Holder::Free => "no projector holds it now".to_owned(),
    };
    let models: Vec<String> = stored
        .documents
        .iter()
        .map(|(model, n)| format!("{model} {}", plural(*n, "document")))
        .collect();
    let by_type: Vec<String> = stored
        .processed
        .iter()
        .map(|(ty, n)| format!("{ty} {n}"))
        .collect();
    let subscribed = match &stored.subscriptions {
        None => "every event type".to_owned(),
        Some(types) if types.is_empty() => "no event type".to_owned(),
        Some(types) => types.join(", "),
    };
    let mut lines = vec![
        format!("{name}: the state of a projector reading stdin (`projector run --state`); it has no units of work and no stream"),
        format!("  {held}"),
        format!("  read models: {}", or_none(&models)),
        format!(
            "  processed event ids: {}{}",
            stored.processed_total(),
            match by_type.is_empty() {
                true => String::new(),
                false => format!(" ({})", by_type.join(", ")),
            }
        ),
        format!("  subscribed to: {subscribed}"),
    ];
    if let Some(checkpoint) = stored.checkpoint {
        lines.push(format!("  checkpoint: {checkpoint}"));
    }
    lines.join("\n")
}

fn or_none(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join(", "),
    }
}

fn report(name: &str, stored: &Stored, holder: &Holder) -> Value {
    let (held, who, left, gone) = match holder {
        Holder::Held(who, left) => (true, Some(who), *left, false),
        Holder::Gone(who) => (false, Some(who), None, true),
        Holder::Free => (false, None, None, false),
    };
    json!({
        "state": name,
        "kind": "stdin",
        "held": held,
        "holder": who,
        "lease_expires_in": left.map(|l| (l * 10.0).round() / 10.0),
        "holder_gone": gone,
        "read_models": stored.documents,
        "processed_events": stored.processed_total(),
        "processed_by_type": stored.processed,
        "subscriptions": stored.subscriptions,
        "checkpoint": stored.checkpoint,
    })
}
