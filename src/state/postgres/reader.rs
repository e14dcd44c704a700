//! The cache's reads of a PostgreSQL state, on a connection of their own
//! (see [`crate::state::reader`]). A lost connection is opened again and
//! the read tried again, for the time [`Target::retry_for`] allows.

use super::super::reader::Reader;
use super::super::StateError;
use super::client::{Client, Row};
use super::{ident, is_connection_error, text, Target};
use crate::plan::ModelId;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

pub struct PostgresReader {
    client: Client,
    target: Target,
    /// Model names, by [`ModelId`].
    models: Vec<String>,
    /// The table of each model's documents, by name, as last read.
    tables: BTreeMap<String, String>,
    /// The table a rebuild stages each model it rebuilds in, by name.
    staged: BTreeMap<String, String>,
}

impl PostgresReader {
    /// A reader of the state in `target`, whose models in `staged` are
    /// being rebuilt in the tables it names.
    pub fn open(
        target: &Target,
        models: Vec<String>,
        staged: BTreeMap<String, String>,
    ) -> Result<PostgresReader, StateError> {
        Ok(PostgresReader {
            client: connect(target)?,
            target: target.clone(),
            models,
            tables: BTreeMap::new(),
            staged,
        })
    }

    /// Of `ids`, each one `table` (processed ids, or a rebuild's) holds.
    fn ids(
        &mut self,
        table: &str,
        ids: &[&str],
        found: &mut dyn FnMut(&str),
    ) -> Result<(), StateError> {
        let ids: Vec<_> = ids.iter().map(|k| text::to_column(k)).collect();
        let ids: Vec<&str> = ids.iter().map(|k| k.as_ref()).collect();
        let sql = format!(
            "SELECT id FROM {}.{table} WHERE id = ANY($1::text[])",
            self.target.schema_ident()
        );
        for row in self.query(&sql, &[&ids])? {
            let id: &str = row.get(0);
            found(&text::from_column(id));
        }
        Ok(())
    }

    /// Runs `sql`, connecting again while the connection is lost.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StateError> {
        let mut backoff = self.target.backoff();
        loop {
            match self.client.query(sql, params) {
                Ok(rows) => return Ok(rows),
                Err(e) if is_connection_error(&e) && backoff.sleep() => {
                    self.client = connect(&self.target)?;
                }
                Err(e) => return Err(self.target.failed("reading the state", e)),
            }
        }
    }

    /// The quoted table of `model`'s documents.
    fn table(&mut self, model: ModelId) -> Result<String, StateError> {
        let name = self.models[model.0 as usize].clone();
        if let Some(table) = self.staged.get(&name) {
            return Ok(format!("{}.{}", self.target.schema_ident(), ident(table)));
        }
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

/// A connection for the reader's lookups, planned once for any keys: a
/// plan made for the keys given (PostgreSQL's choice for the first five
/// runs of a statement) of a table never analyzed, as one just filled is,
/// guesses that 2,048 keys match half the table and reads it whole (80 ms
/// where the index takes 3).
fn connect(target: &Target) -> Result<Client, StateError> {
    let mut client = target.connect()?;
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .map_err(|e| target.failed("connecting", e))?;
    Ok(client)
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
        self.ids("_projector_processed", ids, found)
    }

    fn seen(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError> {
        self.ids("_projector_rebuild_seen", ids, found)
    }

    fn unseen(&mut self, types: Option<&[String]>) -> Result<u64, StateError> {
        let s = self.target.schema_ident();
        let rows = match types {
            None => self.query(
                &format!(
                    "SELECT count(*) FROM {s}._projector_processed AS p WHERE NOT EXISTS
                     (SELECT 1 FROM {s}._projector_rebuild_covered AS c WHERE c.old = p.id)"
                ),
                &[],
            )?,
            Some(types) => {
                let types: Vec<_> = types.iter().map(|t| text::to_column(t)).collect();
                let types: Vec<&str> = types.iter().map(|t| t.as_ref()).collect();
                self.query(
                    &format!(
                        "SELECT count(*) FROM {s}._projector_processed AS p
                         WHERE p.type = ANY($1::text[]) AND NOT EXISTS
                         (SELECT 1 FROM {s}._projector_rebuild_seen AS r WHERE r.id = p.id)"
                    ),
                    &[&types],
                )?
            }
        };
        Ok(rows[0].get::<_, i64>(0) as u64)
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
        self.staged.clear();
    }
}
