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

    /// Up to `limit` documents of `model` whose keys come after `after`,
    /// in key order (byte order of the keys' UTF-8), with their JSON text.
    fn page(
        &mut self,
        model: ModelId,
        after: Option<&str>,
        limit: usize,
        each: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError>;

    /// The models' tables may have changed (a rebuild was swapped in).
    fn refresh(&mut self) {}
}
