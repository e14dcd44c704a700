//! The plan: a checked configuration compiled into a routing table.
//!
//! Event types and read models are interned (`TypeId`, `ModelId`), JSONPaths
//! are parsed once, and each event type maps to its bindings in the order the
//! read models are declared. The interpreter ([`crate::engine::apply`]) reads only this.

pub mod binding;
mod compile;
pub mod config_tests;
mod definition;
pub mod event_id;
mod event_types;
pub mod path;
pub mod samples;
mod types;
pub mod units;

pub use compile::compile;

use crate::util::hash::FastMap;
use binding::Binding;
use event_id::EventIdRule;
use serde_json::{Number, Value};
use std::borrow::Cow;

/// A read model, by its position in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub u32);

/// An event type that at least one read model reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeId(pub u32);

#[derive(Debug, Clone)]
pub struct Plan {
    pub event_id: EventIdRule,
    models: Vec<String>,
    /// Per model, the document fields to index (each a path of field
    /// names), as `indexes` declares them.
    indexes: Vec<Vec<Vec<String>>>,
    types: FastMap<String, TypeId>,
    type_names: Vec<String>,
    routes: Vec<Vec<Binding>>,
    /// The config's own `[[tests]]`.
    pub tests: Vec<config_tests::ConfigTest>,
    /// In the plan of one unit of work: which events it takes.
    partition: Option<units::Partition>,
    /// `cache_mb`, when the configuration sets it.
    cache_mb: Option<usize>,
}

impl Plan {
    /// The memory of a state's cache, in MiB, when the configuration sets it.
    pub fn cache_mb(&self) -> Option<usize> {
        self.cache_mb
    }

    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    pub fn model_name(&self, id: ModelId) -> &str {
        &self.models[id.0 as usize]
    }

    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(String::as_str)
    }

    /// The fields `indexes` declares for a model, each as its path of
    /// field names.
    pub fn model_indexes(&self, id: ModelId) -> &[Vec<String>] {
        &self.indexes[id.0 as usize]
    }

    pub fn model_by_name(&self, name: &str) -> Option<ModelId> {
        self.models
            .iter()
            .position(|m| m == name)
            .map(|i| ModelId(i as u32))
    }

    pub fn event_type(&self, name: &str) -> Option<TypeId> {
        self.types.get(name).copied()
    }

    pub fn type_count(&self) -> usize {
        self.type_names.len()
    }

    pub fn type_name(&self, id: TypeId) -> &str {
        &self.type_names[id.0 as usize]
    }

    /// The event types a read model reacts to.
    pub fn model_types(&self, model: ModelId) -> impl Iterator<Item = &str> {
        self.type_names
            .iter()
            .zip(&self.routes)
            .filter(move |(_, bindings)| bindings.iter().any(|b| b.model == model))
            .map(|(name, _)| name.as_str())
    }

    /// Which events this plan's engine takes, when it is one unit's (see
    /// [`units`]); `None`: all of them.
    pub fn partition(&self) -> Option<&units::Partition> {
        self.partition.as_ref()
    }

    /// The bindings of an event type, in model declaration order.
    pub fn bindings(&self, id: TypeId) -> &[Binding] {
        &self.routes[id.0 as usize]
    }
}

/// A string or number as text: strings as they are, numbers canonically, so
/// that `7`, `7.0` and `7e0` are one key: integral values below 1e21 in
/// digits, other numbers as Python's `repr` writes them (`2.5`, `1e+25`).
pub fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(number_text(n))),
        _ => None,
    }
}

/// A number as [`scalar_text`] writes it.
pub fn number_text(n: &Number) -> String {
    crate::value::number::key_text(crate::value::number::read(n.as_str()))
}

pub use crate::value::event::type_name;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_become_canonical_key_text() {
        let text = |v: Value| scalar_text(&v).map(Cow::into_owned);
        assert_eq!(text(json!(7)), Some("7".into()));
        assert_eq!(text(json!(7.0)), Some("7".into()));
        assert_eq!(text(json!(-0.0)), Some("0".into()));
        assert_eq!(text(json!(1e16)), Some("10000000000000000".into()));
        assert_eq!(text(json!(1e25)), Some("1e+25".into()));
        assert_eq!(text(json!(-2.5)), Some("-2.5".into()));
        assert_eq!(
            text(json!(18446744073709551615u64)),
            Some("18446744073709551615".into())
        );
        assert_eq!(text(json!("a")), Some("a".into()));
        assert_eq!(text(json!(true)), None);
    }
}
