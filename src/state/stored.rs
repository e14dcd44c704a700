//! What a state holds that decides how events are applied and which count
//! as duplicates, and how much it holds: what a configuration is compared
//! with before anything runs on the state (see [`super::reconcile`]).

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The event-id rule the processed ids were found by, as canonical
    /// text (see [`crate::plan::Plan::event_id_definition`]); `None` in a
    /// state that has not recorded one yet.
    pub event_id: Option<String>,
    /// Each read model's definition, by name, as it was when its documents
    /// were built (see [`crate::plan::Plan::model_definition`]).
    pub definitions: BTreeMap<String, String>,
    /// Documents per read model, by name.
    pub documents: BTreeMap<String, u64>,
    /// Processed event ids per event type.
    pub processed: BTreeMap<String, u64>,
    /// The accepted event types; `None` for all.
    pub subscriptions: Option<Vec<String>>,
    /// Where in its source the state stands (see [`super::Totals::checkpoint`]).
    pub checkpoint: Option<u64>,
}

impl Stored {
    pub fn processed_total(&self) -> u64 {
        self.processed.values().sum()
    }

    pub fn documents_of(&self, model: &str) -> u64 {
        self.documents.get(model).copied().unwrap_or(0)
    }

    /// Processed events of any of these types.
    pub fn processed_of<'a>(&self, types: impl IntoIterator<Item = &'a str>) -> u64 {
        types
            .into_iter()
            .map(|ty| self.processed.get(ty).copied().unwrap_or(0))
            .sum()
    }
}
