//! What one batch writes to the state: the ids of the events it applied,
//! the final text of every document it changed, and the subscriptions if
//! they changed. A batch is collected while its events are applied, each
//! changed document serialized as the change is recorded, and taken when
//! it is committed.

use crate::apply::Change;
use crate::hash::FxHasher;
use crate::plan::ModelId;
use crate::store::{DocumentStore, MemoryStore};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// A batch, ready for the database.
#[derive(Default)]
pub struct Batch {
    /// The ids of the events applied, sorted.
    pub ids: Vec<String>,
    /// Each changed document once, sorted by model and key: its model, key
    /// and JSON text, or `None` when it was deleted.
    pub documents: Vec<(ModelId, String, Option<String>)>,
    /// The new subscriptions (`Some(None)`: every type), if they changed.
    pub subscriptions: Option<Option<Vec<String>>>,
}

/// Collects a batch while its events are applied.
#[derive(Default)]
pub struct Recorder {
    ids: Vec<String>,
    /// Each changed document's latest text (`None`: deleted), written when
    /// the change is recorded, while the document is still in the cache.
    documents: HashMap<(ModelId, String), Option<String>, BuildHasherDefault<FxHasher>>,
    subscriptions: Option<Option<Vec<String>>>,
}

impl Recorder {
    /// Records an applied event: its id, and the documents it changed as
    /// they are in `stores` now.
    pub fn event(&mut self, id: Option<&str>, changes: &[Change], stores: &[MemoryStore]) {
        if let Some(id) = id {
            self.ids.push(id.to_owned());
        }
        for change in changes {
            let doc = stores[change.model.0 as usize].get(&change.key);
            let text = doc.map(|doc| serde_json::to_string(doc).expect("documents serialize"));
            self.documents
                .insert((change.model, change.key.as_str().to_owned()), text);
        }
    }

    pub fn subscriptions(&mut self, names: Option<&[String]>) {
        self.subscriptions = Some(names.map(<[String]>::to_vec));
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.documents.is_empty() && self.subscriptions.is_none()
    }

    /// The batch recorded so far; the recorder starts over empty.
    ///
    /// Ids and documents come sorted, as the database's B-trees order them
    /// (documents by model, then key): written in that order, consecutive
    /// writes land on the same or the next page instead of anywhere.
    pub fn take(&mut self) -> Batch {
        let mut documents: Vec<_> = self
            .documents
            .drain()
            .map(|((model, key), text)| (model, key, text))
            .collect();
        documents.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut ids = std::mem::take(&mut self.ids);
        ids.sort_unstable();
        Batch {
            ids,
            documents,
            subscriptions: self.subscriptions.take(),
        }
    }
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
    fn a_batch_holds_each_document_once_as_last_written_in_tree_order() {
        let mut stores = vec![MemoryStore::default(), MemoryStore::default()];
        let doc = |v| serde_json::from_value(v).unwrap();
        let mut recorder = Recorder::default();
        assert!(recorder.is_empty());

        stores[1].put("b", doc(json!({"n": 1})));
        stores[0].put("z", doc(json!({"s": "x"})));
        recorder.event(Some("e2"), &[change(1, "b"), change(0, "z")], &stores);
        stores[1].put("b", doc(json!({"n": 2})));
        stores[1].put("a", doc(json!({"n": 0})));
        recorder.event(Some("e1"), &[change(1, "b"), change(1, "a")], &stores);
        stores[0].remove(&crate::store::Key::new("z"));
        recorder.event(None, &[change(0, "z")], &stores);
        assert!(!recorder.is_empty());

        let batch = recorder.take();
        assert_eq!(batch.ids, ["e1", "e2"]);
        assert_eq!(
            batch.documents,
            [
                (ModelId(0), "z".to_owned(), None),
                (ModelId(1), "a".to_owned(), Some(r#"{"n":0}"#.to_owned())),
                (ModelId(1), "b".to_owned(), Some(r#"{"n":2}"#.to_owned())),
            ]
        );
        assert_eq!(batch.subscriptions, None);
        assert!(recorder.is_empty());
    }
}
