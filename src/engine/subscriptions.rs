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

    /// The types accepted, sorted; `None` while every type is.
    pub fn names(&self, plan: &Plan) -> Option<Vec<String>> {
        let filter = self.filter.as_ref()?;
        let known = (0..plan.type_count())
            .filter(|i| filter.known[*i])
            .map(|i| plan.type_name(TypeId(i as u32)).to_owned());
        let mut names: Vec<String> = known.chain(filter.other.iter().cloned()).collect();
        names.sort();
        Some(names)
    }

    /// The subscriptions that accept exactly `names` (every type for `None`).
    pub fn from_names(plan: &Plan, names: Option<&[String]>) -> Self {
        let mut subscriptions = Subscriptions::default();
        if let Some(names) = names {
            subscriptions.filter = Some(Filter {
                known: vec![false; plan.type_count()],
                other: HashSet::new(),
            });
            for name in names {
                subscriptions.subscribe(plan, name);
            }
        }
        subscriptions
    }

    pub fn subscribe(&mut self, plan: &Plan, name: &str) {
        self.set(plan, name, true);
    }

    /// Before any subscription, unsubscribing from a type means "every
    /// configured type but this one".
    pub fn unsubscribe(&mut self, plan: &Plan, name: &str) {
        self.set(plan, name, false);
    }

    fn set(&mut self, plan: &Plan, name: &str, subscribed: bool) {
        // The first change starts from the opposite of itself: nothing
        // subscribed before a subscribe, everything configured before an unsubscribe.
        let filter = self.filter.get_or_insert_with(|| Filter {
            known: vec![!subscribed; plan.type_count()],
            other: HashSet::new(),
        });
        match (plan.event_type(name), subscribed) {
            (Some(ty), _) => filter.known[ty.0 as usize] = subscribed,
            (None, true) => {
                filter.other.insert(name.to_owned());
            }
            (None, false) => {
                filter.other.remove(name);
            }
        }
    }
}
