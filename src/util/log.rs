//! The one way the project logs: through `tracing`, the facade the crates it
//! uses log through too (async-nats directly; postgres and rustls through
//! `log`, bridged). A line's target names what speaks: `projector` for a
//! run's lines, `replay` and `publish` for those commands' own.
//!
//! [`init`] installs the process's subscriber: lines filtered as
//! `PROJECTOR_LOG` says, else `RUST_LOG`, in `RUST_LOG`'s syntax
//! (`warn,projector=info,async_nats=debug`); by default [`DEFAULT_FILTER`]:
//! the project's own lines, and the warnings and errors of the crates it
//! uses. They are written to stderr in one of two formats ([`Format`]). Without a subscriber (the library used on its
//! own) a line goes to stderr as it is. A stderr whose reader went away
//! loses the line; it never stops the process.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// What is logged when neither `PROJECTOR_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "warn,projector=info,replay=info,publish=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `TARGET: MESSAGE`, as the project's lines always read; another
    /// crate's as `TARGET: LEVEL: MESSAGE key=value …`.
    #[default]
    Human,
    /// One JSON object per line, for log shippers: `timestamp` (RFC 3339,
    /// UTC), `level`, `target`, `message`, and the event's other fields.
    Json,
}

/// Installs the process's subscriber, once; a second call changes nothing.
/// A filter that does not parse is said, and the default used.
pub fn init(format: Format) {
    let asked = ["PROJECTOR_LOG", "RUST_LOG"].into_iter().find_map(|name| {
        let value = std::env::var(name).ok()?;
        (!value.trim().is_empty()).then_some((name, value))
    });
    let (filter, refused) = match asked {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some((name, value)) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((name, e))),
        },
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .event_format(Lines { format })
        .try_init();
    if let (Ok(()), Some((name, e))) = (installed, refused) {
        log(&format!(
            "warning: {name} does not parse ({e}); logging as {DEFAULT_FILTER:?}"
        ));
    }
}

/// Logs `text` as one of the running process's lines (`projector: TEXT`);
/// a text that begins `warning: ` is a warning.
pub fn log(text: &str) {
    emit(Target::Projector, text);
}

/// Logs a whole line as the project has always written them, `TARGET:
/// MESSAGE` (`projector: `, `replay: ` or `publish: ` first). A line without
/// one is part of a command's report on stderr (`validate`'s summary, say),
/// not a log line: it is written as it is.
pub fn line(line: &str) {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let target = match line.split_once(": ") {
        Some(("projector", text)) => Some((Target::Projector, text)),
        Some(("replay", text)) => Some((Target::Replay, text)),
        Some(("publish", text)) => Some((Target::Publish, text)),
        _ => None,
    };
    match target {
        Some((target, text)) => emit(target, text),
        None => {
            let _ = writeln!(io::stderr(), "{line}");
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    Projector,
    Replay,
    Publish,
}

fn emit(target: Target, text: &str) {
    if !tracing::dispatcher::has_been_set() {
        let name = match target {
            Target::Projector => "projector",
            Target::Replay => "replay",
            Target::Publish => "publish",
        };
        let _ = writeln!(io::stderr(), "{name}: {text}");
        return;
    }
    let warning = text.starts_with("warning: ");
    // A target is part of a call site's static description: one call per
    // target and level.
    match (target, warning) {
        (Target::Projector, false) => tracing::info!(target: "projector", "{text}"),
        (Target::Projector, true) => tracing::warn!(target: "projector", "{text}"),
        (Target::Replay, false) => tracing::info!(target: "replay", "{text}"),
        (Target::Replay, true) => tracing::warn!(target: "replay", "{text}"),
        (Target::Publish, false) => tracing::info!(target: "publish", "{text}"),
        (Target::Publish, true) => tracing::warn!(target: "publish", "{text}"),
    }
}

/// A writer that logs each line written to it with [`line`]: where the
/// server's log goes in a process (the server writes whole lines).
#[derive(Debug, Default)]
pub struct Stderr {
    partial: Vec<u8>,
}

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            line(&String::from_utf8_lossy(&self.partial));
            self.partial = rest;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            line(&String::from_utf8_lossy(&std::mem::take(&mut self.partial)));
        }
        Ok(())
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The subscriber's line format.
struct Lines {
    format: Format,
}

/// An event's message and other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            name if name.starts_with("log.") => {}
            name => self.others.push((name, value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            // What the bridge from `log` adds: its place in the source.
            name if name.starts_with("log.") => {}
            name => self.others.push((name, format!("{value:?}"))),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields::default();
        event.record(&mut fields);
        match self.format {
            Format::Human => human(&mut out, meta.target(), *meta.level(), &fields),
            Format::Json => json(&mut out, meta.target(), *meta.level(), &fields),
        }
    }
}

/// The project's own targets, whose lines read as they always did.
fn own(target: &str) -> bool {
    matches!(target, "projector" | "replay" | "publish")
}

fn human(out: &mut Writer<'_>, target: &str, level: Level, fields: &Fields) -> fmt::Result {
    match own(target) {
        true => write!(out, "{target}: {}", fields.message)?,
        false => write!(
            out,
            "{target}: {}: {}",
            level.as_str().to_ascii_lowercase(),
            fields.message
        )?,
    }
    for (name, value) in &fields.others {
        write!(out, " {name}={value}")?;
    }
    writeln!(out)
}

fn json(out: &mut Writer<'_>, target: &str, level: Level, fields: &Fields) -> fmt::Result {
    let mut time = String::new();
    SystemTime.format_time(&mut Writer::new(&mut time))?;
    write!(out, "{{\"timestamp\": {}", quoted(&time))?;
    write!(out, ", \"level\": {}", quoted(level.as_str()))?;
    write!(out, ", \"target\": {}", quoted(target))?;
    write!(out, ", \"message\": {}", quoted(&fields.message))?;
    for (name, value) in &fields.others {
        write!(out, ", {}: {}", quoted(name), quoted(value))?;
    }
    writeln!(out, "}}")
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_s_lines_are_logged_whole_however_they_are_written() {
        // Without a subscriber the writer passes whole lines on; what it
        // holds back is a line's start.
        let mut w = Stderr::default();
        w.write_all(b"projector: one\nprojector: tw").unwrap();
        assert_eq!(w.partial, b"projector: tw");
        w.write_all(b"o\n").unwrap();
        assert!(w.partial.is_empty());
    }

    #[test]
    fn json_lines_hold_the_fields_of_the_event() {
        let fields = Fields {
            message: "a \"quoted\" text\n".to_owned(),
            others: vec![("unit", "orders 1/4".to_owned())],
        };
        let mut text = String::new();
        json(
            &mut Writer::new(&mut text),
            "projector",
            Level::WARN,
            &fields,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["target"], "projector");
        assert_eq!(value["message"], "a \"quoted\" text\n");
        assert_eq!(value["unit"], "orders 1/4");
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
        let mut text = String::new();
        human(
            &mut Writer::new(&mut text),
            "async_nats",
            Level::WARN,
            &fields,
        )
        .unwrap();
        assert_eq!(
            text,
            "async_nats: warn: a \"quoted\" text\n unit=orders 1/4\n"
        );
    }
}
