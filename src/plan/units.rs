//! Units of work: how the read models' work is split among instances that
//! consume one stream.
//!
//! Read models that react to a common event type form a **group**: an
//! event is applied to a group's models together or not at all, so a group
//! is never split by model. A group whose bindings all make their document
//! key the same way (the same path or template) is split further into
//! `parts` units by a hash of that key: every document, and every event
//! that writes it, belongs to one unit, so each document's events are
//! applied in stream order by whoever owns its unit. A group keyed in
//! several ways is one unit.
//!
//! Each unit is built by an engine over [`Plan::for_unit`]: the group's
//! models alone, and a [`Partition`] that lets through only the unit's
//! events. An event is routed by its type and key alone, its id or not:
//! one without the key goes to the first unit of its group, and one whose
//! type cannot be read (or that no model reacts to, when it cannot be
//! applied anyway) to the first unit of the first group; each is refused
//! once, by the unit it went to.

use super::binding::{Binding, Key};
use super::{ModelId, Plan, TypeId};
use crate::value::event::Event;

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `models` joined by `+`, then `part/of` when the group is split:
    /// `user_listing 2/4`, `orders+user_order_stats`.
    pub name: String,
    /// The group's models, in declaration order.
    pub models: Vec<ModelId>,
    /// This unit's share of the group's documents, from 0, out of `of`.
    pub part: u32,
    pub of: u32,
    /// Whether it is the first unit of the first group: the one that takes
    /// events no group can be told from.
    pub first: bool,
}

/// Which events an engine over one unit's plan applies.
#[derive(Debug, Clone)]
pub struct Partition {
    /// The key every binding of the group makes, when the group is split.
    key: Option<Key>,
    part: u32,
    of: u32,
    first: bool,
    /// Per event type of the whole configuration: whether any model reacts
    /// to it.
    bound: Vec<bool>,
}

impl Partition {
    /// Whether this unit takes an event of a type with `bindings` (in the
    /// unit's plan).
    pub fn takes(&self, bindings: &[Binding], event: &Event<'_>) -> bool {
        if bindings.is_empty() {
            return false;
        }
        let Some(key) = &self.key else { return true };
        match key.resolve(event) {
            Ok(Some(text)) => part_of(&text, self.of) == self.part,
            // Refused by the bindings, or left out: by the first part.
            _ => self.part == 0,
        }
    }

    /// Whether this unit takes an event that cannot be digested (no id,
    /// or malformed), to refuse it: by its type and key when they can be
    /// read, as any other event; else the first unit of the first group.
    pub fn takes_undigested(&self, plan: &Plan, event: &Event<'_>) -> bool {
        let ty = crate::value::event::checked_event(event.root())
            .ok()
            .and_then(|name| plan.event_type(name));
        match ty {
            Some(ty) if !plan.bindings(ty).is_empty() => self.takes(plan.bindings(ty), event),
            Some(ty) if self.bound[ty.0 as usize] => false,
            _ => self.first,
        }
    }
}

/// What [`Plan::see`] read of an event.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'e> {
    ty: Option<TypeId>,
    digested: bool,
    _event: std::marker::PhantomData<&'e ()>,
}

/// The units of `plan`, each group split in `parts` where it can be.
pub fn units(plan: &Plan, parts: u32) -> Vec<Unit> {
    let parts = parts.max(1);
    let mut units = Vec::new();
    for (g, models) in groups(plan).into_iter().enumerate() {
        let names: Vec<&str> = models.iter().map(|&m| plan.model_name(m)).collect();
        let of = match group_key(plan, &models) {
            Some(_) => parts,
            None => 1,
        };
        for part in 0..of {
            let name = match of {
                1 => names.join("+"),
                _ => format!("{} {}/{of}", names.join("+"), part + 1),
            };
            units.push(Unit {
                name,
                models: models.clone(),
                part,
                of,
                first: g == 0 && part == 0,
            });
        }
    }
    units
}

/// The models, grouped: two models are in one group when an event type
/// binds to both (directly or through others). Groups are ordered by their
/// first model, models by declaration.
fn groups(plan: &Plan) -> Vec<Vec<ModelId>> {
    let n = plan.model_count();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for ty in 0..plan.type_count() as u32 {
        let bindings = plan.bindings(TypeId(ty));
        for pair in bindings.windows(2) {
            let (a, b) = (
                root(&mut parent, pair[0].model.0 as usize),
                root(&mut parent, pair[1].model.0 as usize),
            );
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut groups: Vec<Vec<ModelId>> = Vec::new();
    let mut index = vec![usize::MAX; n];
    for m in 0..n {
        let r = root(&mut parent, m);
        if index[r] == usize::MAX {
            index[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[index[r]].push(ModelId(m as u32));
    }
    groups
}

/// The key every binding of the group's models makes, when they all make
/// it the same way.
fn group_key(plan: &Plan, models: &[ModelId]) -> Option<Key> {
    let mut key: Option<&Key> = None;
    for ty in 0..plan.type_count() as u32 {
        for b in plan.bindings(TypeId(ty)) {
            if !models.contains(&b.model) {
                continue;
            }
            match key {
                None => key = Some(&b.key),
                Some(k) if k.as_str() == b.key.as_str() => {}
                Some(_) => return None,
            }
        }
    }
    key.cloned()
}

/// The part (of `of`) a document key belongs to: FNV-1a of its text, which
/// every instance and version computes alike. A key that holds a lone
/// surrogate, U+D7FF or U+10FFFF is hashed in the form earlier versions held
/// it in ([`crate::value::surrogate::earlier`]), so that it stays in its part.
pub fn part_of(key: &str, of: u32) -> u32 {
    part_of_text(&crate::value::surrogate::earlier(key), of)
}

/// The part (of `of`) a text belongs to: FNV-1a of its bytes.
pub fn part_of_text(text: &str, of: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(of.max(1))) as u32
}

impl Plan {
    /// Whether an engine over this plan applies (or refuses) `event`, as
    /// the scanner read it: as the engine decides with the event's digest
    /// when it has an id, and without one otherwise (see
    /// [`crate::engine::digest::Digest::mine`]). Always, when the plan is
    /// not one unit's. `seen` is what [`Plan::see`] read of the event, by
    /// this plan or one that [`Plan::reads_like`] it.
    pub fn takes(&self, seen: &Seen<'_>, event: &Event<'_>) -> bool {
        let Some(partition) = &self.partition else {
            return true;
        };
        match seen.digested {
            true => {
                let bindings = seen.ty.map_or(&[][..], |ty| self.bindings(ty));
                partition.takes(bindings, event)
            }
            false => partition.takes_undigested(self, event),
        }
    }

    /// What every unit of this plan's configuration reads alike of an
    /// event, before each decides whether it takes it: its type, and
    /// whether it has an id.
    pub fn see<'e>(&self, event: &Event<'e>) -> Seen<'e> {
        let name = crate::value::event::checked_event(event.root()).ok();
        Seen {
            ty: name.and_then(|name| self.event_type(name)),
            digested: name.is_some() && self.event_id.resolve_event(event).is_ok(),
            _event: std::marker::PhantomData,
        }
    }

    /// Whether `other` reads events as this plan does (the same event
    /// types, numbered alike, and the same event-id rule): what
    /// [`Plan::see`] reads with one holds for the other.
    pub fn reads_like(&self, other: &Plan) -> bool {
        self.type_names == other.type_names
            && self.event_id_definition() == other.event_id_definition()
    }

    /// The plan of one unit: its group's models alone (renumbered in
    /// order), every event type kept (a type bound elsewhere has no
    /// bindings here), and the unit's partition.
    pub fn for_unit(&self, unit: &Unit) -> Plan {
        let renumber = |m: ModelId| {
            unit.models
                .iter()
                .position(|&u| u == m)
                .map(|i| ModelId(i as u32))
        };
        let routes = self
            .routes
            .iter()
            .map(|bindings| {
                bindings
                    .iter()
                    .filter_map(|b| renumber(b.model).map(|model| Binding { model, ..b.clone() }))
                    .collect()
            })
            .collect();
        Plan {
            event_id: self.event_id.clone(),
            models: unit
                .models
                .iter()
                .map(|&m| self.model_name(m).to_owned())
                .collect(),
            indexes: unit
                .models
                .iter()
                .map(|&m| self.model_indexes(m).to_vec())
                .collect(),
            types: self.types.clone(),
            type_names: self.type_names.clone(),
            routes,
            tests: Vec::new(),
            cache_mb: self.cache_mb,
            partition: Some(Partition {
                key: group_key(self, &unit.models).filter(|_| unit.of > 1),
                part: unit.part,
                of: unit.of,
                first: unit.first,
                bound: self.routes.iter().map(|b| !b.is_empty()).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(toml: &str) -> Plan {
        crate::load(toml).unwrap_or_else(|d| panic!("{d:?}")).0
    }

    const USERS_ORDERS: &str = r#"
        [[model]]
        name = "user_listing"
        key = "$.payload.id"
        on.UserCreated = { put = { name = "$.payload.name" } }
        on.UserDeleted = { delete = true }
        [[model]]
        name = "orders"
        key = "$.payload.order_id"
        on.OrderPlaced = { put = { user = "$.payload.user_id" } }
        [[model]]
        name = "user_order_stats"
        key = "$.payload.user_id"
        on.OrderPlaced = { increment = { order_count = 1 } }
        [[model]]
        name = "audit"
        key = "$.payload.id"
        on.UserCreated = { put = { seen = true } }
    "#;

    #[test]
    fn models_sharing_an_event_type_are_one_group_split_only_when_keyed_alike() {
        let p = plan(USERS_ORDERS);
        let names: Vec<(String, u32, u32, bool)> = units(&p, 3)
            .into_iter()
            .map(|u| (u.name, u.part, u.of, u.first))
            .collect();
        let n = |s: &str, part, of, first| (s.to_owned(), part, of, first);
        assert_eq!(
            names,
            [
                n("user_listing+audit 1/3", 0, 3, true),
                n("user_listing+audit 2/3", 1, 3, false),
                n("user_listing+audit 3/3", 2, 3, false),
                n("orders+user_order_stats", 0, 1, false),
            ]
        );
    }

    #[test]
    fn each_event_goes_to_exactly_one_unit_of_each_group_it_binds() {
        let p = plan(USERS_ORDERS);
        let units = units(&p, 4);
        let plans: Vec<Plan> = units.iter().map(|u| p.for_unit(u)).collect();
        let created = p.event_type("UserCreated").unwrap();
        let placed = p.event_type("OrderPlaced").unwrap();
        let mut parts_seen = [0usize; 4];
        for i in 0..200 {
            let e = json!({"type": "UserCreated", "payload": {"id": format!("u{i}")}});
            let event = Event::from(&e);
            let takers: Vec<usize> = plans
                .iter()
                .enumerate()
                .filter(|(_, q)| {
                    let partition = q.partition.as_ref().unwrap();
                    partition.takes(q.bindings(created), &event)
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(takers.len(), 1, "{e}");
            assert_eq!(
                takers[0] as u32,
                part_of(&format!("u{i}"), 4),
                "the part is the key's"
            );
            parts_seen[takers[0]] += 1;
            let e = json!({"type": "OrderPlaced", "payload": {"order_id": i, "user_id": "u"}});
            let takers = plans
                .iter()
                .filter(|q| {
                    q.partition
                        .as_ref()
                        .unwrap()
                        .takes(q.bindings(placed), &Event::from(&e))
                })
                .count();
            assert_eq!(takers, 1);
        }
        assert!(parts_seen.iter().all(|&n| n > 20), "{parts_seen:?}");
        // Without the key: the first part, which refuses it.
        let e = json!({"type": "UserCreated", "payload": {}});
        let takers: Vec<usize> = plans
            .iter()
            .enumerate()
            .filter(|(_, q)| {
                q.partition
                    .as_ref()
                    .unwrap()
                    .takes(q.bindings(created), &Event::from(&e))
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(takers, [0]);
        // The unit's plan holds its group's models, renumbered.
        let q = &plans[4];
        assert_eq!(
            q.model_names().collect::<Vec<_>>(),
            ["orders", "user_order_stats"]
        );
        assert!(q.bindings(created).is_empty());
        assert_eq!(q.bindings(placed)[1].model, ModelId(1));
    }

    #[test]
    fn an_event_that_cannot_be_digested_goes_where_its_type_and_key_send_it() {
        let p = plan(USERS_ORDERS);
        let plans: Vec<Plan> = units(&p, 4).iter().map(|u| p.for_unit(u)).collect();
        let takers = |e: serde_json::Value| -> Vec<usize> {
            let event = Event::from(&e);
            plans
                .iter()
                .enumerate()
                .filter(|(_, q)| q.partition.as_ref().unwrap().takes_undigested(q, &event))
                .map(|(i, _)| i)
                .collect()
        };
        let u7 = part_of("u7", 4) as usize;
        assert_eq!(
            takers(json!({"type": "UserCreated", "payload": {"id": "u7"}})),
            [u7]
        );
        assert_eq!(takers(json!({"type": "UserCreated", "payload": {}})), [0]);
        assert_eq!(takers(json!({"type": "OrderPlaced", "payload": {}})), [4]);
        assert_eq!(takers(json!({"type": "Unknown", "payload": {}})), [0]);
        assert_eq!(takers(json!({"payload": {}})), [0]);
        assert_eq!(takers(json!([1])), [0]);
    }

    #[test]
    fn the_part_of_a_key_is_stable() {
        // FNV-1a: these values must never change, or every split state
        // would be read wrongly.
        assert_eq!(part_of("", 1000), (0xcbf2_9ce4_8422_2325u64 % 1000) as u32);
        assert_eq!(part_of("u1", 4), part_of("u1", 4));
        assert_eq!(
            part_of("a", 1_000_000_007),
            (0xaf63_dc4c_8601_ec8cu64 % 1_000_000_007) as u32
        );
        // A lone surrogate and U+10FFFF as earlier versions held them.
        for (key, earlier) in [
            ("\u{D7FF}\u{F0000}k", "\u{10FFFF}\u{F0000}k"),
            ("\u{10FFFF}", "\u{10FFFF}\u{10FFFF}"),
            ("\u{D7FF}\u{D7FF}", "\u{D7FF}"),
        ] {
            assert_eq!(part_of(key, u32::MAX), part_of_text(earlier, u32::MAX));
        }
    }
}
