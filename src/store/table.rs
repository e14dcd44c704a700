//! A hash table from document keys to values whose slot for a key can be
//! found without reading the table, so that it can be loaded ahead of time
//! ([`Table::prefetch`]).
//!
//! Open addressing with linear probing: each slot holds a key and its value
//! (48 bytes for a document), the first slot tried for a key is fixed by the
//! key's hash, and the table is kept at most three quarters full, so a
//! lookup reads that slot and seldom more than the next few, which share its
//! cache line or the one after. A removal shifts back the entries after it
//! that belong earlier, so no slot is ever marked as deleted.

use super::key::Key;
use crate::util::hash::FxHasher;
use crate::util::prefetch::prefetch;
use std::hash::Hasher;

#[derive(Debug, Clone)]
pub struct Table<V> {
    /// A power of two of them, or none before the first insert.
    slots: Vec<Option<(Key, V)>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// Where a key is, or where it would go.
enum Probe {
    Found(usize),
    Vacant(usize),
}

fn hash(key: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(key);
    hasher.finish()
}

impl<V> Table<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The first slot tried for a key with this hash.
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Where `key` is, or the empty slot where it would go; `None` while
    /// the table has no slots.
    fn probe(&self, key: &Key) -> Option<Probe> {
        let mut at = self.home(hash(key.as_bytes()));
        loop {
            match self.slots.get(at)? {
                None => return Some(Probe::Vacant(at)),
                // Equal texts make equal keys: a short one is always inline.
                Some((k, _)) if k == key => return Some(Probe::Found(at)),
                Some(_) => at = (at + 1) & self.mask(),
            }
        }
    }

    pub fn get(&self, key: &Key) -> Option<&V> {
        match self.probe(key)? {
            Probe::Found(at) => self.slots[at].as_ref().map(|(_, v)| v),
            Probe::Vacant(_) => None,
        }
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        match self.probe(key)? {
            Probe::Found(at) => self.slots[at].as_mut().map(|(_, v)| v),
            Probe::Vacant(_) => None,
        }
    }

    /// The value under `key`, inserting `make()` first when there is none;
    /// `true` when it was inserted.
    pub fn get_or_insert_with(&mut self, key: &Key, make: impl FnOnce() -> V) -> (&mut V, bool) {
        let (at, inserted) = match self.probe(key) {
            Some(Probe::Found(at)) => (at, false),
            _ => (self.insert_new(key.clone(), make()), true),
        };
        let (_, value) = self.slots[at].as_mut().expect("a full slot");
        (value, inserted)
    }

    /// Stores `value` under `key`; returns the value it replaces.
    pub fn insert(&mut self, key: Key, value: V) -> Option<V> {
        match self.probe(&key) {
            Some(Probe::Found(at)) => {
                let (_, old) = self.slots[at].as_mut().expect("a full slot");
                Some(std::mem::replace(old, value))
            }
            _ => {
                self.insert_new(key, value);
                None
            }
        }
    }

    /// Inserts a key known to be absent; returns its slot.
    fn insert_new(&mut self, key: Key, value: V) -> usize {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let Some(Probe::Vacant(at)) = self.probe(&key) else {
            unreachable!("an absent key in a table with room")
        };
        self.slots[at] = Some((key, value));
        self.len += 1;
        at
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(size, || None);
        for (key, value) in old.into_iter().flatten() {
            let mut at = self.home(hash(key.as_bytes()));
            while self.slots[at].is_some() {
                at = (at + 1) & self.mask();
            }
            self.slots[at] = Some((key, value));
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<V> {
        let Probe::Found(mut hole) = self.probe(key)? else {
            return None;
        };
        let (_, value) = self.slots[hole].take().expect("a full slot");
        self.len -= 1;
        // Entries after the hole, up to the next empty slot, were placed
        // past it because it was full; each one whose first slot is not
        // between the hole and where it is now moves back into the hole.
        let mut at = hole;
        loop {
            at = (at + 1) & self.mask();
            let Some((k, _)) = &self.slots[at] else {
                return Some(value);
            };
            let home = self.home(hash(k.as_bytes()));
            let distance = |from: usize, to: usize| to.wrapping_sub(from) & self.mask();
            if distance(home, at) >= distance(hole, at) {
                self.slots[hole] = self.slots[at].take();
                hole = at;
            }
        }
    }

    /// How many slots the table has: the positions of [`Table::slot_mut`].
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The entry in slot `at`, if it holds one.
    pub fn slot_mut(&mut self, at: usize) -> Option<(&Key, &mut V)> {
        self.slots.get_mut(at)?.as_mut().map(|(k, v)| (&*k, v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Starts loading the slot where the search for `key` begins.
    pub fn prefetch(&self, key: &Key) {
        if let Some(slot) = self.slots.get(self.home(hash(key.as_bytes()))) {
            prefetch(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Keys whose hashes share their low bits, so that they crowd one
    /// stretch of a small table.
    fn crowd(size: usize, home: usize, count: usize) -> Vec<Key> {
        (0..)
            .map(|i| Key::new(&format!("k{i}")))
            .filter(|k| hash(k.as_bytes()) as usize & (size - 1) == home)
            .take(count)
            .collect()
    }

    #[test]
    fn behaves_as_a_map_through_inserts_and_removals() {
        // A fixed pseudo-random sequence of operations, checked against a
        // BTreeMap after each one.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut table = Table::default();
        let mut model = BTreeMap::new();
        for step in 0..50_000 {
            let key = format!("key-{}", next(3_000));
            let k = Key::new(&key);
            match next(4) {
                0 | 1 => assert_eq!(table.insert(k, step), model.insert(key, step)),
                2 => assert_eq!(table.remove(&k), model.remove(&key)),
                _ => {
                    let (v, inserted) = table.get_or_insert_with(&k, || step);
                    assert_eq!(inserted, !model.contains_key(&key));
                    assert_eq!(*v, *model.entry(key).or_insert(step));
                }
            }
            assert_eq!(table.len(), model.len());
        }
        for (key, value) in &model {
            assert_eq!(table.get(&Key::new(key)), Some(value));
        }
        let mut all: Vec<(String, usize)> = table
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), *v))
            .collect();
        all.sort();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_removal_keeps_the_keys_that_probed_past_it_and_around_the_end() {
        let mut table = Table::default();
        table.insert(Key::new("first"), 0);
        assert_eq!(table.slots.len(), 16);
        // Five keys that all start at the last slot: four wrap around.
        let keys = crowd(16, 15, 5);
        for (i, k) in keys.iter().enumerate() {
            table.insert(k.clone(), i + 1);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(table.remove(k), Some(i + 1));
            for (j, later) in keys.iter().enumerate().skip(i + 1) {
                assert_eq!(table.get(later), Some(&(j + 1)), "after removing {i}");
            }
            assert_eq!(table.get(k), None);
        }
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(&Key::new("first")), Some(&0));
    }

    #[test]
    fn grows_before_it_is_more_than_three_quarters_full() {
        let mut table = Table::default();
        for i in 0..1_000 {
            table.insert(Key::new(&format!("key-{i}")), i);
            assert!(table.len() * 4 <= table.slots.len() * 3);
        }
        assert!((0..1_000).all(|i| table.get(&Key::new(&format!("key-{i}"))) == Some(&i)));
    }
}
