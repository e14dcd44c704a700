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

pub mod background;
pub mod batch;
pub mod sqlite;

use crate::apply::Change;
use crate::dedup::Processed;
use crate::store::MemoryStore;
use std::fmt;
use std::path::PathBuf;

/// What a journal records, and when it makes it durable.
pub trait Journal {
    /// An event was applied: `id` (absent when an already processed event is
    /// re-applied to a model being rebuilt) and the documents it changed,
    /// as they now are in `stores`.
    fn record_event(
        &mut self,
        id: Option<&str>,
        changes: &[Change],
        stores: &[MemoryStore],
    ) -> Result<(), StateError>;
    /// The subscriptions changed: the accepted types, or `None` for all.
    fn record_subscriptions(&mut self, names: Option<&[String]>) -> Result<(), StateError>;
    /// Hands everything recorded so far to be made durable, all at once.
    /// Waits for the batch handed over before, if any, first.
    fn submit(&mut self) -> Result<(), StateError>;
    /// Waits until everything submitted is durable.
    fn wait(&mut self) -> Result<(), StateError>;
    /// Whether anything outlives the process: a durable journal commits
    /// each batch, so it wants few, large ones.
    fn is_durable(&self) -> bool {
        true
    }
}

/// The in-memory mode: nothing outlives the process.
pub struct NoJournal;

impl Journal for NoJournal {
    fn is_durable(&self) -> bool {
        false
    }

    fn record_event(
        &mut self,
        _: Option<&str>,
        _: &[Change],
        _: &[MemoryStore],
    ) -> Result<(), StateError> {
        Ok(())
    }

    fn record_subscriptions(&mut self, _: Option<&[String]>) -> Result<(), StateError> {
        Ok(())
    }

    fn submit(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    fn wait(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}

/// The state a run starts from.
#[derive(Default)]
pub struct Restored {
    pub stores: Vec<MemoryStore>,
    pub processed: Processed,
    /// Accepted event types; `None` for all.
    pub subscriptions: Option<Vec<String>>,
}

/// A read model whose stored documents do not follow the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Its definition changed since the state was written.
    Changed(String),
    /// It is new, while the state already holds processed events.
    Added(String),
}

#[derive(Debug)]
pub enum StateError {
    /// The file is not a projector state.
    NotAState { path: PathBuf, reason: String },
    /// Another process holds the state.
    Locked { path: PathBuf },
    /// The database is damaged.
    Corrupt { path: PathBuf, detail: String },
    /// Read models changed since the state was written.
    StaleModels { path: PathBuf, models: Vec<Stale> },
    /// `--rebuild` names a model the configuration does not declare.
    UnknownModel { name: String },
    /// Reading or writing the database failed.
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        error: rusqlite::Error,
    },
}

impl StateError {
    /// The exit status for this error (sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            StateError::NotAState { .. } | StateError::Corrupt { .. } => 65, // EX_DATAERR
            StateError::Locked { .. } => 75,                                 // EX_TEMPFAIL
            StateError::StaleModels { .. } | StateError::UnknownModel { .. } => 78, // EX_CONFIG
            StateError::Sqlite { .. } => 74,                                 // EX_IOERR
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotAState { path, reason } => {
                write!(f, "{} is not a projector state: {reason}; it was left untouched", path.display())
            }
            StateError::Locked { path } => write!(
                f,
                "{} is in use by another running projector (the database is locked)",
                path.display()
            ),
            StateError::Corrupt { path, detail } => write!(
                f,
                "{} is damaged ({detail}); it was left untouched: restore it from a backup, or rebuild it with `projector replay` from the event log",
                path.display()
            ),
            StateError::StaleModels { path, models } => {
                write!(f, "{} was written with other read-model definitions:", path.display())?;
                let mut names = Vec::new();
                for stale in models {
                    let (name, why) = match stale {
                        Stale::Changed(name) => (name, "its definition changed"),
                        Stale::Added(name) => (name, "it is new, and events were already processed without it"),
                    };
                    write!(f, "\n  {name}: {why}")?;
                    names.push(format!("--rebuild {name}"));
                }
                write!(
                    f,
                    "\nrefusing to run on stale read models; rebuild them from the event log with\n  projector replay --config <CONFIG> --state {} {} <EVENTS.ndjson>",
                    path.display(),
                    names.join(" ")
                )
            }
            StateError::UnknownModel { name } => {
                write!(f, "--rebuild {name}: the configuration declares no read model \"{name}\"")
            }
            StateError::Sqlite { path, doing, error } => {
                write!(f, "{}: {doing} failed: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for StateError {}
