//! `--metrics ADDR`: what an instance does, in Prometheus's text format,
//! at `http://ADDR/metrics`.
//!
//! - `projector_events_applied_total`, `_skipped_total` (already
//!   processed), `_refused_total` (messages refused), `_parked_total`
//!   (events held behind a parked one): events of this instance's units;
//! - `projector_batch_commit_seconds`: a histogram of batch commits;
//! - `projector_units_owned`, and per unit `projector_unit_owned` (1 when
//!   this instance owns it), `projector_unit_lag` (stream messages the
//!   unit has not applied yet, whoever owns it) and `projector_unit_parked`.
//!
//! The workers count in atomics of their own; a scrape reads them through
//! a `prometheus-client` collector, which writes the exposition format.

mod http;

pub use http::serve;

use crate::server::Counters;
use crate::state::background::COMMITS;
use crate::util::histogram::BOUNDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

/// The metrics, as Prometheus reads them (text format 0.0.4).
pub fn render() -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Instance));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// This process's counters, the commit histogram and the units, read at
/// each scrape.
#[derive(Debug)]
struct Instance;

/// An event counter: name (without `_total`), help, value.
type EventCounter = (&'static str, &'static str, fn(&Counters) -> &AtomicU64);

const EVENTS: [EventCounter; 4] = [
    (
        "projector_events_applied",
        "Events applied to the read models.",
        |c| &c.applied,
    ),
    (
        "projector_events_skipped",
        "Events skipped as already processed.",
        |c| &c.skipped,
    ),
    (
        "projector_events_refused",
        "Messages refused (in the table rejections: parked, or recorded when no event).",
        |c| &c.refused,
    ),
    (
        "projector_events_parked",
        "Events held behind an event parked on one of their documents (in the table rejections).",
        |c| &c.parked,
    ),
];

impl Collector for Instance {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for (name, help, counter) in EVENTS {
            let value = counter(&COUNTERS).load(Ordering::Relaxed);
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None)?;
        }
        commits(&mut encoder)?;
        units(&mut encoder)
    }
}

/// `projector_batch_commit_seconds`.
fn commits(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let (cumulative, sum) = COMMITS.read();
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = BOUNDS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(&cumulative)
        .map(|(bound, &count)| {
            let in_bucket = count - below;
            below = count;
            (bound, in_bucket)
        })
        .collect();
    let total = cumulative.last().copied().unwrap_or(0);
    encoder
        .encode_descriptor(
            "projector_batch_commit_seconds",
            "Time to commit one batch.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
}

/// The per-unit gauges: name, help, value (none: no sample).
type UnitGauge = (&'static str, &'static str, fn(&Unit) -> Option<u64>);

const UNIT_GAUGES: [UnitGauge; 3] = [
    (
        "projector_unit_owned",
        "1 when this instance owns the unit.",
        |u| Some(u64::from(u.owned)),
    ),
    (
        "projector_unit_lag",
        "Stream messages the unit has not applied yet.",
        |u| u.lag,
    ),
    (
        "projector_unit_parked",
        "Events the unit holds parked in rejections (see projector rejections).",
        |u| Some(u.parked),
    ),
];

/// `projector_units_owned` and the per-unit gauges.
fn units(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let units = UNITS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let owned = units.iter().filter(|u| u.owned).count() as u64;
    encoder
        .encode_descriptor(
            "projector_units_owned",
            "Units of work this instance owns.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&owned)?;
    for (name, help, value) in UNIT_GAUGES {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for unit in &units {
            if let Some(value) = value(unit) {
                family
                    .encode_family(&[("unit", unit.name.as_str())])?
                    .encode_gauge(&value)?;
            }
        }
    }
    Ok(())
}
