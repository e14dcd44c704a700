//! The ids of processed events: checked before an event is applied, recorded
//! only after every write of that event has been made.
//!
//! An id is kept as a 128-bit hash (two SipHash-1-3 hashes with keys drawn
//! per process), 16 bytes however long the id, instead of the id itself; two
//! ids collide with a probability near n²/2¹²⁹, about 10⁻²⁵ for 10 million ids.
//! With `--state` the full ids stay in the state file, and are hashed anew
//! when a run starts. The hashes are spread over 16 tables, so that growing
//! one table holds a sixteenth of them twice, not all of them.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::OnceLock;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub struct Processed {
    shards: [HashSet<u128, BuildHasherDefault<Spread>>; SHARDS],
}

/// An event id's 128-bit hash: computed once per event, checked and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash(u128);

impl IdHash {
    pub fn of(id: &str) -> IdHash {
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        IdHash((u128::from(a.hash_one(id)) << 64) | u128::from(b.hash_one(id)))
    }

    fn shard(self) -> usize {
        (self.0 >> 124) as usize
    }
}

impl Processed {
    pub fn contains(&self, id: IdHash) -> bool {
        self.shards[id.shard()].contains(&id.0)
    }

    pub fn record(&mut self, id: IdHash) {
        self.shards[id.shard()].insert(id.0);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The set's own hasher: its keys are already uniform hashes, so it takes
/// their low bits as they are.
#[derive(Debug, Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
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
    }
}
