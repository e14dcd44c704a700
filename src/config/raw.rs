//! The configuration as written: shapes checked, meanings not yet.
//!
//! Every name and path a user writes keeps its [`Span`], so the compile step can
//! point at it. Nothing here has been checked beyond its TOML type.

use super::span::{Span, Spanned};
use serde_json::Value;

/// A whole `projections.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawConfig {
    pub event_id: RawEventId,
    /// `cache_mb = N`: the memory of a state's cache, in MiB.
    pub cache_mb: Option<u64>,
    pub models: Vec<RawModel>,
    pub tests: Vec<RawTest>,
}

/// `[[tests]]`: events in, documents (and replies) expected out.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTest {
    pub span: Span,
    pub name: Spanned<String>,
    /// Each event as a JSON object.
    pub events: Vec<Spanned<Value>>,
    pub expect: Vec<RawExpectation>,
    /// Per event, the fields its reply must have.
    pub replies: Option<Vec<Spanned<Value>>>,
}

/// One expected document, or its absence.
#[derive(Debug, Clone, PartialEq)]
pub struct RawExpectation {
    pub span: Span,
    pub model: Spanned<String>,
    pub key: Spanned<String>,
    /// `None`: the document must not exist.
    pub document: Option<Value>,
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
    /// `indexes`: document fields to index in a PostgreSQL state.
    pub indexes: Vec<Spanned<String>>,
}

/// `[model.on.EventType]`: what one event type does to the model's document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawBinding {
    pub event_type: Spanned<String>,
    pub key: Option<Spanned<String>>,
    pub optional: bool,
    pub when: Vec<RawCondition>,
    pub delete: Option<Spanned<bool>>,
    pub put: Option<Vec<RawField>>,
    /// Field operations, in the order they are written.
    pub ops: Vec<(Spanned<FieldOp>, Vec<RawField>)>,
    pub unset: Option<Vec<Spanned<String>>>,
    /// The table had keys that are not operations (already reported).
    pub has_unknown_keys: bool,
}

/// The operations that write a value into one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// Set the field.
    Merge,
    /// Set the field only when the document does not have it.
    SetIfAbsent,
    /// Add a number, starting from 0.
    Increment,
    /// Keep the larger of the field and the value.
    Max,
    /// Keep the smaller of the field and the value.
    Min,
    /// Add the value at the end of a list, starting from `[]`.
    Append,
    /// Append the value unless the list already holds it.
    AddToSet,
    /// Remove every element equal to the value from a list.
    Remove,
}

impl FieldOp {
    pub const ALL: &'static [FieldOp] = &[
        FieldOp::Merge,
        FieldOp::SetIfAbsent,
        FieldOp::Increment,
        FieldOp::Max,
        FieldOp::Min,
        FieldOp::Append,
        FieldOp::AddToSet,
        FieldOp::Remove,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FieldOp::Merge => "merge",
            FieldOp::SetIfAbsent => "set_if_absent",
            FieldOp::Increment => "increment",
            FieldOp::Max => "max",
            FieldOp::Min => "min",
            FieldOp::Append => "append",
            FieldOp::AddToSet => "add_to_set",
            FieldOp::Remove => "remove",
        }
    }

    pub fn from_name(name: &str) -> Option<FieldOp> {
        FieldOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// `when = { path = "...", <test> = ... }`: a binding applies only if it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCondition {
    pub span: Span,
    pub path: Spanned<String>,
    pub test: Spanned<Test>,
}

/// A test on the value a condition's path selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `exists = true`: the path selects something (not null); `false`: it does not.
    Exists(bool),
    Eq(Value),
    Ne(Value),
    Lt(Value),
    Le(Value),
    Gt(Value),
    Ge(Value),
    /// The value equals one of these.
    In(Vec<Value>),
}

impl Test {
    pub const WORDS: &'static [&'static str] =
        &["exists", "eq", "ne", "lt", "le", "gt", "ge", "in"];
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
    /// `{ meta = "event_id" }`: something known about the event beyond its fields.
    Meta { span: Span, field: MetaField },
}

/// Event metadata a mapping can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    /// The event's id, as found or derived.
    EventId,
    /// The event's type.
    EventType,
    /// The message's position in the stream: 1 for the first message read.
    Position,
}

impl MetaField {
    pub const WORDS: &'static [&'static str] = &["event_id", "event_type", "position"];

    pub fn from_word(word: &str) -> Option<MetaField> {
        match word {
            "event_id" => Some(MetaField::EventId),
            "event_type" => Some(MetaField::EventType),
            "position" => Some(MetaField::Position),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        Self::WORDS[self as usize]
    }
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
