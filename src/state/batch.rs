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
                .insert((change.model, change.key.clone()), text);
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
