//! The cache's reads of a PostgreSQL state, on a connection of their own
//! (see [`crate::state::reader`]). A lost connection is opened again and
//! the read tried again, for the time [`Target::retry_for`] allows.

use super::super::reader::Reader;
use super::super::StateError;
use super::{ident, is_connection_error, text, Target};
use crate::plan::ModelId;
use postgres::types::ToSql;
use postgres::{Client, Row};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct PostgresReader {
    client: Client,
    target: Target,
    /// Model names, by [`ModelId`].
    models: Vec<String>,
    /// The table of each model's documents, by name, as last read.
    tables: BTreeMap<String, String>,
}

impl PostgresReader {
    pub fn open(target: &Target, models: Vec<String>) -> Result<PostgresReader, StateError> {
        Ok(PostgresReader {
            client: target.connect()?,
            target: target.clone(),
            models,
            tables: BTreeMap::new(),
        })
    }

    /// Runs `sql`, connecting again while the connection is lost.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StateError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.client.query(sql, params) {
                Ok(rows) => return Ok(rows),
                Err(e) if is_connection_error(&e) && started.elapsed() < self.target.retry_for => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                    self.client = self.target.connect()?;
                }
                Err(e) => return Err(self.target.failed("reading the state", e)),
            }
        }
    }

    /// The quoted table of `model`'s documents.
    fn table(&mut self, model: ModelId) -> Result<String, StateError> {
        let name = self.models[model.0 as usize].clone();
        if !self.tables.contains_key(&name) {
            let s = self.target.schema_ident();
            let sql = format!("SELECT name, tbl FROM {s}._projector_models");
            self.tables = self
                .query(&sql, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
        }
        match self.tables.get(&name) {
            Some(table) => Ok(format!("{}.{}", self.target.schema_ident(), ident(table))),
            None => Err(StateError::Damaged {
                path: self.target.path(),
                detail: format!("read model \"{name}\" has no table"),
            }),
        }
    }
}

/// Each row's key and body, as the projector wrote them.
fn documents(rows: &[Row], each: &mut dyn FnMut(&str, &str)) {
    for row in rows {
        let key: &str = row.get(0);
        each(&text::from_column(key), row.get(1));
    }
}

impl Reader for PostgresReader {
    fn documents(
        &mut self,
        model: ModelId,
        keys: &[&str],
        found: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError> {
        let table = self.table(model)?;
        let keys: Vec<_> = keys.iter().map(|k| text::to_column(k)).collect();
        let keys: Vec<&str> = keys.iter().map(|k| k.as_ref()).collect();
        let sql = format!("SELECT key, body FROM {table} WHERE key = ANY($1::text[])");
        let rows = self.query(&sql, &[&keys])?;
        documents(&rows, found);
        Ok(())
    }

    fn processed(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError> {
        let ids: Vec<_> = ids.iter().map(|k| text::to_column(k)).collect();
        let ids: Vec<&str> = ids.iter().map(|k| k.as_ref()).collect();
        let sql = format!(
            "SELECT id FROM {}._projector_processed WHERE id = ANY($1::text[])",
            self.target.schema_ident()
        );
        for row in self.query(&sql, &[&ids])? {
            let id: &str = row.get(0);
            found(&text::from_column(id));
        }
        Ok(())
    }

    fn page(
        &mut self,
        model: ModelId,
        after: Option<&str>,
        limit: usize,
        each: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError> {
        let table = self.table(model)?;
        let after = after.map(text::to_column);
        let after = after.as_deref();
        let limit = limit.min(i64::MAX as usize) as i64;
        let sql = format!(
            "SELECT key, body FROM {table} WHERE $1::text IS NULL OR key COLLATE \"C\" > $1::text
             ORDER BY key COLLATE \"C\" LIMIT $2"
        );
        let rows = self.query(&sql, &[&after, &limit])?;
        documents(&rows, each);
        Ok(())
    }

    fn refresh(&mut self) {
        self.tables.clear();
    }
}
