//! The one retry policy: a step that failed for a reason that passes (a
//! lost connection, a lock held, a broker away) is tried again after a
//! pause that doubles from a first pause up to a cap, for at most a
//! deadline from the first failure. Each pause is drawn at random between
//! half its length and all of it ("equal jitter"), so that processes that
//! lost a server together do not all come back to it at the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// The pauses between the attempts of one step.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    /// The pause the next one is drawn from.
    pause: Duration,
    /// How long, from the first failure, attempts go on; `None`: for ever.
    within: Option<Duration>,
    /// The first failure since the last success.
    since: Option<Instant>,
    /// The state of the generator the jitter is drawn from.
    seed: u64,
}

impl Backoff {
    /// Pauses from `first`, doubling up to `cap`, for as long as it takes.
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap: cap.max(first),
            pause: first,
            within: None,
            since: None,
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        }
    }

    /// The same, giving up once `within` has passed since the first failure.
    pub fn within(self, within: Duration) -> Backoff {
        Backoff {
            within: Some(within),
            ..self
        }
    }

    /// The pause before trying again after a failure, or `None` when the
    /// deadline has passed: the step's failure is then its outcome.
    pub fn pause(&mut self) -> Option<Duration> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.within.is_some_and(|within| since.elapsed() >= within) {
            return None;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(self.cap);
        Some(pause / 2 + pause.mul_f64(self.draw() / 2.0))
    }

    /// Waits [`Backoff::next`]'s pause on this thread; `false` (at once)
    /// when the deadline has passed.
    pub fn sleep(&mut self) -> bool {
        match self.pause() {
            Some(pause) => {
                std::thread::sleep(pause);
                true
            }
            None => false,
        }
    }

    /// After a success: the next failure starts from the first pause again,
    /// with a deadline of its own.
    pub fn reset(&mut self) {
        self.pause = self.first;
        self.since = None;
    }

    /// Whether no attempt failed since the last success (or ever).
    pub fn is_fresh(&self) -> bool {
        self.since.is_none()
    }

    /// How long since the first failure (zero when none failed).
    pub fn elapsed(&self) -> Duration {
        self.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// A number in [0, 1): splitmix64.
    fn draw(&mut self) -> f64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_each_between_half_and_all_of_it() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let nominal = [100, 200, 400, 800, 1000, 1000, 1000];
        for n in nominal {
            let pause = backoff.pause().expect("no deadline");
            assert!(pause >= ms(n) / 2 && pause <= ms(n), "{pause:?} for {n} ms");
        }
        backoff.reset();
        assert!(backoff.is_fresh());
        assert!(backoff.pause().unwrap() <= ms(100));
    }

    #[test]
    fn two_policies_do_not_draw_the_same_pauses() {
        let ms = Duration::from_millis;
        let pauses =
            |mut b: Backoff| -> Vec<Duration> { (0..8).map(|_| b.pause().unwrap()).collect() };
        let a = pauses(Backoff::new(ms(1000), ms(1000)));
        let b = pauses(Backoff::new(ms(1000), ms(1000)));
        assert_ne!(a, b);
    }

    #[test]
    fn past_its_deadline_a_policy_gives_up() {
        let mut backoff =
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).within(Duration::ZERO);
        assert_eq!(backoff.pause(), None);
        assert!(!backoff.sleep());
        backoff.reset();
        let mut backoff = backoff.within(Duration::from_secs(3600));
        assert!(backoff.sleep());
        assert!(!backoff.is_fresh());
    }
}
