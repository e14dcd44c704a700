//! A histogram of durations that threads add to without locks, read as
//! Prometheus buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

pub struct Histogram {
    /// Per bucket, the observations at or below its bound and above the
    /// one before; the last counts the rest.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let at = BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (the last for +Inf), and the sum in
    /// seconds.
    pub fn read(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }

    /// The smallest bound at or below which `q` (0..1) of the observations
    /// fall; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (cumulative, _) = self.read();
        let total = *cumulative.last()?;
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil() as u64;
        let at = cumulative.iter().position(|&c| c >= wanted)?;
        Some(BOUNDS.get(at).copied().unwrap_or(f64::INFINITY))
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), None);
        for ms in [0, 2, 2, 30, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let (cumulative, sum) = h.read();
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[1], 3);
        assert_eq!(cumulative[5], 4);
        assert_eq!(*cumulative.last().unwrap(), 5);
        assert!((sum - 20.034).abs() < 1e-9);
        assert_eq!(h.quantile(0.5), Some(0.0025));
        assert_eq!(h.quantile(0.99), Some(f64::INFINITY));
    }
}
