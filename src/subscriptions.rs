//! Which event types this projector processes.
//!
//! Until the first `subscribe` (or `unsubscribe`) every event is processed.
//! From then on only subscribed types are; unsubscribing from every type
//! means no event is processed, not that the filter goes away.

use crate::plan::{Plan, TypeId};
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct Subscriptions {
    /// `None` until the first subscribe or unsubscribe.
    filter: Option<Filter>,
}

#[derive(Debug)]
struct Filter {
    /// Indexed by `TypeId`: the configured types.
    known: Vec<bool>,
    /// Subscribed types that no read model reacts to.
    other: HashSet<String>,
}

impl Subscriptions {
    pub fn accepts(&self, ty: Option<TypeId>, name: &str) -> bool {
        match (&self.filter, ty) {
            (None, _) => true,
            (Some(f), Some(ty)) => f.known[ty.0 as usize],
            (Some(f), None) => f.other.contains(name),
        }
    }

    pub fn subscribe(&mut self, plan: &Plan, name: &str) {
        let filter = self.filter.get_or_insert_with(|| Filter {
            known: vec![false; plan.type_count()],
            other: HashSet::new(),
        });
        match plan.event_type(name) {
            Some(ty) => filter.known[ty.0 as usize] = true,
            None => {
                filter.other.insert(name.to_owned());
            }
        }
    }

    /// Before any subscription, unsubscribing from a type means "every
    /// configured type but this one".
    pub fn unsubscribe(&mut self, plan: &Plan, name: &str) {
        let filter = self.filter.get_or_insert_with(|| Filter {
            known: vec![true; plan.type_count()],
            other: HashSet::new(),
        });
        match plan.event_type(name) {
            Some(ty) => filter.known[ty.0 as usize] = false,
            None => {
                filter.other.remove(name);
            }
        }
    }
}
