//! A fast hasher for the maps on the hot path (documents by key, event types
//! by name): the multiply-rotate hash rustc uses (FxHash). It is not keyed, so
//! it trusts its input: the event stream of one's own system, not the internet.

use std::hash::{BuildHasherDefault, Hasher};

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // A multiply only carries differences upwards, and tables index by
        // the low bits: without this fold, keys that differ only in a word's
        // high bytes ("user-120", "user-121") would share one bucket chain.
        let h = self.hash ^ (self.hash >> 32);
        let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differing_in_a_high_byte_land_in_different_buckets() {
        let low_bits = |s: &str| {
            let mut h = FxHasher::default();
            h.write(s.as_bytes());
            h.finish() & 0xffff
        };
        let buckets: std::collections::HashSet<u64> =
            (0..10).map(|d| low_bits(&format!("user-12{d}"))).collect();
        assert_eq!(buckets.len(), 10);
    }

    #[test]
    fn keys_are_found_again() {
        let mut m: FastMap<String, usize> = FastMap::default();
        for i in 0..10_000 {
            m.insert(format!("user-{i}"), i);
        }
        assert!((0..10_000).all(|i| m[&format!("user-{i}")] == i));
        assert!(!m.contains_key("user-10000"));
    }
}
