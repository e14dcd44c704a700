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
use crate::state::dedup::{IdHash, Processed};
use std::collections::BTreeMap;
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
    /// Hands every processed id and its type to `each`: only a rebuild
    /// reads them all.
    fn each_processed(&mut self, each: &mut dyn FnMut(&str, &str)) -> Result<(), StateError>;
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
    let rekeyed_rule = stored
        .event_id
        .clone()
        .filter(|rule| request.rebuild_all && *rule != plan.event_id_definition());
    let old_rule = match &rekeyed_rule {
        None => None,
        Some(text) => Some(EventIdRule::from_definition(text).ok_or_else(|| {
            damaged(
                &path,
                format!("the stored event-id rule is not one: {text}"),
            )
        })?),
    };
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
    let mut restored = Restored {
        documents: plan
            .model_names()
            .map(|name| stored.documents_of(name))
            .collect(),
        processed: stored.processed_total(),
        ids: None,
        filter: source.read_filter()?,
        subscriptions: stored.subscriptions.clone(),
        checkpoint: stored.checkpoint,
    };
    let rebuilding = match rebuilt.is_empty() {
        true => None,
        false => {
            let rekey = old_rule.is_some();
            let (all, required) = rebuild_ids(source, plan, &rebuilt, rekey)?;
            restored.ids = Some(all);
            Some(Rebuilding {
                models: rebuilt,
                required,
                old_rule,
            })
        }
    };
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

/// Every processed id, and those a rebuild's log must hold: the ids of the
/// rebuilt models' event types, or every one when they are found anew.
fn rebuild_ids(
    source: &mut dyn Source,
    plan: &Plan,
    rebuilt: &[ModelId],
    rekey: bool,
) -> Result<(Processed, Processed), StateError> {
    let mut all = Processed::default();
    let mut required = Processed::default();
    // Whether ids of each type are required, as decided the first time.
    let mut required_types: BTreeMap<String, bool> = BTreeMap::new();
    source.each_processed(&mut |id, event_type| {
        let hash = IdHash::of(id);
        all.record(hash);
        let needed = match required_types.get(event_type) {
            Some(r) => *r,
            None => {
                let r = rekey
                    || rebuilt
                        .iter()
                        .any(|m| plan.model_types(*m).any(|t| t == event_type));
                required_types.insert(event_type.to_owned(), r);
                r
            }
        };
        if needed {
            required.record(hash);
        }
    })?;
    Ok((all, required))
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
