//! An event as the interpreter reads it: a JSON tree whose strings borrow
//! from the input line.
//!
//! Parsing an event into a `serde_json::Value` costs a tree node per object
//! and a heap string per key and per string value, all freed again once the
//! event is applied. [`Raw`] keeps strings as slices of the line and objects
//! as a plain list of entries, so an event costs an allocation per object or
//! array. The scanner ([`crate::input::scan`]) builds it for lines without escapes;
//! other lines are read into a `Value` and borrowed from. Paths that are plain walks
//! (`$.payload.id`) read it directly; the rare paths that need a full
//! JSONPath engine read a `Value` built from it once, on first use.

use crate::value::number::{self, Num};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;

#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Null,
    Bool(bool),
    /// A number as written, its meaning read when needed ([`crate::value::number`]).
    Number(&'a str),
    String(&'a str),
    Array(Vec<Raw<'a>>),
    /// Entries in the order written; for a repeated key the last one counts,
    /// as it does in a `Value`.
    Object(Vec<(&'a str, Raw<'a>)>),
}

impl<'a> Raw<'a> {
    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Raw<'a>> {
        match self {
            Raw::Object(entries) => entries.iter().rev().find(|(k, _)| *k == key).map(|e| &e.1),
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
            Raw::String(s) => Some(Cow::Borrowed(s)),
            Raw::Number(n) => Some(Cow::Owned(number::key_text(number::read(n)))),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Number(n) => number::json_number(n),
            Raw::String(s) => Value::String((*s).to_owned()),
            Raw::Array(items) => Value::Array(items.iter().map(Raw::to_value).collect()),
            Raw::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_value()))
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
            Value::Number(n) => Raw::Number(n.as_str()),
            Value::String(s) => Raw::String(s),
            Value::Array(items) => Raw::Array(items.iter().map(Raw::from).collect()),
            Value::Object(map) => Raw::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str(), Raw::from(v)))
                    .collect(),
            ),
        }
    }
}

/// A value found in an event for a document: a node of the event's tree, or
/// JSON (what the full JSONPath engine selects, a literal, event metadata).
/// A node becomes a document's value without a `Value` in between, so a
/// short string goes from the input line into the document's field as it is.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    Node(&'a Raw<'a>),
    Json(Cow<'a, Value>),
}

impl Val<'_> {
    pub fn into_value(self) -> Value {
        match self {
            Val::Node(raw) => raw.to_value(),
            Val::Json(value) => value.into_owned(),
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            Val::Node(raw) => matches!(raw, Raw::Null),
            Val::Json(value) => value.is_null(),
        }
    }

    pub fn is_number(&self) -> bool {
        match self {
            Val::Node(raw) => matches!(raw, Raw::Number(_)),
            Val::Json(value) => value.is_number(),
        }
    }

    pub fn as_number(&self) -> Option<Num<'_>> {
        match self {
            Val::Node(Raw::Number(n)) => Some(number::read(n)),
            Val::Json(value) => match value.as_ref() {
                Value::Number(n) => Some(number::read(n.as_str())),
                _ => None,
            },
            Val::Node(_) => None,
        }
    }

    /// The JSON kind, as error messages name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Node(raw) => raw.type_name(),
            Val::Json(value) => type_name(value),
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

/// The JSON type of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The event's type name, once the event is known to be an object with a
/// string `type` and a `payload`; what is wrong with it otherwise.
pub fn checked_event<'a>(event: &Raw<'a>) -> Result<&'a str, String> {
    if !matches!(event, Raw::Object(_)) {
        return Err(format!(
            "\"event\" must be an object, found {}",
            event.type_name()
        ));
    }
    let type_name = match event.get("type") {
        Some(Raw::String(ty)) => *ty,
        None => return Err("the event has no \"type\"".to_owned()),
        Some(other) => {
            return Err(format!(
                "the event's \"type\" must be a string, found {}",
                other.type_name()
            ))
        }
    };
    if event.get("payload").is_none() {
        return Err("the event has no \"payload\"".to_owned());
    }
    Ok(type_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tree_borrowed_from_a_value_reads_back_as_that_value() {
        let value = json!({"a": [1, -2, 2.5, true, null], "b": {"c": "plain"}, "d": "x"});
        let raw = Raw::from(&value);
        assert_eq!(raw.to_value(), value);
        assert_eq!(raw.get("d"), Some(&Raw::String("x")));
        assert_eq!(raw.get("b").unwrap().get("c"), Some(&Raw::String("plain")));
        assert_eq!(raw.get("e"), None);
    }

    #[test]
    fn scalars_read_as_text() {
        let text = |v: Value| Raw::from(&v).scalar_text().map(Cow::into_owned);
        assert_eq!(text(json!("k")), Some("k".to_owned()));
        assert_eq!(text(json!(7.0)), Some("7".to_owned()));
        assert_eq!(text(json!([1])), None);
    }
}
