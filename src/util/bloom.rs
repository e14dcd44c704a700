//! A split-block Bloom filter (as Parquet and Impala use it): says of a
//! value either "certainly never added" or "maybe added". Its size is fixed
//! when it is made, whatever is added: memory follows the setting, and only
//! the rate of false "maybe"s grows with what is added (about 1% at 10 bits
//! per value, 10% at 5).
//!
//! A value's 64-bit hash picks one block of 256 bits from its high half;
//! its low half sets one bit in each of the block's eight 32-bit words, so
//! a lookup reads one cache line. The number of blocks is a power of two,
//! so that a filter can be folded to half its size (block `i` of the half
//! is blocks `i` and `i + half` of the whole, OR-ed): a filter kept at one
//! size is read back at any smaller one.

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

/// Bytes per block.
const BLOCK: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    blocks: Vec<[u32; 8]>,
}

impl Bloom {
    /// A filter of at most `bytes` bytes (the largest power of two of
    /// blocks that fits; at least one block).
    pub fn with_bytes(bytes: usize) -> Bloom {
        let blocks = (bytes / BLOCK).max(1);
        Bloom {
            blocks: vec![[0; 8]; 1 << blocks.ilog2()],
        }
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK
    }

    fn block(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.blocks.len() - 1)
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

    /// Starts loading the block of `hash` (see [`crate::util::prefetch`]).
    pub fn prefetch(&self, hash: u64) {
        crate::util::prefetch::prefetch(&self.blocks[self.block(hash)]);
    }

    /// `false` when `hash` was certainly never inserted.
    pub fn may_contain(&self, hash: u64) -> bool {
        let block = &self.blocks[self.block(hash)];
        block
            .iter()
            .zip(Self::mask(hash))
            .all(|(word, bit)| word & bit != 0)
    }

    /// The filter as bytes, to be kept.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.blocks
            .iter()
            .flatten()
            .flat_map(|word| word.to_le_bytes())
            .collect()
    }

    /// A filter kept by [`Bloom::to_bytes`], folded down to at most
    /// `bytes` bytes; `None` when they are not one.
    pub fn from_bytes(kept: &[u8], bytes: usize) -> Option<Bloom> {
        let blocks = kept.len() / BLOCK;
        if !kept.len().is_multiple_of(BLOCK) || !blocks.is_power_of_two() {
            return None;
        }
        let mut filter = Bloom {
            blocks: kept
                .chunks_exact(BLOCK)
                .map(|block| {
                    let mut words = [0u32; 8];
                    for (word, b) in words.iter_mut().zip(block.chunks_exact(4)) {
                        *word = u32::from_le_bytes(b.try_into().expect("4 bytes"));
                    }
                    words
                })
                .collect(),
        };
        filter.fold_to(bytes);
        Some(filter)
    }

    /// Folds the filter in halves down to at most `bytes` bytes.
    fn fold_to(&mut self, bytes: usize) {
        while self.bytes() > bytes.max(BLOCK) {
            let half = self.blocks.len() / 2;
            let (low, high) = self.blocks.split_at_mut(half);
            for (a, b) in low.iter_mut().zip(high.iter()) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x |= y;
                }
            }
            self.blocks.truncate(half);
        }
    }

    /// Adds everything `other` holds (at the size of the smaller of the
    /// two).
    pub fn union(&mut self, other: &Bloom) {
        let mut other = other.clone();
        other.fold_to(self.bytes());
        self.fold_to(other.bytes());
        for (a, b) in self.blocks.iter_mut().zip(&other.blocks) {
            for (x, y) in a.iter_mut().zip(b) {
                *x |= y;
            }
        }
    }
}

/// A value's 64-bit hash for a filter: the same in every process (a filter
/// is kept), `domain` keeping apart values of different kinds.
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

/// Hashes as they are kept: 8 bytes each, little-endian.
pub fn hashes_to_bytes(hashes: &[u64]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// Hashes kept by [`hashes_to_bytes`].
pub fn hashes_from_bytes(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
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
    }

    #[test]
    fn kept_and_read_back_at_the_same_size_or_folded_smaller() {
        let mut filter = Bloom::with_bytes(100_000);
        assert_eq!(filter.bytes(), 65_536);
        let key = |i: u32| hash(b"doc", &i.to_le_bytes());
        (0..20_000).for_each(|i| filter.insert(key(i)));
        let kept = filter.to_bytes();
        assert_eq!(Bloom::from_bytes(&kept, 65_536), Some(filter.clone()));
        assert_eq!(Bloom::from_bytes(&kept, 1 << 30), Some(filter.clone()));
        let folded = Bloom::from_bytes(&kept, 16_384).unwrap();
        assert_eq!(folded.bytes(), 16_384);
        assert!((0..20_000).all(|i| folded.may_contain(key(i))));
        let tiny = Bloom::from_bytes(&kept, 0).unwrap();
        assert_eq!(tiny.bytes(), 32);
        assert!((0..20_000).all(|i| tiny.may_contain(key(i))));
        // A union holds both, at the smaller size.
        let mut other = Bloom::with_bytes(1 << 12);
        (50_000..50_100).for_each(|i| other.insert(key(i)));
        let mut both = filter.clone();
        both.union(&other);
        assert_eq!(both.bytes(), 1 << 12);
        assert!((0..20_000).all(|i| both.may_contain(key(i))));
        assert!((50_000..50_100).all(|i| both.may_contain(key(i))));
        assert_eq!(Bloom::from_bytes(&kept[..96], 1 << 20), None);
        let hashes = [1, u64::MAX, 7];
        assert!(hashes_from_bytes(&hashes_to_bytes(&hashes)).eq(hashes));
    }

    #[test]
    fn domains_keep_kinds_apart() {
        assert_ne!(hash(b"a", b"bc"), hash(b"ab", b"c"));
        assert_ne!(hash(b"id", b"x"), hash(b"doc", b"x"));
        assert_eq!(hash(b"id", b"x"), hash(b"id", b"x"));
    }
}
