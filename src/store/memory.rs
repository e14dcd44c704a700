//! The in-memory backend: a hash table per read model.

use super::key::Key;
use super::table::Table;
use super::{Document, DocumentStore};

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    docs: Table<Document>,
}

impl MemoryStore {
    /// Starts loading the slot where the document under `key` is looked
    /// up (see [`crate::util::prefetch`]).
    pub fn prefetch(&self, key: &Key) {
        self.docs.prefetch(key);
    }
}

impl DocumentStore for MemoryStore {
    fn get(&self, key: &Key) -> Option<&Document> {
        self.docs.get(key)
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Document> {
        self.docs.get_mut(key)
    }

    fn get_or_create(&mut self, key: &Key) -> (&mut Document, bool) {
        self.docs.get_or_insert_with(key, Document::new)
    }

    fn replace(&mut self, key: &Key, doc: Document) -> bool {
        let (stored, created) = self.docs.get_or_insert_with(key, Document::new);
        if !created && *stored == doc {
            return false;
        }
        *stored = doc;
        true
    }

    fn put(&mut self, key: &str, doc: Document) -> Option<Document> {
        self.docs.insert(Key::new(key), doc)
    }

    fn remove(&mut self, key: &Key) -> Option<Document> {
        self.docs.remove(key)
    }

    fn len(&self) -> usize {
        self.docs.len()
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Vec<(&str, &Document)> {
        let mut page: Vec<(&str, &Document)> = self
            .docs
            .iter()
            .map(|(k, d)| (k.as_str(), d))
            .filter(|(k, _)| after.is_none_or(|a| *k > a))
            .collect();
        if page.len() > limit {
            page.select_nth_unstable_by(limit, |a, b| a.0.cmp(b.0));
            page.truncate(limit);
        }
        page.sort_unstable_by(|a, b| a.0.cmp(b.0));
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
    fn pages_walk_keys_in_order() {
        let mut s = MemoryStore::default();
        for k in ["c", "a", "e", "b", "d"] {
            s.put(k, doc(json!({"k": k})));
        }
        let keys = |p: Vec<(&str, &Document)>| {
            p.into_iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(keys(s.page(None, 2)), ["a", "b"]);
        assert_eq!(keys(s.page(Some("b"), 2)), ["c", "d"]);
        assert_eq!(keys(s.page(Some("d"), 10)), ["e"]);
        assert!(s.page(Some("e"), 10).is_empty());
    }

    #[test]
    fn get_or_create_says_when_it_created() {
        let mut s = MemoryStore::default();
        let k = Key::new("k");
        assert!(s.get_or_create(&k).1);
        s.get_or_create(&k)
            .0
            .insert(crate::value::name::Name::new("x"), json!(1));
        assert!(!s.get_or_create(&k).1);
        assert_eq!(s.get(&k), Some(&doc(json!({"x": 1}))));
    }
}
