//! The configuration as written: shapes checked, meanings not yet.
//!
//! Every name and path a user writes keeps its [`Span`], so the compile step can
//! point at it. Nothing here has been checked beyond its TOML type.

use crate::diag::{Span, Spanned};
use serde_json::Value;

/// A whole `projections.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawConfig {
    pub event_id: RawEventId,
    pub models: Vec<RawModel>,
}

/// `[event_id]`: where an event's id is found.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEventId {
    pub path: Spanned<String>,
    pub derive: Option<RawDerive>,
}

/// `[event_id.derive]`: an id made from another field when the event carries none.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDerive {
    pub span: Span,
    pub from: Spanned<String>,
    pub pattern: Spanned<String>,
    pub template: Spanned<String>,
}

/// One `[[model]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawModel {
    pub span: Span,
    /// `None` when absent or not a string (already reported).
    pub name: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub on: Vec<RawBinding>,
    /// `on` was present but not a table (already reported).
    pub on_invalid: bool,
}

/// `[model.on.EventType]`: what one event type does to the model's document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawBinding {
    pub event_type: Spanned<String>,
    pub key: Option<Spanned<String>>,
    pub optional: bool,
    pub delete: Option<Spanned<bool>>,
    pub put: Option<Vec<RawField>>,
    pub merge: Option<Vec<RawField>>,
    pub increment: Option<Vec<RawField>>,
    pub unset: Option<Vec<Spanned<String>>>,
    /// The table had keys that are not operations (already reported).
    pub has_unknown_keys: bool,
}

/// `field = <mapping>` inside an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawField {
    pub name: Spanned<String>,
    pub value: RawMapping,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum RawMapping {
    /// `"$.payload.name"` or `{ path = "$.payload.name", missing = "fail" }`.
    Path {
        path: Spanned<String>,
        missing: Option<Spanned<Missing>>,
    },
    /// `{ value = "literal" }`, or a bare number, boolean or array.
    Literal { span: Span, value: Value },
}

/// What a mapping does when its path finds nothing in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Leave the field as it is (absent in a new document).
    Skip,
    /// Write `null`.
    Null,
    /// Refuse the whole event: no read model changes.
    Fail,
}

impl Missing {
    pub const WORDS: &'static [&'static str] = &["skip", "null", "fail"];

    pub fn from_word(word: &str) -> Option<Missing> {
        match word {
            "skip" => Some(Missing::Skip),
            "null" => Some(Missing::Null),
            "fail" => Some(Missing::Fail),
            _ => None,
        }
    }
}
