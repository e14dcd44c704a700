//! Durable state: where read models, processed event ids and subscriptions
//! are kept between runs.
//!
//! The engine applies events to in-memory document stores and reports each
//! applied event to a [`Journal`]. In memory ([`NoJournal`]) that is all; with
//! `--state` ([`background::Background`]) the journal records the event's id
//! and the documents it changed, [`Journal::submit`] hands the batch to a
//! writer thread that commits it in one transaction ([`sqlite::SqliteState`]),
//! and [`Journal::wait`] returns once it is durable: only then are the batch's
//! replies written.
//!
//! Before a run, what the state holds ([`stored::Stored`]) is compared with
//! the configuration ([`reconcile::Reconciliation`]), and nothing runs while
//! a difference is unresolved.

pub mod background;
pub mod batch;
pub mod checksum;
pub mod crash;
pub mod dedup;
pub mod earlier;
pub mod filter;
pub mod meta;
pub mod open;
pub mod postgres;
pub mod reader;
pub mod reconcile;
pub mod rows;
pub mod sqlite;
pub mod stored;
pub mod write;

use crate::plan::event_id::EventIdRule;
use crate::plan::{ModelId, Plan};
use crate::state::batch::Documents;
use crate::store::Change;
use reconcile::{Reconciliation, Request, RequestError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a state is: an SQLite file, or a schema in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(postgres::Target),
}

impl Location {
    /// The state `--state` names (a `postgres://` or `postgresql://` URL,
    /// or a file's path), in `schema` when it is PostgreSQL.
    pub fn new(state: &Path, schema: &str) -> Location {
        match state.to_str().filter(|s| postgres::Target::is_url(s)) {
            Some(url) => Location::Postgres(postgres::Target::new(url, schema)),
            None => Location::Sqlite(state.to_owned()),
        }
    }

    /// The state as messages name it.
    pub fn path(&self) -> PathBuf {
        match self {
            Location::Sqlite(path) => path.clone(),
            Location::Postgres(target) => target.path(),
        }
    }

    /// Opens (or creates) the state for `plan` and restores it.
    pub fn open(&self, plan: &Plan, request: &Request) -> Result<open::Opened, StateError> {
        match self {
            Location::Sqlite(path) => sqlite::SqliteState::open(path, plan, request),
            Location::Postgres(target) => postgres::PostgresState::open(target, plan, request),
        }
    }

    /// Reads every row of the state, checking each one (its checksum, in
    /// SQLite; that a document is a JSON object) and every table against
    /// the rows committed; returns what it holds, `None` when there is none.
    pub fn check(&self) -> Result<Option<stored::Stored>, StateError> {
        match self {
            Location::Sqlite(path) => sqlite::SqliteState::check(path),
            Location::Postgres(target) => postgres::PostgresState::check(target),
        }
    }

    /// What the state holds, reading only; `None` when there is none.
    pub fn inspect(&self) -> Result<Option<stored::Stored>, StateError> {
        match self {
            Location::Sqlite(path) => sqlite::SqliteState::inspect(path),
            Location::Postgres(target) => postgres::PostgresState::inspect(target),
        }
    }

    /// A reader of what the state has committed of `models` (by
    /// [`ModelId`], in this order), reading only: a running projector's
    /// state too. `None` when there is none.
    pub fn reader(
        &self,
        models: Vec<String>,
    ) -> Result<Option<Box<dyn reader::Reader>>, StateError> {
        match self {
            Location::Sqlite(path) => sqlite::SqliteState::reader(path, models),
            Location::Postgres(target) => postgres::PostgresState::reader(target, models),
        }
    }
}

/// What a journal records, and when it makes it durable.
pub trait Journal {
    /// An event was applied: its id and type (absent when an already
    /// processed event is applied to a model being rebuilt), and the
    /// documents it changed.
    fn record_event(
        &mut self,
        event: Option<(&str, &str)>,
        changes: &[Change],
    ) -> Result<(), StateError>;
    /// The subscriptions changed: the accepted types, or `None` for all.
    fn record_subscriptions(&mut self, names: Option<&[String]>) -> Result<(), StateError>;
    /// Rebuilt models replace theirs, whole, with what the batches staged
    /// for them (see [`Journal::stage`]).
    fn record_swap(&mut self, swap: Swap) -> Result<(), StateError>;
    /// From now on (`true`) until the swap, batches belong to a rebuild:
    /// their ids are the ids it applied, their documents those of the
    /// models it rebuilds, kept apart from what the state serves.
    fn stage(&mut self, _staging: bool) {}
    /// A rebuild that finds the processed ids anew met a processed event,
    /// by its id under the old rule: the log holds it.
    fn record_covered(&mut self, _old: &str) {}
    /// Hands everything recorded so far to be made durable, all at once,
    /// with what the tables will then hold, each changed document as it is
    /// in `docs` now. Waits for the batch handed over before, if any, first.
    fn submit(&mut self, totals: Totals, docs: &mut dyn Documents) -> Result<(), StateError>;
    /// Waits until everything submitted is durable.
    fn wait(&mut self) -> Result<(), StateError>;
    /// An event from a stream was refused: kept where the state keeps
    /// rejections, if it does, with the next batch.
    fn record_rejection(&mut self, _rejection: Rejection) -> Result<(), StateError> {
        Ok(())
    }
    /// What the batch keeps of the filter of ids and keys.
    fn record_filter(&mut self, _write: FilterWrite) {}
    /// Whether anything outlives the process: a durable journal commits
    /// each batch, so it wants few, large ones.
    fn is_durable(&self) -> bool {
        true
    }
}

/// What a batch keeps of the filter of the ids and document keys written
/// to a state (see [`crate::engine::durable`]), so that a run that opens it
/// knows them without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterWrite {
    /// The hashes this batch added, 8 bytes each: appended to the log.
    Log(Vec<u8>),
    /// The whole filter: it replaces the kept one, and the log is cleared.
    Snapshot(Vec<u8>),
}

/// The filter a state keeps, as read back: the last snapshot, if any, and
/// the hashes logged since.
#[derive(Debug, Default, Clone)]
pub struct KeptFilter {
    pub snapshot: Option<Vec<u8>>,
    pub log: Vec<Vec<u8>>,
}

/// An event the engine refused, as the `rejections` table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The event's sequence in the stream.
    pub position: u64,
    pub id: Option<String>,
    /// The error's code (12, 22) and text, as the reply says them.
    pub code: i32,
    pub error: String,
    /// The message that carried the event, as received (its first bytes
    /// unless it is parked: then whole, to be applied again).
    pub text: String,
    /// What became of it.
    pub status: RejectionStatus,
    /// The documents it would change, `(model, key)`: a parked event holds
    /// every later event of them.
    pub documents: Vec<(String, String)>,
    /// The position of the parked event it waits behind, when it was not
    /// refused itself.
    pub behind: Option<u64>,
}

/// What became of a message a unit did not project: the `status` column
/// of `rejections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionStatus {
    /// Refused and passed by (`--on-refused record`, or not an event).
    Recorded,
    /// Held, with every later event of its documents.
    Parked,
    /// Applied again (`projector rejections retry`).
    Retried,
}

impl RejectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionStatus::Recorded => "recorded",
            RejectionStatus::Parked => "parked",
            RejectionStatus::Retried => "retried",
        }
    }
}

/// The in-memory mode: nothing outlives the process.
pub struct NoJournal;

impl Journal for NoJournal {
    fn is_durable(&self) -> bool {
        false
    }

    fn record_event(&mut self, _: Option<(&str, &str)>, _: &[Change]) -> Result<(), StateError> {
        Ok(())
    }

    fn record_subscriptions(&mut self, _: Option<&[String]>) -> Result<(), StateError> {
        Ok(())
    }

    fn record_swap(&mut self, _: Swap) -> Result<(), StateError> {
        Ok(())
    }

    fn submit(&mut self, _: Totals, _: &mut dyn Documents) -> Result<(), StateError> {
        Ok(())
    }

    fn wait(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}

/// What the tables hold once a batch is committed: documents per read
/// model (by [`ModelId`]) and processed event ids. A state checks its rows
/// against these when it is read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub documents: Vec<u64>,
    pub processed: u64,
    /// The sequence of the last message of the source (a JetStream stream)
    /// the state has handled, committed with what it produced.
    pub checkpoint: Option<u64>,
}

/// A rebuild, swapped in: committed in one transaction with the batch.
#[derive(Debug, Clone, Default)]
pub struct Swap {
    /// The rebuilt models and their definitions: their documents replace
    /// the stored ones whole.
    pub models: Vec<(ModelId, String)>,
    /// When the processed ids were found anew, by this event-id rule: the
    /// ids the rebuild applied replace the stored ones; with how many of
    /// each type there are.
    pub event_id: Option<String>,
    pub processed_types: BTreeMap<String, u64>,
}

/// The state a run starts from: what it holds is read as it is needed.
#[derive(Default)]
pub struct Restored {
    /// Documents per read model (by [`ModelId`]), as committed.
    pub documents: Vec<u64>,
    /// Processed event ids, as committed.
    pub processed: u64,
    /// The filter the state keeps of every id and key it holds; `None`
    /// when it keeps none (a state made before filters were kept).
    pub filter: Option<KeptFilter>,
    /// Accepted event types; `None` for all.
    pub subscriptions: Option<Vec<String>>,
    /// Where in its source the state stands (see [`Totals::checkpoint`]).
    pub checkpoint: Option<u64>,
}

/// Models to rebuild from a log, as a state that is opened for it knows them.
pub struct Rebuilding {
    /// Their stores start empty.
    pub models: Vec<ModelId>,
    /// How many processed ids the log must hold: those of `required_types`,
    /// or every one (`None`) when they are found anew.
    pub required: u64,
    pub required_types: Option<Vec<String>>,
    /// When the processed ids are found anew: the rule they were found by.
    pub old_rule: Option<EventIdRule>,
}

/// Why a state could not be opened, read or written. Each message says
/// what failed and, where it can, what to do; the error underneath, when
/// there is one, is its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The path cannot be opened or created: permissions, a missing directory.
    #[error("cannot open the state {}: {error}", .path.display())]
    CannotOpen {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// The file is not a projector state.
    #[error("{} is not a projector state: {reason}; it was left untouched", .path.display())]
    NotAState { path: PathBuf, reason: String },
    /// Another process holds the state.
    #[error("{} is in use by another running projector (it holds the state's lock)", .path.display())]
    Locked { path: PathBuf },
    /// The state is damaged: what was found, naming the table and row.
    #[error("{} is damaged: {detail}; it was left untouched: restore it from a backup, or build a new state from the event log with `projector replay`", .path.display())]
    Damaged { path: PathBuf, detail: String },
    /// The disk is full.
    #[error("{}: disk full; the last batch was not committed and its replies were not written", .path.display())]
    DiskFull { path: PathBuf },
    /// The configuration differs from what the state was built by, and
    /// the flags given do not resolve it.
    #[error("{} does not match the configuration: {}", .path.display(), unresolved(.reconciliation).join(", "))]
    Mismatch {
        path: PathBuf,
        reconciliation: Box<Reconciliation>,
    },
    /// A flag names a model it cannot apply to.
    #[error(transparent)]
    Request(RequestError),
    /// A rebuild's log lacks events the state has processed.
    #[error("the log lacks {missing} of the {required} events it must hold to rebuild {}: {}; nothing was changed. Rebuild from a log that holds them, or pass --allow-incomplete to build from this one anyway (the rebuilt models will lack what those events did)", .models.join(", "), whose_events(.models, *.rekey))]
    IncompleteLog {
        missing: usize,
        required: usize,
        models: Vec<String>,
        rekey: bool,
    },
    /// Reading or writing the database failed.
    #[error("{}: {doing} failed: {error}", .path.display())]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        #[source]
        error: rusqlite::Error,
    },
    /// Reading or writing PostgreSQL failed, or it could not be reached
    /// for the time a lost connection is retried.
    #[error("{}: {doing} failed: {}{}", .path.display(), postgres::describe(.error), retried(.error))]
    Postgres {
        path: PathBuf,
        doing: &'static str,
        #[source]
        error: postgres::client::Error,
    },
    /// Connecting to PostgreSQL failed: the server refused (a wrong
    /// password, TLS, a certificate that failed its check, no such
    /// database), or could not be reached for the time a connection is
    /// retried.
    #[error("{}: connecting to {servers} failed: {}{}", .path.display(), postgres::describe(.error), retried(.error))]
    Connect {
        path: PathBuf,
        servers: String,
        #[source]
        error: postgres::client::Error,
    },
    /// Another projector holds the claim on a PostgreSQL state.
    #[error("{} is in use by another running projector ({holder}); its claim lapses in {seconds_left:.1} s unless renewed", .path.display())]
    Claimed {
        path: PathBuf,
        holder: String,
        seconds_left: f64,
    },
    /// This projector's claim was taken over: it may commit nothing more.
    #[error("{}: another projector has taken the state over (this one's claim lapsed); this one stops without committing its last batch, whose replies were not written", .path.display())]
    Fenced { path: PathBuf },
    /// The configuration cannot be kept in this kind of state.
    #[error("{}: {reason}", .path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// The PostgreSQL connection settings cannot be used.
    #[error("{}: {error}", .path.display())]
    Settings {
        path: PathBuf,
        #[source]
        error: postgres::SettingsError,
    },
}

impl StateError {
    /// The exit status for this error (sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            StateError::NotAState { .. }
            | StateError::Damaged { .. }
            | StateError::IncompleteLog { .. } => 65, // EX_DATAERR
            StateError::Locked { .. } | StateError::Claimed { .. } | StateError::Fenced { .. } => {
                75 // EX_TEMPFAIL
            }
            StateError::Mismatch { .. }
            | StateError::Request(_)
            | StateError::Unsupported { .. }
            | StateError::Settings { .. } => 78, // EX_CONFIG
            StateError::CannotOpen { .. }
            | StateError::DiskFull { .. }
            | StateError::Sqlite { .. }
            | StateError::Postgres { .. }
            | StateError::Connect { .. } => {
                74 // EX_IOERR
            }
        }
    }
}

/// What of a state does not match the configuration, as a mismatch names
/// it: the event-id rule first, then each model not resolved, with why.
fn unresolved(reconciliation: &Reconciliation) -> Vec<String> {
    let rule = (!reconciliation.event_id.resolved).then(|| "the event-id rule".to_owned());
    let models = reconciliation
        .models
        .iter()
        .filter(|m| !m.resolved)
        .map(|m| format!("{} ({})", m.name, m.status.word()));
    rule.into_iter().chain(models).collect()
}

/// Whose events a rebuild needs: all of them when the event id is re-keyed,
/// else those of the models rebuilt.
fn whose_events(models: &[String], rekey: bool) -> String {
    match rekey {
        true => "every event the state has processed".to_owned(),
        false => format!(
            "the events the state has processed for {}",
            models.join(", ")
        ),
    }
}

/// What a lost connection's error adds: that it was retried.
fn retried(error: &postgres::client::Error) -> &'static str {
    match postgres::is_connection_error(error) {
        true => " (retried for the time PROJECTOR_RETRY_SECONDS allows; nothing uncommitted was replied to)",
        false => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_what_failed_underneath_as_its_source() {
        use std::error::Error;
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = StateError::CannotOpen {
            path: "s.db".into(),
            error: denied,
        };
        assert_eq!(e.to_string(), "cannot open the state s.db: denied");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("denied"));
        let e = StateError::Request(RequestError::NotRemoved {
            name: "m".to_owned(),
            configured: true,
        });
        assert_eq!(
            e.to_string(),
            "--drop m: \"m\" is still configured; only a model removed from the configuration can be dropped"
        );
        assert!(StateError::Locked {
            path: "s.db".into()
        }
        .source()
        .is_none());
    }

    #[test]
    fn a_rebuild_needs_every_event_when_it_rekeys_and_its_models_otherwise() {
        let models = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            whose_events(&models, true),
            "every event the state has processed"
        );
        let theirs = whose_events(&models, false);
        assert_eq!(theirs, "the events the state has processed for a, b");
    }
}
