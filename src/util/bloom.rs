//! A split-block Bloom filter (as Parquet and Impala use it): says of a
//! value either "certainly never added" or "maybe added". Its size is fixed
//! when it is made, whatever is added: memory follows the setting, and only
//! the rate of false "maybe"s grows with what is added (about 1% at 10 bits
//! per value, 10% at 5).
//!
//! A value's 64-bit hash picks one block of 256 bits from its high half;
//! its low half sets one bit in each of the block's eight 32-bit words, so
//! a lookup reads one cache line.

/// Odd constants that spread one 32-bit hash into eight bit positions.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

#[derive(Debug, Clone)]
pub struct Bloom {
    blocks: Vec<[u32; 8]>,
}

impl Bloom {
    /// A filter of about `bytes` bytes (at least one block).
    pub fn with_bytes(bytes: usize) -> Bloom {
        Bloom {
            blocks: vec![[0; 8]; (bytes / 32).max(1)],
        }
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len() * 32
    }

    fn block(&self, hash: u64) -> usize {
        (((hash >> 32) * self.blocks.len() as u64) >> 32) as usize
    }

    fn mask(hash: u64) -> [u32; 8] {
        let low = hash as u32;
        SALT.map(|salt| 1 << (low.wrapping_mul(salt) >> 27))
    }

    pub fn insert(&mut self, hash: u64) {
        let at = self.block(hash);
        let block = &mut self.blocks[at];
        for (word, bit) in block.iter_mut().zip(Self::mask(hash)) {
            *word |= bit;
        }
    }

    /// `false` when `hash` was certainly never inserted.
    pub fn may_contain(&self, hash: u64) -> bool {
        let block = &self.blocks[self.block(hash)];
        block
            .iter()
            .zip(Self::mask(hash))
            .all(|(word, bit)| word & bit != 0)
    }

    /// Forgets everything inserted.
    pub fn clear(&mut self) {
        self.blocks.fill([0; 8]);
    }
}

/// A value's 64-bit hash for a filter: the same in every process (a filter
/// may be kept), `domain` keeping apart values of different kinds.
pub fn hash(domain: &[u8], value: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = crate::util::hash::FxHasher::default();
    hasher.write(domain);
    hasher.write_u8(0xff);
    hasher.write(value);
    hasher.write_usize(value.len());
    // The finalizer of MurmurHash3: every input bit reaches every output bit.
    let mut h = hasher.finish();
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_forgets_and_seldom_imagines() {
        let mut filter = Bloom::with_bytes(128 * 1024);
        let key = |i: u32| hash(b"id", format!("evt-{i}").as_bytes());
        for i in 0..100_000 {
            filter.insert(key(i));
        }
        assert!((0..100_000).all(|i| filter.may_contain(key(i))));
        // 10.5 bits per value: about 1% false positives.
        let false_positives = (100_000..200_000)
            .filter(|i| filter.may_contain(key(*i)))
            .count();
        assert!(false_positives < 2_000, "{false_positives} of 100000");
        filter.clear();
        assert!(!filter.may_contain(key(1)));
    }

    #[test]
    fn domains_keep_kinds_apart() {
        assert_ne!(hash(b"a", b"bc"), hash(b"ab", b"c"));
        assert_ne!(hash(b"id", b"x"), hash(b"doc", b"x"));
        assert_eq!(hash(b"id", b"x"), hash(b"id", b"x"));
    }
}
