//! An event as the interpreter reads it: a JSON tree whose strings borrow
//! from the input line.
//!
//! Parsing an event into a `serde_json::Value` costs a tree node per object
//! and a heap string per key and per string value, all freed again once the
//! event is applied. [`Raw`] keeps strings as slices of the line (copying
//! only those with escapes) and objects as a plain list of entries, so an
//! event costs an allocation per object or array. Paths that are plain walks
//! (`$.payload.id`) read it directly; the rare paths that need a full
//! JSONPath engine read a `Value` built from it once, on first use.

use crate::plan::number_text;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Raw<'a>>),
    /// Entries in the order written; for a repeated key the last one counts,
    /// as it does in a `Value`.
    Object(Vec<(Cow<'a, str>, Raw<'a>)>),
}

impl<'a> Raw<'a> {
    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Raw<'a>> {
        match self {
            Raw::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|e| &e.1),
            _ => None,
        }
    }

    /// The JSON kind, as error messages name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Number(_) => "a number",
            Raw::String(_) => "a string",
            Raw::Array(_) => "an array",
            Raw::Object(_) => "an object",
        }
    }

    /// A string or number as text (see [`crate::plan::scalar_text`]).
    pub fn scalar_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Raw::String(Cow::Borrowed(s)) => Some(Cow::Borrowed(s)),
            Raw::String(Cow::Owned(s)) => Some(Cow::Owned(s.clone())),
            Raw::Number(n) => Some(Cow::Owned(number_text(n))),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Number(n) => Value::Number(n.clone()),
            Raw::String(s) => Value::String(s.as_ref().to_owned()),
            Raw::Array(items) => Value::Array(items.iter().map(Raw::to_value).collect()),
            Raw::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl<'a> From<&'a Value> for Raw<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Raw::Null,
            Value::Bool(b) => Raw::Bool(*b),
            Value::Number(n) => Raw::Number(n.clone()),
            Value::String(s) => Raw::String(Cow::Borrowed(s)),
            Value::Array(items) => Raw::Array(items.iter().map(Raw::from).collect()),
            Value::Object(map) => Raw::Object(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Raw::from(v)))
                    .collect(),
            ),
        }
    }
}

/// One event: its tree, and the `Value` form made on demand.
pub struct Event<'a> {
    root: Raw<'a>,
    tree: OnceCell<Value>,
}

impl<'a> Event<'a> {
    pub fn new(root: Raw<'a>) -> Self {
        Event {
            root,
            tree: OnceCell::new(),
        }
    }

    pub fn root(&self) -> &Raw<'a> {
        &self.root
    }

    /// The tree the event was made from.
    pub fn into_root(self) -> Raw<'a> {
        self.root
    }

    /// The event as a `Value`, built the first time it is asked for.
    pub fn tree(&self) -> &Value {
        self.tree.get_or_init(|| self.root.to_value())
    }
}

impl<'a> From<&'a Value> for Event<'a> {
    fn from(v: &'a Value) -> Self {
        Event::new(Raw::from(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor(PhantomData))
    }
}

struct RawVisitor<'a>(PhantomData<Raw<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
    type Value = Raw<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Raw<'a>, E> {
        Ok(Raw::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Raw<'a>, E> {
        Ok(Raw::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Raw<'a>, E> {
        Ok(Raw::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Raw<'a>, E> {
        Number::from_f64(n)
            .map(Raw::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Raw<'a>, E> {
        Ok(Raw::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Raw<'a>, E> {
        Ok(Raw::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Raw<'a>, E> {
        Ok(Raw::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'a>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Raw::Object(entries))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(PhantomData<Key<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_a_value_and_borrows_plain_strings() {
        let text = r#"{"a": [1, -2, 2.5, true, null], "b": {"c": "plain", "d": "esc\naped"}, "a": "last"}"#;
        let raw: Raw<'_> = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(raw.to_value(), value);
        assert_eq!(raw.get("a"), Some(&Raw::String(Cow::Borrowed("last"))));
        let b = raw.get("b").unwrap();
        assert!(matches!(
            b.get("c"),
            Some(Raw::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(b.get("d"), Some(Raw::String(Cow::Owned(_)))));
        assert_eq!(Raw::from(&value).to_value(), value);
    }

    #[test]
    fn scalars_read_as_text() {
        let text = |v: Value| Raw::from(&v).scalar_text().map(Cow::into_owned);
        assert_eq!(text(json!("k")), Some("k".to_owned()));
        assert_eq!(text(json!(7.0)), Some("7".to_owned()));
        assert_eq!(text(json!([1])), None);
    }
}
