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
use crate::store::{Document, DocumentStore, MemoryStore};
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
    /// Reads everything back, checked, handing it to `into`: the metadata
    /// first, then every processed id and every document.
    fn read_back(&mut self, into: &mut dyn ReadBack) -> Result<Stored, StateError>;
    /// Writes what opening decided, in a transaction of its own.
    fn commit_opening(&mut self, opening: &Opening) -> Result<(), StateError>;
    /// Keeps what opening decided, to be written with the first batch (a
    /// rebuild's swap) or not at all.
    fn defer_opening(&mut self, opening: Opening);
}

/// What a state's rows are handed to as they are read back.
pub trait ReadBack {
    /// The state's metadata (`event_id`, `subscriptions`, ...), by name.
    fn meta(&mut self, meta: &BTreeMap<String, String>);
    fn id(&mut self, id: &str, event_type: &str);
    fn document(&mut self, model: &str, key: &str, text: &str) -> Result<(), StateError>;
}

/// Reads nothing but what [`Source::read_back`] returns.
pub struct Nothing;

impl ReadBack for Nothing {
    fn meta(&mut self, _: &BTreeMap<String, String>) {}
    fn id(&mut self, _: &str, _: &str) {}
    fn document(&mut self, _: &str, _: &str, _: &str) -> Result<(), StateError> {
        Ok(())
    }
}

/// A state opened for a run.
pub struct Opened {
    pub state: Box<dyn Backend>,
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

/// Restores the state `source` holds for `plan`. Refuses a state that
/// differs from `plan` in a way `request` does not resolve. The documents
/// of the models `request` rebuilds are not restored: they are rebuilt.
pub fn restore(
    source: &mut dyn Source,
    plan: &Plan,
    request: &Request,
    created: bool,
) -> Result<(Restored, Option<Rebuilding>, Report), StateError> {
    let rebuilt = rebuilt_models(plan, request)?;
    let path = source.location().to_owned();
    let mut into = Restoring {
        plan,
        request,
        rebuilt: &rebuilt,
        path: &path,
        restored: Restored {
            stores: vec![MemoryStore::default(); plan.model_count()],
            ..Restored::default()
        },
        required: Processed::default(),
        rekeyed_rule: None,
        rekey: false,
        required_types: BTreeMap::new(),
    };
    let stored = source.read_back(&mut into)?;
    let Restoring {
        mut restored,
        required,
        rekeyed_rule,
        ..
    } = into;
    let old_rule = match rekeyed_rule {
        None => None,
        Some(text) => Some(EventIdRule::from_definition(&text).ok_or_else(|| {
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
    restored.subscriptions = stored.subscriptions.clone();
    restored.checkpoint = stored.checkpoint;
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
    let rebuilding = (!rebuilt.is_empty()).then(|| Rebuilding {
        models: rebuilt,
        required,
        old_rule,
    });
    Ok((restored, rebuilding, report))
}

/// Restores rows as they are read back.
struct Restoring<'a> {
    plan: &'a Plan,
    request: &'a Request,
    rebuilt: &'a [ModelId],
    path: &'a Path,
    restored: Restored,
    /// The processed ids the log of a rebuild must hold.
    required: Processed,
    rekeyed_rule: Option<String>,
    /// The processed ids are found anew: every one must be in the log.
    rekey: bool,
    /// Whether ids of each type are required, as decided the first time.
    required_types: BTreeMap<String, bool>,
}

impl ReadBack for Restoring<'_> {
    fn meta(&mut self, meta: &BTreeMap<String, String>) {
        let stored_rule = meta.get("event_id");
        self.rekey = self.request.rebuild_all
            && stored_rule.is_some_and(|r| *r != self.plan.event_id_definition());
        if self.rekey {
            self.rekeyed_rule = stored_rule.cloned();
        }
    }

    fn id(&mut self, id: &str, event_type: &str) {
        let hash = IdHash::of(id);
        self.restored.processed.record(hash);
        let required = match self.required_types.get(event_type) {
            Some(r) => *r,
            None => {
                let r = self.rekey
                    || self
                        .rebuilt
                        .iter()
                        .any(|m| self.plan.model_types(*m).any(|t| t == event_type));
                self.required_types.insert(event_type.to_owned(), r);
                r
            }
        };
        if required {
            self.required.record(hash);
        }
    }

    fn document(&mut self, model: &str, key: &str, text: &str) -> Result<(), StateError> {
        let Some(id) = self
            .plan
            .model_by_name(model)
            .filter(|id| !self.rebuilt.contains(id))
        else {
            return Ok(());
        };
        let doc: Document = serde_json::from_str(text).map_err(|e| {
            damaged(
                self.path,
                format!("the document of read model \"{model}\", key \"{key}\" is not a JSON object: {e}"),
            )
        })?;
        self.restored.stores[id.0 as usize].put(key, doc);
        Ok(())
    }
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
