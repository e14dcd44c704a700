//! The ids of processed events: checked before an event is applied, recorded
//! only after every write of that event has been made.
//!
//! An id is kept as a 128-bit hash (two SipHash-1-3 hashes with keys drawn
//! per process), 16 bytes however long the id, instead of the id itself; two
//! ids collide with a probability near n²/2¹²⁹, about 10⁻²⁵ for 10 million ids.
//! With `--state` the full ids stay in the state file, and are hashed anew
//! when a run starts.
//!
//! The hashes are held in open-addressing tables: a hash's slot is found
//! from its own bits, and the hash itself is the entry, so a lookup reads
//! one cache line (rarely the next one too), and the engine can ask for that
//! line ahead of time ([`Processed::prefetch`]). The hashes are spread over
//! 16 tables, so that growing one holds a sixteenth of them twice, not all
//! of them.

use crate::util::prefetch::prefetch;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub struct Processed {
    shards: [Table; SHARDS],
}

/// An event id's 128-bit hash: computed once per event, checked and recorded.
/// Never zero, which marks an empty slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash(u128);

impl IdHash {
    pub fn of(id: &str) -> IdHash {
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        let hash = (u128::from(a.hash_one(id)) << 64) | u128::from(b.hash_one(id));
        IdHash(hash.max(1))
    }

    /// The table, from the top bits (the slot comes from the low ones).
    fn shard(self) -> usize {
        (self.0 >> 124) as usize
    }
}

impl Processed {
    pub fn contains(&self, id: IdHash) -> bool {
        self.shards[id.shard()].find(id).is_ok()
    }

    pub fn record(&mut self, id: IdHash) {
        self.shards[id.shard()].insert(id);
    }

    /// Starts loading the slot where `id` is looked up, for a
    /// [`contains`](Processed::contains) soon after.
    pub fn prefetch(&self, id: IdHash) {
        self.shards[id.shard()].prefetch(id);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|t| t.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A set of hashes with linear probing: a power-of-two number of slots,
/// zero for empty, at most three quarters full.
#[derive(Debug, Default)]
struct Table {
    slots: Vec<u128>,
    len: usize,
}

impl Table {
    /// Where the hash is (`Ok`), or the empty slot where it would go (`Err`).
    fn find(&self, id: IdHash) -> Result<usize, usize> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = self.home(id);
        while let Some(&slot) = self.slots.get(at) {
            if slot == id.0 {
                return Ok(at);
            }
            if slot == 0 {
                return Err(at);
            }
            at = (at + 1) & mask;
        }
        // No slots yet.
        Err(usize::MAX)
    }

    fn home(&self, id: IdHash) -> usize {
        (id.0 as u64 as usize) & self.slots.len().wrapping_sub(1)
    }

    fn insert(&mut self, id: IdHash) {
        let Err(mut at) = self.find(id) else {
            return;
        };
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
            at = self.find(id).expect_err("not there before growing");
        }
        self.slots[at] = id.0;
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        let mask = self.slots.len() - 1;
        for hash in old.into_iter().filter(|&h| h != 0) {
            let mut at = self.home(IdHash(hash));
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = hash;
        }
    }

    fn prefetch(&self, id: IdHash) {
        if let Some(slot) = self.slots.get(self.home(id)) {
            prefetch(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_apart_and_remembered() {
        let mut p = Processed::default();
        let id = IdHash::of;
        assert!(!p.contains(id("evt-1")));
        p.record(id("evt-1"));
        p.record(id("evt-1"));
        assert!(p.contains(id("evt-1")));
        assert!(!p.contains(id("evt-2")));
        assert!(!p.contains(id("evt-1 ")));
        assert_eq!(p.len(), 1);
        for i in 0..100_000 {
            p.record(id(&format!("evt-{i}")));
        }
        assert_eq!(p.len(), 100_000);
        assert!((0..100_000).all(|i| p.contains(id(&format!("evt-{i}")))));
        assert!(!(100_000..110_000).any(|i| p.contains(id(&format!("evt-{i}")))));
    }

    #[test]
    fn hashes_sharing_a_home_slot_probe_on_past_the_end_of_the_table() {
        let mut t = Table::default();
        // Same shard, same low bits: each lands on the last slot of 64 first.
        let crowd: Vec<IdHash> = (1..=40).map(|n| IdHash((n << 64) | 63)).collect();
        for (i, &id) in crowd.iter().enumerate() {
            assert!(t.find(id).is_err());
            t.insert(id);
            assert_eq!(t.len, i + 1);
        }
        assert!(t.slots.len() >= 64 && t.len * 4 <= t.slots.len() * 3);
        assert!(crowd.iter().all(|&id| t.find(id).is_ok()));
        assert!(t.find(IdHash((41 << 64) | 63)).is_err());
        t.insert(crowd[7]);
        assert_eq!(t.len, 40);
    }
}
