//! A state's metadata, read back: the same entries (format, event-id rule,
//! row counts, subscriptions, checkpoint) whatever holds them, checked the
//! same way. A backend reads its table's rows into a map and hands it here.

use super::open::damaged;
use super::rows::Rows;
use super::stored::Stored;
use super::StateError;
use std::collections::BTreeMap;
use std::path::Path;

pub struct Meta<'a> {
    entries: &'a BTreeMap<String, String>,
    /// The table they were read from, for messages.
    table: &'static str,
    path: &'a Path,
}

impl<'a> Meta<'a> {
    pub fn new(entries: &'a BTreeMap<String, String>, table: &'static str, path: &'a Path) -> Self {
        Meta {
            entries,
            table,
            path,
        }
    }

    fn damaged(&self, detail: String) -> StateError {
        damaged(self.path, format!("table {}: {detail}", self.table))
    }

    pub fn get(&self, name: &str) -> Option<&'a String> {
        self.entries.get(name)
    }

    /// Refuses a format other than `current` and the `older` ones this
    /// projector upgrades.
    pub fn check_format(&self, current: &str, older: &[&str]) -> Result<(), StateError> {
        let format = self.get("format").map(String::as_str);
        if format.is_some_and(|f| f == current || older.contains(&f)) {
            return Ok(());
        }
        Err(self.damaged(format!(
            "the format is {format:?}, and this projector reads \"{current}\""
        )))
    }

    /// The row counts of the last commit.
    pub fn rows(&self) -> Result<Rows, StateError> {
        let text = self.get("rows").ok_or_else(|| {
            damaged(
                self.path,
                format!("table {} has no \"rows\" entry", self.table),
            )
        })?;
        Rows::from_json(text)
            .ok_or_else(|| self.damaged(format!("\"rows\" is not a count of rows: {text}")))
    }

    /// The accepted event types; `None` for all.
    pub fn subscriptions(&self) -> Result<Option<Vec<String>>, StateError> {
        match self.get("subscriptions") {
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                self.damaged(format!("the subscriptions are not a list of names: {e}"))
            }),
            None => Ok(None),
        }
    }

    /// The sequence of the source's last message the state has handled.
    pub fn checkpoint(&self) -> Result<Option<u64>, StateError> {
        match self.get("checkpoint") {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                self.damaged(format!("the checkpoint is not a sequence number: {text}"))
            }),
        }
    }

    /// What the state holds, as this metadata, the models' `definitions`
    /// and the counts of its rows (`documents`, `processed` by type) say.
    pub fn stored(
        &self,
        definitions: BTreeMap<String, String>,
        documents: BTreeMap<String, u64>,
        processed: BTreeMap<String, u64>,
    ) -> Result<Stored, StateError> {
        Ok(Stored {
            event_id: self.get("event_id").cloned(),
            definitions,
            documents,
            processed,
            subscriptions: self.subscriptions()?,
            checkpoint: self.checkpoint()?,
        })
    }
}
