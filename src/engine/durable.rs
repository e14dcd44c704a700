//! What a durable run holds of its state: a cache of documents bounded in
//! bytes, the ids of recent events, and a filter that answers "never seen"
//! without asking the state. Everything else stays in the state, read a
//! batch of lines at a time ([`Durable::preload`]) with one query per read
//! model and one for the ids.
//!
//! - A document is changed in place in the cache and serialized once per
//!   batch that changed it; it stays until that batch is committed, then
//!   may be evicted (least recently used first, by a clock sweep) when the
//!   cache is over its budget.
//! - An event id is a duplicate when it is among the recent ids (every id
//!   of a batch not yet committed is), or the state holds it. The filter
//!   holds the hash of every id and document key the state holds: its
//!   "never seen" spares the query for a new id or a new document. The state
//!   keeps it: each batch logs the hashes it added, and once the log would
//!   pass a quarter of the filter, a batch writes the filter whole instead
//!   and clears the log; opening reads the filter and the log (a size set by
//!   `--cache-mb`, not by the state). Of a state that keeps none (made by an
//!   earlier projector), the filter holds what was written since it was
//!   opened, and answers "never seen" only where the state held nothing.

use crate::plan::ModelId;
use crate::state::batch::Documents;
use crate::state::dedup::{IdHash, Processed};
use crate::state::reader::Reader;
use crate::state::{filter, FilterWrite, Restored, StateError};
use crate::store::{CachedStore, Document, Key};
use crate::util::bloom::{self, Bloom};
use std::path::PathBuf;

/// The cache's size unless `--cache-mb` says otherwise.
pub const DEFAULT_CACHE_MB: usize = 256;

/// How a durable run's memory is shared out, from `--cache-mb`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Documents, estimated as [`CachedStore`] does.
    pub documents: usize,
    /// The filter of ids and keys.
    pub filter: usize,
    /// Recent event ids, at about 24 bytes each.
    pub recent_ids: usize,
}

impl Budget {
    /// Thirteen sixteenths for documents, an eighth for the recent ids, a
    /// sixteenth for the filter (16 MiB of 256: about 10 bits for each of
    /// 13 million ids and keys; a larger state gets more false "maybe"s,
    /// which cost queries). With 0, only what a batch not yet committed
    /// wrote is held, and every other document and id is read from the
    /// state.
    pub fn of_megabytes(mb: usize) -> Budget {
        let bytes = mb << 20;
        Budget {
            documents: bytes / 16 * 13,
            filter: bytes / 16,
            recent_ids: bytes / 8 / 24,
        }
    }
}

pub struct Durable {
    pub stores: Vec<CachedStore>,
    reader: Box<dyn Reader>,
    path: PathBuf,
    budget: Budget,
    /// The batch being collected, and the last one known committed.
    batch: u32,
    committed: u32,
    recent: Recent,
    /// Of the ids of the lines being handled: those the state holds, and
    /// those it does not.
    known: Processed,
    unknown: Processed,
    /// How often the recent ids forgot their older generation, and how
    /// often when the lines being handled were preloaded: an id applied
    /// since may have been forgotten too (then only the state knows it).
    rotations: u64,
    preloaded_at: u64,
    filter: Bloom,
    /// The filter holds every processed id.
    ids_complete: bool,
    /// Per read model: the filter holds the key of every document.
    keys_complete: Vec<bool>,
    /// While models are rebuilt: what is known of the state's ids, set
    /// aside (the recent ids and the filter then hold what the rebuild
    /// applied).
    staging: Option<Staging>,
    /// Each read model's domain of hashes: its name.
    domains: Vec<Vec<u8>>,
    /// Whether the state keeps the filter.
    kept: bool,
    /// Hashes added since the last batch was handed over.
    added: Vec<u64>,
    /// Hashes the state's log holds since its last snapshot of the filter.
    logged: usize,
    /// The next batch keeps the filter whole (a rebuild was swapped in).
    snapshot_due: bool,
    /// See [`Durable::is_full`].
    full: bool,
}

/// While models are rebuilt, an event is applied to them when the state
/// processed it and the rebuild has not applied it yet. The second is asked
/// as a durable run asks whether an event was processed, of the ids the
/// rebuild staged (see [`crate::state::Journal::stage`]), with the recent
/// ids and a filter of its own; the first of the state's ids, with the
/// state's filter, set aside here.
struct Staging {
    filter: Bloom,
    ids_complete: bool,
    keys_complete: Vec<bool>,
    kept: bool,
    /// Of the ids (by the old rule, when they are found anew) of the lines
    /// being handled: those the state processed, and those asked.
    held: Processed,
    asked: Processed,
}

/// The ids of the latest events, in two generations: when the newer one is
/// full, the older one (every id of it committed) is forgotten.
#[derive(Default)]
struct Recent {
    current: Processed,
    previous: Processed,
}

impl Durable {
    /// The cache of a state that holds what `restored` says, whose read
    /// models are `models`.
    pub fn new(
        reader: Box<dyn Reader>,
        path: PathBuf,
        restored: &Restored,
        models: &[&str],
        budget: Budget,
    ) -> Durable {
        let stores: Vec<CachedStore> = restored
            .documents
            .iter()
            .map(|n| CachedStore::new(*n, true))
            .collect();
        let kept = restored
            .filter
            .as_ref()
            .and_then(|kept| filter::read_back(kept, budget.filter));
        let complete = kept.is_some();
        let (filter, logged) = kept.unwrap_or((Bloom::with_bytes(budget.filter), 0));
        let mut durable = Durable {
            keys_complete: stores.iter().map(|s| complete || s.is_complete()).collect(),
            domains: models.iter().map(|name| filter::domain(name)).collect(),
            kept: restored.filter.is_some(),
            added: Vec::new(),
            logged,
            snapshot_due: false,
            full: false,
            stores,
            reader,
            path,
            budget,
            batch: 1,
            committed: 0,
            recent: Recent::default(),
            known: Processed::default(),
            unknown: Processed::default(),
            rotations: 0,
            preloaded_at: 0,
            filter,
            ids_complete: complete || restored.processed == 0,
            staging: None,
        };
        durable.set_batch(1);
        durable
    }

    fn set_batch(&mut self, batch: u32) {
        self.batch = batch;
        for store in &mut self.stores {
            store.set_batch(batch);
        }
    }

    /// What the batch about to be handed over keeps of the filter: the
    /// hashes added since the last one, or the whole filter once the log
    /// would pass a quarter of its size (so that opening reads at most a
    /// quarter more than the filter); `None` when there is nothing to keep.
    pub fn filter_write(&mut self) -> Option<FilterWrite> {
        if std::mem::take(&mut self.snapshot_due) {
            self.added.clear();
            self.logged = 0;
            return Some(FilterWrite::Snapshot(self.filter.to_bytes()));
        }
        if !self.kept || self.added.is_empty() {
            self.added.clear();
            return None;
        }
        let added = std::mem::take(&mut self.added);
        if (self.logged + added.len()) * 8 * 4 >= self.filter.bytes() {
            self.logged = 0;
            return Some(FilterWrite::Snapshot(self.filter.to_bytes()));
        }
        self.logged += added.len();
        Some(FilterWrite::Log(bloom::hashes_to_bytes(&added)))
    }

    /// A batch was handed over to be committed, after the one before it
    /// was: what is written from now on belongs to the next.
    pub fn submitted(&mut self) {
        self.full = false;
        self.committed = self.batch - 1;
        self.set_batch(self.batch + 1);
        if self.recent.current.len() >= self.budget.recent_ids / 2 {
            // Every id of `previous` was in a batch before the one just
            // handed over, which was committed before it was.
            self.recent.previous = std::mem::take(&mut self.recent.current);
            self.rotations += 1;
        }
    }

    /// Every batch handed over is committed.
    pub fn committed(&mut self) {
        self.committed = self.batch - 1;
    }

    /// `models` are rebuilt from now on: their stores start over empty;
    /// until [`Durable::swapping`], an id is processed when the rebuild
    /// applied it, and the state's ids are asked with
    /// [`Durable::state_processed`].
    pub fn rebuild(&mut self, models: &[ModelId]) {
        let filter = std::mem::replace(&mut self.filter, Bloom::with_bytes(self.budget.filter));
        let keys_complete =
            std::mem::replace(&mut self.keys_complete, vec![false; self.stores.len()]);
        self.staging = Some(Staging {
            filter,
            ids_complete: self.ids_complete,
            keys_complete,
            kept: self.kept,
            held: Processed::default(),
            asked: Processed::default(),
        });
        self.kept = false;
        self.added.clear();
        self.ids_complete = true;
        self.recent = Recent::default();
        for model in models {
            let m = model.0 as usize;
            self.stores[m] = CachedStore::new(0, true);
            self.stores[m].set_batch(self.batch);
            self.keys_complete[m] = true;
        }
    }

    /// The rebuild of `models` is about to be swapped in (with the ids it
    /// applied in place of the state's when `rekeyed`): the filter holds
    /// the state's ids and keys and the rebuild's, and the state keeps it
    /// whole with the swap.
    pub fn swapping(&mut self, models: &[ModelId], rekeyed: bool) {
        let staging = self.staging.take().expect("rebuilding");
        let mut filter = staging.filter;
        filter.union(&self.filter);
        self.filter = filter;
        self.ids_complete = staging.ids_complete || rekeyed;
        let rebuilt = std::mem::replace(&mut self.keys_complete, staging.keys_complete);
        for model in models {
            self.keys_complete[model.0 as usize] = rebuilt[model.0 as usize];
        }
        self.kept = staging.kept;
        self.added.clear();
        self.snapshot_due = self.kept;
    }

    /// The rebuilt models are in the state: read from where it serves them.
    pub fn swapped(&mut self) {
        self.reader.refresh();
    }

    /// While models are rebuilt: whether the state processed the event
    /// with this id (by the old rule, when the ids are found anew).
    pub fn state_processed(&mut self, hash: IdHash, id: &str) -> Result<bool, StateError> {
        let staging = self.staging.as_mut().expect("rebuilding");
        if staging.held.contains(hash) {
            return Ok(true);
        }
        if staging.asked.contains(hash)
            || (staging.ids_complete && !staging.filter.may_contain(filter::id_hash(id)))
        {
            return Ok(false);
        }
        let mut found = false;
        self.reader.processed(&[id], &mut |_| found = true)?;
        Ok(found)
    }

    /// While models are rebuilt: asks the state, at once, which of the ids
    /// (by the old rule, when the ids are found anew) of a run of lines it
    /// processed (see [`Durable::state_processed`]).
    pub fn preload_state_ids(&mut self, ids: &[(IdHash, &str)]) -> Result<(), StateError> {
        let staging = self.staging.as_mut().expect("rebuilding");
        staging.held = Processed::default();
        staging.asked = Processed::default();
        let ask: Vec<(IdHash, &str)> = ids
            .iter()
            .filter(|(_, id)| {
                !staging.ids_complete || staging.filter.may_contain(filter::id_hash(id))
            })
            .copied()
            .collect();
        if ask.is_empty() {
            return Ok(());
        }
        // The ids asked are known by their hashes already.
        ask.iter().for_each(|(hash, _)| staging.asked.record(*hash));
        let texts: Vec<&str> = ask.iter().map(|(_, id)| *id).collect();
        let mut held = Vec::new();
        self.reader
            .processed(&texts, &mut |id| held.push(IdHash::of(id)))?;
        let staging = self.staging.as_mut().expect("rebuilding");
        held.into_iter().for_each(|h| staging.held.record(h));
        Ok(())
    }

    /// While models are rebuilt: of the processed events of `types` (every
    /// type when `None`), how many the rebuild did not meet.
    pub fn unseen(&mut self, types: Option<&[String]>) -> Result<u64, StateError> {
        self.reader.unseen(types)
    }

    /// Of `ids`, each one processed: by the state, or, while models are
    /// rebuilt, by the rebuild.
    fn ask_processed(
        &mut self,
        ids: &[&str],
        found: &mut dyn FnMut(&str),
    ) -> Result<(), StateError> {
        match self.staging {
            None => self.reader.processed(ids, found),
            Some(_) => self.reader.seen(ids, found),
        }
    }

    /// Whether the event with this id was processed; `preloaded` when
    /// [`Durable::preload`] was given its id (then the state was asked
    /// already, if it had to be).
    pub fn is_processed(
        &mut self,
        hash: IdHash,
        id: &str,
        preloaded: bool,
    ) -> Result<bool, StateError> {
        if self.recent.current.contains(hash)
            || self.recent.previous.contains(hash)
            || self.known.contains(hash)
        {
            return Ok(true);
        }
        // What the preload found holds while no id applied since could
        // have been forgotten.
        let current = self.rotations == self.preloaded_at;
        if (current && (preloaded || self.unknown.contains(hash))) || self.surely_new(id) {
            return Ok(false);
        }
        let mut found = false;
        self.ask_processed(&[id], &mut |_| found = true)?;
        Ok(found)
    }

    /// Starts loading where the id of an event is looked up and recorded.
    pub fn prefetch_id(&self, hash: IdHash, id: &str) {
        self.recent.current.prefetch(hash);
        self.filter.prefetch(filter::id_hash(id));
    }

    /// Starts loading where a document is looked up, and where the filter
    /// learns its key if it is created.
    pub fn prefetch_key(&self, model: ModelId, key: &Key) {
        let m = model.0 as usize;
        self.stores[m].prefetch(key);
        self.filter
            .prefetch(filter::key_hash(&self.domains[m], key.as_str()));
    }

    /// Whether the filter knows that the state never processed `id`.
    fn surely_new(&self, id: &str) -> bool {
        self.ids_complete && !self.filter.may_contain(filter::id_hash(id))
    }

    /// An event was applied: its id is processed.
    pub fn record(&mut self, hash: IdHash, id: &str) {
        self.recent.current.record(hash);
        self.learn_id(id);
    }

    /// The filter learns an id the state will hold.
    pub fn learn_id(&mut self, id: &str) {
        self.learn(filter::id_hash(id));
    }

    fn learn(&mut self, hash: u64) {
        self.filter.insert(hash);
        if self.kept {
            self.added.push(hash);
        }
    }

    /// Documents were written: the filter learns the keys of those that
    /// were created (it holds the others already).
    pub fn wrote(&mut self, changes: &[crate::store::Change]) {
        let Durable {
            stores,
            domains,
            filter,
            added,
            kept,
            ..
        } = self;
        for change in changes {
            let m = change.model.0 as usize;
            for key in stores[m].take_created() {
                let hash = filter::key_hash(&domains[m], key.as_str());
                filter.insert(hash);
                if *kept {
                    added.push(hash);
                }
            }
        }
    }

    /// Makes the document under `key` of `model` resident, reading it from
    /// the state if it may be there.
    pub fn ensure(&mut self, model: ModelId, key: &Key) -> Result<(), StateError> {
        if self.resident_or_absent(model, key) {
            return Ok(());
        }
        self.load(model, &[key])
    }

    /// Whether the document is resident now, or known to be absent (made
    /// resident as such).
    fn resident_or_absent(&mut self, model: ModelId, key: &Key) -> bool {
        let m = model.0 as usize;
        if self.stores[m].touch(key) {
            return true;
        }
        let hash = filter::key_hash(&self.domains[m], key.as_str());
        if self.keys_complete[m] && !self.filter.may_contain(hash) {
            self.stores[m].load(key, None);
            return true;
        }
        false
    }

    /// Reads the documents under `keys` of `model` into the cache (as
    /// absent where the state has none).
    fn load(&mut self, model: ModelId, keys: &[&Key]) -> Result<(), StateError> {
        let texts: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        let mut found = Vec::new();
        let mut failed = None;
        self.reader.documents(
            model,
            &texts,
            &mut |key, text| match serde_json::from_str::<Document>(text) {
                Ok(doc) => found.push((Key::new(key), doc, text.len())),
                Err(e) => {
                    failed = failed.take().or(Some(format!(
                        "the document of read model {}, key {key:?} is not a JSON object: {e}",
                        model.0
                    )))
                }
            },
        )?;
        if let Some(detail) = failed {
            return Err(StateError::Damaged {
                path: self.path.clone(),
                detail,
            });
        }
        let store = &mut self.stores[model.0 as usize];
        for (key, doc, len) in found {
            store.load(&key, Some((doc, len)));
        }
        for key in keys {
            // Still unknown: the state has none.
            if !store.touch(key) {
                store.load(key, None);
            }
        }
        Ok(())
    }

    /// Before a run of lines is handled: makes room in the cache, then
    /// reads what their events need that it does not hold, with one query
    /// for the ids and one per read model for the documents.
    pub fn preload<'k>(
        &mut self,
        ids: &[(IdHash, &str)],
        documents: impl IntoIterator<Item = (ModelId, &'k Key)>,
    ) -> Result<(), StateError> {
        self.evict();
        self.known = Processed::default();
        self.unknown = Processed::default();
        self.preloaded_at = self.rotations;
        {
            // Everything the lookups below read, asked for at once: the
            // misses overlap instead of coming one after another.
            for &(hash, id) in ids {
                self.prefetch_id(hash, id);
                self.recent.previous.prefetch(hash);
            }
            let mut ask: Vec<(IdHash, &str)> = Vec::new();
            for &(hash, id) in ids {
                if self.recent.current.contains(hash) || self.recent.previous.contains(hash) {
                    // Known now: the recent ids may be forgotten before
                    // the event comes.
                    self.known.record(hash);
                } else if !self.surely_new(id) {
                    ask.push((hash, id));
                }
            }
            if !ask.is_empty() {
                let texts: Vec<&str> = ask.iter().map(|(_, id)| *id).collect();
                let mut held = Vec::new();
                self.ask_processed(&texts, &mut |id| held.push(IdHash::of(id)))?;
                held.iter().for_each(|h| self.known.record(*h));
                for (hash, _) in ask {
                    if !self.known.contains(hash) {
                        self.unknown.record(hash);
                    }
                }
            }
        }
        // A store that holds every document of its model needs nothing.
        let documents: Vec<(ModelId, &Key)> = documents
            .into_iter()
            .filter(|(m, _)| !self.stores[m.0 as usize].is_complete())
            .collect();
        for (model, key) in &documents {
            self.stores[model.0 as usize].prefetch(key);
        }
        let mut wanted: Vec<Vec<&Key>> = vec![Vec::new(); self.stores.len()];
        for (model, key) in documents {
            if !self.resident_or_absent(model, key) {
                wanted[model.0 as usize].push(key);
            }
        }
        for (m, mut keys) in wanted.into_iter().enumerate() {
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            keys.dedup();
            if !keys.is_empty() {
                self.load(ModelId(m as u32), &keys)?;
            }
        }
        Ok(())
    }

    /// Evicts what the cache holds over its budget, down to three quarters
    /// of it, least recently used first; never what a batch not committed
    /// yet wrote. When that leaves it over its budget, the batch is to be
    /// handed over (see [`Durable::is_full`]).
    fn evict(&mut self) {
        let held: usize = self.stores.iter().map(CachedStore::bytes).sum();
        if held <= self.budget.documents {
            return;
        }
        let mut goal = held - self.budget.documents / 4 * 3;
        // A first sweep may only age what was used: a second evicts it.
        'sweeps: for _ in 0..2 {
            for store in &mut self.stores {
                if goal == 0 {
                    break 'sweeps;
                }
                goal -= store.evict(self.committed, goal).freed.min(goal);
            }
        }
        self.full = self.bytes() > self.budget.documents;
    }

    /// Whether the cache is over its budget with what batches not committed
    /// yet wrote: the batch being collected is to be handed over now, so
    /// that memory follows the budget rather than the size of a batch.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Up to `limit` committed documents of `model` after `after`, in key
    /// order, with the JSON text of each.
    pub fn page(
        &mut self,
        model: ModelId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>, StateError> {
        let mut page = Vec::new();
        let mut failed = None;
        self.reader.page(
            model,
            after,
            limit,
            &mut |key, text| match serde_json::from_str::<Document>(text) {
                Ok(doc) => page.push((key.to_owned(), doc)),
                Err(e) => {
                    failed = Some(format!(
                        "the document under key {key:?} is not a JSON object: {e}"
                    ))
                }
            },
        )?;
        match failed {
            Some(detail) => Err(StateError::Damaged {
                path: self.path.clone(),
                detail,
            }),
            None => Ok(page),
        }
    }

    /// Closes the reader; what is left is the cache, for the caller to
    /// free (or not, as the process ends).
    pub fn close(self) -> Vec<CachedStore> {
        drop(self.reader);
        self.stores
    }

    /// The estimated bytes of documents held.
    pub fn bytes(&self) -> usize {
        self.stores.iter().map(CachedStore::bytes).sum()
    }
}

impl Documents for Durable {
    fn serialize(&mut self, model: ModelId, key: &Key, out: &mut Vec<u8>) -> bool {
        self.stores[model.0 as usize].serialize(key, out)
    }

    fn prefetch(&self, model: ModelId, key: &Key) {
        self.stores[model.0 as usize].prefetch(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DocumentStore;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// A state held in a map, counting what it is asked.
    #[derive(Clone, Default)]
    struct Held {
        docs: Arc<Mutex<BTreeMap<String, String>>>,
        ids: Arc<Mutex<Vec<String>>>,
        seen: Arc<Mutex<Vec<String>>>,
        asked: Arc<Mutex<usize>>,
    }

    impl Reader for Held {
        fn documents(
            &mut self,
            _: ModelId,
            keys: &[&str],
            found: &mut dyn FnMut(&str, &str),
        ) -> Result<(), StateError> {
            *self.asked.lock().unwrap() += 1;
            let docs = self.docs.lock().unwrap();
            for key in keys {
                if let Some(text) = docs.get(*key) {
                    found(key, text);
                }
            }
            Ok(())
        }

        fn processed(
            &mut self,
            ids: &[&str],
            found: &mut dyn FnMut(&str),
        ) -> Result<(), StateError> {
            *self.asked.lock().unwrap() += 1;
            let held = self.ids.lock().unwrap();
            ids.iter()
                .filter(|id| held.contains(&id.to_string()))
                .for_each(|id| found(id));
            Ok(())
        }

        fn seen(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError> {
            *self.asked.lock().unwrap() += 1;
            let seen = self.seen.lock().unwrap();
            ids.iter()
                .filter(|id| seen.contains(&id.to_string()))
                .for_each(|id| found(id));
            Ok(())
        }

        fn unseen(&mut self, _: Option<&[String]>) -> Result<u64, StateError> {
            let seen = self.seen.lock().unwrap();
            let ids = self.ids.lock().unwrap();
            Ok(ids.iter().filter(|id| !seen.contains(id)).count() as u64)
        }

        fn page(
            &mut self,
            _: ModelId,
            _: Option<&str>,
            _: usize,
            _: &mut dyn FnMut(&str, &str),
        ) -> Result<(), StateError> {
            Ok(())
        }
    }

    fn durable(held: &Held, documents: u64, processed: u64, mb: usize) -> Durable {
        let restored = Restored {
            documents: vec![documents],
            processed,
            ..Restored::default()
        };
        Durable::new(
            Box::new(held.clone()),
            PathBuf::from("s"),
            &restored,
            &["m"],
            Budget::of_megabytes(mb),
        )
    }

    /// Commits what the cache wrote, as a batch would: serialized into
    /// the held state.
    fn commit(d: &mut Durable, held: &Held, keys: &[Key]) {
        for key in keys {
            let mut text = Vec::new();
            assert!(d.serialize(ModelId(0), key, &mut text));
            let text = String::from_utf8(text).unwrap();
            held.docs
                .lock()
                .unwrap()
                .insert(key.as_str().to_owned(), text);
        }
        d.submitted();
        d.committed();
    }

    #[test]
    fn what_is_evicted_is_read_back_as_committed() {
        let held = Held::default();
        let mut d = durable(&held, 0, 0, 1);
        let big = serde_json::Value::String("x".repeat(2_000));
        let keys: Vec<Key> = (0..2_000).map(|i| Key::new(&format!("k{i}"))).collect();
        for (i, key) in keys.iter().enumerate() {
            d.preload(&[], [(ModelId(0), key)]).unwrap();
            let (doc, created) = d.stores[0].get_or_create(key);
            assert!(created);
            doc.insert(crate::value::name::Name::new("n"), serde_json::json!(i));
            doc.insert(crate::value::name::Name::new("pad"), big.clone());
            d.wrote(&[crate::store::Change {
                model: ModelId(0),
                key: key.clone(),
            }]);
            commit(&mut d, &held, std::slice::from_ref(key));
        }
        // A new state: every key was known to be new, nothing was read.
        assert_eq!(*held.asked.lock().unwrap(), 0);
        // 2,000 documents of 4 KB do not fit in 13/16 MiB.
        assert!(d.bytes() <= Budget::of_megabytes(1).documents + 8_192);
        assert_eq!(d.stores[0].len(), 2_000);
        for (i, key) in keys.iter().enumerate().step_by(97) {
            d.preload(&[], [(ModelId(0), key)]).unwrap();
            let doc = d.stores[0].get(key).expect("read back");
            assert_eq!(
                doc.get("n").map(|v| v.to_value()),
                Some(serde_json::json!(i))
            );
        }
        assert!(*held.asked.lock().unwrap() > 0, "nothing was evicted");
    }

    #[test]
    fn ids_are_found_in_the_recent_ones_or_in_the_state() {
        let held = Held::default();
        held.ids.lock().unwrap().push("old".to_owned());
        let mut d = durable(&held, 0, 1, 1);
        let (old, new) = (IdHash::of("old"), IdHash::of("new"));
        d.preload(&[(old, "old"), (new, "new")], []).unwrap();
        assert_eq!(*held.asked.lock().unwrap(), 1);
        assert!(d.is_processed(old, "old", false).unwrap());
        assert!(!d.is_processed(new, "new", false).unwrap());
        d.record(new, "new");
        assert!(d.is_processed(new, "new", false).unwrap());
        // Not among those read for the lines: asked alone.
        let other = IdHash::of("other");
        assert!(!d.is_processed(other, "other", false).unwrap());
        assert_eq!(*held.asked.lock().unwrap(), 2);
        // A state that held no ids: the filter answers for new ones.
        let mut fresh = durable(&held, 0, 0, 1);
        assert!(!fresh.is_processed(other, "other", false).unwrap());
        assert_eq!(*held.asked.lock().unwrap(), 2);
    }

    #[test]
    fn a_kept_filter_spares_the_next_run_the_queries_for_new_ids() {
        let held = Held::default();
        let kept = |filter| Restored {
            documents: vec![0],
            filter: Some(filter),
            ..Restored::default()
        };
        let restored = kept(crate::state::KeptFilter::default());
        let mut first = Durable::new(
            Box::new(held.clone()),
            PathBuf::from("s"),
            &restored,
            &["m"],
            Budget::of_megabytes(1),
        );
        first.record(IdHash::of("a"), "a");
        held.ids.lock().unwrap().push("a".to_owned());
        let kept_filter = match first.filter_write() {
            Some(FilterWrite::Log(hashes)) => crate::state::KeptFilter {
                snapshot: None,
                log: vec![hashes],
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(first.filter_write(), None);
        let mut restored = kept(kept_filter);
        restored.processed = 1;
        let mut next = Durable::new(
            Box::new(held.clone()),
            PathBuf::from("s"),
            &restored,
            &["m"],
            Budget::of_megabytes(1),
        );
        assert!(!next.is_processed(IdHash::of("b"), "b", false).unwrap());
        assert_eq!(*held.asked.lock().unwrap(), 0);
        assert!(next.is_processed(IdHash::of("a"), "a", false).unwrap());
        assert_eq!(*held.asked.lock().unwrap(), 1);
    }

    #[test]
    fn an_id_applied_then_forgotten_by_the_recent_ones_is_asked_of_the_state() {
        let held = Held::default();
        // No room for recent ids: each batch handed over forgets them.
        let mut d = durable(&held, 0, 1, 0);
        let b = IdHash::of("b");
        d.preload(&[(b, "b")], []).unwrap();
        assert!(!d.is_processed(b, "b", true).unwrap());
        d.record(b, "b");
        for _ in 0..2 {
            d.submitted();
            d.committed();
        }
        held.ids.lock().unwrap().push("b".to_owned());
        // A redelivery later in the same lines: the state has it.
        assert!(d.is_processed(b, "b", true).unwrap());
    }

    #[test]
    fn a_rebuild_asks_the_state_what_it_processed_and_itself_what_it_applied() {
        let held = Held::default();
        held.ids
            .lock()
            .unwrap()
            .extend(["a".to_owned(), "b".to_owned()]);
        let mut d = durable(&held, 5, 2, 1);
        d.rebuild(&[ModelId(0)]);
        let [a, b, c] = ["a", "b", "c"].map(IdHash::of);
        d.preload_state_ids(&[(a, "a"), (b, "b"), (c, "c")])
            .unwrap();
        d.preload(&[(a, "a"), (b, "b"), (c, "c")], []).unwrap();
        // The state was asked once; the rebuild had applied nothing: its
        // filter answered.
        assert_eq!(*held.asked.lock().unwrap(), 1);
        assert!(d.state_processed(a, "a").unwrap() && d.state_processed(b, "b").unwrap());
        assert!(!d.state_processed(c, "c").unwrap());
        assert!(!d.is_processed(a, "a", true).unwrap());
        d.record(a, "a");
        assert!(d.is_processed(a, "a", true).unwrap());
        // A model being rebuilt starts with no documents, known absent.
        let key = Key::new("k");
        d.preload(&[], [(ModelId(0), &key)]).unwrap();
        assert_eq!(d.stores[0].get(&key), None);
        assert_eq!(*held.asked.lock().unwrap(), 1);
        // What the rebuild applied, staged and forgotten, is asked of what
        // it staged.
        held.seen.lock().unwrap().push("a".to_owned());
        assert_eq!(d.unseen(None).unwrap(), 1);
        d.recent = Recent::default();
        d.preload(&[(a, "a")], []).unwrap();
        assert!(d.is_processed(a, "a", true).unwrap());
        assert_eq!(*held.asked.lock().unwrap(), 2);
        // Swapped in: the filter knows the state's ids and the rebuild's.
        d.swapping(&[ModelId(0)], false);
        d.swapped();
        assert!(d.filter.may_contain(filter::id_hash("a")));
        assert!(d.keys_complete[0]);
    }
}
