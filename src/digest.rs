//! What the engine needs to know about an event before it consults its
//! state: the hash of the event's id, and its interned type. Both depend only
//! on the event and the plan, so the reading thread works them out while the
//! engine applies the events before it.

use crate::dedup::IdHash;
use crate::event::{Event, Raw};
use crate::hash::FastMap;
use crate::plan::event_id::EventIdRule;
use crate::plan::{Plan, TypeId};

/// An event's id hash and type, worked out ahead of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub id: IdHash,
    /// `None` for a type no read model reacts to.
    pub ty: Option<TypeId>,
}

/// The parts of a plan a digest needs, to be moved to the reading thread.
#[derive(Debug, Clone)]
pub struct Digester {
    event_id: EventIdRule,
    types: FastMap<String, TypeId>,
}

impl Digester {
    pub fn new(plan: &Plan) -> Digester {
        let types = (0..plan.type_count() as u32)
            .map(|i| (plan.type_name(TypeId(i)).to_owned(), TypeId(i)))
            .collect();
        Digester {
            event_id: plan.event_id.clone(),
            types,
        }
    }

    /// The event's digest; `None` when the event is malformed or has no id,
    /// which the engine reports when it comes to it.
    pub fn digest(&self, event: &Event<'_>) -> Option<Digest> {
        let type_name = checked_event(event.root()).ok()?;
        let id = self.event_id.resolve_event(event).ok()?;
        Some(Digest {
            id: IdHash::of(&id),
            ty: self.types.get(type_name).copied(),
        })
    }
}

/// The event's type name, once the event is known to be an object with a
/// string `type` and a `payload`; what is wrong with it otherwise.
pub fn checked_event<'r>(event: &'r Raw<'_>) -> Result<&'r str, String> {
    if !matches!(event, Raw::Object(_)) {
        return Err(format!(
            "\"event\" must be an object, found {}",
            event.type_name()
        ));
    }
    let type_name = match event.get("type") {
        Some(Raw::String(ty)) => ty,
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
        let digester = Digester::new(&plan);
        let digest = |v: serde_json::Value| digester.digest(&Event::from(&v));
        let made = plan.event_type("Made");
        assert_eq!(
            digest(json!({"type": "Made", "id": "e-1", "payload": {}})),
            Some(Digest {
                id: IdHash::of("e-1"),
                ty: made
            })
        );
        // A derived id hashes as the id it derives.
        assert_eq!(
            digest(json!({"type": "Made", "payload": {"n": "x1"}})),
            digest(json!({"type": "Made", "id": "e-1", "payload": {}}))
        );
        assert_eq!(
            digest(json!({"type": "Other", "id": 7, "payload": {}})),
            Some(Digest {
                id: IdHash::of("7"),
                ty: None
            })
        );
        assert_eq!(digest(json!({"type": "Made", "payload": {}})), None);
        assert_eq!(digest(json!({"type": 1, "id": "e", "payload": {}})), None);
        assert_eq!(digest(json!({"type": "Made", "id": "e"})), None);
    }
}
