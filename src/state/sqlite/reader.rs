//! The cache's reads of an SQLite state, on a read-only connection of
//! their own: in WAL mode it sees the last committed batch while the writer
//! commits the next one. Every row read is checked against its checksum.

use super::super::reader::Reader;
use super::super::{checksum, StateError};
use super::{damaged, read_failed};
use crate::plan::ModelId;
use rusqlite::{Connection, OpenFlags, ToSql};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Keys (or ids) looked up by one statement.
const PER_STATEMENT: usize = 128;

pub struct SqliteReader {
    conn: Connection,
    path: PathBuf,
    /// Model names, by [`ModelId`].
    models: Vec<String>,
    /// By [`ModelId`]: whether it is being rebuilt (its documents are read
    /// from what the rebuild staged).
    staged: Vec<bool>,
}

impl SqliteReader {
    /// A reader of the state at `path`, whose models `staged` (by
    /// [`ModelId`]) are being rebuilt.
    pub fn open(
        path: &Path,
        models: Vec<String>,
        staged: Vec<bool>,
    ) -> Result<SqliteReader, StateError> {
        let failed = |e| StateError::Sqlite {
            path: path.to_owned(),
            doing: "opening the state for reading",
            error: e,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
        conn.execute_batch("PRAGMA cache_size = -16384")
            .map_err(failed)?;
        Ok(SqliteReader {
            conn,
            path: path.to_owned(),
            models,
            staged,
        })
    }

    /// Runs `sql` with `values` bound, handing each row's text columns to
    /// `each` once its checksum (`sum`, of `prefix` and the columns) is
    /// found to match.
    fn rows(
        &self,
        table: &str,
        sql: &str,
        values: &[&dyn ToSql],
        prefix: Option<&str>,
        mut each: impl FnMut(&str, &str),
    ) -> Result<(), StateError> {
        let failed = read_failed(&self.path, table);
        let mut statement = self.conn.prepare_cached(sql).map_err(&failed)?;
        let mut rows = statement.query(values).map_err(&failed)?;
        while let Some(row) = rows.next().map_err(&failed)? {
            let a: &str = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(&failed)?;
            let b: &str = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(&failed)?;
            let sum: i64 = row.get(2).map_err(&failed)?;
            let expected = match prefix {
                Some(prefix) => checksum::row(&[prefix, a, b]),
                None => checksum::row(&[a, b]),
            };
            if sum != expected {
                let what = match prefix {
                    Some(model) => format!("read model \"{model}\", key \"{a}\""),
                    None => format!("event id \"{a}\""),
                };
                return Err(damaged(
                    &self.path,
                    format!("table {table}: the row for {what} does not match its checksum"),
                ));
            }
            each(a, b);
        }
        Ok(())
    }
}

impl SqliteReader {
    /// Of `ids`, each one `table` (processed ids, or a rebuild's) holds.
    fn ids(
        &self,
        table: &str,
        ids: &[&str],
        found: &mut dyn FnMut(&str),
    ) -> Result<(), StateError> {
        for part in ids.chunks(PER_STATEMENT) {
            // A code without its type reads as NULL: refused as damage.
            let sql = format!(
                "SELECT p.id, t.name, p.sum FROM {table} AS p
                 LEFT JOIN event_types AS t ON t.code = p.type WHERE p.id IN ({})",
                placeholders(1, part.len())
            );
            let values: Vec<&dyn ToSql> = part.iter().map(|k| k as &dyn ToSql).collect();
            self.rows(table, &sql, &values, None, |id, _| found(id))?;
        }
        Ok(())
    }
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Reader for SqliteReader {
    fn documents(
        &mut self,
        model: ModelId,
        keys: &[&str],
        found: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError> {
        let m = model.0 as usize;
        let name = self.models[m].clone();
        let table = match self.staged[m] {
            true => "rebuild_documents",
            false => "documents",
        };
        for part in keys.chunks(PER_STATEMENT) {
            let sql = format!(
                "SELECT key, doc, sum FROM {table} WHERE model = ?1 AND key IN ({})",
                placeholders(2, part.len())
            );
            let mut values: Vec<&dyn ToSql> = vec![&name];
            values.extend(part.iter().map(|k| k as &dyn ToSql));
            self.rows(table, &sql, &values, Some(&name), &mut *found)?;
        }
        Ok(())
    }

    fn processed(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError> {
        self.ids("processed_events", ids, found)
    }

    fn seen(&mut self, ids: &[&str], found: &mut dyn FnMut(&str)) -> Result<(), StateError> {
        self.ids("rebuild_seen", ids, found)
    }

    fn unseen(&mut self, types: Option<&[String]>) -> Result<u64, StateError> {
        let failed = read_failed(&self.path, "processed_events");
        let count = |sql: &str, values: &[&dyn ToSql]| -> Result<u64, StateError> {
            self.conn
                .query_row(sql, values, |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(&failed)
        };
        match types {
            None => count(
                "SELECT count(*) FROM processed_events AS p
                 WHERE NOT EXISTS (SELECT 1 FROM rebuild_covered AS c WHERE c.old = p.id)",
                &[],
            ),
            Some(types) => {
                let sql = format!(
                    "SELECT count(*) FROM processed_events AS p
                     JOIN event_types AS t ON t.code = p.type
                     WHERE t.name IN ({})
                     AND NOT EXISTS (SELECT 1 FROM rebuild_seen AS s WHERE s.id = p.id)",
                    placeholders(1, types.len())
                );
                let values: Vec<&dyn ToSql> = types.iter().map(|t| t as &dyn ToSql).collect();
                count(&sql, &values)
            }
        }
    }

    fn refresh(&mut self) {
        self.staged.iter_mut().for_each(|s| *s = false);
    }

    fn page(
        &mut self,
        model: ModelId,
        after: Option<&str>,
        limit: usize,
        each: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StateError> {
        let name = self.models[model.0 as usize].clone();
        let limit = limit.min(i64::MAX as usize) as i64;
        match after {
            Some(after) => self.rows(
                "documents",
                "SELECT key, doc, sum FROM documents WHERE model = ?1 AND key > ?2
                 ORDER BY key LIMIT ?3",
                &[&name, &after, &limit],
                Some(&name),
                each,
            ),
            None => self.rows(
                "documents",
                "SELECT key, doc, sum FROM documents WHERE model = ?1 ORDER BY key LIMIT ?2",
                &[&name, &limit],
                Some(&name),
                each,
            ),
        }
    }
}
