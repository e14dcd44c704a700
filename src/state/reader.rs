//! Reading what a state has committed, a batch's worth at a time: what the
//! cache of a durable run loads instead of holding the whole state.
//!
//! A reader has a connection of its own. It may read while the writer
//! commits a batch: whatever is not resident in the cache was not written by
//! a batch that is not committed yet (the cache keeps what such a batch
//! wrote), so the committed rows are the latest.

use super::StateError;
use crate::plan::ModelId;

/// What the cache asks of a state.
pub trait Reader: Send {
    /// Of `keys` of `model`, each one the state holds, with its JSON text.
    fn documents(
        &mut self,
        model: ModelId,
        keys: &[&str],
        found: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError>;

    /// Of `ids`, each one the state has processed.
    fn processed(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError>;

    /// Of `ids`, each one the rebuild in progress applied (its staged ids).
    fn seen(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError>;

    /// How many processed events the rebuild in progress did not meet: of
    /// `types` by the ids it applied, or of every type (`None`) by the ids
    /// under the old rule of those it met (see [`super::Journal::record_covered`]).
    fn unseen(&mut self, types: Option<&[String]>) -> Result<u64, StateError>;

    /// Up to `limit` documents of `model` whose keys come after `after`,
    /// in key order (byte order of the keys' UTF-8), with their JSON text.
    fn page(
        &mut self,
        model: ModelId,
        after: Option<&str>,
        limit: usize,
        each: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError>;

    /// The models' tables may have changed: a rebuild was swapped in, and
    /// the documents of every model are read from where the state serves
    /// them (while it is rebuilt, from what the rebuild staged).
    fn refresh(&mut self) {}
}
