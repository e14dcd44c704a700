//! A compiled binding: what one event type does to one read model's document.

use super::path::JsonPath;
use super::ModelId;
pub use crate::config::raw::Missing;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Binding {
    pub model: ModelId,
    /// Selects the document key; always a singular path.
    pub key: JsonPath,
    /// When the key is missing: skip this model (true) or refuse the event (false).
    pub optional: bool,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Remove the document.
    Delete,
    /// Write to the document, creating it when something is written. Applied
    /// in this order: `put` replaces the document, then `merge` sets fields,
    /// `increment` adds to numbers, `unset` removes fields.
    Write {
        put: Option<Vec<FieldMap>>,
        merge: Vec<FieldMap>,
        increment: Vec<FieldMap>,
        unset: Vec<String>,
    },
}

/// `field = <source>`.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub field: String,
    pub source: Source,
    pub missing: Missing,
}

#[derive(Debug, Clone)]
pub enum Source {
    Path(JsonPath),
    Literal(Value),
}

impl Source {
    /// How the source is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Path(p) => p.as_str().to_owned(),
            Source::Literal(v) => v.to_string(),
        }
    }
}
