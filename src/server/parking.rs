//! Dead letters that keep order (`--on-refused park`, the default of a
//! stream instance): an event the engine refuses is parked, whole, in the
//! state's `rejections`, and so is every later event of the same
//! documents, while other documents go on. `projector rejections retry`
//! asks for a parked sequence to be applied again: the unit applies it, in
//! order and exactly once, at its next batch boundary; `drop` lets its
//! documents go on without it.
//!
//! The unit holds the documents of its parked events in memory, at most
//! [`MAX_HELD`]: past that it stops, as `--on-refused stop` would, rather
//! than grow with the data.

use crate::engine::digest::Digest;
use crate::plan::{ModelId, Plan};
use crate::state::{Rejection, RejectionStatus, StateError};
use crate::value::event::checked_event;
use crate::value::event::Event;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most documents a unit holds behind parked events.
pub const MAX_HELD: usize = 100_000;
/// How often the unit asks whether parked events are to be retried.
const POLL: Duration = Duration::from_secs(1);
/// The most parked rows read at once.
const ROWS_READ: usize = 10_000;

/// A document: its model's name and its key.
pub type Document = (String, String);

/// A parked event as the state keeps it, or one asked to be retried.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRow {
    pub rejection: Rejection,
    /// Asked to be applied again (`status = 'retry'`).
    pub retry: bool,
}

/// Where a unit's parked events are kept: the rows of `rejections` whose
/// status is `parked` or `retry`, in position order.
pub trait ParkStore: Send + Sync + Debug {
    /// Up to `limit` open rows, from the first.
    fn open_rows(&self, limit: usize) -> Result<Vec<OpenRow>, StateError>;
    /// Up to `limit` documents the open rows hold, each with the first
    /// position that holds it.
    fn held(&self, limit: usize) -> Result<Vec<(Document, u64)>, StateError>;
    /// Whether an open row is asked to be retried.
    fn asked(&self) -> Result<bool, StateError>;
    /// How many rows are open.
    fn open(&self) -> Result<u64, StateError>;
}

/// What a unit holds back.
#[derive(Debug)]
pub struct Parking {
    store: Arc<dyn ParkStore>,
    /// Each held document and the position of the first event parked on it.
    held: HashMap<Document, u64>,
    /// Parked events, or asked to be retried (some hold no document).
    open: u64,
    polled: Instant,
}

/// Why a unit cannot go on parking.
pub fn overflow() -> String {
    format!(
        "more than {MAX_HELD} documents are held behind parked events: retry or drop them (projector rejections list, retry, drop) and start again"
    )
}

impl Parking {
    /// The parking of a unit whose rows `store` keeps, read back.
    pub fn open(store: Arc<dyn ParkStore>) -> Result<Parking, StateError> {
        let mut parking = Parking {
            store,
            held: HashMap::new(),
            open: 0,
            polled: Instant::now(),
        };
        parking.reload()?;
        Ok(parking)
    }

    /// Reads the held documents anew, from what is committed: call it when
    /// nothing parked is waiting to be committed. False when they are more
    /// than [`MAX_HELD`].
    pub fn reload(&mut self) -> Result<bool, StateError> {
        self.open = self.store.open()?;
        let held = self.store.held(MAX_HELD + 1)?;
        let within = held.len() <= MAX_HELD;
        self.held = held.into_iter().take(MAX_HELD).collect();
        self.polled = Instant::now();
        Ok(within)
    }

    /// The open rows, when one of them is asked to be retried (a page of
    /// them from the first: the rest wait for the next poll).
    pub fn asked(&mut self) -> Result<Option<Vec<OpenRow>>, StateError> {
        self.polled = Instant::now();
        match self.store.asked()? {
            true => self.store.open_rows(ROWS_READ).map(Some),
            false => Ok(None),
        }
    }

    /// Whether it is time to ask for retries: only this unit parks its
    /// events, so with none parked there is nothing to retry.
    pub fn due(&self) -> bool {
        self.open > 0 && self.polled.elapsed() >= POLL
    }

    /// Whether any document is held.
    pub fn holds_any(&self) -> bool {
        !self.held.is_empty()
    }

    /// The position of the parked event that holds one of `documents`.
    pub fn held_behind(&self, documents: &[Document]) -> Option<u64> {
        documents
            .iter()
            .filter_map(|d| self.held.get(d))
            .min()
            .copied()
    }

    /// Holds `documents` behind the event parked at `position`; false when
    /// that would hold more than [`MAX_HELD`].
    pub fn hold(&mut self, documents: &[Document], position: u64) -> bool {
        self.open += 1;
        for document in documents {
            if self.held.len() >= MAX_HELD && !self.held.contains_key(document) {
                return false;
            }
            self.held.entry(document.clone()).or_insert(position);
        }
        true
    }
}

/// The rows to apply again, from the open rows of a unit in position
/// order: those asked for, unless an earlier event still parked holds one
/// of their documents (then they stay parked, and hold theirs), and every
/// later parked event of their documents, so that order is kept.
pub fn retries(rows: Vec<OpenRow>) -> (Vec<Rejection>, Vec<Rejection>) {
    let mut chosen: HashSet<Document> = HashSet::new();
    let mut waiting: HashSet<Document> = HashSet::new();
    let (mut apply, mut stay) = (Vec::new(), Vec::new());
    for OpenRow { rejection, retry } in rows {
        let documents = &rejection.documents;
        let shares = |set: &HashSet<Document>| documents.iter().any(|d| set.contains(d));
        if (retry || shares(&chosen)) && !shares(&waiting) {
            chosen.extend(documents.iter().cloned());
            apply.push(rejection);
        } else {
            waiting.extend(documents.iter().cloned());
            if retry {
                stay.push(rejection);
            }
        }
    }
    (apply, stay)
}

/// A row asked to be retried that must wait for an earlier parked event of
/// its documents: parked again, saying so.
pub fn still_parked(mut rejection: Rejection) -> Rejection {
    rejection.status = RejectionStatus::Parked;
    rejection.error = format!(
        "not retried: an earlier event parked on the same documents was not asked to be; retry it first ({})",
        rejection.error
    );
    rejection
}

/// The documents of the event carried by the message `line`, in this
/// unit's models; `None` when `line` carries no readable event.
pub fn documents_of_line(plan: &Plan, line: &str) -> Option<Vec<Document>> {
    let value: Value = serde_json::from_str(&crate::value::surrogate::prepare(line)).ok()?;
    let body = body_of(&value)?;
    if body.get("type")?.as_str()? != "event" {
        return None;
    }
    let event = Event::from(body.get("event")?);
    checked_event(event.root()).ok()?;
    Some(documents_of_event(plan, &event))
}

/// A message's body: the message itself, or its envelope's `body` when
/// it has no `type` of its own.
pub fn body_of(message: &Value) -> Option<&Value> {
    match message.get("type") {
        Some(_) => Some(message),
        None => message.get("body"),
    }
}

/// The documents `event` would change: each binding of its type whose
/// conditions hold and whose key it has.
pub fn documents_of_event(plan: &Plan, event: &Event<'_>) -> Vec<Document> {
    let Ok(type_name) = checked_event(event.root()) else {
        return Vec::new();
    };
    let Some(ty) = plan.event_type(type_name) else {
        return Vec::new();
    };
    let mut documents: Vec<Document> = plan
        .bindings(ty)
        .iter()
        .filter(|b| b.when.iter().all(|c| crate::engine::apply::holds(c, event)))
        .filter_map(|b| {
            let key = b.key.resolve(event).ok()??;
            Some((model_name(plan, b.model), key.into_owned()))
        })
        .collect();
    documents.sort();
    documents.dedup();
    documents
}

/// The documents of an event the reading thread resolved, when it did.
pub fn documents_of_digest(plan: &Plan, digest: &Digest<'_>) -> Option<Vec<Document>> {
    let (Some(ty), Some(Ok(resolved))) = (digest.ty, &digest.resolved) else {
        return None;
    };
    let bindings = plan.bindings(ty);
    Some(
        resolved
            .iter()
            .map(|r| {
                let model = bindings[r.binding()].model;
                (model_name(plan, model), r.key().as_str().to_owned())
            })
            .collect(),
    )
}

fn model_name(plan: &Plan, model: ModelId) -> String {
    plan.model_name(model).to_owned()
}

/// The row that parks the event of `line` at `position` behind the one at
/// `head`.
pub fn behind(
    position: u64,
    id: Option<String>,
    line: &str,
    documents: Vec<Document>,
    head: u64,
) -> Rejection {
    Rejection {
        position,
        id,
        code: 0,
        error: format!("held behind the event parked at sequence {head}"),
        text: line.trim_end().to_owned(),
        status: RejectionStatus::Parked,
        documents,
        behind: Some(head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(position: u64, documents: &[&str], retry: bool) -> OpenRow {
        OpenRow {
            rejection: Rejection {
                position,
                id: None,
                code: 12,
                error: String::new(),
                text: String::new(),
                status: RejectionStatus::Parked,
                documents: documents
                    .iter()
                    .map(|d| ("m".to_owned(), d.to_string()))
                    .collect(),
                behind: None,
            },
            retry,
        }
    }

    fn positions(rows: &[Rejection]) -> Vec<u64> {
        rows.iter().map(|r| r.position).collect()
    }

    #[test]
    fn a_retry_takes_the_rest_of_its_sequence_and_waits_for_what_comes_before() {
        let rows = vec![
            row(1, &["a"], true),
            row(2, &["a", "b"], false),
            row(3, &["b"], false),
            row(4, &["c"], false),
            row(5, &["d"], false),
            row(6, &["d"], true),
            row(7, &["e"], true),
            row(8, &["c"], false),
        ];
        let (apply, stay) = retries(rows);
        // 1 asked, 2 and 3 follow it; 6 waits for 5, not asked; 7 alone.
        assert_eq!(positions(&apply), [1, 2, 3, 7]);
        assert_eq!(positions(&stay), [6]);
        assert!(still_parked(stay[0].clone())
            .error
            .starts_with("not retried: an earlier event"));
    }

    #[test]
    fn held_documents_are_bounded() {
        #[derive(Debug)]
        struct Empty;
        impl ParkStore for Empty {
            fn open_rows(&self, _: usize) -> Result<Vec<OpenRow>, StateError> {
                Ok(Vec::new())
            }
            fn held(&self, _: usize) -> Result<Vec<(Document, u64)>, StateError> {
                Ok(Vec::new())
            }
            fn asked(&self) -> Result<bool, StateError> {
                Ok(false)
            }
            fn open(&self) -> Result<u64, StateError> {
                Ok(0)
            }
        }
        let mut parking = Parking::open(Arc::new(Empty)).unwrap();
        assert!(!parking.holds_any());
        let doc = |k: usize| ("m".to_owned(), k.to_string());
        assert!(parking.hold(&[doc(1), doc(2)], 7));
        assert!(parking.hold(&[doc(2), doc(3)], 9));
        assert_eq!(parking.held_behind(&[doc(3), doc(2)]), Some(7));
        assert_eq!(parking.held_behind(&[doc(4)]), None);
        let many: Vec<_> = (0..=MAX_HELD).map(doc).collect();
        assert!(!parking.hold(&many, 10));
    }
}
