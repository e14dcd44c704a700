//! Rebuilding read models from an event log, beside the ones a state
//! serves, and swapping them in at once.
//!
//! While the log is read, every event the state has already processed is
//! applied once more, to the rebuilt models alone, once per id. What that
//! writes is staged in the state, apart from what it serves (see
//! [`crate::state::Journal::stage`]), batch by batch, through the same
//! bounded cache as any durable run: a rebuild holds no more in memory
//! than a run does. Events the state has not processed are left for
//! afterwards, when they are applied to every model as usual.
//!
//! At the end of the log the rebuild asks the state whether the log held
//! every event it processed for the rebuilt models' types, and then swaps
//! the staged documents in, with the new definitions, in one transaction:
//! a rebuild interrupted at any moment leaves the state serving what it
//! served, and what it staged is cleared when the state is next opened.
//!
//! When the event-id rule changed, the processed ids were found by the old
//! rule: an event counts as processed when its id by the old rule is among
//! them, and the ids by the new rule replace them in the swap.

use super::{skipped, Engine, Outcome, Target};
use crate::engine::apply::{resolve, Meta};
use crate::plan::binding::Binding;
use crate::plan::event_id::EventIdRule;
use crate::plan::{ModelId, TypeId};
use crate::protocol::code::PRECONDITION_FAILED;
use crate::protocol::reply::error;
use crate::state::dedup::IdHash;
use crate::state::{Rebuilding, StateError, Swap};
use crate::value::event::Event;
use crate::value::event::Raw;
use std::borrow::Cow;
use std::collections::BTreeMap;

pub(super) struct Rebuild {
    models: Vec<ModelId>,
    /// Per event type, the bindings of the rebuilt models.
    routes: Vec<Vec<Binding>>,
    /// How many processed ids the log must hold, of which types (`None`:
    /// every one).
    required: u64,
    required_types: Option<Vec<String>>,
    /// Ids applied, and how many of each type: when they are found anew,
    /// they replace the processed ones.
    applied: u64,
    types: BTreeMap<String, u64>,
    pub(super) old_rule: Option<EventIdRule>,
}

impl Rebuild {
    pub(super) fn models(&self) -> &[ModelId] {
        &self.models
    }
}

/// What a rebuild did, once swapped in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Processed ids the log lacked (accepted with `--allow-incomplete`).
    pub missing: usize,
}

impl Engine {
    /// From now on until [`Engine::swap`], events already processed are
    /// applied to the rebuilt models alone, starting from none of their
    /// documents, and what that writes is staged.
    pub fn rebuild(&mut self, rebuilding: Rebuilding) {
        let Rebuilding {
            models,
            required,
            required_types,
            old_rule,
        } = rebuilding;
        self.durable
            .as_mut()
            .expect("a rebuild runs over a state")
            .rebuild(&models);
        self.journal.stage(true);
        let routes = (0..self.plan.type_count() as u32)
            .map(|ty| {
                self.plan
                    .bindings(TypeId(ty))
                    .iter()
                    .filter(|b| models.contains(&b.model))
                    .cloned()
                    .collect()
            })
            .collect();
        self.rebuild = Some(Rebuild {
            models,
            routes,
            required,
            required_types,
            applied: 0,
            types: BTreeMap::new(),
            old_rule,
        });
    }

    /// Handles an event while rebuilding: applies it to the rebuilt models
    /// if the state has processed it, the first time its id comes by;
    /// leaves it for later (`Deferred`) if not.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rebuild_event(
        &mut self,
        event: &Event<'_>,
        hash: IdHash,
        id: &str,
        type_name: &str,
        ty: Option<TypeId>,
        msg_id: Option<&Raw<'_>>,
        preloaded: bool,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        let rebuild = self.rebuild.as_mut().expect("rebuilding");
        let durable = self.durable.as_mut().expect("a rebuild runs over a state");
        let old = old_id(rebuild.old_rule.as_ref(), event, hash, id);
        let processed = match &old {
            Some((hash, old)) => durable.state_processed(*hash, old)?,
            None => false,
        };
        let Some((_, old)) = old.filter(|_| processed) else {
            skipped(out, msg_id, id, "deferred");
            return Ok(Outcome::Deferred);
        };
        if rebuild.old_rule.is_some() {
            self.journal.record_covered(&old);
        }
        if durable.is_processed(hash, id, preloaded)? {
            skipped(out, msg_id, id, "already_processed");
            return Ok(Outcome::Skipped);
        }
        durable.record(hash, id);
        rebuild.applied += 1;
        if rebuild.old_rule.is_some() {
            *rebuild.types.entry(type_name.to_owned()).or_default() += 1;
        }
        let routes = ty.map_or(&[][..], |ty| &rebuild.routes[ty.0 as usize]);
        if routes.is_empty() {
            self.journal.record_event(Some((id, type_name)), &[])?;
            skipped(out, msg_id, id, "already_processed");
            return Ok(Outcome::Skipped);
        }
        let meta = Meta {
            id,
            event_type: type_name,
            position: self.position,
        };
        let mut target = Target {
            stores: &mut self.stores,
            durable: self.durable.as_deref_mut(),
            changes: &mut self.changes,
        };
        let applied = match resolve(routes, event, &meta) {
            Ok(mut resolved) => target.apply(routes, &mut resolved)?,
            Err(e) => {
                self.changes.clear();
                Err(e)
            }
        };
        self.journal
            .record_event(Some((id, type_name)), &self.changes)?;
        match applied {
            Ok(()) => {
                self.updated(out, msg_id, id);
                Ok(Outcome::Applied)
            }
            Err(e) => {
                let text = format!(
                    "event {id} ({type_name}) was not applied to the rebuilt read models: {}",
                    e.describe(&self.plan)
                );
                error(out, msg_id, PRECONDITION_FAILED, &text);
                Ok(Outcome::Refused)
            }
        }
    }

    /// Ends a rebuild at the end of its log: checks that the log held
    /// every processed event it had to, then commits the rebuilt models
    /// (and the processed ids found anew) in place of the stored ones, in
    /// one transaction. With `allow_incomplete`, a log that lacks some is
    /// accepted. From then on the engine runs as usual.
    pub fn swap(&mut self, allow_incomplete: bool) -> Result<Rebuilt, StateError> {
        // Everything staged is committed, and the state can be asked.
        self.submit()?;
        self.wait()?;
        let rebuild = self.rebuild.take().expect("rebuilding");
        let durable = self.durable.as_mut().expect("a rebuild runs over a state");
        let missing = durable.unseen(rebuild.required_types.as_deref())? as usize;
        let rekey = rebuild.old_rule.is_some();
        if missing > 0 && !allow_incomplete {
            return Err(StateError::IncompleteLog {
                missing,
                required: rebuild.required as usize,
                models: rebuild
                    .models
                    .iter()
                    .map(|m| self.plan.model_name(*m).to_owned())
                    .collect(),
                rekey,
            });
        }
        durable.swapping(&rebuild.models, rekey);
        self.journal.stage(false);
        let swap = Swap {
            models: rebuild
                .models
                .iter()
                .map(|m| (*m, self.plan.model_definition(*m)))
                .collect(),
            event_id: rekey.then(|| self.plan.event_id_definition()),
            processed_types: rebuild.types,
        };
        self.journal.record_swap(swap)?;
        if rekey {
            self.processed_count = rebuild.applied;
        }
        self.submit()?;
        self.wait()?;
        if let Some(durable) = &mut self.durable {
            durable.swapped();
        }
        Ok(Rebuilt { missing })
    }
}

/// The id the state recorded `event` by, with its hash: `id` itself, or,
/// when the ids are found anew, the one `old_rule` finds (`None`: an
/// event without an id by the old rule was never recorded).
fn old_id<'a>(
    old_rule: Option<&EventIdRule>,
    event: &Event<'a>,
    hash: IdHash,
    id: &'a str,
) -> Option<(IdHash, Cow<'a, str>)> {
    match old_rule {
        None => Some((hash, Cow::Borrowed(id))),
        Some(rule) => rule
            .resolve_event(event)
            .ok()
            .map(|old| (IdHash::of(&old), old)),
    }
}
