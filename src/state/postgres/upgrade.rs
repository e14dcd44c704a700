//! A state of format 2 gets its text in the present held form of lone
//! surrogates ([`crate::state::earlier`]) and its columns in the present
//! form of NUL characters ([`text::to_column`]), so that keys sort by code
//! point. Done once the state is claimed, in one transaction that checks
//! the claim, as a batch is.

use super::super::earlier::{self, Hashes, MARKS};
use super::super::StateError;
use super::client::Transaction;
use super::{ident, text, Books, Failure, PostgresState, FORMAT, FORMAT_2};
use crate::value::surrogate::from_earlier;
use tokio_postgres::types::ToSql;

impl PostgresState {
    /// Upgrades a state of format 2; nothing for one of the present format.
    pub(super) fn upgrade(&mut self) -> Result<(), StateError> {
        let doing = "upgrading the state to the present format";
        let target = &self.books.target;
        let format: Option<String> = self
            .client
            .query_opt(
                &format!(
                    "SELECT value FROM {}._projector_meta WHERE name = 'format'",
                    target.schema_ident()
                ),
                &[],
            )
            .map_err(|e| target.failed(doing, e))?
            .map(|r| r.get(0));
        if format.as_deref() != Some(FORMAT_2) {
            return Ok(());
        }
        self.books.commits = self
            .committed()
            .map_err(|e| self.books.target.failed(doing, e))?;
        self.transaction(doing, held_text).map(drop)
    }
}

/// What a failure while upgrading was doing.
const DOING: &str = "upgrading the state to the present format";

/// Puts the rows of `$1::text[]` (keys), `$2` (bodies) and `$3` (their
/// JSON, when the body is not) into table `{table}`.
const INSERT_ROWS: &str = "INSERT INTO {table} (key, body, doc)
                 SELECT k, b, COALESCE(j, b)::jsonb
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, b, j)";

/// The parameters of [`holds`]: a text in an earlier form shows one of them.
type Marks<'a> = [&'a (dyn ToSql + Sync); 3];

/// Rewrites every row whose text holds lone surrogates (or U+10FFFF, or
/// U+D7FF) in their earlier form, or NUL characters in a column (or
/// U+0001), and the format; logs the new hashes of the ids and keys that
/// changed in the kept filter.
fn held_text(books: &mut Books, tx: &mut Transaction<'_>) -> Result<(), Failure> {
    let books = &*books;
    let s = books.target.schema_ident();
    if meta_value(books, tx, &s, "format")?.as_deref() != Some(FORMAT_2) {
        return Ok(());
    }
    let (mark, earlier_mark, one) = (
        MARKS[1].to_string(),
        MARKS[0].to_string(),
        '\u{1}'.to_string(),
    );
    let marks: Marks<'_> = [&mark, &earlier_mark, &one];
    let mut hashes = Hashes::default();
    let models: Vec<(String, String)> = tx
        .query(&format!("SELECT name, tbl FROM {s}._projector_models"), &[])
        .map_err(|e| books.failure(DOING, e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (model, table) in &models {
        let table = format!("{s}.{}", ident(table));
        rewrite_documents(books, tx, &table, model, &marks, &mut hashes)?;
    }
    rewrite_processed(books, tx, &s, &marks, &mut hashes)?;
    rewrite_meta(books, tx, &s, &hashes)
}

/// The condition that `column` holds one of the marks `$1`, `$2`, `$3`.
fn holds(column: &str) -> String {
    format!("(strpos({column}, $1) > 0 OR strpos({column}, $2) > 0 OR strpos({column}, $3) > 0)")
}

/// The value of meta row `name` in schema `s`.
fn meta_value(
    books: &Books,
    tx: &mut Transaction<'_>,
    s: &str,
    name: &str,
) -> Result<Option<String>, Failure> {
    tx.query_opt(
        &format!("SELECT value FROM {s}._projector_meta WHERE name = $1"),
        &[&name],
    )
    .map(|row| row.map(|r| r.get(0)))
    .map_err(|e| books.failure(DOING, e))
}

/// Rewrites the documents of `model` in `table` whose key or body holds a
/// mark, noting the keys that changed in `hashes`.
fn rewrite_documents(
    books: &Books,
    tx: &mut Transaction<'_>,
    table: &str,
    model: &str,
    marks: &Marks<'_>,
    hashes: &mut Hashes,
) -> Result<(), Failure> {
    let failed = |e| books.failure(DOING, e);
    let rows = tx
        .query(
            &format!(
                "SELECT key, body FROM {table} WHERE {} OR {}",
                holds("key"),
                holds("body")
            ),
            marks,
        )
        .map_err(failed)?;
    if rows.is_empty() {
        return Ok(());
    }
    let (mut keys, mut bodies, mut docs, mut old) = (vec![], vec![], vec![], vec![]);
    for row in &rows {
        let (key, body): (&str, &str) = (row.get(0), row.get(1));
        let column = column(key, |held| hashes.key(model, held));
        let body = from_earlier(body).into_owned();
        docs.push(text::jsonb_text(&body));
        keys.push(column);
        bodies.push(body);
        old.push(key);
    }
    tx.execute(
        &format!("DELETE FROM {table} WHERE key = ANY($1::text[])"),
        &[&old],
    )
    .map_err(failed)?;
    tx.execute(
        &INSERT_ROWS.replace("{table}", table),
        &[&keys, &bodies, &docs],
    )
    .map_err(failed)?;
    Ok(())
}

/// Rewrites the processed ids and types in schema `s` that hold a mark,
/// noting the ids that changed in `hashes`.
fn rewrite_processed(
    books: &Books,
    tx: &mut Transaction<'_>,
    s: &str,
    marks: &Marks<'_>,
    hashes: &mut Hashes,
) -> Result<(), Failure> {
    let failed = |e| books.failure(DOING, e);
    let ids = tx
        .query(
            &format!(
                "SELECT DISTINCT id, type FROM {s}._projector_processed WHERE {} OR {}",
                holds("id"),
                holds("type")
            ),
            marks,
        )
        .map_err(failed)?;
    for row in &ids {
        let (id, ty): (&str, &str) = (row.get(0), row.get(1));
        let new_id = column(id, |held| hashes.id(held));
        let new_type = column(ty, |_| {});
        tx.execute(
            &format!(
                "UPDATE {s}._projector_processed SET id = $1, type = $2 WHERE id = $3 AND type = $4"
            ),
            &[&new_id, &new_type, &id, &ty],
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// Rewrites the meta rows of schema `s` that hold text (rows,
/// subscriptions) and the format; logs `hashes` in a kept filter.
fn rewrite_meta(
    books: &Books,
    tx: &mut Transaction<'_>,
    s: &str,
    hashes: &Hashes,
) -> Result<(), Failure> {
    let failed = |e| books.failure(DOING, e);
    let rewritten = [
        (
            "rows",
            meta_value(books, tx, s, "rows")?.and_then(|t| earlier::rows(&t)),
        ),
        (
            "subscriptions",
            meta_value(books, tx, s, "subscriptions")?.and_then(|t| earlier::subscriptions(&t)),
        ),
        ("format", Some(FORMAT.to_owned())),
    ];
    for (name, value) in rewritten {
        if let Some(value) = value {
            tx.execute(
                &format!("UPDATE {s}._projector_meta SET value = $2 WHERE name = $1"),
                &[&name, &value],
            )
            .map_err(failed)?;
        }
    }
    let filter = meta_value(books, tx, s, "filter")?;
    if let (Some(log), Some("kept")) = (hashes.log(), filter.as_deref()) {
        tx.execute(
            &format!("INSERT INTO {s}._projector_filter_log (hashes) VALUES ($1)"),
            &[&log],
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// A column of format 2 as written now; `changed` is given the text it
/// holds when that text changed (not only how the column holds it).
fn column(earlier_column: &str, changed: impl FnOnce(&str)) -> String {
    let held = text::from_earlier_column(earlier_column);
    let now = from_earlier(&held);
    if now != held {
        changed(&now);
    }
    text::to_column(&now).into_owned()
}
