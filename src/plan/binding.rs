//! A compiled binding: what one event type does to one read model's document.

use super::path::JsonPath;
use super::ModelId;
pub use crate::config::raw::{FieldOp, MetaField, Missing, Test};
use crate::value::event::Event;
use crate::value::name::Name;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct Binding {
    pub model: ModelId,
    pub key: Key,
    /// When the key is missing: skip this model (true) or refuse the event (false).
    pub optional: bool,
    /// The binding applies only when every condition holds.
    pub when: Vec<Condition>,
    pub action: Action,
}

impl Binding {
    /// Whether a mapping reads the event's position in the stream.
    pub fn reads_position(&self) -> bool {
        let Action::Write { put, ops, .. } = &self.action else {
            return false;
        };
        let position = |f: &FieldMap| matches!(f.source, Source::Meta(MetaField::Position));
        put.iter().flatten().any(position) || ops.iter().any(|(_, f)| position(f))
    }
}

/// How a document key is made from an event.
#[derive(Debug, Clone)]
pub enum Key {
    /// One singular path.
    Path(JsonPath),
    /// Text with paths in braces: `"{$.payload.tenant}/{$.payload.id}"`.
    Template { text: String, parts: Vec<Part> },
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Path(JsonPath),
}

impl Key {
    /// The key's text; `None` when a path in it finds nothing; the path and
    /// what it found when that is not a string or a number.
    pub fn resolve<'a>(
        &'a self,
        event: &'a Event<'a>,
    ) -> Result<Option<Cow<'a, str>>, (String, &'static str)> {
        let part = |path: &'a JsonPath| {
            path.text(event)
                .map_err(|found| (path.as_str().to_owned(), found))
        };
        match self {
            Key::Path(path) => part(path),
            Key::Template { parts, .. } => {
                let mut text = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => text.push_str(t),
                        Part::Path(path) => match part(path)? {
                            Some(t) => text.push_str(&t),
                            None => return Ok(None),
                        },
                    }
                }
                Ok(Some(Cow::Owned(text)))
            }
        }
    }

    /// The key as written, for messages.
    pub fn as_str(&self) -> &str {
        match self {
            Key::Path(p) => p.as_str(),
            Key::Template { text, .. } => text,
        }
    }

    /// The paths the key reads.
    pub fn paths(&self) -> Vec<&JsonPath> {
        match self {
            Key::Path(p) => vec![p],
            Key::Template { parts, .. } => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Path(p) => Some(p),
                    Part::Text(_) => None,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub path: JsonPath,
    pub test: Test,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Remove the document.
    Delete,
    /// Write to the document, creating it when something is written: `put`
    /// replaces the document, then each field operation writes its field, then
    /// `unset` removes fields. No two of them touch the same field.
    Write {
        put: Option<Vec<FieldMap>>,
        ops: Vec<(FieldOp, FieldMap)>,
        unset: Vec<FieldPath>,
    },
}

/// `field = <source>`.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub field: FieldPath,
    pub source: Source,
    pub missing: Missing,
}

/// A field of a document; dots reach into nested objects (`address.city`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub text: String,
    pub segments: Vec<String>,
    /// The first segment, the document's own field, interned.
    pub head: Name,
}

impl FieldPath {
    pub fn new(text: &str) -> Self {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        FieldPath {
            text: text.to_owned(),
            head: Name::new(&segments[0]),
            segments,
        }
    }

    /// True when one field is the other or lies inside it.
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        let n = self.segments.len().min(other.segments.len());
        self.segments[..n] == other.segments[..n]
    }
}

#[derive(Debug, Clone)]
pub enum Source {
    Path(JsonPath),
    Literal(Value),
    Meta(MetaField),
}

impl Source {
    /// How the source is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Path(p) => p.as_str().to_owned(),
            Source::Literal(v) => v.to_string(),
            Source::Meta(m) => format!("meta {}", m.word()),
        }
    }
}
