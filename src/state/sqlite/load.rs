//! Reading a state back. Every row is checked against the checksum written
//! with it, and every table against the row counts committed with the last
//! batch, so a changed, renamed or lost row refuses the state (naming the
//! table and key) instead of being served or applied again.

use super::super::rows::Rows;
use super::super::{checksum, StateError};
use super::{damaged, read_failed};
use crate::util::hash::FastMap;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use std::collections::BTreeMap;
use std::path::Path;

/// The most text fields a row has (a document's model, key and text).
const MAX_FIELDS: usize = 3;

/// A text column of a row, as it was stored.
fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    match row.get_ref(i)? {
        ValueRef::Text(bytes) => {
            std::str::from_utf8(bytes).map_err(|e| rusqlite::Error::Utf8Error(i, e))
        }
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            format!("column {i}"),
            other.data_type(),
        )),
    }
}

/// Runs `sql` and hands each row's text columns to `each`, once the
/// row's last column (its checksum) is found to match them. `what` names
/// a row for messages, from its columns.
fn rows(
    conn: &Connection,
    path: &Path,
    table: &str,
    sql: &str,
    what: impl Fn(&[&str]) -> String,
    mut each: impl FnMut(&[&str]) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let failed = read_failed(path, table);
    let mut statement = conn.prepare(sql).map_err(&failed)?;
    let columns = statement.column_count() - 1;
    assert!(
        columns <= MAX_FIELDS,
        "a row of at most {MAX_FIELDS} text fields"
    );
    let mut query = statement.query([]).map_err(&failed)?;
    while let Some(row) = query.next().map_err(&failed)? {
        let mut all = [""; MAX_FIELDS];
        for (i, field) in all.iter_mut().enumerate().take(columns) {
            *field = text(row, i).map_err(&failed)?;
        }
        let fields = &all[..columns];
        let sum: i64 = row.get(columns).map_err(&failed)?;
        if sum != checksum::row(fields) {
            return Err(damaged(
                path,
                format!(
                    "table {table}: the row for {} does not match its checksum",
                    what(fields)
                ),
            ));
        }
        each(fields)?;
    }
    Ok(())
}

/// Every `projector_meta` row, by name.
pub fn meta(conn: &Connection, path: &Path) -> Result<BTreeMap<String, String>, StateError> {
    let mut meta = BTreeMap::new();
    rows(
        conn,
        path,
        "projector_meta",
        "SELECT name, value, sum FROM projector_meta",
        |f| format!("\"{}\"", f[0]),
        |f| {
            meta.insert(f[0].to_owned(), f[1].to_owned());
            Ok(())
        },
    )?;
    Ok(meta)
}

/// Every read model's definition, by name.
pub fn definitions(conn: &Connection, path: &Path) -> Result<BTreeMap<String, String>, StateError> {
    let mut definitions = BTreeMap::new();
    rows(
        conn,
        path,
        "models",
        "SELECT name, definition, sum FROM models",
        |f| format!("read model \"{}\"", f[0]),
        |f| {
            definitions.insert(f[0].to_owned(), f[1].to_owned());
            Ok(())
        },
    )?;
    Ok(definitions)
}

/// Every event type's code, by name.
pub fn event_types(conn: &Connection, path: &Path) -> Result<FastMap<String, i64>, StateError> {
    let mut types = FastMap::default();
    rows(
        conn,
        path,
        "event_types",
        "SELECT CAST(code AS TEXT), name, sum FROM event_types",
        |f| format!("event type {} (\"{}\")", f[0], f[1]),
        |f| {
            let code = f[0].parse().map_err(|_| {
                damaged(
                    path,
                    format!("table event_types: the code {:?} is not a number", f[0]),
                )
            })?;
            types.insert(f[1].to_owned(), code);
            Ok(())
        },
    )?;
    Ok(types)
}

/// Hands every processed event's id and type to `each`; returns how many
/// there are of each type.
pub fn processed(
    conn: &Connection,
    path: &Path,
    each: &mut dyn FnMut(&str, &str),
) -> Result<BTreeMap<String, u64>, StateError> {
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    rows(
        conn,
        path,
        "processed_events",
        // A code without its type reads as NULL: refused as damage.
        "SELECT p.id, t.name, p.sum FROM processed_events AS p
         LEFT JOIN event_types AS t ON t.code = p.type",
        |f| format!("event id \"{}\"", f[0]),
        |f| {
            each(f[0], f[1]);
            match per_type.get_mut(f[1]) {
                Some(n) => *n += 1,
                None => {
                    per_type.insert(f[1].to_owned(), 1);
                }
            }
            Ok(())
        },
    )?;
    Ok(per_type)
}

/// The checksum of a blob: CRC-32, as of a row's text.
pub fn blob_sum(bytes: &[u8]) -> i64 {
    i64::from(crc32fast::hash(bytes))
}

/// The filter the state keeps, if it keeps one (`filter` = `kept` in
/// `projector_meta`), each blob checked against its checksum.
pub fn filter(
    conn: &Connection,
    path: &Path,
) -> Result<Option<crate::state::KeptFilter>, StateError> {
    let kept: Option<String> = conn
        .query_row(
            "SELECT value FROM projector_meta WHERE name = 'filter'",
            [],
            |r| r.get(0),
        )
        .ok();
    if kept.as_deref() != Some("kept") {
        return Ok(None);
    }
    let blobs = |table: &str, sql: &str| -> Result<Vec<Vec<u8>>, StateError> {
        let failed = read_failed(path, table);
        let mut statement = conn.prepare(sql).map_err(&failed)?;
        let mut rows = statement.query([]).map_err(&failed)?;
        let mut blobs = Vec::new();
        while let Some(row) = rows.next().map_err(&failed)? {
            let blob: Vec<u8> = row.get(0).map_err(&failed)?;
            let sum: i64 = row.get(1).map_err(&failed)?;
            if sum != blob_sum(&blob) {
                return Err(damaged(
                    path,
                    format!("table {table}: a row does not match its checksum"),
                ));
            }
            blobs.push(blob);
        }
        Ok(blobs)
    };
    let snapshot = blobs("filter", "SELECT bits, sum FROM filter")?.pop();
    let log = blobs(
        "filter_log",
        "SELECT hashes, sum FROM filter_log ORDER BY seq",
    )?;
    Ok(Some(crate::state::KeptFilter { snapshot, log }))
}

/// How many processed ids there are of each type, counted.
pub fn processed_types(
    conn: &Connection,
    path: &Path,
) -> Result<BTreeMap<String, u64>, StateError> {
    let failed = read_failed(path, "processed_events");
    let mut statement = conn
        .prepare(
            "SELECT t.name, count(*) FROM processed_events AS p
             LEFT JOIN event_types AS t ON t.code = p.type GROUP BY t.name",
        )
        .map_err(&failed)?;
    let mut rows = statement.query([]).map_err(&failed)?;
    let mut types = BTreeMap::new();
    while let Some(row) = rows.next().map_err(&failed)? {
        let name: String = row.get(0).map_err(&failed)?;
        let n: i64 = row.get(1).map_err(&failed)?;
        types.insert(name, n as u64);
    }
    Ok(types)
}

/// Hands every document's model, key and JSON text to `each`; returns how
/// many each model has.
pub fn documents(
    conn: &Connection,
    path: &Path,
    mut each: impl FnMut(&str, &str, &str) -> Result<(), StateError>,
) -> Result<BTreeMap<String, u64>, StateError> {
    let mut per_model: BTreeMap<String, u64> = BTreeMap::new();
    let mut last = String::new();
    let mut count = 0;
    rows(
        conn,
        path,
        "documents",
        "SELECT model, key, doc, sum FROM documents",
        |f| format!("read model \"{}\", key \"{}\"", f[0], f[1]),
        |f| {
            // Rows come by model: count a run of them, then file it.
            if f[0] != last {
                if count > 0 {
                    *per_model.entry(std::mem::take(&mut last)).or_default() += count;
                }
                last = f[0].to_owned();
                count = 0;
            }
            count += 1;
            each(f[0], f[1], f[2])
        },
    )?;
    if count > 0 {
        *per_model.entry(last).or_default() += count;
    }
    Ok(per_model)
}

/// The rows found must be the rows committed: fewer means some were lost,
/// more that some were duplicated.
pub fn check_counts(
    path: &Path,
    committed: &Rows,
    documents: &BTreeMap<String, u64>,
    processed: u64,
) -> Result<(), StateError> {
    if processed != committed.processed {
        return Err(damaged(
            path,
            format!(
                "table processed_events holds {processed} rows, and {} were committed",
                committed.processed
            ),
        ));
    }
    let models = committed.documents.keys().chain(documents.keys());
    for model in models {
        let found = documents.get(model).copied().unwrap_or(0);
        let expected = committed.documents.get(model).copied().unwrap_or(0);
        if found != expected {
            return Err(damaged(
                path,
                format!(
                    "table documents holds {found} rows of read model \"{model}\", and {expected} were committed"
                ),
            ));
        }
    }
    Ok(())
}
