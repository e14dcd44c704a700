//! Document stores: keyed JSON documents, one store per read model.
//!
//! The interpreter reads and writes through [`DocumentStore`], so a backend
//! (in memory today) can change without touching how events are applied.

mod cache;
mod document;
mod key;
mod memory;
mod table;

pub use cache::CachedStore;
pub use document::{Document, FieldValue, Stored};
pub use key::Key;
pub use memory::MemoryStore;

/// A document that an event changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub model: crate::plan::ModelId,
    pub key: Key,
}

pub trait DocumentStore {
    fn get(&self, key: &Key) -> Option<&Document>;
    fn get_mut(&mut self, key: &Key) -> Option<&mut Document>;
    /// The document under `key`, created empty when absent; `true` when created.
    fn get_or_create(&mut self, key: &Key) -> (&mut Document, bool);
    /// Stores `doc` under `key`; returns whether that changed what was stored.
    fn replace(&mut self, key: &Key, doc: Document) -> bool;
    /// Stores `doc` under `key`, returning the document it replaces.
    fn put(&mut self, key: &str, doc: Document) -> Option<Document>;
    fn remove(&mut self, key: &Key) -> Option<Document>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Up to `limit` documents with keys after `after`, in key order.
    fn page(&self, after: Option<&str>, limit: usize) -> Vec<(&str, &Document)>;
}
