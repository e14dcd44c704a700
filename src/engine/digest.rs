//! What the engine needs to know about an event before it consults its
//! state: the hash of the event's id, its interned type, and its bindings
//! resolved (the interpreter's first phase, see [`crate::engine::apply`]). All three
//! depend only on the event and the plan, so the reading thread works them
//! out while the engine applies the events before it.

use crate::engine::apply::{self, ApplyError, Meta, Resolved};
use crate::plan::event_id::EventIdRule;
use crate::plan::{Plan, TypeId};
use crate::state::dedup::IdHash;
use crate::value::event::{checked_event, Event};
use std::borrow::Cow;

/// An event's id hash, type and resolved bindings, worked out ahead of the
/// engine.
#[derive(Debug)]
pub struct Digest<'a> {
    pub id: IdHash,
    pub id_text: Cow<'a, str>,
    pub type_name: &'a str,
    /// `None` for a type no read model reacts to.
    pub ty: Option<TypeId>,
    /// The type's bindings resolved, or why they cannot be; `None` when the
    /// engine must resolve them itself (a mapping reads the event's
    /// position in the stream, which only the engine knows).
    pub resolved: Option<Result<Vec<Resolved>, ApplyError>>,
    /// Whether the engine's unit of work takes the event (see
    /// [`crate::plan::units`]); always, when the plan is not one unit's.
    pub mine: bool,
    /// While models are rebuilt and the ids found anew: the event's id by
    /// the old rule, if it has one.
    pub old_id: Option<Cow<'a, str>>,
}

impl Digest<'_> {
    /// Starts loading the resolved bindings (see [`crate::util::prefetch`]).
    pub fn prefetch(&self) {
        if let Some(Ok(resolved)) = &self.resolved {
            crate::util::prefetch::prefetch_all(resolved.as_slice());
        }
    }
}

/// A copy of the plan, for the reading thread.
#[derive(Debug, Clone)]
pub struct Digester {
    plan: Plan,
    /// Whether the engine reads the trees of events it has a resolved
    /// digest for: it does while it rebuilds models.
    keep_trees: bool,
    /// Per event type: whether the reader may resolve its bindings.
    ahead: Vec<bool>,
    /// The event-id rule the state's ids were found by, when a rebuild
    /// finds them anew.
    old_rule: Option<EventIdRule>,
}

impl Digester {
    /// A digester for `plan`; `keep_trees` when the engine rebuilds models.
    pub fn new(plan: &Plan, keep_trees: bool) -> Digester {
        let ahead = (0..plan.type_count() as u32)
            .map(|ty| !plan.bindings(TypeId(ty)).iter().any(|b| b.reads_position()))
            .collect();
        Digester {
            plan: plan.clone(),
            keep_trees,
            ahead,
            old_rule: None,
        }
    }

    /// Digests carry each event's id by `rule` too.
    pub fn with_old_rule(mut self, rule: Option<EventIdRule>) -> Digester {
        self.old_rule = rule;
        self
    }

    /// Whether the engine needs the tree of an event with this digest.
    pub fn needs_tree(&self, digest: &Digest<'_>) -> bool {
        self.keep_trees || digest.resolved.is_none()
    }

    /// The event's digest; `None` when the event is malformed or has no id,
    /// which the engine reports when it comes to it.
    pub fn digest<'a>(&self, event: &Event<'a>) -> Option<Digest<'a>> {
        let type_name = checked_event(event.root()).ok()?;
        let id = self.plan.event_id.resolve_event(event).ok()?;
        let ty = self.plan.event_type(type_name);
        let mine = self.plan.partition().is_none_or(|p| {
            let bindings = ty.map_or(&[][..], |ty| self.plan.bindings(ty));
            p.takes(bindings, event)
        });
        let resolved = ty.filter(|ty| mine && self.ahead[ty.0 as usize]).map(|ty| {
            let meta = Meta {
                id: &id,
                event_type: type_name,
                position: 0,
            };
            apply::resolve(self.plan.bindings(ty), event, &meta)
        });
        let old_id = self
            .old_rule
            .as_ref()
            .and_then(|rule| rule.resolve_event(event).ok());
        Some(Digest {
            id: IdHash::of(&id),
            id_text: id,
            type_name,
            ty,
            resolved,
            mine,
            old_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_digest_is_the_id_hash_and_type_the_engine_would_work_out() {
        let plan = crate::load(
            r#"
            [event_id]
            path = "$.id"
            [event_id.derive]
            from = "$.payload.n"
            pattern = '([0-9]+)$'
            template = "e-$1"
            [[model]]
            name = "m"
            key = "$.payload.n"
            on.Made = { put = { n = "$.payload.n" } }
            "#,
        )
        .unwrap_or_else(|d| panic!("{d:?}"))
        .0;
        let digester = Digester::new(&plan, false);
        let digest = |v: serde_json::Value| {
            digester
                .digest(&Event::from(&v))
                .map(|d| (d.id, d.ty, format!("{:?}", d.resolved)))
        };
        let made = plan.event_type("Made");
        let (id, ty, resolved) =
            digest(json!({"type": "Made", "id": "e-1", "payload": {"n": 3}})).unwrap();
        assert_eq!((id, ty), (IdHash::of("e-1"), made));
        assert!(
            resolved.starts_with("Some(Ok([Resolved { binding: 0, key: \"3\""),
            "{resolved}"
        );
        // A derived id hashes as the id it derives.
        assert_eq!(
            digest(json!({"type": "Made", "payload": {"n": "x1"}})).map(|d| d.0),
            Some(IdHash::of("e-1"))
        );
        // Resolving may fail, and the engine reports that.
        let (_, _, resolved) = digest(json!({"type": "Made", "id": "e", "payload": {}})).unwrap();
        assert!(resolved.starts_with("Some(Err(MissingKey"), "{resolved}");
        assert_eq!(
            digest(json!({"type": "Other", "id": 7, "payload": {}})),
            Some((IdHash::of("7"), None, "None".to_owned()))
        );
        assert_eq!(digest(json!({"type": "Made", "payload": {}})), None);
        assert_eq!(digest(json!({"type": 1, "id": "e", "payload": {}})), None);
        assert_eq!(digest(json!({"type": "Made", "id": "e"})), None);
    }
}
