//! A read-model document: a JSON object held as a short list of fields,
//! each name interned.
//!
//! A read model's documents share a handful of field names, so a document
//! costs one allocation for its fields (plus what its values hold) rather
//! than a tree node per document and a string per field name. Strings of up
//! to 22 bytes are held in the field itself.

use crate::value::event::{Raw, Val};
use crate::value::name::Name;
use crate::value::number::{self, Num, Owned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Default, PartialEq)]
pub struct Document {
    /// Sorted by [`Name::rank`], names unique: finding a field compares
    /// integers, never text.
    fields: Vec<(Name, Stored)>,
}

/// The longest string held inline in a field.
const SHORT: usize = 22;

/// A field's value as held: a string of up to [`SHORT`] bytes inline, in the
/// field itself; an integer that fits 64 bits or a finite double as it is;
/// anything else as JSON. Most strings in read models are short (ids, names,
/// emails); inline, they cost no allocation, and reading one (to tell
/// whether a write changes it) costs no second cache miss. Numbers held as
/// they are cost no allocation either, and `increment` adds to them in place.
#[derive(Clone)]
pub enum Stored {
    Short { len: u8, bytes: [u8; SHORT] },
    Int(i64),
    Float(f64),
    Json(Value),
}

impl Stored {
    pub fn new(value: Value) -> Stored {
        match value {
            Value::String(s) if s.len() <= SHORT => Stored::short(&s),
            Value::Number(n) => match Stored::number(number::read(n.as_str())) {
                Some(held) => held,
                None => Stored::Json(Value::Number(n)),
            },
            value => Stored::Json(value),
        }
    }

    /// A number held as it is, when it can be.
    fn number(n: Num<'_>) -> Option<Stored> {
        match n {
            Num::Int(i) => Some(Stored::Int(i)),
            Num::Float(f) if f.is_finite() => Some(Stored::Float(f)),
            Num::Float(_) | Num::Big(_) => None,
        }
    }

    /// A number worked out by an operation.
    pub fn from_owned(n: Owned) -> Stored {
        match n {
            Owned::Int(i) => Stored::Int(i),
            Owned::Float(f) if f.is_finite() => Stored::Float(f),
            other => Stored::Json(other.into_value()),
        }
    }

    /// `text`, which is at most [`SHORT`] bytes long, held inline.
    fn short(text: &str) -> Stored {
        let mut bytes = [0; SHORT];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Stored::Short {
            len: text.len() as u8,
            bytes,
        }
    }

    /// A value from an event: a short string is copied straight from it, a
    /// number read from its text.
    pub fn from_val(value: Val<'_>) -> Stored {
        match value {
            Val::Node(Raw::String(s)) if s.len() <= SHORT => Stored::short(s),
            Val::Node(Raw::Number(n)) => Stored::number(number::read(n))
                .unwrap_or_else(|| Stored::Json(number::json_number(n))),
            value => Stored::new(value.into_value()),
        }
    }

    fn get(&self) -> FieldValue<'_> {
        match self {
            Stored::Short { len, bytes } => FieldValue::Text(
                std::str::from_utf8(&bytes[..*len as usize]).expect("made from a str"),
            ),
            Stored::Int(i) => FieldValue::Int(*i),
            Stored::Float(f) => FieldValue::Float(*f),
            Stored::Json(value) => FieldValue::Json(value),
        }
    }

    /// The value as JSON, to be changed in place: an inline string or a
    /// number becomes JSON first.
    fn json_mut(&mut self) -> &mut Value {
        if !matches!(self, Stored::Json(_)) {
            let value = self.get().to_value();
            *self = Stored::Json(value);
        }
        match self {
            Stored::Json(value) => value,
            _ => unreachable!("made JSON above"),
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Stored::Json(value) => value,
            other => other.get().to_value(),
        }
    }

    pub fn as_number(&self) -> Option<Num<'_>> {
        self.get().as_number()
    }

    /// Whether this holds `value`, comparing without building anything.
    fn holds(&self, value: &Value) -> bool {
        self.get().holds(value)
    }

    /// Whether this holds `value`, comparing without building anything for
    /// a scalar.
    fn holds_val(&self, value: &Val<'_>) -> bool {
        let node = match value {
            Val::Json(v) => return self.holds(v),
            Val::Node(node) => node,
        };
        match (self.get(), node) {
            (FieldValue::Text(h), Raw::String(s)) => h == *s,
            (FieldValue::Int(_) | FieldValue::Float(_), Raw::Number(n)) => {
                self.get().holds_number(number::read(n))
            }
            (FieldValue::Json(held), node) => match (held, node) {
                (Value::String(h), Raw::String(s)) => h == s,
                (Value::Number(h), Raw::Number(n)) => h.as_str() == *n,
                (Value::Bool(h), Raw::Bool(b)) => h == b,
                (Value::Null, Raw::Null) => true,
                (held, node @ (Raw::Array(_) | Raw::Object(_))) => *held == node.to_value(),
                _ => false,
            },
            _ => false,
        }
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        match (self, other) {
            (Stored::Json(a), b) | (b, Stored::Json(a)) => b.holds(a),
            // The bytes past `len` are zero in both.
            (Stored::Short { len: a, bytes: x }, Stored::Short { len: b, bytes: y }) => {
                a == b && x == y
            }
            (Stored::Int(a), Stored::Int(b)) => a == b,
            (Stored::Float(a), Stored::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// A field's value, as a document lends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'d> {
    /// A string held inline.
    Text(&'d str),
    Int(i64),
    /// A finite double.
    Float(f64),
    Json(&'d Value),
}

impl<'d> FieldValue<'d> {
    pub fn to_value(self) -> Value {
        match self {
            FieldValue::Text(s) => Value::String(s.to_owned()),
            FieldValue::Int(i) => Value::from(i),
            FieldValue::Float(f) => Owned::Float(f).into_value(),
            FieldValue::Json(value) => value.clone(),
        }
    }

    /// The value as JSON: borrowed, or made for the occasion.
    pub fn as_json(self) -> Cow<'d, Value> {
        match self {
            FieldValue::Json(value) => Cow::Borrowed(value),
            other => Cow::Owned(other.to_value()),
        }
    }

    pub fn is_null(self) -> bool {
        matches!(self, FieldValue::Json(Value::Null))
    }

    /// The number held, if it is one.
    pub fn as_number(self) -> Option<Num<'d>> {
        match self {
            FieldValue::Int(i) => Some(Num::Int(i)),
            FieldValue::Float(f) => Some(Num::Float(f)),
            FieldValue::Json(Value::Number(n)) => Some(number::read(n.as_str())),
            _ => None,
        }
    }

    /// Whether this is `value`, written the same: `1` is not `1.0`.
    pub fn holds(self, value: &Value) -> bool {
        match (self, value) {
            (FieldValue::Text(s), value) => value.as_str() == Some(s),
            (FieldValue::Json(held), value) => held == value,
            (held, Value::Number(n)) => held.holds_number(number::read(n.as_str())),
            _ => false,
        }
    }

    /// Whether this is the number `n`, written the same.
    fn holds_number(self, n: Num<'_>) -> bool {
        match (self, n) {
            (FieldValue::Int(a), Num::Int(b)) => a == b,
            (FieldValue::Float(a), Num::Float(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::Json(Value::Number(h)), n) => number::read(h.as_str()) == n,
            _ => false,
        }
    }
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Text(text) => s.serialize_str(text),
            FieldValue::Int(i) => s.serialize_i64(*i),
            FieldValue::Float(f) => s.serialize_f64(*f),
            FieldValue::Json(value) => value.serialize(s),
        }
    }
}

impl Document {
    pub fn new() -> Self {
        Document::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Starts loading the document's fields (see [`crate::util::prefetch`]).
    pub fn prefetch(&self) {
        if let (Some(first), Some(last)) = (self.fields.first(), self.fields.last()) {
            crate::util::prefetch::prefetch(first);
            crate::util::prefetch::prefetch(last);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, FieldValue<'_>)> {
        let mut fields: Vec<(&str, FieldValue<'_>)> = self
            .fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.get()))
            .collect();
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

    pub fn get(&self, name: &str) -> Option<FieldValue<'_>> {
        self.find(name).map(|i| self.fields[i].1.get())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.find(name).map(|i| self.fields[i].1.json_mut())
    }

    /// [`Self::get`] by interned name.
    pub fn field(&self, name: Name) -> Option<FieldValue<'_>> {
        self.position_of(name).ok().map(|i| self.fields[i].1.get())
    }

    /// [`Self::get_mut`] by interned name.
    pub fn field_mut(&mut self, name: Name) -> Option<&mut Value> {
        self.position_of(name)
            .ok()
            .map(|i| self.fields[i].1.json_mut())
    }

    /// Sets a field, returning the value it replaces.
    pub fn insert(&mut self, name: Name, value: Value) -> Option<Value> {
        let value = Stored::new(value);
        match self.position_of(name) {
            Ok(i) => Some(std::mem::replace(&mut self.fields[i].1, value).into_value()),
            Err(i) => {
                self.fields.insert(i, (name, value));
                None
            }
        }
    }

    /// Sets a field unless it already holds `value`; returns whether it
    /// changed.
    pub fn set(&mut self, name: Name, value: Value) -> bool {
        self.set_as(name, value, Stored::holds, Stored::new)
    }

    /// [`Self::set`] for a value from an event.
    pub fn set_val(&mut self, name: Name, value: Val<'_>) -> bool {
        self.set_as(name, value, Stored::holds_val, Stored::from_val)
    }

    /// [`Self::set`] for a value as a document holds it.
    pub fn set_stored(&mut self, name: Name, value: Stored) -> bool {
        self.set_as(name, value, |held, value| held == value, |value| value)
    }

    /// [`Self::set`] for a value of any form: `holds` tells whether a field
    /// already holds it (without building anything), `make` turns it into
    /// what a field holds.
    fn set_as<V>(
        &mut self,
        name: Name,
        value: V,
        holds: fn(&Stored, &V) -> bool,
        make: fn(V) -> Stored,
    ) -> bool {
        match self.position_of(name) {
            Ok(i) if holds(&self.fields[i].1, &value) => false,
            Ok(i) => {
                self.fields[i].1 = make(value);
                true
            }
            Err(i) => {
                self.fields.insert(i, (name, make(value)));
                true
            }
        }
    }

    /// The field's value, set to null first when absent.
    pub fn slot(&mut self, name: Name) -> &mut Value {
        let i = match self.position_of(name) {
            Ok(i) => i,
            Err(i) => {
                self.fields.insert(i, (name, Stored::Json(Value::Null)));
                i
            }
        };
        self.fields[i].1.json_mut()
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.find(name)?;
        Some(self.fields.remove(i).1.into_value())
    }
}

impl From<Map<String, Value>> for Document {
    fn from(map: Map<String, Value>) -> Self {
        let mut fields: Vec<(Name, Stored)> = map
            .into_iter()
            .map(|(k, v)| (Name::new(&k), Stored::new(v)))
            .collect();
        fields.sort_unstable_by_key(|(n, _)| n.rank());
        Document { fields }
    }
}

impl From<Document> for Map<String, Value> {
    fn from(doc: Document) -> Self {
        doc.fields
            .into_iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.into_value()))
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
        assert_eq!(doc(json!({"x": 1})).get("x"), Some(FieldValue::Int(1)));
        assert_eq!(
            doc(json!({"x": 1.5})).get("x"),
            Some(FieldValue::Float(1.5))
        );
        assert_ne!(doc(json!({"x": 1})), doc(json!({"x": 1.0})));
        assert_ne!(doc(json!({"x": 0.0})), doc(json!({"x": -0.0})));
        let big = |t: &str| doc(json!({"x": crate::value::number::json_number(t)}));
        assert_eq!(big("18446744073709551616"), big("18446744073709551616"));
        assert_ne!(big("18446744073709551616"), big("18446744073709551617"));
        assert_eq!(big("-0"), doc(json!({"x": 0})));
        assert_eq!(doc(json!({"x": 1})).get("y"), None);
        assert_eq!(doc(json!({"s": "short"})), doc(json!({"s": "short"})));
        assert_ne!(doc(json!({"s": "short"})), doc(json!({"s": "shorter"})));
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
        assert_eq!(d.get("n"), Some(FieldValue::Json(&json!(3))));
    }

    #[test]
    fn a_value_from_an_event_is_stored_and_compared_as_its_json_would_be() {
        let long = "y".repeat(SHORT + 1);
        let values = [
            json!("short"),
            json!(long),
            json!(2.5),
            json!(7),
            json!(null),
            json!(true),
            json!([1, "a"]),
            json!({"k": "v"}),
        ];
        let name = Name::new("f");
        for value in &values {
            let raw = Raw::from(value);
            let mut by_val = Document::new();
            assert!(by_val.set_val(name, Val::Node(&raw)));
            let mut by_json = Document::new();
            by_json.set(name, value.clone());
            assert_eq!(by_val, by_json, "{value}");
            for other in &values {
                let other_raw = Raw::from(other);
                let mut doc = by_json.clone();
                assert_eq!(doc.set_val(name, Val::Node(&other_raw)), other != value);
                let mut doc = by_json.clone();
                let json = Val::Json(Cow::Borrowed(other));
                assert_eq!(doc.set_val(name, json), other != value);
            }
        }
        // A short string changed in place is held as JSON, and still compares.
        let mut doc = Document::new();
        doc.set(name, json!("short"));
        doc.get_mut("f");
        assert!(!doc.set_val(name, Val::Node(&Raw::String("short"))));
    }

    #[test]
    fn short_strings_are_held_inline_and_read_back_the_same() {
        assert_eq!(std::mem::size_of::<Stored>(), std::mem::size_of::<Value>());
        let long = "x".repeat(SHORT + 1);
        let mut d = doc(json!({"s": "é日本", "e": "", "l": long, "n": 1}));
        assert_eq!(d.get("s"), Some(FieldValue::Text("é日本")));
        assert_eq!(d.get("e"), Some(FieldValue::Text("")));
        assert_eq!(d.get("l"), Some(FieldValue::Json(&json!(long))));
        assert!(!d.set(Name::new("s"), json!("é日本")));
        assert!(d.set(Name::new("s"), json!("é日本!")));
        assert!(d.set(Name::new("n"), json!("1")));
        // A string changed in place stays equal to the same string inline.
        d.get_mut("s").unwrap().as_str().unwrap();
        assert_eq!(d, doc(json!({"s": "é日本!", "e": "", "l": long, "n": "1"})));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!(r#"{{"e":"","l":"{long}","n":"1","s":"é日本!"}}"#)
        );
    }
}
