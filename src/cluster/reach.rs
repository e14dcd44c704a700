//! Whether an instance can read its stream, as its coordinator finds out
//! every turn. An instance that cannot, for longer than its lease, gives
//! its units up so that the others take them (it would renew their claims
//! and apply nothing), counts itself out of the live instances and claims
//! nothing until the stream answers again. While the stream is silent,
//! for a lease at most, the units it owns stay its own (a short outage
//! moves nothing) but it claims no other.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Reach {
    /// Since when the stream has not answered.
    silent_since: Option<Instant>,
    /// The units were given up: silent longer than a lease.
    cut_off: bool,
}

/// What an answer (or its absence) changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Silent longer than the lease: the units are to be given up.
    Lost,
    /// It answers again after it was lost.
    Back,
}

impl Reach {
    /// Records whether the stream answered at `now`.
    pub fn answered(&mut self, answered: bool, now: Instant, lease: Duration) -> Change {
        if answered {
            self.silent_since = None;
            return match std::mem::take(&mut self.cut_off) {
                true => Change::Back,
                false => Change::Same,
            };
        }
        let since = *self.silent_since.get_or_insert(now);
        if !self.cut_off && now.duration_since(since) > lease {
            self.cut_off = true;
            return Change::Lost;
        }
        Change::Same
    }

    /// Its units are given up, and it counts itself out.
    pub fn cut_off(&self) -> bool {
        self.cut_off
    }

    /// It did not answer at the last turn: no unit is claimed.
    pub fn silent(&self) -> bool {
        self.silent_since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_given_up_past_a_lease_of_silence_and_claimed_again_at_an_answer() {
        let lease = Duration::from_secs(2);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut reach = Reach::default();
        assert_eq!(reach.answered(true, at(0), lease), Change::Same);
        assert!(!reach.silent() && !reach.cut_off());

        // A silence shorter than the lease: nothing given up, nothing claimed.
        assert_eq!(reach.answered(false, at(500), lease), Change::Same);
        assert_eq!(reach.answered(false, at(2500), lease), Change::Same);
        assert!(reach.silent() && !reach.cut_off());
        assert_eq!(reach.answered(true, at(2600), lease), Change::Same);
        assert!(!reach.silent());

        // A longer one: given up once, and counted out until an answer.
        assert_eq!(reach.answered(false, at(3000), lease), Change::Same);
        assert_eq!(reach.answered(false, at(5001), lease), Change::Lost);
        assert_eq!(reach.answered(false, at(9000), lease), Change::Same);
        assert!(reach.silent() && reach.cut_off());
        assert_eq!(reach.answered(true, at(9500), lease), Change::Back);
        assert_eq!(reach.answered(true, at(10_000), lease), Change::Same);
        assert!(!reach.silent() && !reach.cut_off());
    }
}
