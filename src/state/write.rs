//! Writing a batch, whatever holds the state: what is written, in which
//! order, and what the state's metadata says afterwards, decided once. A
//! backend ([`super::sqlite`], [`super::postgres`]) gives its [`Tables`]:
//! the statements that write each part, inside the transaction it runs the
//! batch in, and nothing else.

use super::batch::Batch;
use super::open::Opening;
use super::rows::Rows;
use super::{FilterWrite, Rejection, StateError, Swap};

/// The writes of one transaction, as a backend's SQL does them.
pub trait Tables {
    /// What a write fails with: a [`StateError`], or something the backend
    /// makes more of (a lost connection, worth another try).
    type Error: From<StateError>;

    /// Drops the removed models `opening` names, and records the
    /// definitions it records (a new model gets what holds its documents).
    fn write_opening(&mut self, opening: &Opening) -> Result<(), Self::Error>;
    /// Puts what a rebuild staged in place of the rebuilt models' documents,
    /// with their new definitions, and of the processed ids when they were
    /// found anew; the staging goes.
    fn swap_in(&mut self, swap: &Swap) -> Result<(), Self::Error>;
    /// Appends the batch's ids and their types: to the processed ids, or,
    /// `staged`, to those the rebuild in progress applied.
    fn write_ids(&mut self, batch: &Batch, staged: bool) -> Result<(), Self::Error>;
    /// Appends the ids by the old rule that a rebuild met (see
    /// [`Batch::covered`]).
    fn write_covered(&mut self, batch: &Batch) -> Result<(), Self::Error>;
    /// Writes (or deletes) the batch's documents: where the state serves
    /// them, or, `staged`, where the rebuild in progress stages them.
    fn write_documents(&mut self, batch: &Batch, staged: bool) -> Result<(), Self::Error>;
    /// Keeps the filter: appends hashes to its log, or replaces it whole
    /// and clears the log.
    fn write_filter(&mut self, write: &FilterWrite) -> Result<(), Self::Error>;
    /// Sets entries of the state's metadata.
    fn put_meta(&mut self, entries: &[(&str, String)]) -> Result<(), Self::Error>;
    /// Removes an entry of the state's metadata.
    fn delete_meta(&mut self, name: &str) -> Result<(), Self::Error>;
    /// Keeps the events refused, where the state keeps them (if it does).
    fn write_rejections(&mut self, _rejections: &[Rejection]) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Writes `batch` through `tables`, with `opening` when it is the first
/// batch to write it; `rows` are the counts committed before (`models` the
/// models' names, by id). Returns the counts once it is committed.
pub fn batch<T: Tables>(
    tables: &mut T,
    batch: &Batch,
    opening: Option<&Opening>,
    rows: &Rows,
    models: &[String],
) -> Result<Rows, T::Error> {
    if batch.staged {
        // Nothing the state serves changes.
        tables.write_ids(batch, true)?;
        tables.write_covered(batch)?;
        tables.write_documents(batch, true)?;
        return Ok(rows.clone());
    }
    let mut meta = Vec::new();
    let mut before = rows.clone();
    if let Some(opening) = opening {
        tables.write_opening(opening)?;
        before = before.after_opening(opening);
        if let Some(rule) = &opening.event_id {
            meta.push(("event_id", rule.clone()));
        }
    }
    if let Some(swap) = &batch.swap {
        tables.swap_in(swap)?;
        if let Some(rule) = &swap.event_id {
            // The rule found anew, whatever opening recorded.
            meta.retain(|(name, _)| *name != "event_id");
            meta.push(("event_id", rule.clone()));
        }
    }
    tables.write_ids(batch, false)?;
    tables.write_documents(batch, false)?;
    if let Some(write) = &batch.filter {
        tables.write_filter(write)?;
    }
    match &batch.subscriptions {
        None => {}
        Some(Some(names)) => meta.push((
            "subscriptions",
            serde_json::to_string(names).expect("strings serialize"),
        )),
        Some(None) => tables.delete_meta("subscriptions")?,
    }
    let rekeyed = batch.swap.as_ref().filter(|s| s.event_id.is_some());
    let rekeyed = rekeyed.map(|s| &s.processed_types);
    let after = before.after(models, &batch.totals, batch.ids(), rekeyed);
    meta.push(("rows", after.to_json()));
    if let Some(checkpoint) = batch.totals.checkpoint {
        meta.push(("checkpoint", checkpoint.to_string()));
    }
    tables.put_meta(&meta)?;
    tables.write_rejections(&batch.rejections)?;
    Ok(after)
}

/// Writes `opening` alone, in a transaction of its own; returns the counts
/// once it is committed.
pub fn opening<T: Tables>(
    tables: &mut T,
    opening: &Opening,
    rows: &Rows,
) -> Result<Rows, T::Error> {
    tables.write_opening(opening)?;
    let after = rows.after_opening(opening);
    let mut meta = vec![("rows", after.to_json())];
    if let Some(rule) = &opening.event_id {
        meta.push(("event_id", rule.clone()));
    }
    tables.put_meta(&meta)?;
    Ok(after)
}
