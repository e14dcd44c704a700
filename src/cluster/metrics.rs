//! `--metrics ADDR`: what an instance does, in Prometheus's text format,
//! at `http://ADDR/metrics`.
//!
//! - `projector_events_applied_total`, `_skipped_total` (already
//!   processed), `_refused_total` (messages refused), `_parked_total`
//!   (events held behind a parked one): events of this instance's units;
//! - `projector_batch_commit_seconds`: a histogram of batch commits;
//! - `projector_units_owned`, and per unit `projector_unit_owned` (1 when
//!   this instance owns it) and `projector_unit_lag` (stream messages the
//!   unit has not applied yet, whoever owns it).

use crate::server::Counters;
use crate::state::background::COMMITS;
use crate::util::histogram::BOUNDS;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// What this process's workers did.
pub static COUNTERS: Counters = Counters::new();

/// What is known of a unit.
#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    /// This instance owns it.
    pub owned: bool,
    /// Stream messages it has not applied yet, when known.
    pub lag: Option<u64>,
    /// Events it holds parked, or asked to be retried.
    pub parked: u64,
}

/// Per unit, what is known of it.
static UNITS: Mutex<Vec<Unit>> = Mutex::new(Vec::new());

/// Sets what is known of the units, at each of the coordinator's turns.
pub fn set_units(units: Vec<Unit>) {
    *UNITS.lock().unwrap_or_else(|e| e.into_inner()) = units;
}

/// Says whether this instance owns the unit `name` as soon as it changes,
/// between the coordinator's turns.
pub fn set_owned(name: &str, owned: bool) {
    let mut units = UNITS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(unit) = units.iter_mut().find(|u| u.name == name) {
        unit.owned = owned;
    }
}

/// The metrics, as Prometheus reads them.
pub fn render() -> String {
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    };
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    counter(
        &mut out,
        "projector_events_applied_total",
        "Events applied to the read models.",
        load(&COUNTERS.applied),
    );
    counter(
        &mut out,
        "projector_events_skipped_total",
        "Events skipped as already processed.",
        load(&COUNTERS.skipped),
    );
    counter(
        &mut out,
        "projector_events_refused_total",
        "Messages refused (in the table rejections: parked, or recorded when no event).",
        load(&COUNTERS.refused),
    );
    counter(
        &mut out,
        "projector_events_parked_total",
        "Events held behind an event parked on one of their documents (in the table rejections).",
        load(&COUNTERS.parked),
    );
    let (cumulative, sum) = COMMITS.read();
    out.push_str("# HELP projector_batch_commit_seconds Time to commit one batch.\n");
    out.push_str("# TYPE projector_batch_commit_seconds histogram\n");
    for (bound, count) in BOUNDS.iter().zip(&cumulative) {
        let _ = writeln!(
            out,
            "projector_batch_commit_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let total = cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "projector_batch_commit_seconds_bucket{{le=\"+Inf\"}} {total}"
    );
    let _ = writeln!(out, "projector_batch_commit_seconds_sum {sum}");
    let _ = writeln!(out, "projector_batch_commit_seconds_count {total}");
    let units = UNITS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let owned = units.iter().filter(|u| u.owned).count();
    out.push_str("# HELP projector_units_owned Units of work this instance owns.\n");
    out.push_str("# TYPE projector_units_owned gauge\n");
    let _ = writeln!(out, "projector_units_owned {owned}");
    out.push_str("# HELP projector_unit_owned 1 when this instance owns the unit.\n");
    out.push_str("# TYPE projector_unit_owned gauge\n");
    for unit in &units {
        let _ = writeln!(
            out,
            "projector_unit_owned{{unit=\"{}\"}} {}",
            label(&unit.name),
            u8::from(unit.owned)
        );
    }
    out.push_str("# HELP projector_unit_lag Stream messages the unit has not applied yet.\n");
    out.push_str("# TYPE projector_unit_lag gauge\n");
    for unit in &units {
        if let Some(lag) = unit.lag {
            let _ = writeln!(
                out,
                "projector_unit_lag{{unit=\"{}\"}} {lag}",
                label(&unit.name)
            );
        }
    }
    out.push_str(
        "# HELP projector_unit_parked Events the unit holds parked in rejections (see projector rejections).\n",
    );
    out.push_str("# TYPE projector_unit_parked gauge\n");
    for unit in &units {
        let _ = writeln!(
            out,
            "projector_unit_parked{{unit=\"{}\"}} {}",
            label(&unit.name),
            unit.parked
        );
    }
    out
}

/// A label value, escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves the metrics on `addr` from a thread of its own; fails when the
/// address cannot be bound.
pub fn serve(addr: &str) -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".to_owned())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let response = match path {
                    "/metrics" | "/" => {
                        let body = render();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = stream.write_all(response.as_bytes());
            }
        })?;
    Ok(bound)
}
