//! The PostgreSQL state behind `--state postgres://…`.
//!
//! Everything lives in one schema (`projector` unless `--schema` names
//! another). Each read model is a view for applications to query:
//!
//! ```sql
//! SELECT key, doc FROM projector."<model>"   -- doc is jsonb
//! ```
//!
//! over the table that holds its current version:
//!
//! ```sql
//! _projector_doc_<n>(key PRIMARY KEY, body, doc)  -- body: the document's exact JSON text
//! _projector_models(name PRIMARY KEY, definition, tbl)  -- each model's definition and table
//! _projector_processed(id, type)                  -- every event id applied
//! _projector_filter(id, bits), _projector_filter_log(seq, hashes)  -- the filter of ids and keys
//! _projector_meta(name PRIMARY KEY, value)        -- format, event_id rule, rows, subscriptions, commits
//! _projector_lease(id, holder, token, expires, backend_pid, backend_start)
//!                                                 -- who writes (see [`lease`])
//! _projector_rebuild_seen, _projector_rebuild_covered  -- what a rebuild stages, while it runs
//! ```
//!
//! `body` is what the projector reads back, so documents come back exactly
//! as written (key order, number spelling); `doc` is the same document as
//! `jsonb` holds it (see [`text`]). Each batch is one transaction, whose
//! first statement checks that this projector still holds the claim; a
//! rebuild writes the model's new version into a table of its own, batch
//! by batch, and, in the batch that swaps it in, points the view at it and
//! drops the old one, so readers see the old version or the new one, whole.

pub mod client;
mod connect;
mod conninfo;
mod lease;
mod passfile;
mod reader;
pub mod secret;
pub mod settings;
pub mod text;
mod tls;
mod upgrade;

pub use connect::{describe, ident, is_connection_error, Target, DEFAULT_SCHEMA, MAX_NAME_BYTES};
pub use lease::{claim_of, holder, Claim, THIS_WRITER, WRITER_LIVES};
pub use settings::SettingsError;
pub use text::{from_column, to_column};

use super::batch::Batch;
use super::crash::CrashPoint;
use super::meta::Meta;
use super::open::{self, damaged, Backend, Opened, Opening, Source};
use super::reconcile::Request;
use super::rows::Rows;
use super::stored::Stored;
use super::write::{self, Tables};
use super::{FilterWrite, Rejection, StateError, Swap};
use crate::plan::Plan;
use client::{Client, Transaction};
use lease::Heartbeat;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The table of a cluster's main schema that holds the events its units did
/// not project (see `projector rejections`).
pub const REJECTIONS: &str = "rejections";

const FORMAT: &str = "projector-postgres 3";
/// The format before lone surrogates took their present held form, which
/// is upgraded once the state is claimed (see [`upgrade`]).
const FORMAT_2: &str = "projector-postgres 2";
/// The format before the filter was kept, which is upgraded to format 2
/// when opened.
const FORMAT_1: &str = "projector-postgres 1";

/// What format 2 adds to format 1, in schema `{s}`.
const FILTER_TABLES: &str = "
CREATE TABLE IF NOT EXISTS {s}._projector_filter (id int PRIMARY KEY CHECK (id = 1), bits bytea NOT NULL);
CREATE TABLE IF NOT EXISTS {s}._projector_filter_log (seq bigserial PRIMARY KEY, hashes bytea NOT NULL);
";

/// The filter's bits and hashes are kept out of line and not compressed:
/// hashes do not compress, and compressing a 16 MiB filter took a second.
const FILTER_STORAGE: &str = "
ALTER TABLE {s}._projector_filter ALTER COLUMN bits SET STORAGE EXTERNAL;
ALTER TABLE {s}._projector_filter_log ALTER COLUMN hashes SET STORAGE EXTERNAL;
";

/// Where a rebuild stages, in schema `{s}`, the ids it applied (in order)
/// and, when it finds the processed ids anew, the ids by the old rule of
/// the processed events it met; each rebuilt model's new version is a
/// table of its own. Meta `rebuild` names those tables by model, so that
/// a rebuild that did not finish is cleared away when the state is opened.
const STAGING: &str = "
CREATE TABLE {s}._projector_rebuild_seen (seq bigserial PRIMARY KEY, id text NOT NULL, type text NOT NULL);
CREATE INDEX ON {s}._projector_rebuild_seen (id);
CREATE TABLE {s}._projector_rebuild_covered (old text NOT NULL);
CREATE INDEX ON {s}._projector_rebuild_covered (old);
";

const DROP_STAGING: &str = "
DROP TABLE IF EXISTS {s}._projector_rebuild_seen;
DROP TABLE IF EXISTS {s}._projector_rebuild_covered;
DELETE FROM {s}._projector_meta WHERE name = 'rebuild';
";

/// Taken while a state's schema is created, so that of two projectors
/// starting on a new schema at once one creates it.
const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('projector schema ' || $1::text))";

/// Whether schema `$1` holds a state, and how many relations it holds.
const SCHEMA_CONTENTS: &str =
    "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1::text)";

/// The tables of a new state in schema `{s}`, but for the filter's.
const NEW_TABLES: &str = "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE {s}._projector_meta (name text PRIMARY KEY, value text NOT NULL);
         CREATE TABLE {s}._projector_models (name text PRIMARY KEY, definition text NOT NULL, tbl text NOT NULL);
         CREATE TABLE {s}._projector_processed (id text NOT NULL, type text NOT NULL);
         CREATE TABLE {s}._projector_lease (id int PRIMARY KEY CHECK (id = 1), holder text,
             token bigint NOT NULL, expires timestamptz NOT NULL,
             backend_pid int, backend_start timestamptz);
         INSERT INTO {s}._projector_lease VALUES (1, NULL, 0, clock_timestamp());
         CREATE SEQUENCE {s}._projector_tables;
         CREATE INDEX _projector_processed_id ON {s}._projector_processed (id);
";

/// The metadata of a new state in schema `{s}`: its format (`$1`), rows
/// (`$2`), no commits, and a filter kept from the start.
const NEW_META: &str = "INSERT INTO {s}._projector_meta (name, value)
             VALUES ('format', $1), ('rows', $2), ('commits', '0'), ('filter', 'kept')";

/// What every name of the projector's own tables starts with; a read
/// model's view may not.
const OWN_PREFIX: &str = "_projector";

pub struct PostgresState {
    client: Client,
    books: Books,
    heartbeat: Heartbeat,
    crash: CrashPoint,
}

/// What a state knows of its tables, beside the connection.
struct Books {
    target: Target,
    path: PathBuf,
    /// Model names, by [`crate::plan::ModelId`].
    models: Vec<String>,
    /// The table each stored model's documents are in, by name.
    tables: BTreeMap<String, String>,
    /// The fields each configured model indexes, by name.
    indexes: BTreeMap<String, Vec<Vec<String>>>,
    /// A rebuild's tables, by model name: where its batches stage the
    /// documents the model's new version holds (see [`STAGING`]).
    staged: BTreeMap<String, String>,
    /// This process's claim.
    token: i64,
    rows: Rows,
    /// Batches committed so far, as `_projector_meta` counts them: after a
    /// connection lost during a commit, it tells whether the commit landed.
    commits: i64,
    opening: Option<Opening>,
}

/// Why a transaction failed: the connection (worth another try) or
/// anything else.
enum Failure {
    Connection(client::Error),
    State(StateError),
}

impl PostgresState {
    /// Opens (or creates) the state in `target`'s schema for `plan`,
    /// claimed for this process, and restores it (see [`open::restore`]).
    pub fn open(target: &Target, plan: &Plan, request: &Request) -> Result<Opened, StateError> {
        check_names(target, plan)?;
        let (client, created, token) = claimed(target)?;
        let heartbeat = Heartbeat::start(target, token);
        let mut state = PostgresState {
            client,
            books: Books {
                target: target.clone(),
                path: target.path(),
                models: plan.model_names().map(str::to_owned).collect(),
                tables: BTreeMap::new(),
                indexes: plan
                    .model_names()
                    .enumerate()
                    .map(|(i, name)| {
                        let id = crate::plan::ModelId(i as u32);
                        (name.to_owned(), plan.model_indexes(id).to_vec())
                    })
                    .collect(),
                staged: BTreeMap::new(),
                token,
                rows: Rows::default(),
                commits: 0,
                opening: None,
            },
            heartbeat,
            crash: CrashPoint::from_env(),
        };
        state.upgrade()?;
        let (restored, rebuilding, report) = open::restore(&mut state, plan, request, created)?;
        state.sync_indexes()?;
        let reader = reader::PostgresReader::open(
            target,
            state.books.models.clone(),
            state.books.staged.clone(),
        )?;
        Ok(Opened {
            state: Box::new(state),
            reader: Box::new(reader),
            restored,
            rebuilding,
            report,
        })
    }

    /// A reader of what the state in `target` has committed of `models`
    /// (by [`crate::plan::ModelId`], in this order), reading only (without
    /// claiming it); `None` when there is none.
    pub fn reader(
        target: &Target,
        models: Vec<String>,
    ) -> Result<Option<Box<dyn super::reader::Reader>>, StateError> {
        if !exists(&mut target.connect()?, target)? {
            return Ok(None);
        }
        let reader = reader::PostgresReader::open(target, models, BTreeMap::new())?;
        Ok(Some(Box::new(reader)))
    }

    /// What the state in `target` holds, every row read and checked (see
    /// [`crate::state::Location::check`]); `None` when there is none.
    pub fn check(target: &Target) -> Result<Option<Stored>, StateError> {
        let Some(found) = PostgresState::inspect(target)? else {
            return Ok(None);
        };
        let path = target.path();
        let mut client = target.connect()?;
        let failed = |e| target.failed("reading the state", e);
        let mut tx = reading(&mut client).map_err(failed)?;
        let meta = read_meta(&mut tx, target)?;
        let rows = meta
            .get("rows")
            .and_then(|text| Rows::from_json(text))
            .ok_or_else(|| {
                damaged(
                    &path,
                    "table _projector_meta has no count of rows".to_owned(),
                )
            })?;
        let (_, tables) = read_models(&mut tx, target)?;
        let kept = kept_filter(&mut tx, target)?;
        let mut audit =
            super::filter::Audit::new(kept.as_ref()).map_err(|e| damaged(&path, e.to_string()))?;
        scan_processed(&mut tx, target, &mut |id, _| audit.id(id))?;
        for (model, table) in &tables {
            let mut docs = tx
                .rows(&format!(
                    "SELECT key, body FROM {}.{}",
                    target.schema_ident(),
                    ident(table)
                ))
                .map_err(failed)?;
            while let Some(row) = docs.next_row().map_err(failed)? {
                let key: &str = row.get(0);
                audit.key(model, &text::from_column(key));
                if let Err(e) = serde_json::from_str::<crate::store::Document>(row.get(1)) {
                    return Err(damaged(
                        &path,
                        format!(
                            "the document of read model \"{model}\", key \"{}\" is not a JSON object: {e}",
                            text::from_column(key)
                        ),
                    ));
                }
            }
        }
        tx.commit().map_err(failed)?;
        if let Some(what) = audit.lacking {
            return Err(damaged(&path, format!("the kept filter lacks {what}")));
        }
        for model in rows.documents.keys().chain(found.documents.keys()) {
            let held = found.documents_of(model);
            let committed = rows.documents.get(model).copied().unwrap_or(0);
            if held != committed {
                return Err(damaged(
                    &path,
                    format!("read model \"{model}\" holds {held} documents, and {committed} were committed"),
                ));
            }
        }
        if found.processed_total() != rows.processed {
            return Err(damaged(
                &path,
                format!(
                    "table _projector_processed holds {} rows, and {} were committed",
                    found.processed_total(),
                    rows.processed
                ),
            ));
        }
        Ok(Some(found))
    }

    /// What the state in `target` holds, reading only (without claiming
    /// it); `None` when there is none.
    pub fn inspect(target: &Target) -> Result<Option<Stored>, StateError> {
        let mut client = target.connect()?;
        let s = target.schema_ident();
        let failed = |e| target.failed("reading the state", e);
        if !exists(&mut client, target)? {
            return Ok(None);
        }
        let mut tx = reading(&mut client).map_err(failed)?;
        let meta = read_meta(&mut tx, target)?;
        let (definitions, tables) = read_models(&mut tx, target)?;
        let mut documents = BTreeMap::new();
        for (name, table) in &tables {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {s}.{}", ident(table)), &[])
                .map_err(failed)?
                .get(0);
            documents.insert(name.clone(), n as u64);
        }
        let mut processed = BTreeMap::new();
        for row in tx
            .query(
                &format!("SELECT type, count(*) FROM {s}._projector_processed GROUP BY type"),
                &[],
            )
            .map_err(failed)?
        {
            let ty: &str = row.get(0);
            let n: i64 = row.get(1);
            processed.insert(text::from_column(ty).into_owned(), n as u64);
        }
        let path = target.path();
        let meta = Meta::new(&meta, "_projector_meta", &path);
        meta.stored(definitions, documents, processed).map(Some)
    }

    /// Runs `write` in one transaction that first checks the claim. A lost
    /// connection is retried (with backoff, for a bounded time) once it is
    /// known that the transaction did not commit; returns `write`'s
    /// result, or `None` when a reconnection found it committed.
    fn transaction<T>(
        &mut self,
        doing: &'static str,
        mut write: impl FnMut(&mut Books, &mut Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<Option<T>, StateError> {
        let mut backoff = self.books.target.backoff();
        loop {
            self.crash.step();
            let error = match self.attempt(&mut write) {
                Ok(done) => {
                    self.books.commits += 1;
                    return Ok(Some(done));
                }
                Err(Failure::State(e)) => return Err(e),
                Err(Failure::Connection(e)) => e,
            };
            let mut error = error;
            // The commit may have landed before the connection was lost:
            // asked on a new connection, which may be lost too.
            let commits = loop {
                let target = &self.books.target;
                if !backoff.sleep() {
                    return Err(target.failed(doing, error));
                }
                self.client = target.connect()?;
                match self.committed() {
                    Ok(commits) => break commits,
                    Err(e) if is_connection_error(&e) || self.client.is_closed() => error = e,
                    Err(e) => return Err(self.books.target.failed(doing, e)),
                }
            };
            let landed = commits == self.books.commits + 1;
            crate::util::log::log(&format!(
                "{}: the connection was lost while {doing} ({}); reconnected after {:.1} s; {}",
                self.books.path.display(),
                describe(&error),
                backoff.elapsed().as_secs_f64(),
                match landed {
                    true => "the commit had landed",
                    false => "trying again",
                }
            ));
            if landed {
                self.books.commits = commits;
                return Ok(None);
            }
        }
    }

    fn attempt<T>(
        &mut self,
        write: &mut impl FnMut(&mut Books, &mut Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let books = &mut self.books;
        let mut tx = self.client.transaction().map_err(Failure::Connection)?;
        let held = tx
            .execute(
                &lease::renew_writer_sql(&books.target),
                &[&books.token, &books.target.lease.as_secs_f64()],
            )
            .map_err(|e| books.failure("checking the claim", e))?;
        if held != 1 {
            return Err(Failure::State(StateError::Fenced {
                path: books.path.clone(),
            }));
        }
        let done = write(books, &mut tx)?;
        let commits = (books.commits + 1).to_string();
        tx.execute(
            &format!(
                "UPDATE {}._projector_meta SET value = $1 WHERE name = 'commits'",
                books.target.schema_ident()
            ),
            &[&commits],
        )
        .map_err(|e| books.failure("counting the commit", e))?;
        self.crash.step();
        tx.commit().map_err(|e| books.failure("committing", e))?;
        Ok(done)
    }

    /// Runs `read` (reading only), connecting again and running it anew
    /// while the connection is lost, for the time the target allows.
    fn read_retrying<T>(
        &mut self,
        mut read: impl FnMut(&mut Client) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut backoff = self.books.target.backoff();
        loop {
            match read(&mut self.client) {
                Err(StateError::Postgres { error, .. })
                    if is_connection_error(&error) && backoff.sleep() =>
                {
                    self.client = self.books.target.connect()?;
                }
                other => return other,
            }
        }
    }

    /// Makes the indexes of every stored model's table those its `indexes`
    /// declares (a model being rebuilt gets them with its new table).
    fn sync_indexes(&mut self) -> Result<(), StateError> {
        let doing = "creating the declared indexes";
        let tables: Vec<(String, String)> = self
            .books
            .tables
            .iter()
            .filter(|(name, _)| self.books.indexes.contains_key(*name))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        self.transaction(doing, |books, tx| {
            // Ids are looked up by the batch, and the filter is kept
            // uncompressed; a state made before that was so gets both once.
            let s = books.target.schema_ident();
            tx.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS _projector_processed_id ON {s}._projector_processed (id);
                 {}",
                FILTER_STORAGE.replace("{s}", &s)
            ))
            .map_err(|e| books.failure("indexing the processed ids", e))?;
            for (name, table) in &tables {
                books.index(tx, name, table)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// How many batches the state says are committed.
    fn committed(&mut self) -> Result<i64, client::Error> {
        let text: String = self
            .client
            .query_one(
                &format!(
                    "SELECT value FROM {}._projector_meta WHERE name = 'commits'",
                    self.books.target.schema_ident()
                ),
                &[],
            )?
            .get(0);
        Ok(text.parse().unwrap_or(-1))
    }

    /// The tables a rebuild staged in, by model, as meta `rebuild` names
    /// them; `None` when no rebuild did.
    fn staged_tables(
        &mut self,
        doing: &'static str,
    ) -> Result<Option<BTreeMap<String, String>>, StateError> {
        let target = self.books.target.clone();
        let sql = format!(
            "SELECT value FROM {}._projector_meta WHERE name = 'rebuild'",
            target.schema_ident()
        );
        let text = self.read_retrying(|client| {
            let row = client
                .query_opt(&sql, &[])
                .map_err(|e| target.failed(doing, e))?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        })?;
        match text {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                damaged(
                    &self.books.path,
                    format!("meta \"rebuild\" does not name tables: {e}"),
                )
            }),
        }
    }

    /// Reads back the bookkeeping a commit changed: the tables of the
    /// models and the row counts.
    fn reload(&mut self, doing: &'static str) -> Result<(), StateError> {
        let target = self.books.target.clone();
        let s = target.schema_ident();
        // Read again whole on a new connection when the one it was read on
        // is lost.
        let (tables, rows) = self.read_retrying(|client| {
            let failed = |e| target.failed(doing, e);
            let tables = client
                .query(&format!("SELECT name, tbl FROM {s}._projector_models"), &[])
                .map_err(failed)?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            let rows: String = client
                .query_one(
                    &format!("SELECT value FROM {s}._projector_meta WHERE name = 'rows'"),
                    &[],
                )
                .map_err(failed)?
                .get(0);
            Ok((tables, rows))
        })?;
        let books = &mut self.books;
        books.tables = tables;
        books.rows = Rows::from_json(&rows).unwrap_or_default();
        books.opening = None;
        Ok(())
    }
}

impl Books {
    fn failure(&self, doing: &'static str, e: client::Error) -> Failure {
        match is_connection_error(&e) {
            true => Failure::Connection(e),
            false => Failure::State(self.target.failed(doing, e)),
        }
    }

    /// Writes what opening decided; the tables it makes for new models go
    /// into `fresh`.
    fn write_opening(
        &self,
        tx: &mut Transaction<'_>,
        opening: &Opening,
        fresh: &mut BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        for (name, _) in &opening.dropped {
            let dropping = |e| self.failure("dropping a removed model", e);
            tx.batch_execute(&format!("DROP VIEW IF EXISTS {s}.{} CASCADE", ident(name)))
                .map_err(dropping)?;
            if let Some(table) = self.tables.get(name) {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {s}.{}", ident(table)))
                    .map_err(dropping)?;
            }
            tx.execute(
                &format!("DELETE FROM {s}._projector_models WHERE name = $1"),
                &[name],
            )
            .map_err(dropping)?;
        }
        for (name, definition) in &opening.recorded {
            match self.tables.get(name) {
                Some(table) => self.put_model(tx, name, definition, table)?,
                None => {
                    let table = self.create_table(tx)?;
                    self.index(tx, name, &table)?;
                    self.point_view(tx, name, &table)?;
                    self.put_model(tx, name, definition, &table)?;
                    fresh.insert(name.clone(), table);
                }
            }
        }
        Ok(())
    }

    fn create_table(&self, tx: &mut Transaction<'_>) -> Result<String, Failure> {
        let s = self.target.schema_ident();
        let creating = |e| self.failure("creating a read model's table", e);
        let n: i64 = tx
            .query_one(
                "SELECT nextval($1::text::regclass)",
                &[&format!("{s}._projector_tables")],
            )
            .map_err(creating)?
            .get(0);
        let table = format!("{OWN_PREFIX}_doc_{n}");
        tx.batch_execute(&format!(
            "CREATE TABLE {s}.{} (key text COLLATE \"C\" PRIMARY KEY, body text NOT NULL, doc jsonb NOT NULL)",
            ident(&table)
        ))
        .map_err(creating)?;
        Ok(table)
    }

    /// Creates the indexes `model` declares on `table`, and drops those it
    /// no longer declares. Each is named after the table and its field's
    /// path, and indexes the expression applications query it with:
    /// `doc ->> 'email'`, `doc -> 'address' ->> 'city'`.
    fn index(&self, tx: &mut Transaction<'_>, model: &str, table: &str) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        let indexing = |e| self.failure("creating the declared indexes", e);
        let ours: Vec<String> = tx
            .query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2
                 AND starts_with(indexname, $2 || '_ix_')",
                &[&self.target.schema, &table],
            )
            .map_err(indexing)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut declared = Vec::new();
        for path in self.indexes.get(model).map_or(&[][..], Vec::as_slice) {
            let name = format!(
                "{table}_ix_{:08x}",
                crc32fast::hash(path.join("\0").as_bytes())
            );
            // Only what is missing: an index made takes a lock on the table
            // its readers would queue behind.
            if !ours.contains(&name) {
                tx.batch_execute(&format!(
                    "CREATE INDEX {} ON {s}.{} (({}))",
                    ident(&name),
                    ident(table),
                    index_expression(path)
                ))
                .map_err(indexing)?;
            }
            declared.push(name);
        }
        for name in ours {
            if !declared.contains(&name) {
                tx.batch_execute(&format!("DROP INDEX {s}.{}", ident(&name)))
                    .map_err(indexing)?;
            }
        }
        Ok(())
    }

    fn point_view(
        &self,
        tx: &mut Transaction<'_>,
        model: &str,
        table: &str,
    ) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        tx.batch_execute(&format!(
            "CREATE OR REPLACE VIEW {s}.{} AS SELECT key, doc FROM {s}.{}",
            ident(model),
            ident(table)
        ))
        .map_err(|e| self.failure("creating a read model's view", e))
    }

    fn put_model(
        &self,
        tx: &mut Transaction<'_>,
        name: &str,
        definition: &str,
        table: &str,
    ) -> Result<(), Failure> {
        tx.execute(
            &format!(
                "INSERT INTO {}._projector_models (name, definition, tbl) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, tbl = excluded.tbl",
                self.target.schema_ident()
            ),
            &[&name, &definition, &table],
        )
        .map(drop)
        .map_err(|e| self.failure("recording the model definitions", e))
    }

    fn put_meta(
        &self,
        tx: &mut Transaction<'_>,
        entries: &[(&str, String)],
    ) -> Result<(), Failure> {
        let names: Vec<&str> = entries.iter().map(|(n, _)| *n).collect();
        let values: Vec<&str> = entries.iter().map(|(_, v)| v.as_str()).collect();
        tx.execute(
            &format!(
                "INSERT INTO {}._projector_meta (name, value)
                 SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                self.target.schema_ident()
            ),
            &[&names, &values],
        )
        .map(drop)
        .map_err(|e| self.failure("recording the state's metadata", e))
    }

    /// Makes what a rebuild that did not finish staged go; for a rebuild
    /// of `rebuilt`, makes the tables its batches stage in.
    fn stage(
        &self,
        tx: &mut Transaction<'_>,
        left: &BTreeMap<String, String>,
        rebuilt: &[String],
    ) -> Result<BTreeMap<String, String>, Failure> {
        let s = self.target.schema_ident();
        let staging = |e| self.failure("making room for a rebuild", e);
        for table in left.values() {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {s}.{}", ident(table)))
                .map_err(staging)?;
        }
        tx.batch_execute(&DROP_STAGING.replace("{s}", &s))
            .map_err(staging)?;
        let mut staged = BTreeMap::new();
        if rebuilt.is_empty() {
            return Ok(staged);
        }
        tx.batch_execute(&STAGING.replace("{s}", &s))
            .map_err(staging)?;
        for name in rebuilt {
            staged.insert(name.clone(), self.create_table(tx)?);
        }
        let tables = serde_json::to_string(&staged).expect("names serialize");
        self.put_meta(tx, &[("rebuild", tables)])?;
        Ok(staged)
    }

    /// Points the rebuilt models' views at their new versions (and drops
    /// the old ones), puts the ids the rebuild applied in place of the
    /// processed ones when it found them anew; the staging goes.
    fn swap_in(&self, tx: &mut Transaction<'_>, swap: &Swap) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        if swap.event_id.is_some() {
            tx.batch_execute(&format!(
                "TRUNCATE {s}._projector_processed;
                 INSERT INTO {s}._projector_processed (id, type)
                 SELECT id, type FROM {s}._projector_rebuild_seen ORDER BY seq"
            ))
            .map_err(|e| self.failure("replacing the processed ids", e))?;
        }
        for (model, definition) in &swap.models {
            let name = &self.models[model.0 as usize];
            let Some(table) = self.staged.get(name) else {
                return Err(Failure::State(damaged(
                    &self.path,
                    format!("the rebuild of read model \"{name}\" has no table"),
                )));
            };
            self.index(tx, name, table)?;
            self.point_view(tx, name, table)?;
            if let Some(old) = self.tables.get(name) {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {s}.{}", ident(old)))
                    .map_err(|e| self.failure("dropping a read model's old version", e))?;
            }
            self.put_model(tx, name, definition, table)?;
        }
        tx.batch_execute(&DROP_STAGING.replace("{s}", &s))
            .map_err(|e| self.failure("swapping the rebuilt read models in", e))
    }

    /// The events refused in this batch, in the cluster's `rejections`
    /// table; one refused again (after a restart) replaces its row.
    fn write_rejections(
        &self,
        tx: &mut Transaction<'_>,
        rejections: &[Rejection],
    ) -> Result<(), Failure> {
        let Some((schema, unit)) = &self.target.rejections else {
            return Ok(());
        };
        let sql = format!(
            "INSERT INTO {}.{} (unit, position, id, code, error, text, status, documents, behind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9)
             ON CONFLICT (unit, position) DO UPDATE
             SET id = excluded.id, code = excluded.code, error = excluded.error,
                 text = excluded.text, at = now(), status = excluded.status,
                 documents = excluded.documents, behind = excluded.behind",
            ident(schema),
            REJECTIONS
        );
        for r in rejections {
            let id = r.id.as_deref().map(text::to_column);
            let documents: Vec<[Cow<'_, str>; 2]> = r
                .documents
                .iter()
                .map(|(model, key)| [text::to_column(model), text::to_column(key)])
                .collect();
            let documents = serde_json::to_string(&documents).expect("pairs of strings");
            tx.execute(
                &sql,
                &[
                    unit,
                    &(r.position as i64),
                    &id.as_deref(),
                    &r.code,
                    &text::to_column(&r.error).as_ref(),
                    &text::to_column(&r.text).as_ref(),
                    &r.status.as_str(),
                    &documents,
                    &r.behind.map(|b| b as i64),
                ],
            )
            .map_err(|e| self.failure("recording an event refused", e))?;
        }
        Ok(())
    }

    /// What the batch keeps of the filter: its hashes, logged, or the whole
    /// filter in place of the kept one and its log.
    fn write_filter(&self, tx: &mut Transaction<'_>, write: &FilterWrite) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        let keeping = |e| self.failure("keeping the filter", e);
        match write {
            FilterWrite::Log(hashes) => tx
                .execute(
                    &format!("INSERT INTO {s}._projector_filter_log (hashes) VALUES ($1)"),
                    &[hashes],
                )
                .map(drop)
                .map_err(keeping),
            FilterWrite::Snapshot(bits) => {
                tx.execute(
                    &format!(
                        "INSERT INTO {s}._projector_filter (id, bits) VALUES (1, $1)
                         ON CONFLICT (id) DO UPDATE SET bits = excluded.bits"
                    ),
                    &[bits],
                )
                .map_err(keeping)?;
                tx.batch_execute(&format!("TRUNCATE {s}._projector_filter_log"))
                    .map_err(keeping)
            }
        }
    }

    fn write_ids(
        &self,
        tx: &mut Transaction<'_>,
        batch: &Batch,
        table: &str,
    ) -> Result<(), Failure> {
        let mut ids = Vec::new();
        let mut types = Vec::new();
        for (id, ty) in batch.ids() {
            ids.push(text::to_column(id));
            types.push(text::to_column(ty));
        }
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.iter().map(|c| c.as_ref()).collect();
        let types: Vec<&str> = types.iter().map(|c| c.as_ref()).collect();
        tx.execute(
            &format!(
                "INSERT INTO {}.{table} (id, type)
                 SELECT * FROM unnest($1::text[], $2::text[])",
                self.target.schema_ident()
            ),
            &[&ids, &types],
        )
        .map(drop)
        .map_err(|e| self.failure("recording event ids", e))
    }

    /// Writes each model's changed documents with one statement, and
    /// deletes its removed ones with another; a model in `fresh` is
    /// written to the table made for it in this transaction.
    fn write_documents(
        &self,
        tx: &mut Transaction<'_>,
        batch: &Batch,
        fresh: &BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        let s = self.target.schema_ident();
        let mut documents = batch.documents().peekable();
        while let Some(&(model, _, _)) = documents.peek() {
            let name = &self.models[model.0 as usize];
            let Some(table) = fresh.get(name).or_else(|| self.tables.get(name)) else {
                return Err(Failure::State(damaged(
                    &self.path,
                    format!("read model \"{name}\" has no table"),
                )));
            };
            let table = format!("{s}.{}", ident(table));
            let (mut keys, mut bodies, mut docs, mut gone) = (vec![], vec![], vec![], vec![]);
            while let Some((_, key, body)) = documents.next_if(|(m, _, _)| *m == model) {
                match body {
                    Some(body) => {
                        keys.push(text::to_column(key));
                        bodies.push(body);
                        docs.push(text::jsonb_text(body));
                    }
                    None => gone.push(text::to_column(key)),
                }
            }
            let writing = |e| self.failure("writing documents", e);
            if !keys.is_empty() {
                let keys: Vec<&str> = keys.iter().map(|c| c.as_ref()).collect();
                tx.execute(
                    &format!(
                        "INSERT INTO {table} (key, body, doc)
                         SELECT k, b, COALESCE(j, b)::jsonb
                         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, b, j)
                         ON CONFLICT (key) DO UPDATE SET body = excluded.body, doc = excluded.doc"
                    ),
                    &[&keys, &bodies, &docs],
                )
                .map_err(writing)?;
            }
            if !gone.is_empty() {
                let gone: Vec<&str> = gone.iter().map(|c| c.as_ref()).collect();
                tx.execute(
                    &format!("DELETE FROM {table} WHERE key = ANY($1::text[])"),
                    &[&gone],
                )
                .map_err(writing)?;
            }
        }
        Ok(())
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        Failure::State(e)
    }
}

/// The statements of a batch (see [`write::batch`]), in one transaction.
struct PgTables<'a, 't> {
    books: &'a Books,
    tx: &'a mut Transaction<'t>,
    /// Tables made in this transaction, for new models.
    fresh: BTreeMap<String, String>,
}

impl<'a, 't> PgTables<'a, 't> {
    fn new(books: &'a Books, tx: &'a mut Transaction<'t>) -> Self {
        PgTables {
            books,
            tx,
            fresh: BTreeMap::new(),
        }
    }
}

impl Tables for PgTables<'_, '_> {
    type Error = Failure;

    fn write_opening(&mut self, opening: &Opening) -> Result<(), Failure> {
        self.books.write_opening(self.tx, opening, &mut self.fresh)
    }

    fn swap_in(&mut self, swap: &Swap) -> Result<(), Failure> {
        self.books.swap_in(self.tx, swap)
    }

    fn write_ids(&mut self, batch: &Batch, staged: bool) -> Result<(), Failure> {
        let table = match staged {
            true => "_projector_rebuild_seen",
            false => "_projector_processed",
        };
        self.books.write_ids(self.tx, batch, table)
    }

    fn write_covered(&mut self, batch: &Batch) -> Result<(), Failure> {
        let covered: Vec<_> = batch.covered().map(text::to_column).collect();
        if covered.is_empty() {
            return Ok(());
        }
        let covered: Vec<&str> = covered.iter().map(|c| c.as_ref()).collect();
        self.tx
            .execute(
                &format!(
                    "INSERT INTO {}._projector_rebuild_covered (old) SELECT * FROM unnest($1::text[])",
                    self.books.target.schema_ident()
                ),
                &[&covered],
            )
            .map(drop)
            .map_err(|e| self.books.failure("staging a rebuild's ids", e))
    }

    fn write_documents(&mut self, batch: &Batch, staged: bool) -> Result<(), Failure> {
        let tables = match staged {
            true => &self.books.staged,
            false => &self.fresh,
        };
        self.books.write_documents(self.tx, batch, tables)
    }

    fn write_filter(&mut self, write: &FilterWrite) -> Result<(), Failure> {
        self.books.write_filter(self.tx, write)
    }

    fn put_meta(&mut self, entries: &[(&str, String)]) -> Result<(), Failure> {
        self.books.put_meta(self.tx, entries)
    }

    fn delete_meta(&mut self, name: &str) -> Result<(), Failure> {
        let sql = format!(
            "DELETE FROM {}._projector_meta WHERE name = $1",
            self.books.target.schema_ident()
        );
        self.tx
            .execute(&sql, &[&name])
            .map(drop)
            .map_err(|e| self.books.failure("recording the state's metadata", e))
    }

    fn write_rejections(&mut self, rejections: &[Rejection]) -> Result<(), Failure> {
        self.books.write_rejections(self.tx, rejections)
    }
}

impl Source for PostgresState {
    fn location(&self) -> &Path {
        &self.books.path
    }

    fn read_back(&mut self) -> Result<Stored, StateError> {
        let target = self.books.target.clone();
        let path = self.books.path.clone();
        let (stored, rows, tables, commits) =
            self.read_retrying(|client| read_state(client, &target, &path))?;
        self.books.rows = rows;
        self.books.tables = tables;
        self.books.commits = commits;
        Ok(stored)
    }

    fn stage(&mut self, rebuilt: &[String], _rekey: bool) -> Result<(), StateError> {
        let doing = "making room for a rebuild";
        let left = self.staged_tables(doing)?;
        if left.is_none() && rebuilt.is_empty() {
            return Ok(());
        }
        let left = left.unwrap_or_default();
        let staged = self.transaction(doing, |books, tx| books.stage(tx, &left, rebuilt))?;
        self.books.staged = match staged {
            Some(staged) => staged,
            // Committed before the connection was lost: read back what.
            None => self.staged_tables(doing)?.unwrap_or_default(),
        };
        Ok(())
    }

    fn read_filter(&mut self) -> Result<Option<super::KeptFilter>, StateError> {
        let target = self.books.target.clone();
        self.read_retrying(|client| {
            let failed = |e| target.failed("reading the filter", e);
            let mut tx = reading(client).map_err(failed)?;
            let kept = kept_filter(&mut tx, &target)?;
            tx.commit().map_err(failed)?;
            Ok(kept)
        })
    }

    fn commit_opening(&mut self, opening: &Opening) -> Result<(), StateError> {
        if opening.is_empty() {
            return Ok(());
        }
        let doing = "recording the read-model definitions";
        self.transaction(doing, |books, tx| {
            write::opening(&mut PgTables::new(books, tx), opening, &books.rows)
        })?;
        self.reload(doing)
    }

    fn defer_opening(&mut self, opening: Opening) {
        self.books.opening = Some(opening);
    }
}

impl Backend for PostgresState {
    fn write(&mut self, batch: &Batch) -> Result<(), StateError> {
        let doing = "committing a batch";
        let write = |books: &mut Books, tx: &mut Transaction<'_>| {
            // A rebuild's deferred opening is written with its swap.
            let opening = books.opening.as_ref().filter(|_| !batch.staged);
            let tables = &mut PgTables::new(books, tx);
            write::batch(tables, batch, opening, &books.rows, &books.models)
        };
        if batch.staged {
            self.transaction(doing, write)?;
            return Ok(());
        }
        if batch.swap.is_some() {
            // Nothing is staged after a swap: committed, it dropped the
            // staging; failed, it leaves a rebuild to run again.
            let written = self.transaction(doing, write);
            self.books.staged.clear();
            written?;
            return self.reload(doing);
        }
        let rows = self.transaction(doing, write)?;
        match rows {
            Some(rows) if batch.swap.is_none() && self.books.opening.is_none() => {
                self.books.rows = rows;
                Ok(())
            }
            // Tables were made or dropped, or a reconnection found the
            // batch committed: read back what it did.
            _ => self.reload(doing),
        }
    }
}

impl Drop for PostgresState {
    /// Gives the claim up: a successor need not wait for it to lapse.
    fn drop(&mut self) {
        self.heartbeat.stop();
        let _ = lease::release(&mut self.client, &self.books.target, self.books.token);
    }
}

/// Whether the schema holds a state.
/// The expression a declared index indexes, the one applications query a
/// field with: `doc ->> 'email'`, `doc -> 'address' ->> 'city'`.
fn index_expression(path: &[String]) -> String {
    let literal = |field: &String| format!("'{}'", field.replace('\'', "''"));
    let (last, through) = path.split_last().expect("a path names a field");
    let mut expression = String::from("doc");
    for field in through {
        expression.push_str(&format!(" -> {}", literal(field)));
    }
    expression.push_str(&format!(" ->> {}", literal(last)));
    expression
}

fn exists(client: &mut Client, target: &Target) -> Result<bool, StateError> {
    client
        .query_one(
            "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL",
            &[&target.schema],
        )
        .map(|row| row.get(0))
        .map_err(|e| target.failed("reading the state", e))
}

/// A read-only transaction that sees one snapshot.
fn reading(client: &mut Client) -> Result<Transaction<'_>, client::Error> {
    client.snapshot()
}

/// Refuses model names PostgreSQL would cut short or that would take the
/// name of the projector's own tables.
fn check_names(target: &Target, plan: &Plan) -> Result<(), StateError> {
    for name in plan.model_names() {
        let reason = if name.len() > MAX_NAME_BYTES {
            format!(
                "it is {} bytes long, and PostgreSQL keeps names of at most {MAX_NAME_BYTES}",
                name.len()
            )
        } else if name.starts_with(OWN_PREFIX) {
            format!("names that start with \"{OWN_PREFIX}\" are the projector's own tables'")
        } else {
            continue;
        };
        return Err(StateError::Unsupported {
            path: target.path(),
            reason: format!(
                "read model \"{name}\" cannot be a view in PostgreSQL: {reason}; rename it"
            ),
        });
    }
    Ok(())
}

/// A connection to the state, its schema created if need be (and whether
/// it was), and its claim's token; a connection lost on the way is made
/// again, for as long as the target's retry time allows.
fn claimed(target: &Target) -> Result<(Client, bool, i64), StateError> {
    let mut backoff = target.backoff();
    loop {
        let attempt = target.connect().and_then(|mut client| {
            let created = create_schema(&mut client, target)?;
            let token = lease::claim(&mut client, target)?;
            Ok((client, created, token))
        });
        let lost = match &attempt {
            Err(StateError::Postgres { error, doing, .. }) if is_connection_error(error) => {
                Some((*doing, describe(error)))
            }
            _ => None,
        };
        let Some(pause) = lost.as_ref().and_then(|_| backoff.pause()) else {
            return attempt;
        };
        let (doing, why) = lost.expect("a lost connection");
        crate::util::log::log(&format!(
            "{}: the connection was lost while {doing} ({why}); trying again",
            target.display()
        ));
        std::thread::sleep(pause);
    }
}

/// Creates the state's schema and tables, unless they exist; returns
/// whether it did. A schema that holds anything else is refused.
fn create_schema(client: &mut Client, target: &Target) -> Result<bool, StateError> {
    let s = target.schema_ident();
    let failed = |e| target.failed("creating the state", e);
    let mut tx = client.transaction().map_err(failed)?;
    // Two projectors starting on a new schema at once: one creates it.
    tx.execute(SCHEMA_LOCK, &[&target.schema]).map_err(failed)?;
    let row = tx
        .query_one(SCHEMA_CONTENTS, &[&target.schema])
        .map_err(failed)?;
    let (exists, objects): (bool, i64) = (row.get(0), row.get(1));
    if exists {
        open_schema(&mut tx, target, &s)?;
        tx.commit().map_err(failed)?;
        return Ok(false);
    }
    if objects > 0 {
        return Err(StateError::NotAState {
            path: target.path(),
            reason: format!(
                "schema \"{}\" holds {objects} tables, views or sequences that a projector did not make; choose another with --schema",
                target.schema
            ),
        });
    }
    let rows = Rows::default().to_json();
    let tables = NEW_TABLES.replace("{s}", &s) + &FILTER_TABLES.replace("{s}", &s);
    tx.batch_execute(&tables).map_err(failed)?;
    // A new state keeps its filter from the start: it holds every id and key.
    tx.execute(&NEW_META.replace("{s}", &s), &[&FORMAT, &rows])
        .map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(true)
}

/// What opening does with a schema that holds a state, by its format.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// Format 1: add the filter's tables (it keeps no filter).
    Upgrade,
    /// A format this projector reads as it is.
    Open,
    /// A format this projector does not read.
    Refuse,
}

/// What to do with a state of `format`.
fn existing(format: Option<&str>) -> Existing {
    match format {
        Some(FORMAT_1) => Existing::Upgrade,
        Some(FORMAT | FORMAT_2) => Existing::Open,
        _ => Existing::Refuse,
    }
}

/// Readies, in `tx`, the state that schema `s` already holds: upgrades
/// format 1, refuses a format this projector does not read, and adds the
/// lease's backend columns.
fn open_schema(tx: &mut Transaction<'_>, target: &Target, s: &str) -> Result<(), StateError> {
    let failed = |e| target.failed("creating the state", e);
    let format: Option<String> = tx
        .query_opt(
            &format!("SELECT value FROM {s}._projector_meta WHERE name = 'format'"),
            &[],
        )
        .map_err(failed)?
        .map(|r| r.get(0));
    match existing(format.as_deref()) {
        Existing::Upgrade => {
            // Upgraded: it keeps no filter (what it holds is not in one).
            tx.batch_execute(&FILTER_TABLES.replace("{s}", s))
                .map_err(failed)?;
            tx.execute(
                &format!("UPDATE {s}._projector_meta SET value = $1 WHERE name = 'format'"),
                &[&FORMAT_2],
            )
            .map_err(failed)?;
        }
        Existing::Open => {}
        Existing::Refuse => {
            return Err(StateError::NotAState {
                path: target.path(),
                reason: format!("its format is {format:?}, and this projector reads \"{FORMAT}\""),
            })
        }
    }
    lease::add_backend_columns(tx, s).map_err(failed)
}

fn read_meta(
    tx: &mut Transaction<'_>,
    target: &Target,
) -> Result<BTreeMap<String, String>, StateError> {
    let rows = tx
        .query(
            &format!(
                "SELECT name, value FROM {}._projector_meta",
                target.schema_ident()
            ),
            &[],
        )
        .map_err(|e| target.failed("reading the state", e))?;
    let meta: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let path = target.path();
    Meta::new(&meta, "_projector_meta", &path).check_format(FORMAT, &[FORMAT_2, FORMAT_1])?;
    Ok(meta)
}

/// Each stored model's definition, and the table of its documents.
#[allow(clippy::type_complexity)]
fn read_models(
    tx: &mut Transaction<'_>,
    target: &Target,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), StateError> {
    let rows = tx
        .query(
            &format!(
                "SELECT name, definition, tbl FROM {}._projector_models",
                target.schema_ident()
            ),
            &[],
        )
        .map_err(|e| target.failed("reading the state", e))?;
    let definitions = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let tables = rows.iter().map(|r| (r.get(0), r.get(2))).collect();
    Ok((definitions, tables))
}

/// Hands every processed id and its type to `each`, streaming them.
fn scan_processed(
    tx: &mut Transaction<'_>,
    target: &Target,
    each: &mut dyn FnMut(&str, &str),
) -> Result<(), StateError> {
    let failed = |e| target.failed("reading the processed ids", e);
    let mut ids = tx
        .rows(&format!(
            "SELECT id, type FROM {}._projector_processed",
            target.schema_ident()
        ))
        .map_err(failed)?;
    while let Some(row) = ids.next_row().map_err(failed)? {
        let id: &str = row.get(0);
        let ty: &str = row.get(1);
        each(&text::from_column(id), &text::from_column(ty));
    }
    Ok(())
}

/// The filter the state keeps, if it keeps one (`filter` = `kept` in
/// `_projector_meta`).
fn kept_filter(
    tx: &mut Transaction<'_>,
    target: &Target,
) -> Result<Option<super::KeptFilter>, StateError> {
    let s = target.schema_ident();
    let failed = |e| target.failed("reading the filter", e);
    let kept: Option<String> = tx
        .query_opt(
            &format!("SELECT value FROM {s}._projector_meta WHERE name = 'filter'"),
            &[],
        )
        .map_err(failed)?
        .map(|r| r.get(0));
    if kept.as_deref() != Some("kept") {
        return Ok(None);
    }
    let snapshot = tx
        .query_opt(&format!("SELECT bits FROM {s}._projector_filter"), &[])
        .map_err(failed)?
        .map(|r| r.get(0));
    let log = tx
        .query(
            &format!("SELECT hashes FROM {s}._projector_filter_log ORDER BY seq"),
            &[],
        )
        .map_err(failed)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(super::KeptFilter { snapshot, log }))
}

/// What a state holds beside its rows (see [`Source::read_back`]), and the
/// bookkeeping a writer keeps of it: row counts, tables, commits.
#[allow(clippy::type_complexity)]
fn read_state(
    client: &mut Client,
    target: &Target,
    path: &Path,
) -> Result<(Stored, Rows, BTreeMap<String, String>, i64), StateError> {
    let s = target.schema_ident();
    let failed = |e| target.failed("reading the state", e);
    let mut tx = reading(client).map_err(failed)?;
    let entries = read_meta(&mut tx, target)?;
    let meta = Meta::new(&entries, "_projector_meta", path);
    let mut rows = meta.rows()?;
    let commits = meta
        .get("commits")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            damaged(
                path,
                "table _projector_meta has no count of commits".to_owned(),
            )
        })?;
    let (definitions, tables) = read_models(&mut tx, target)?;
    if rows.types.is_none() {
        // Written before ids were counted by type: counted once.
        let sql = format!("SELECT type, count(*) FROM {s}._projector_processed GROUP BY type");
        let counted = tx.query(&sql, &[]).map_err(failed)?;
        rows.types = Some(
            counted
                .iter()
                .map(|r| {
                    let ty: &str = r.get(0);
                    (
                        text::from_column(ty).into_owned(),
                        r.get::<_, i64>(1) as u64,
                    )
                })
                .collect(),
        );
    }
    tx.commit().map_err(failed)?;
    let processed = rows.types.clone().unwrap_or_default();
    let stored = meta.stored(definitions, rows.documents.clone(), processed)?;
    Ok((stored, rows, tables, commits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_state_is_upgraded_opened_or_refused_by_its_format() {
        assert_eq!(existing(Some(FORMAT_1)), Existing::Upgrade);
        assert_eq!(existing(Some(FORMAT_2)), Existing::Open);
        assert_eq!(existing(Some(FORMAT)), Existing::Open);
        assert_eq!(existing(Some("projector-postgres 9")), Existing::Refuse);
        assert_eq!(existing(None), Existing::Refuse);
    }
}
