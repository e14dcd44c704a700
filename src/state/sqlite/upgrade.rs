//! States of earlier formats, upgraded when opened, in one transaction:
//! format 2 gets the filter's tables (and keeps no filter: its runs ask the
//! state for ids and documents, as a run of format 2 did); formats 2 and 3
//! get their text in the present held form of lone surrogates
//! ([`crate::state::earlier`]), so that keys sort by code point.

use super::super::earlier::{self, Hashes, MARKS};
use super::super::{checksum, StateError};
use super::{damaged, load, sql, SqliteState, FILTER_TABLES, FORMAT, FORMAT_2, FORMAT_VERSION};
use crate::value::surrogate::from_earlier;
use rusqlite::{params, Connection};
use std::path::Path;

/// The format before lone surrogates took their present held form.
pub const FORMAT_3: &str = "projector-state 3";

impl SqliteState {
    /// Upgrades a state of format 2 or 3 to the present one; nothing for
    /// a state of the present format.
    pub(super) fn upgrade(&mut self) -> Result<(), StateError> {
        let format: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM projector_meta WHERE name = 'format'",
                [],
                |r| r.get(0),
            )
            .ok();
        let format = match format.as_deref() {
            Some(f @ (FORMAT_2 | FORMAT_3)) => f,
            _ => return Ok(()),
        };
        let doing = "upgrading the state to the present format";
        self.execute("BEGIN IMMEDIATE", doing)?;
        let upgraded = (|| {
            if format == FORMAT_2 {
                self.execute(FILTER_TABLES, doing)?;
            }
            held_text(&self.conn, &self.path)?;
            self.put_one_meta("format", FORMAT)?;
            self.execute(&format!("PRAGMA user_version = {FORMAT_VERSION}"), doing)
        })();
        match upgraded {
            Ok(()) => self.execute("COMMIT", doing),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// What a failure while upgrading was doing.
const DOING: &str = "upgrading the state to the present format";

/// Rewrites every row whose text holds lone surrogates (or U+10FFFF, or
/// U+D7FF) in the earlier form, checking each against its checksum first
/// and giving it its new one; logs the new hashes of the ids and keys that
/// changed in the kept filter.
fn held_text(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let marks = MARKS.map(String::from);
    let mut hashes = Hashes::default();
    rewrite_events(conn, path, &marks, &mut hashes)?;
    rewrite_documents(conn, path, &marks, &mut hashes)?;
    rewrite_meta(conn, path, &hashes)
}

/// The condition that `column` holds one of the marks `?1`, `?2`.
fn holds(column: &str) -> String {
    format!("(instr({column}, ?1) > 0 OR instr({column}, ?2) > 0)")
}

/// Rewrites the event types and processed ids that hold a mark, noting
/// the ids that change in `hashes`.
fn rewrite_events(
    conn: &Connection,
    path: &Path,
    marks: &[String; 2],
    hashes: &mut Hashes,
) -> Result<(), StateError> {
    let failed = sql(path, DOING);
    // Event types, then the ids of the types renamed (whose checksums
    // cover the type's name) and the ids that change themselves.
    let types: Vec<(i64, String, i64)> = select(
        conn,
        &format!(
            "SELECT code, name, sum FROM event_types WHERE {}",
            holds("name")
        ),
        marks,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(&failed)?;
    let ids: Vec<(i64, String, String, i64)> = select(
        conn,
        &format!(
            "SELECT p.rowid, p.id, t.name, p.sum FROM processed_events AS p
             JOIN event_types AS t ON t.code = p.type WHERE {} OR {}",
            holds("p.id"),
            holds("t.name")
        ),
        marks,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .map_err(&failed)?;
    for (code, name, sum) in &types {
        let code = code.to_string();
        checked(path, "event_types", &[&code, name], *sum, || {
            format!("event type {code} (\"{name}\")")
        })?;
        let name = from_earlier(name);
        conn.execute(
            "UPDATE event_types SET name = ?1, sum = ?2 WHERE code = ?3",
            params![name, checksum::row(&[&code, &*name]), code],
        )
        .map_err(&failed)?;
    }
    for (rowid, id, ty, sum) in &ids {
        checked(path, "processed_events", &[id, ty], *sum, || {
            format!("event id \"{id}\"")
        })?;
        let (new_id, ty) = (from_earlier(id), from_earlier(ty));
        if new_id != *id {
            hashes.id(&new_id);
        }
        conn.execute(
            "UPDATE processed_events SET id = ?1, sum = ?2 WHERE rowid = ?3",
            params![new_id, checksum::row(&[&*new_id, &*ty]), rowid],
        )
        .map_err(&failed)?;
    }
    Ok(())
}

/// Rewrites the documents whose key or body holds a mark, noting the keys
/// that change in `hashes`.
fn rewrite_documents(
    conn: &Connection,
    path: &Path,
    marks: &[String; 2],
    hashes: &mut Hashes,
) -> Result<(), StateError> {
    let failed = sql(path, DOING);
    // Documents: their key may change, so each is written anew once the
    // old rows are gone.
    let documents: Vec<(String, String, String, i64)> = select(
        conn,
        &format!(
            "SELECT model, key, doc, sum FROM documents WHERE {} OR {}",
            holds("key"),
            holds("doc")
        ),
        marks,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .map_err(&failed)?;
    for (model, key, doc, sum) in &documents {
        checked(path, "documents", &[model, key, doc], *sum, || {
            format!("read model \"{model}\", key \"{key}\"")
        })?;
        conn.execute(
            "DELETE FROM documents WHERE model = ?1 AND key = ?2",
            [model, key],
        )
        .map_err(&failed)?;
    }
    for (model, key, doc, _) in &documents {
        let (new_key, doc) = (from_earlier(key), from_earlier(doc));
        if new_key != *key {
            hashes.key(model, &new_key);
        }
        conn.execute(
            "INSERT INTO documents (model, key, doc, sum) VALUES (?1, ?2, ?3, ?4)",
            params![
                model,
                new_key,
                doc,
                checksum::row(&[model, &*new_key, &*doc])
            ],
        )
        .map_err(&failed)?;
    }
    Ok(())
}

/// Rewrites the metadata that names types, and logs `hashes` in a kept
/// filter.
fn rewrite_meta(conn: &Connection, path: &Path, hashes: &Hashes) -> Result<(), StateError> {
    let failed = sql(path, DOING);
    // The metadata that names types.
    let meta = load::meta(conn, path)?;
    let rewritten = [
        ("rows", meta.get("rows").and_then(|t| earlier::rows(t))),
        (
            "subscriptions",
            meta.get("subscriptions")
                .and_then(|t| earlier::subscriptions(t)),
        ),
    ];
    for (name, value) in rewritten {
        if let Some(value) = value {
            conn.execute(
                "UPDATE projector_meta SET value = ?2, sum = ?3 WHERE name = ?1",
                params![name, value, checksum::row(&[name, &value])],
            )
            .map_err(&failed)?;
        }
    }
    if let (Some(log), Some("kept")) = (hashes.log(), meta.get("filter").map(String::as_str)) {
        conn.execute(
            "INSERT INTO filter_log (hashes, sum) VALUES (?1, ?2)",
            params![log, load::blob_sum(&log)],
        )
        .map_err(&failed)?;
    }
    Ok(())
}

/// The rows `sql` selects (with the two marks bound), each made by `row`.
fn select<T>(
    conn: &Connection,
    sql: &str,
    marks: &[String; 2],
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([&marks[0], &marks[1]], row)?;
    rows.collect()
}

/// Refuses a row that does not match its checksum: rewritten with a new
/// one, its damage would go unseen.
fn checked(
    path: &Path,
    table: &str,
    fields: &[&str],
    sum: i64,
    what: impl FnOnce() -> String,
) -> Result<(), StateError> {
    match checksum::row(fields) == sum {
        true => Ok(()),
        false => Err(damaged(
            path,
            format!(
                "table {table}: the row for {} does not match its checksum",
                what()
            ),
        )),
    }
}
