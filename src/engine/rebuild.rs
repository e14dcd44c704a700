//! Rebuilding read models from an event log, beside the ones a state
//! serves, and swapping them in at once.
//!
//! While the log is read, every event the state has already processed is
//! applied once more, to the rebuilt models' fresh stores alone, once per
//! id; nothing is written to the state. Events it has not processed are
//! left for afterwards, when they are applied to every model as usual.
//! At the end of the log the rebuild checks that the log held every event
//! the state processed for the rebuilt models' types, and then swaps the
//! new documents in, with the new definitions, in one transaction: a
//! rebuild interrupted at any moment leaves the state as it was.
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
use crate::state::dedup::{IdHash, Processed};
use crate::state::{Rebuilding, StateError, Swap};
use crate::store::{DocumentStore, MemoryStore};
use crate::value::event::Event;
use crate::value::event::Raw;

pub(super) struct Rebuild {
    models: Vec<ModelId>,
    /// Per event type, the bindings of the rebuilt models.
    routes: Vec<Vec<Binding>>,
    /// Ids (by the configured rule) applied in this rebuild.
    seen: Processed,
    /// Processed ids the log must hold, and those of them it held so far.
    required: Processed,
    covered: Processed,
    old_rule: Option<EventIdRule>,
}

/// What a rebuild did, once swapped in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Processed ids the log lacked (accepted with `--allow-incomplete`).
    pub missing: usize,
}

impl Engine {
    /// From now on until [`Engine::swap`], events already processed are
    /// applied to the rebuilt models alone, into empty stores, and nothing
    /// is written to the state.
    pub fn rebuild(&mut self, rebuilding: Rebuilding) {
        let Rebuilding {
            models,
            required,
            old_rule,
        } = rebuilding;
        for model in &models {
            match &mut self.durable {
                None => self.stores[model.0 as usize] = MemoryStore::default(),
                Some(durable) => durable.rebuild(*model),
            }
        }
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
            seen: Processed::default(),
            required,
            covered: Processed::default(),
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
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        let rebuild = self.rebuild.as_mut().expect("rebuilding");
        let old = match &rebuild.old_rule {
            None => Some(hash),
            // An event without an id by the old rule was never recorded.
            Some(rule) => rule.resolve_event(event).ok().map(|id| IdHash::of(&id)),
        };
        let processed = match &self.durable {
            None => &self.processed,
            Some(durable) => durable
                .all
                .as_ref()
                .expect("a rebuild reads every processed id"),
        };
        let Some(old) = old.filter(|old| processed.contains(*old)) else {
            skipped(out, msg_id, id, "deferred");
            return Ok(Outcome::Deferred);
        };
        if rebuild.required.contains(old) && !rebuild.covered.contains(old) {
            rebuild.covered.record(old);
        }
        if rebuild.seen.contains(hash) {
            skipped(out, msg_id, id, "already_processed");
            return Ok(Outcome::Skipped);
        }
        rebuild.seen.record(hash);
        if rebuild.old_rule.is_some() {
            self.journal.record_event(Some((id, type_name)), &[])?;
            if let Some(durable) = &mut self.durable {
                // The ids found anew replace the state's.
                durable.learn_id(id);
            }
        }
        let routes = ty.map_or(&[][..], |ty| &rebuild.routes[ty.0 as usize]);
        if routes.is_empty() {
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
            Err(e) => Err(e),
        };
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
        let rebuild = self.rebuild.take().expect("rebuilding");
        let missing = rebuild.required.len() - rebuild.covered.len();
        let rekey = rebuild.old_rule.is_some();
        if missing > 0 && !allow_incomplete {
            return Err(StateError::IncompleteLog {
                missing,
                required: rebuild.required.len(),
                models: rebuild
                    .models
                    .iter()
                    .map(|m| self.plan.model_name(*m).to_owned())
                    .collect(),
                rekey,
            });
        }
        let swap = Swap {
            models: rebuild
                .models
                .iter()
                .map(|m| (*m, self.plan.model_definition(*m)))
                .collect(),
            event_id: rekey.then(|| self.plan.event_id_definition()),
        };
        let documents = rebuild.models.iter().flat_map(|m| {
            let docs = match &self.durable {
                None => self.stores[m.0 as usize].page(None, usize::MAX),
                Some(durable) => durable.stores[m.0 as usize].all_resident(),
            };
            docs.into_iter().map(|(k, d)| (*m, k, d))
        });
        self.journal.record_swap(swap, documents.collect())?;
        if rekey {
            self.processed_count = rebuild.seen.len() as u64;
            match &mut self.durable {
                None => self.processed = rebuild.seen,
                Some(durable) => durable.all = Some(rebuild.seen),
            }
        }
        self.submit()?;
        self.wait()?;
        if let Some(durable) = &mut self.durable {
            durable.swapped();
        }
        Ok(Rebuilt { missing })
    }
}
