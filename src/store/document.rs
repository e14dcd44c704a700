//! A read-model document: a JSON object held as a short list of fields,
//! each name interned.
//!
//! A read model's documents share a handful of field names, so a document
//! costs one allocation for its fields (plus what its values hold) rather
//! than a tree node per document and a string per field name.

use crate::name::Name;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

#[derive(Clone, Default, PartialEq)]
pub struct Document {
    /// Sorted by [`Name::rank`], names unique: finding a field compares
    /// integers, never text.
    fields: Vec<(Name, Value)>,
}

impl Document {
    pub fn new() -> Self {
        Document::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        let mut fields: Vec<(&str, &Value)> =
            self.fields.iter().map(|(n, v)| (n.as_str(), v)).collect();
        fields.sort_unstable_by_key(|(n, _)| *n);
        fields.into_iter()
    }

    /// Where the field named `name` is.
    fn find(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| n.as_str() == name)
    }

    /// Where `name` is, or would go.
    fn position_of(&self, name: Name) -> Result<usize, usize> {
        self.fields
            .binary_search_by_key(&name.rank(), |(n, _)| n.rank())
    }

    /// An empty document with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Document {
            fields: Vec::with_capacity(n),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).map(|i| &self.fields[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.find(name).map(|i| &mut self.fields[i].1)
    }

    /// [`Self::get`] by interned name.
    pub fn field(&self, name: Name) -> Option<&Value> {
        self.position_of(name).ok().map(|i| &self.fields[i].1)
    }

    /// [`Self::get_mut`] by interned name.
    pub fn field_mut(&mut self, name: Name) -> Option<&mut Value> {
        self.position_of(name).ok().map(|i| &mut self.fields[i].1)
    }

    /// Sets a field, returning the value it replaces.
    pub fn insert(&mut self, name: Name, value: Value) -> Option<Value> {
        match self.position_of(name) {
            Ok(i) => Some(std::mem::replace(&mut self.fields[i].1, value)),
            Err(i) => {
                self.fields.insert(i, (name, value));
                None
            }
        }
    }

    /// The field's value, set to null first when absent.
    pub fn slot(&mut self, name: Name) -> &mut Value {
        let i = match self.position_of(name) {
            Ok(i) => i,
            Err(i) => {
                self.fields.insert(i, (name, Value::Null));
                i
            }
        };
        &mut self.fields[i].1
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.find(name)?;
        Some(self.fields.remove(i).1)
    }
}

impl std::ops::Index<&str> for Document {
    type Output = Value;

    /// The field's value, or null when absent (as indexing a JSON object does).
    fn index(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

impl From<Map<String, Value>> for Document {
    fn from(map: Map<String, Value>) -> Self {
        let mut fields: Vec<(Name, Value)> =
            map.into_iter().map(|(k, v)| (Name::new(&k), v)).collect();
        fields.sort_unstable_by_key(|(n, _)| n.rank());
        Document { fields }
    }
}

impl From<Document> for Map<String, Value> {
    fn from(doc: Document) -> Self {
        doc.fields
            .into_iter()
            .map(|(n, v)| (n.as_str().to_owned(), v))
            .collect()
    }
}

impl From<Document> for Value {
    fn from(doc: Document) -> Self {
        Value::Object(doc.into())
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(d).map(Document::from)
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fields_stay_in_name_order() {
        let mut d = Document::new();
        for name in ["m", "b", "z", "a"] {
            assert_eq!(d.insert(Name::new(name), json!(name)), None);
        }
        let names: Vec<&str> = d.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "m", "z"]);
        assert_eq!(d.insert(Name::new("m"), json!(1)), Some(json!("m")));
        assert_eq!(d.remove("b"), Some(json!("b")));
        assert_eq!(d.remove("b"), None);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"a":"a","m":1,"z":"z"}"#
        );
    }

    #[test]
    fn equal_objects_make_equal_documents() {
        assert_eq!(
            doc(json!({"x": 1, "y": [2]})),
            doc(json!({"y": [2], "x": 1}))
        );
        assert_ne!(doc(json!({"x": 1})), doc(json!({"x": 1, "y": null})));
        assert_eq!(doc(json!({"x": 1}))["x"], 1);
        assert_eq!(doc(json!({"x": 1}))["y"], Value::Null);
        assert_eq!(
            Value::from(doc(json!({"b": 1, "a": 2}))),
            json!({"a": 2, "b": 1})
        );
    }

    #[test]
    fn a_slot_starts_as_null() {
        let mut d = Document::new();
        assert!(d.slot(Name::new("n")).is_null());
        *d.slot(Name::new("n")) = json!(3);
        assert_eq!(d.get("n"), Some(&json!(3)));
    }
}
