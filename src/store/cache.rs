//! A read model's documents as a durable state's cache holds them: the few
//! that events touched lately, loaded from the state, rather than all.
//!
//! Each entry is a document, or the knowledge that there is none under its
//! key (`doc: None`), with what the cache needs to bound itself: an estimate
//! of its size, the batch that last wrote it (an entry written by a batch
//! not yet committed must stay: the state does not hold it yet), and whether
//! it was used since the last sweep (the clock of [`CachedStore::evict`]).
//!
//! The engine makes every document an event touches resident before it
//! applies the event (see [`crate::engine::Engine::preload`]); the
//! [`DocumentStore`] methods then never find a key they do not know. A store
//! that is `complete` holds every document of its model (a new state, a
//! model being rebuilt): a key it does not hold has no document.

use super::key::Key;
use super::table::Table;
use super::{Document, DocumentStore};

/// An odd multiplier: see [`CachedStore::evict`].
const SCATTER: usize = 0x9e37_79b9_7f4a_7c15_u64 as usize;

/// What an entry costs beyond its document's text and its slot: the
/// fields' vector, as the allocator rounds it.
const ENTRY_BYTES: usize = 48;

/// A slot of the table: what each slot costs, full or empty (the table is
/// a quarter to three quarters full).
const SLOT_BYTES: usize = std::mem::size_of::<Option<(Key, Entry)>>();

#[derive(Debug)]
struct Entry {
    doc: Option<Document>,
    /// The estimated size, in bytes, as of the last load or write.
    bytes: usize,
    /// The batch that last wrote it (0: none since it was loaded).
    written: u32,
    used: bool,
}

#[derive(Debug, Default)]
pub struct CachedStore {
    entries: Table<Entry>,
    /// Documents of the model, in the state and written since.
    len: u64,
    /// The sum of the entries' sizes.
    bytes: usize,
    /// The batch being collected: writes from now on carry it.
    batch: u32,
    /// Every document of the model is resident: none was evicted since
    /// the state held none.
    complete: bool,
    /// Keys of documents created since [`CachedStore::take_created`].
    created: Vec<Key>,
    /// Where the next sweep of [`CachedStore::evict`] starts: the clock's
    /// hand, a step of the scattered order in which sweeps visit the slots.
    hand: usize,
}

/// What a sweep of [`CachedStore::evict`] left, for the next one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Swept {
    pub freed: usize,
}

impl CachedStore {
    /// The cache of a model whose state holds `len` documents; `complete`
    /// when it holds them all (none, in a new state).
    pub fn new(len: u64, complete: bool) -> CachedStore {
        CachedStore {
            complete: complete && len == 0,
            len,
            ..CachedStore::default()
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether the document under `key`, or its absence, is known here.
    /// Marks it used.
    pub fn touch(&mut self, key: &Key) -> bool {
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.used = true;
                true
            }
            None => self.complete,
        }
    }

    /// Keeps what the state holds under `key`: a document and the length
    /// of its JSON text, or none. A key already resident keeps its entry:
    /// it may hold writes the state does not have yet.
    pub fn load(&mut self, key: &Key, doc: Option<(Document, usize)>) {
        let (doc, text) = match doc {
            Some((doc, text)) => (Some(doc), text),
            None => (None, 0),
        };
        let bytes = estimate(key, text);
        let (entry, inserted) = self.entries.get_or_insert_with(key, || Entry {
            doc,
            bytes,
            written: 0,
            used: true,
        });
        entry.used = true;
        if inserted {
            self.bytes += bytes;
        }
    }

    /// Writes the document under `key` to `out` as JSON, and takes its
    /// size anew from it; `false` (nothing written) when there is none.
    pub fn serialize(&mut self, key: &Key, out: &mut Vec<u8>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let Some(doc) = &entry.doc else {
            return false;
        };
        let start = out.len();
        serde_json::to_writer(&mut *out, doc).expect("documents serialize");
        let bytes = estimate(key, out.len() - start);
        self.bytes = self.bytes - entry.bytes + bytes;
        entry.bytes = bytes;
        true
    }

    /// The keys of the documents created since the last call.
    pub fn take_created(&mut self) -> std::vec::Drain<'_, Key> {
        self.created.drain(..)
    }

    /// Writes from now on belong to batch `batch`.
    pub fn set_batch(&mut self, batch: u32) {
        self.batch = batch;
    }

    /// The estimated bytes held: the documents and the table's slots.
    pub fn bytes(&self) -> usize {
        self.bytes + self.entries.slots() * SLOT_BYTES
    }

    /// Removes entries neither used since the last sweep nor written by a
    /// batch after `committed`, until `goal` bytes are freed; the others
    /// count as unused from now on.
    pub fn evict(&mut self, committed: u32, goal: usize) -> Swept {
        let mut gone = Vec::new();
        let mut freed = 0;
        let slots = self.entries.slots();
        let mut swept = 0;
        while swept < slots && freed < goal {
            // Step i of a sweep visits slot i * SCATTER: every slot once per
            // round (an odd factor permutes a power of two of slots), spread
            // over the table. Slots in table order would be emptied a stretch
            // at a time, while the stretches not swept yet fill up, into
            // probe chains thousands of slots long.
            let at = (self.hand + swept).wrapping_mul(SCATTER) & (slots - 1);
            swept += 1;
            let Some((key, entry)) = self.entries.slot_mut(at) else {
                continue;
            };
            if entry.written > committed || std::mem::take(&mut entry.used) {
                continue;
            }
            freed += entry.bytes;
            gone.push(key.clone());
        }
        self.hand = (self.hand + swept) & slots.wrapping_sub(1);
        for key in &gone {
            self.entries.remove(key);
        }
        // What was evicted is in the state, not here.
        self.complete &= gone.is_empty();
        self.bytes -= freed;
        Swept { freed }
    }

    /// Starts loading the slot where `key` is looked up.
    pub fn prefetch(&self, key: &Key) {
        self.entries.prefetch(key);
    }

    /// The document under `key`, if it is resident.
    pub fn resident(&self, key: &Key) -> Option<&Document> {
        self.entries.get(key).and_then(|e| e.doc.as_ref())
    }

    /// Every resident document, in key order.
    pub fn all_resident(&self) -> Vec<(&str, &Document)> {
        let mut docs: Vec<(&str, &Document)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| e.doc.as_ref().map(|d| (k.as_str(), d)))
            .collect();
        docs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        docs
    }

    /// The entry under `key`, which must be resident (or the store
    /// complete), marked as written by the current batch.
    /// The entry under `key` (see [`CachedStore::written`]) and a counter
    /// of creations: the document count, with the key noted as created.
    fn written<'k>(&mut self, key: &'k Key) -> (&mut Entry, Created<'_, 'k>) {
        let CachedStore {
            entries,
            len,
            bytes,
            batch,
            complete,
            created,
            ..
        } = self;
        let (entry, inserted) = entries.get_or_insert_with(key, || {
            assert!(*complete, "document {key:?} used before it was loaded");
            Entry {
                doc: None,
                bytes: estimate(key, 0),
                written: *batch,
                used: true,
            }
        });
        entry.written = *batch;
        entry.used = true;
        if inserted {
            *bytes += entry.bytes;
        }
        (
            entry,
            Created {
                len,
                keys: created,
                key,
            },
        )
    }
}

/// Counts a document created under `key`.
struct Created<'s, 'k> {
    len: &'s mut u64,
    keys: &'s mut Vec<Key>,
    key: &'k Key,
}

impl Created<'_, '_> {
    fn created(self) {
        *self.len += 1;
        self.keys.push(self.key.clone());
    }
}

/// What an entry is estimated to cost, from its document's JSON text: a
/// parsed document takes about twice its text.
/// An entry's bytes beyond its slot: a key too long to be held inline, and
/// the document, at about twice its JSON text.
fn estimate(key: &Key, text: usize) -> usize {
    let key = match key.as_bytes().len() {
        n if n > super::key::INLINE => n,
        _ => 0,
    };
    ENTRY_BYTES + key + 2 * text
}

impl DocumentStore for CachedStore {
    fn get(&self, key: &Key) -> Option<&Document> {
        match self.entries.get(key) {
            Some(entry) => entry.doc.as_ref(),
            None => {
                assert!(self.complete, "document {key:?} read before it was loaded");
                None
            }
        }
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Document> {
        self.written(key).0.doc.as_mut()
    }

    fn get_or_create(&mut self, key: &Key) -> (&mut Document, bool) {
        let (entry, counter) = self.written(key);
        let created = entry.doc.is_none();
        if created {
            counter.created();
        }
        (entry.doc.get_or_insert_with(Document::new), created)
    }

    fn replace(&mut self, key: &Key, doc: Document) -> bool {
        let (entry, counter) = self.written(key);
        let changed = entry.doc.as_ref() != Some(&doc);
        if entry.doc.is_none() {
            counter.created();
        }
        entry.doc = Some(doc);
        changed
    }

    fn put(&mut self, key: &str, doc: Document) -> Option<Document> {
        let key = Key::new(key);
        let (entry, counter) = self.written(&key);
        let old = entry.doc.replace(doc);
        if old.is_none() {
            counter.created();
        }
        old
    }

    fn remove(&mut self, key: &Key) -> Option<Document> {
        let (entry, counter) = self.written(key);
        let old = entry.doc.take();
        if old.is_some() {
            *counter.len -= 1;
        }
        old
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    /// Resident documents only: the state pages the others.
    fn page(&self, after: Option<&str>, limit: usize) -> Vec<(&str, &Document)> {
        let mut page = self.all_resident();
        page.retain(|(k, _)| after.is_none_or(|a| *k > a));
        page.truncate(limit);
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: serde_json::Value) -> Document {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn keeps_what_is_written_until_committed_and_evicts_the_unused() {
        let mut s = CachedStore::new(2, false);
        let (a, b, c) = (Key::new("a"), Key::new("b"), Key::new("c"));
        assert!(!s.touch(&a));
        s.load(&a, Some((doc(json!({"n": 1})), 7)));
        s.load(&b, None);
        assert!(s.touch(&a) && s.touch(&b));
        assert_eq!(s.get(&b), None);
        s.set_batch(1);
        s.get_or_create(&b)
            .0
            .insert(crate::value::name::Name::new("n"), json!(2));
        assert_eq!(s.len(), 3);
        // Everything was used: a first sweep only ages it.
        assert_eq!(s.evict(0, usize::MAX).freed, 0);
        // `b` is written by batch 1, not committed: it stays.
        let freed = s.evict(0, usize::MAX).freed;
        assert_eq!(freed, estimate(&a, 7));
        assert!(!s.touch(&a));
        assert!(s.touch(&b));
        s.evict(1, usize::MAX);
        s.evict(1, usize::MAX);
        assert!(!s.touch(&b));
        // Only the table's slots are left.
        assert_eq!(s.bytes(), s.entries.slots() * SLOT_BYTES);
        assert_eq!(s.len(), 3);
        s.load(&c, Some((doc(json!({})), 2)));
        assert!(s.remove(&c).is_some());
        assert_eq!(s.len(), 2);
    }

    #[test]
    #[should_panic(expected = "before it was loaded")]
    fn a_key_never_loaded_is_never_guessed() {
        let s = CachedStore::new(1, false);
        s.get(&Key::new("x"));
    }

    #[test]
    fn a_complete_store_knows_absent_keys_until_it_evicts() {
        let mut s = CachedStore::new(0, true);
        assert!(s.touch(&Key::new("x")));
        assert_eq!(s.get(&Key::new("x")), None);
        s.set_batch(10);
        assert!(s.get_or_create(&Key::new("x")).1);
        // Written by a batch not committed: kept.
        assert_eq!(s.evict(9, usize::MAX).freed, 0);
        assert_eq!(s.evict(9, usize::MAX).freed, 0);
        assert_eq!(s.page(None, 10).len(), 1);
        s.evict(10, usize::MAX);
        assert!(s.evict(10, usize::MAX).freed > 0);
        assert!(!s.is_complete() && !s.touch(&Key::new("y")));
    }

    /// The longest stretch of full slots in the table.
    fn longest_run(s: &mut CachedStore) -> usize {
        let (mut run, mut longest) = (0, 0);
        for at in 0..s.entries.slots() {
            run = match s.entries.slot_mut(at) {
                Some(_) => run + 1,
                None => 0,
            };
            longest = longest.max(run);
        }
        longest
    }

    #[test]
    fn evictions_thin_the_table_evenly_and_lookups_stay_short() {
        let mut s = CachedStore::new(0, true);
        s.set_batch(1);
        let budget = 24 << 20;
        let mut evictions = 0;
        for i in 0..400_000u32 {
            let key = Key::new(&format!("u-{i}"));
            s.load(&key, Some((Document::default(), 30)));
            if i % 2048 == 0 && s.bytes() > budget {
                let goal = s.bytes() - budget / 4 * 3;
                let first = s.evict(1, goal).freed;
                s.evict(1, goal - first.min(goal));
                evictions += 1;
                // About two thirds full, a table whose evictions are spread
                // over it has no stretch of full slots longer than a few
                // dozen; one emptied a stretch at a time grows stretches of
                // thousands.
                let longest = longest_run(&mut s);
                assert!(longest < 200, "after {evictions} evictions: {longest}");
            }
        }
        assert!(evictions >= 4, "{evictions}");
    }
}
