//! What one batch writes to the state: the ids and types of the events it
//! applied, the final text of every document it changed, the subscriptions
//! if they changed, what the tables hold once it is committed, and a
//! rebuild's swap. A batch is collected while its events are applied, each
//! changed document serialized as the change is recorded, and taken when
//! it is committed.
//!
//! The texts of a batch's ids and documents are written one after another
//! into one buffer, and its lists hold where each one is: two allocations
//! per batch instead of two or three per event. The buffers come back when
//! the batch is committed, to be filled again.

use super::{FilterWrite, Rejection};
use super::{Swap, Totals};
use crate::plan::ModelId;
use crate::store::Change;
use crate::store::{DocumentStore, Key, MemoryStore};
use std::ops::Range;

/// A batch, ready for the database.
#[derive(Default)]
pub struct Batch {
    /// Every id's, type's and document's text, one after another.
    text: String,
    /// The ids and types of the events applied, in the order applied:
    /// where they are in `text`.
    ids: Vec<(Range<usize>, Range<usize>)>,
    /// Each changed document once, sorted by model and key, with where its
    /// JSON text is (`None`: it was deleted).
    documents: Vec<(ModelId, Key, Option<Range<usize>>)>,
    /// The new subscriptions (`Some(None)`: every type), if they changed.
    pub subscriptions: Option<Option<Vec<String>>>,
    /// What the tables hold once this batch is committed.
    pub totals: Totals,
    /// A rebuild swapped in with this batch.
    pub swap: Option<Swap>,
    /// The batch belongs to a rebuild in progress: its ids go to the ids
    /// the rebuild applied, its documents to what it stages for its models
    /// (see [`super::Journal::stage`]); nothing else is written.
    pub staged: bool,
    /// Of a staged batch, when the processed ids are found anew: the ids
    /// (by the old rule) of the processed events it met.
    covered: Vec<Range<usize>>,
    /// Events the engine refused, from a stream.
    pub rejections: Vec<Rejection>,
    /// What the batch keeps of the filter of ids and keys.
    pub filter: Option<FilterWrite>,
}

impl Batch {
    /// See [`Batch::covered`].
    pub fn covered(&self) -> impl Iterator<Item = &str> {
        self.covered.iter().map(|id| &self.text[id.clone()])
    }

    /// The ids and types of the events applied, in the order applied.
    pub fn ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ids
            .iter()
            .map(|(id, ty)| (&self.text[id.clone()], &self.text[ty.clone()]))
    }

    /// Each changed document once, by model and key: its model, key and
    /// JSON text, or `None` when it was deleted.
    pub fn documents(&self) -> impl Iterator<Item = (ModelId, &str, Option<&str>)> {
        self.documents.iter().map(|(model, key, text)| {
            let text = text.as_ref().map(|range| &self.text[range.clone()]);
            (*model, key.as_str(), text)
        })
    }
}

/// The documents of a run, as the engine holds them: what a batch's
/// changed documents are serialized from when it is taken.
pub trait Documents {
    /// Writes the document under `key` of `model` to `out` as JSON;
    /// `false` (and nothing written) when there is none.
    fn serialize(&mut self, model: ModelId, key: &Key, out: &mut Vec<u8>) -> bool;
    /// Starts loading where the document under `key` is looked up.
    fn prefetch(&self, _model: ModelId, _key: &Key) {}
}

impl Documents for Vec<MemoryStore> {
    fn serialize(&mut self, model: ModelId, key: &Key, out: &mut Vec<u8>) -> bool {
        match self[model.0 as usize].get(key) {
            Some(doc) => {
                serde_json::to_writer(out, doc).expect("documents serialize");
                true
            }
            None => false,
        }
    }
}

/// Collects a batch while its events are applied.
#[derive(Default)]
pub struct Recorder {
    /// The texts, as in [`Batch`].
    text: Vec<u8>,
    ids: Vec<(Range<usize>, Range<usize>)>,
    /// Every document changed, in the order changed, until the batch is
    /// taken: each is serialized then, once, however often it changed.
    changed: Vec<(ModelId, Key)>,
    covered: Vec<Range<usize>>,
    staged: bool,
    subscriptions: Option<Option<Vec<String>>>,
    swap: Option<Swap>,
    rejections: Vec<Rejection>,
    filter: Option<FilterWrite>,
    /// A committed batch, whose buffers the next one is written into.
    spare: Option<Batch>,
}

impl Recorder {
    /// Records an applied event: its id and type, and the documents it
    /// changed.
    pub fn event(&mut self, event: Option<(&str, &str)>, changes: &[Change]) {
        if let Some((id, ty)) = event {
            let id = self.push_text(id);
            let ty = self.push_text(ty);
            self.ids.push((id, ty));
        }
        self.changed
            .extend(changes.iter().map(|c| (c.model, c.key.clone())));
    }

    fn push_text(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.extend_from_slice(text.as_bytes());
        start..self.text.len()
    }

    /// See [`Batch::covered`].
    pub fn covered(&mut self, old: &str) {
        let old = self.push_text(old);
        self.covered.push(old);
    }

    /// See [`Batch::staged`]: batches taken from now on are staged, or not.
    pub fn stage(&mut self, staged: bool) {
        self.staged = staged;
    }

    pub fn subscriptions(&mut self, names: Option<&[String]>) {
        self.subscriptions = Some(names.map(<[String]>::to_vec));
    }

    /// Records a rebuild's swap: the staged documents replace the rebuilt
    /// models'.
    pub fn swap(&mut self, swap: Swap) {
        self.swap = Some(swap);
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.changed.is_empty()
            && self.covered.is_empty()
            && self.subscriptions.is_none()
            && self.swap.is_none()
            && self.rejections.is_empty()
            && self.filter.is_none()
    }

    /// Records what the batch keeps of the filter.
    pub fn filter(&mut self, write: FilterWrite) {
        self.filter = Some(write);
    }

    /// Records an event refused.
    pub fn rejection(&mut self, rejection: Rejection) {
        self.rejections.push(rejection);
    }

    /// The batch recorded so far, with what the tables will hold once it is
    /// committed, each changed document serialized from `docs` as it is
    /// now; the recorder starts over empty.
    ///
    /// Documents come sorted, as the database's B-tree orders them (by
    /// model, then key): written in that order, consecutive writes land on
    /// the same or the next page instead of anywhere. Ids stay in the order
    /// applied: their table is appended to.
    pub fn take(&mut self, totals: Totals, docs: &mut dyn Documents) -> Batch {
        let mut changed = std::mem::take(&mut self.changed);
        changed.sort_unstable_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
        changed.dedup();
        let Batch {
            text: spare_text,
            ids: spare_ids,
            mut documents,
            covered: spare_covered,
            ..
        } = self.spare.take().unwrap_or_default();
        documents.clear();
        // Where each document is looked up is asked for a few ahead.
        const AHEAD: usize = 8;
        for (model, key) in changed.iter().take(AHEAD) {
            docs.prefetch(*model, key);
        }
        for i in 0..changed.len() {
            if let Some((m, k)) = changed.get(i + AHEAD) {
                docs.prefetch(*m, k);
            }
            let model = changed[i].0;
            let key = std::mem::replace(&mut changed[i].1, Key::new(""));
            let start = self.text.len();
            let written = docs.serialize(model, &key, &mut self.text);
            let text = written.then_some(start..self.text.len());
            documents.push((model, key, text));
        }
        changed.clear();
        self.changed = changed;
        let mut spare_text = spare_text.into_bytes();
        spare_text.clear();
        let text = String::from_utf8(std::mem::replace(&mut self.text, spare_text))
            .expect("ids, types and serialized documents are UTF-8");
        let ids = std::mem::replace(&mut self.ids, empty(spare_ids));
        let covered = std::mem::replace(&mut self.covered, empty(spare_covered));
        Batch {
            text,
            ids,
            documents,
            subscriptions: self.subscriptions.take(),
            totals,
            swap: self.swap.take(),
            staged: self.staged,
            covered,
            rejections: std::mem::take(&mut self.rejections),
            filter: self.filter.take(),
        }
    }

    /// Takes back a committed batch: the next batch is written into its
    /// buffers.
    pub fn reuse(&mut self, batch: Batch) {
        self.spare = Some(batch);
    }
}

fn empty<T>(mut buffer: Vec<T>) -> Vec<T> {
    buffer.clear();
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(model: u32, key: &str) -> Change {
        Change {
            model: ModelId(model),
            key: crate::store::Key::new(key),
        }
    }

    #[test]
    fn a_batch_holds_each_document_once_as_it_is_when_taken_in_tree_order() {
        let mut stores = vec![MemoryStore::default(), MemoryStore::default()];
        let doc = |v| serde_json::from_value(v).unwrap();
        let mut recorder = Recorder::default();
        assert!(recorder.is_empty());

        stores[1].put("b", doc(json!({"n": 1})));
        stores[0].put("z", doc(json!({"s": "x"})));
        recorder.event(Some(("e2", "T")), &[change(1, "b"), change(0, "z")]);
        stores[1].put("b", doc(json!({"n": 2})));
        stores[1].put("a", doc(json!({"n": 0})));
        recorder.event(Some(("e1", "T")), &[change(1, "b"), change(1, "a")]);
        stores[0].remove(&crate::store::Key::new("z"));
        recorder.event(None, &[change(0, "z")]);
        assert!(!recorder.is_empty());

        let batch = recorder.take(Totals::default(), &mut stores);
        assert_eq!(batch.ids().collect::<Vec<_>>(), [("e2", "T"), ("e1", "T")]);
        assert_eq!(
            batch.documents().collect::<Vec<_>>(),
            [
                (ModelId(0), "z", None),
                (ModelId(1), "a", Some(r#"{"n":0}"#)),
                (ModelId(1), "b", Some(r#"{"n":2}"#)),
            ]
        );
        assert_eq!(batch.subscriptions, None);
        assert!(recorder.is_empty());

        // The next batch is written into the buffers of the one committed,
        // and holds only what was recorded since.
        recorder.reuse(batch);
        stores[0].put("z", doc(json!({"s": "again"})));
        recorder.event(Some(("e3", "U")), &[change(0, "z")]);
        stores[0].remove(&crate::store::Key::new("z"));
        stores[0].put("z", doc(json!({"s": "last"})));
        recorder.event(Some(("e0", "U")), &[change(0, "z")]);
        let batch = recorder.take(Totals::default(), &mut stores);
        assert_eq!(batch.ids().collect::<Vec<_>>(), [("e3", "U"), ("e0", "U")]);
        assert_eq!(
            batch.documents().collect::<Vec<_>>(),
            [(ModelId(0), "z", Some(r#"{"s":"last"}"#))]
        );
    }

    #[test]
    fn a_rebuild_stages_its_batches_and_swaps_with_one_of_its_own() {
        let mut stores = vec![MemoryStore::default()];
        let doc = |v| serde_json::from_value(v).unwrap();
        let mut recorder = Recorder::default();
        recorder.stage(true);
        stores[0].put("x", doc(json!({"b": 1})));
        recorder.event(Some(("e9", "T")), &[change(0, "x")]);
        recorder.covered("old-9");
        let batch = recorder.take(Totals::default(), &mut stores);
        assert!(batch.staged);
        assert_eq!(batch.ids().collect::<Vec<_>>(), [("e9", "T")]);
        assert_eq!(batch.covered().collect::<Vec<_>>(), ["old-9"]);
        assert_eq!(
            batch.documents().collect::<Vec<_>>(),
            [(ModelId(0), "x", Some(r#"{"b":1}"#))]
        );
        recorder.reuse(batch);
        recorder.stage(false);
        let swap = Swap {
            models: vec![(ModelId(0), "definition".to_owned())],
            event_id: Some("rule".to_owned()),
            processed_types: [("T".to_owned(), 1)].into(),
        };
        recorder.swap(swap);
        assert!(!recorder.is_empty());
        let totals = Totals {
            documents: vec![1],
            processed: 1,
            checkpoint: Some(7),
        };
        let batch = recorder.take(totals.clone(), &mut stores);
        assert!(!batch.staged);
        assert_eq!(batch.ids().count() + batch.covered().count(), 0);
        assert_eq!(batch.documents().count(), 0);
        let swap = batch.swap.as_ref().unwrap();
        assert_eq!(swap.models, [(ModelId(0), "definition".to_owned())]);
        assert_eq!(swap.event_id.as_deref(), Some("rule"));
        assert_eq!(batch.totals, totals);
        assert!(recorder.is_empty());
    }
}
