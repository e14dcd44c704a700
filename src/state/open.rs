//! Opening a state, whatever holds it: reading it back, comparing it with
//! the configuration, and deciding what to write before the first batch.
//! A backend ([`super::sqlite`], [`super::postgres`]) reads and writes its
//! own tables; what is restored and what is refused is decided here, once.

use super::batch::Batch;
use super::reconcile::{Need, Reconciliation, Request, RequestError};
use super::stored::Stored;
use super::{Rebuilding, Restored, StateError};
use crate::plan::event_id::EventIdRule;
use crate::plan::{ModelId, Plan};
use std::path::{Path, PathBuf};

/// Where batches are made durable: each is committed whole, in one
/// transaction, or not at all.
pub trait Backend: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), StateError>;
}

/// What opening needs of a backend.
pub trait Source {
    /// Where the state is, for messages.
    fn location(&self) -> &Path;
    /// Reads what the state holds beside its rows, checked: its metadata,
    /// the models' definitions, and how many rows it committed.
    fn read_back(&mut self) -> Result<Stored, StateError>;
    /// Drops what a rebuild that did not finish staged; then, for a
    /// rebuild of `rebuilt` (none: no rebuild), makes the room its batches
    /// stage documents and ids in (see [`super::Journal::stage`]).
    fn stage(&mut self, rebuilt: &[String], rekey: bool) -> Result<(), StateError>;
    /// The filter the state keeps of its ids and keys, if it keeps one.
    fn read_filter(&mut self) -> Result<Option<super::KeptFilter>, StateError>;
    /// Writes what opening decided, in a transaction of its own.
    fn commit_opening(&mut self, opening: &Opening) -> Result<(), StateError>;
    /// Keeps what opening decided, to be written with the first batch (a
    /// rebuild's swap) or not at all.
    fn defer_opening(&mut self, opening: Opening);
}

/// A state opened for a run.
pub struct Opened {
    pub state: Box<dyn Backend>,
    /// What the run reads the state's rows with.
    pub reader: Box<dyn super::reader::Reader>,
    pub restored: Restored,
    /// The models to rebuild from a log, if any were asked for.
    pub rebuilding: Option<Rebuilding>,
    pub report: Report,
}

/// What opening a state found and did, for the log.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// No state was there: a new one was made.
    pub created: bool,
    /// Documents per configured read model, in declaration order.
    pub documents: Vec<(String, u64)>,
    pub processed: u64,
    /// The accepted event types; `None` for all.
    pub subscriptions: Option<Vec<String>>,
    /// Removed read models whose documents are dropped (at once, or with
    /// a rebuild's swap), and how many.
    pub dropped: Vec<(String, u64)>,
}

/// What opening a state writes, beyond what it restores: removed models to
/// drop, definitions of models that need only recording (with whether the
/// model is new to the state), and the event-id rule of a new state.
#[derive(Debug, Default)]
pub struct Opening {
    pub dropped: Vec<(String, u64)>,
    pub recorded: Vec<(String, String)>,
    pub event_id: Option<String>,
}

impl Opening {
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.recorded.is_empty() && self.event_id.is_none()
    }
}

/// Restores the state `source` holds for `plan`: what it holds beside
/// its rows (documents and ids are read as a run needs them). Refuses a
/// state that differs from `plan` in a way `request` does not resolve. The
/// models `request` rebuilds start empty: they are rebuilt.
pub fn restore(
    source: &mut dyn Source,
    plan: &Plan,
    request: &Request,
    created: bool,
) -> Result<(Restored, Option<Rebuilding>, Report), StateError> {
    let rebuilt = rebuilt_models(plan, request)?;
    let path = source.location().to_owned();
    let stored = source.read_back()?;
    let old_rule = old_rule(&stored, plan, request, &path)?;
    let reconciliation =
        Reconciliation::new(plan, &stored, request).map_err(StateError::Request)?;
    if !reconciliation.is_resolved() {
        return Err(StateError::Mismatch {
            path,
            reconciliation: Box::new(reconciliation),
        });
    }
    let opening = opening(plan, &reconciliation, &rebuilt);
    let dropped = opening.dropped.clone();
    match rebuilt.is_empty() {
        true => source.commit_opening(&opening)?,
        // Committed with the rebuild's swap, or not at all.
        false => source.defer_opening(opening),
    }
    let restored = Restored {
        documents: plan
            .model_names()
            .map(|name| stored.documents_of(name))
            .collect(),
        processed: stored.processed_total(),
        filter: source.read_filter()?,
        subscriptions: stored.subscriptions.clone(),
        checkpoint: stored.checkpoint,
    };
    let rekey = old_rule.is_some();
    let names: Vec<String> = rebuilt
        .iter()
        .map(|m| plan.model_name(*m).to_owned())
        .collect();
    source.stage(&names, rekey)?;
    let rebuilding = rebuilding(plan, &stored, rebuilt, old_rule);
    let report = Report {
        created,
        documents: plan
            .model_names()
            .map(|name| (name.to_owned(), stored.documents_of(name)))
            .collect(),
        processed: stored.processed_total(),
        subscriptions: stored.subscriptions,
        dropped,
    };
    Ok((restored, rebuilding, report))
}

/// The event-id rule the state's ids were found by, when rebuilding every
/// model finds them anew by the configuration's rule; `None` when the rule
/// stays. A stored rule that does not compile marks the state damaged.
fn old_rule(
    stored: &Stored,
    plan: &Plan,
    request: &Request,
    path: &Path,
) -> Result<Option<EventIdRule>, StateError> {
    let rekeyed = stored
        .event_id
        .as_ref()
        .filter(|rule| request.rebuild_all && **rule != plan.event_id_definition());
    let Some(text) = rekeyed else {
        return Ok(None);
    };
    let rule = EventIdRule::from_definition(text)
        .ok_or_else(|| damaged(path, format!("the stored event-id rule is not one: {text}")))?;
    Ok(Some(rule))
}

/// The rebuild of `rebuilt`, if any: the events the log must hold for it
/// (those of the models' types, or every one when the ids are found anew).
fn rebuilding(
    plan: &Plan,
    stored: &Stored,
    rebuilt: Vec<ModelId>,
    old_rule: Option<EventIdRule>,
) -> Option<Rebuilding> {
    if rebuilt.is_empty() {
        return None;
    }
    let required_types = old_rule.is_none().then(|| required_types(plan, &rebuilt));
    let required = match &required_types {
        None => stored.processed_total(),
        Some(types) => stored.processed_of(types.iter().map(String::as_str)),
    };
    Some(Rebuilding {
        models: rebuilt,
        required,
        required_types,
        old_rule,
    })
}

/// The event types any of `models` reacts to, sorted, each once.
fn required_types(plan: &Plan, models: &[ModelId]) -> Vec<String> {
    let mut types: Vec<String> = models
        .iter()
        .flat_map(|m| plan.model_types(*m))
        .map(str::to_owned)
        .collect();
    types.sort();
    types.dedup();
    types
}

/// What opening decided to write: the definitions of models that needed
/// only recording, the event-id rule of a new state, and the removed
/// models to drop.
fn opening(plan: &Plan, reconciliation: &Reconciliation, rebuilt: &[ModelId]) -> Opening {
    Opening {
        dropped: reconciliation
            .dropped()
            .map(|m| (m.name.clone(), m.documents))
            .collect(),
        recorded: reconciliation
            .models
            .iter()
            .filter(|m| m.need == Need::Record)
            .filter_map(|m| m.id)
            .filter(|id| !rebuilt.contains(id))
            .map(|id| (plan.model_name(id).to_owned(), plan.model_definition(id)))
            .collect(),
        event_id: (reconciliation.event_id.need == Need::Record)
            .then(|| plan.event_id_definition()),
    }
}

/// The models `request` rebuilds; an unknown one is refused.
fn rebuilt_models(plan: &Plan, request: &Request) -> Result<Vec<ModelId>, StateError> {
    if request.rebuild_all {
        return Ok((0..plan.model_count() as u32).map(ModelId).collect());
    }
    let mut models = Vec::new();
    for name in &request.rebuild {
        match plan.model_by_name(name) {
            Some(id) if !models.contains(&id) => models.push(id),
            Some(_) => {}
            None => {
                return Err(StateError::Request(RequestError::UnknownModel(
                    name.clone(),
                )))
            }
        }
    }
    Ok(models)
}

pub fn damaged(path: &Path, detail: String) -> StateError {
    StateError::Damaged {
        path: PathBuf::from(path),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_requires_each_type_its_models_react_to_once() {
        let plan = crate::load(
            "[[model]]\nname = \"a\"\nkey = \"$.payload.id\"\non.B = { delete = true }\non.A = { delete = true }\n[[model]]\nname = \"b\"\nkey = \"$.payload.id\"\non.A = { delete = true }\non.C = { delete = true }\n",
        )
        .unwrap()
        .0;
        assert_eq!(
            required_types(&plan, &[ModelId(0), ModelId(1)]),
            ["A", "B", "C"]
        );
        assert_eq!(required_types(&plan, &[ModelId(1)]), ["A", "C"]);
        assert!(required_types(&plan, &[]).is_empty());
    }
}
