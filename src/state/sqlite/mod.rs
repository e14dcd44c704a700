//! The SQLite state file behind `--state`.
//!
//! Schema (query it with the `sqlite3` shell, while a projector runs too):
//!
//! ```sql
//! projector_meta(name PRIMARY KEY, value, sum)   -- format, event_id rule, rows, subscriptions
//! models(name PRIMARY KEY, definition, sum)      -- each read model's definition when last built
//! documents(model, key, doc, sum, PRIMARY KEY (model, key))  -- doc is the document as JSON text
//! event_types(code INTEGER PRIMARY KEY, name, sum)  -- the event types seen, numbered
//! processed_events(id, type, sum)                -- every event id applied, and its type's code
//! filter(id, bits, sum), filter_log(seq, hashes, sum)  -- the filter of ids and keys
//! rebuild_documents, rebuild_seen, rebuild_covered  -- what a rebuild stages, while it runs
//! ```
//!
//! `sum` is each row's checksum ([`super::checksum`]); `projector_meta`'s
//! `rows` entry holds how many rows each table had at the last commit (and
//! how many ids of each type). A run checks the checksum of each row it
//! reads; `projector check` reads them all and the counts. A processed id's
//! checksum covers its type's name, not its code. `processed_events` is
//! appended to and indexed by id, which batches look up. The filter's
//! blobs are checked by their CRC-32. The file's header carries the
//! application id "PRJS" and
//! `user_version` 4 (a state of version 2 or 3 is upgraded when opened).
//!
//! The file is opened in WAL mode with `synchronous = FULL`, so other
//! processes read it while the projector writes; a projector holds an
//! advisory lock on it for its whole run ([`file`]). Events are applied in
//! batches, and each [`Batch`] (its event ids, the documents it changed,
//! the subscriptions, a rebuild's swap) is written in one transaction; the
//! server writes a batch's replies only after that has committed.

mod file;
mod holder;
mod load;
mod reader;
mod upgrade;

use super::batch::Batch;
use super::checksum;
use super::crash::CrashPoint;
use super::meta::Meta;
use super::open::{self, Backend, Opened, Opening, Source};
use super::reconcile::Request;
use super::rows::Rows;
use super::stored::Stored;
use super::write::{self, Tables};
use super::{FilterWrite, StateError, Swap};
use crate::plan::Plan;
use crate::util::hash::FastMap;
use file::{Found, Lock};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, Statement, ToSql};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::APPLICATION_ID;
pub use holder::lock_holder;

const FORMAT: &str = "projector-state 4";
/// `PRAGMA user_version` of this format.
const FORMAT_VERSION: i64 = 4;
/// The format before the filter was kept, which is upgraded when opened
/// (see [`upgrade`], as format 3 is).
const FORMAT_2: &str = "projector-state 2";

/// Event ids are inserted this many to a statement.
const IDS_PER_INSERT: usize = 64;
/// Documents are written this many to a statement.
const DOCS_PER_UPSERT: usize = 32;

/// `documents.doc` and `.sum` may not be null in any row the projector
/// writes (a null one is refused as damage when read back), but are not
/// declared NOT NULL: a constraint that could fail halfway through a
/// many-row write would make SQLite keep a statement journal, a copy of
/// every page the statement changes.
const SCHEMA: &str = "
CREATE TABLE projector_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL, sum INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE models (name TEXT PRIMARY KEY, definition TEXT NOT NULL, sum INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE documents (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT,
    sum INTEGER,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;
CREATE TABLE event_types (code INTEGER PRIMARY KEY, name TEXT NOT NULL, sum INTEGER NOT NULL);
CREATE TABLE processed_events (id TEXT NOT NULL, type INTEGER NOT NULL, sum INTEGER NOT NULL);
CREATE INDEX processed_events_id ON processed_events (id);
CREATE TABLE filter (id INTEGER PRIMARY KEY CHECK (id = 1), bits BLOB NOT NULL, sum INTEGER NOT NULL);
CREATE TABLE filter_log (seq INTEGER PRIMARY KEY, hashes BLOB NOT NULL, sum INTEGER NOT NULL);
";

/// What format 3 adds to format 2.
const FILTER_TABLES: &str = "
CREATE TABLE IF NOT EXISTS filter (id INTEGER PRIMARY KEY CHECK (id = 1), bits BLOB NOT NULL, sum INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS filter_log (seq INTEGER PRIMARY KEY, hashes BLOB NOT NULL, sum INTEGER NOT NULL);
";

const TABLES: &[&str] = &[
    "projector_meta",
    "models",
    "documents",
    "event_types",
    "processed_events",
    "filter",
    "filter_log",
];

/// Where a rebuild stages what its batches write until it is swapped in:
/// the rebuilt models' documents (with the checksums they will have), the
/// ids it applied (in order), and, when it finds the processed ids anew,
/// the ids by the old rule of the processed events it met.
const STAGING: &str = "
CREATE TABLE rebuild_documents (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT,
    sum INTEGER,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;
CREATE TABLE rebuild_seen (id TEXT NOT NULL, type INTEGER NOT NULL, sum INTEGER NOT NULL);
CREATE INDEX rebuild_seen_id ON rebuild_seen (id);
CREATE TABLE rebuild_covered (old TEXT NOT NULL);
CREATE INDEX rebuild_covered_old ON rebuild_covered (old);
";

const STAGING_TABLES: &[&str] = &["rebuild_documents", "rebuild_seen", "rebuild_covered"];

const DROP_STAGING: &str = "
DROP TABLE IF EXISTS rebuild_documents;
DROP TABLE IF EXISTS rebuild_seen;
DROP TABLE IF EXISTS rebuild_covered;
";

/// The tables format 2 lacks.
const TABLES_SINCE_3: &[&str] = &["filter", "filter_log"];

pub struct SqliteState {
    conn: Connection,
    path: PathBuf,
    models: Vec<String>,
    /// Rows per table as of the last commit.
    rows: Rows,
    /// The code of each event type in `event_types`.
    types: FastMap<String, i64>,
    /// The statement that inserts [`IDS_PER_INSERT`] processed ids.
    insert_ids: String,
    /// The statement that writes [`DOCS_PER_UPSERT`] documents.
    upsert_documents: String,
    crash: CrashPoint,
    /// What opening decided to write, when it is committed with the first
    /// batch: a rebuild's swap.
    opening: Option<Opening>,
    /// Declared after `conn`, so that it is released after SQLite closes.
    _lock: Lock,
}

impl Source for SqliteState {
    fn location(&self) -> &Path {
        &self.path
    }

    fn read_back(&mut self) -> Result<Stored, StateError> {
        let read = read(&self.conn, &self.path)?;
        self.rows = read.rows;
        self.types = read.types;
        Ok(read.stored)
    }

    fn stage(&mut self, rebuilt: &[String], _rekey: bool) -> Result<(), StateError> {
        let doing = "making room for a rebuild";
        let left: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master
                 WHERE name IN ('rebuild_documents', 'rebuild_seen', 'rebuild_covered')",
                [],
                |r| r.get(0),
            )
            .map_err(sql(&self.path, doing))?;
        if left == 0 && rebuilt.is_empty() {
            return Ok(());
        }
        let staging = match rebuilt.is_empty() {
            true => "",
            false => STAGING,
        };
        self.execute("BEGIN IMMEDIATE", doing)?;
        match self.execute(&format!("{DROP_STAGING}{staging}"), doing) {
            Ok(()) => self.execute("COMMIT", doing),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn read_filter(&mut self) -> Result<Option<super::KeptFilter>, StateError> {
        load::filter(&self.conn, &self.path)
    }

    fn commit_opening(&mut self, opening: &Opening) -> Result<(), StateError> {
        SqliteState::commit_opening(self, opening)
    }

    fn defer_opening(&mut self, opening: Opening) {
        self.opening = Some(opening);
    }
}

impl Backend for SqliteState {
    fn write(&mut self, batch: &Batch) -> Result<(), StateError> {
        SqliteState::write(self, batch)
    }
}

/// Everything read back from a state, checked.
struct Read {
    stored: Stored,
    rows: Rows,
    types: FastMap<String, i64>,
}

impl SqliteState {
    /// Opens (or creates) the state at `path` for `plan`, locked for this
    /// process, and restores it (see [`open::restore`]). Refuses a file
    /// that is not a projector state, is damaged or in use.
    pub fn open(path: &Path, plan: &Plan, request: &Request) -> Result<Opened, StateError> {
        let (lock, found) = file::open_locked(path, create_schema)?;
        if found == Found::OtherSqlite {
            return Err(not_ours(path));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(path, "opening the state"))?;
        let mut state = SqliteState {
            conn,
            path: path.to_owned(),
            models: plan.model_names().map(str::to_owned).collect(),
            rows: Rows::default(),
            types: FastMap::default(),
            insert_ids: insert_ids("processed_events", IDS_PER_INSERT),
            upsert_documents: upsert_documents("documents", DOCS_PER_UPSERT),
            crash: CrashPoint::from_env(),
            opening: None,
            _lock: lock,
        };
        // Readers never block a writer in WAL mode; a process that writes
        // to the file (a `sqlite3` shell in a transaction) is waited for.
        state
            .conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(sql(path, "opening the state"))?;
        check_schema(&state.conn, path)?;
        state.configure()?;
        state.upgrade()?;
        let (restored, rebuilding, report) =
            open::restore(&mut state, plan, request, found == Found::Created)?;
        let staged = (0..state.models.len() as u32)
            .map(|m| {
                rebuilding
                    .as_ref()
                    .is_some_and(|r| r.models.contains(&crate::plan::ModelId(m)))
            })
            .collect();
        let reader = reader::SqliteReader::open(path, state.models.clone(), staged)?;
        Ok(Opened {
            state: Box::new(state),
            reader: Box::new(reader),
            restored,
            rebuilding,
            report,
        })
    }

    /// What the state at `path` holds, reading only; `None` when there is
    /// no file. It may be in use by a running projector.
    pub fn inspect(path: &Path) -> Result<Option<Stored>, StateError> {
        match file::open_for_reading(path)? {
            None => return Ok(None),
            Some(Found::OtherSqlite) => return Err(not_ours(path)),
            Some(_) => {}
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(path, "opening the state"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql(path, "opening the state"))?;
        check_schema(&conn, path)?;
        let read = read(&conn, path)?;
        Ok(Some(read.stored))
    }

    /// A reader of what the state at `path` has committed of `models` (by
    /// [`crate::plan::ModelId`], in this order), reading only; `None` when
    /// there is no file. It may be in use by a running projector.
    pub fn reader(
        path: &Path,
        models: Vec<String>,
    ) -> Result<Option<Box<dyn super::reader::Reader>>, StateError> {
        match file::open_for_reading(path)? {
            None => return Ok(None),
            Some(Found::OtherSqlite) => return Err(not_ours(path)),
            Some(_) => {}
        }
        let staged = vec![false; models.len()];
        let reader = reader::SqliteReader::open(path, models, staged)?;
        Ok(Some(Box::new(reader)))
    }

    /// What the state at `path` holds, every row read and checked (see
    /// [`super::Location::check`]); `None` when there is no file.
    pub fn check(path: &Path) -> Result<Option<Stored>, StateError> {
        match file::open_for_reading(path)? {
            None => return Ok(None),
            Some(Found::OtherSqlite) => return Err(not_ours(path)),
            Some(_) => {}
        }
        // A state no projector runs on is opened as a writer would (it
        // writes nothing), so that SQLite removes the files it keeps beside
        // it when it closes; a state in use is read beside its projector.
        let lock = file::lock_if_free(path);
        let mode = match lock {
            Some(_) => OpenFlags::SQLITE_OPEN_READ_WRITE,
            None => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(sql(path, "opening the state"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql(path, "opening the state"))?;
        check_schema(&conn, path)?;
        quick_check(&conn, path)?;
        conn.execute_batch("BEGIN")
            .map_err(read_failed(path, "the state"))?;
        let checked = (|| {
            let read = read_in(&conn, path)?;
            let kept = load::filter(&conn, path)?;
            let mut audit = super::filter::Audit::new(kept.as_ref())
                .map_err(|e| damaged(path, e.to_string()))?;
            let processed = load::processed(&conn, path, &mut |id, _| audit.id(id))?;
            let documents = load::documents(&conn, path, |model, key, text| {
                audit.key(model, key);
                serde_json::from_str::<crate::store::Document>(text)
                    .map(drop)
                    .map_err(|e| {
                        damaged(
                            path,
                            format!("the document of read model \"{model}\", key \"{key}\" is not a JSON object: {e}"),
                        )
                    })
            })?;
            load::check_counts(path, &read.rows, &documents, processed.values().sum())?;
            if let Some(what) = audit.lacking {
                return Err(damaged(path, format!("the kept filter lacks {what}")));
            }
            if read.stored.processed != processed {
                return Err(damaged(
                    path,
                    format!(
                        "table processed_events holds ids of these types: {processed:?}, and these were committed: {:?}",
                        read.stored.processed
                    ),
                ));
            }
            Ok(read.stored)
        })();
        let _ = conn.execute_batch("COMMIT");
        drop(conn);
        drop(lock);
        checked.map(Some)
    }

    fn execute(&self, sql_text: &str, doing: &'static str) -> Result<(), StateError> {
        self.conn
            .execute_batch(sql_text)
            .map_err(sql(&self.path, doing))
    }

    fn configure(&self) -> Result<(), StateError> {
        let conn = &self.conn;
        let path = &self.path;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(path, "opening the state"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Sqlite {
                path: path.clone(),
                doing: "switching the state to WAL mode",
                error: rusqlite::Error::InvalidQuery,
            });
        }
        // FULL: a commit reaches the disk before its replies are written, so
        // a reply survives power loss as well as a crash of the process.
        // Checkpointing every 64 MiB of WAL (4,096 pages of 16 KiB) instead
        // of 1,000 pages copies hot pages back to the database far less
        // often. A 64 MiB page cache (SQLite's default is 2 MiB) keeps the
        // B-tree pages a batch rewrites in memory instead of reading them
        // back from the file.
        self.execute(
            "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 4096; PRAGMA cache_size = -65536",
            "configuring the state",
        )?;
        // Ids are looked up by the batch; a state made before that was so
        // gets the index once.
        self.execute(
            "CREATE INDEX IF NOT EXISTS processed_events_id ON processed_events (id)",
            "indexing the processed ids",
        )
    }

    /// Commits `opening` in a transaction of its own.
    fn commit_opening(&mut self, opening: &Opening) -> Result<(), StateError> {
        if opening.is_empty() {
            return Ok(());
        }
        let doing = "recording the read-model definitions";
        let rows = self.rows.clone();
        self.in_transaction(doing, |state| write::opening(state, opening, &rows))
    }

    /// Commits `batch` in one transaction (see [`write::batch`]).
    pub fn write(&mut self, batch: &Batch) -> Result<(), StateError> {
        self.crash.step();
        // A rebuild's deferred opening is written with its swap.
        let opening = match batch.staged {
            true => None,
            false => self.opening.take(),
        };
        let (rows, models) = (self.rows.clone(), self.models.clone());
        self.in_transaction("committing a batch", |state| {
            write::batch(state, batch, opening.as_ref(), &rows, &models)
        })
    }

    /// Runs `write` in one transaction, and keeps the row counts it
    /// returns once it is committed.
    fn in_transaction(
        &mut self,
        doing: &'static str,
        write: impl FnOnce(&mut SqliteState) -> Result<Rows, StateError>,
    ) -> Result<(), StateError> {
        self.execute("BEGIN IMMEDIATE", doing)?;
        match write(self) {
            Ok(rows) => {
                self.crash.step();
                self.execute("COMMIT", doing)?;
                self.rows = rows;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn put_definition(&self, name: &str, definition: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO models (name, definition, sum) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, sum = excluded.sum",
            )
            .and_then(|mut s| {
                s.execute(params![name, definition, checksum::row(&[name, definition])])
            })
            .map(drop)
            .map_err(sql(&self.path, "recording the model definitions"))
    }

    /// The code of an event type, numbered (in this batch's transaction)
    /// the first time it comes.
    fn type_code(&mut self, name: &str) -> Result<i64, StateError> {
        if let Some(code) = self.types.get(name) {
            return Ok(*code);
        }
        let code = self.types.len() as i64 + 1;
        let text = code.to_string();
        self.conn
            .execute(
                "INSERT INTO event_types (code, name, sum) VALUES (?1, ?2, ?3)",
                params![code, name, checksum::row(&[&text, name])],
            )
            .map_err(sql(&self.path, "recording an event type"))?;
        self.types.insert(name.to_owned(), code);
        Ok(code)
    }
}

/// The statements of a batch (see [`write::batch`]).
impl Tables for SqliteState {
    type Error = StateError;

    fn write_opening(&mut self, opening: &Opening) -> Result<(), StateError> {
        for (name, _) in &opening.dropped {
            self.conn
                .execute("DELETE FROM documents WHERE model = ?1", [name])
                .and_then(|_| {
                    self.conn
                        .execute("DELETE FROM models WHERE name = ?1", [name])
                })
                .map_err(sql(&self.path, "dropping a removed model"))?;
        }
        for (name, definition) in &opening.recorded {
            self.put_definition(name, definition)?;
        }
        Ok(())
    }

    /// Puts what a rebuild staged in place of the rebuilt models'
    /// documents (and of the processed ids, when it found them anew), with
    /// the new definitions; the staging goes.
    fn swap_in(&mut self, swap: &Swap) -> Result<(), StateError> {
        let swapping = sql(&self.path, "swapping the rebuilt read models in");
        if swap.event_id.is_some() {
            self.conn
                .execute_batch(
                    "DELETE FROM processed_events;
                     INSERT INTO processed_events (id, type, sum)
                     SELECT id, type, sum FROM rebuild_seen ORDER BY rowid;",
                )
                .map_err(&swapping)?;
        }
        for (model, definition) in &swap.models {
            let name = &self.models[model.0 as usize];
            self.conn
                .execute("DELETE FROM documents WHERE model = ?1", [name])
                .and_then(|_| {
                    self.conn.execute(
                        "INSERT INTO documents (model, key, doc, sum)
                         SELECT model, key, doc, sum FROM rebuild_documents WHERE model = ?1",
                        [name],
                    )
                })
                .map_err(&swapping)?;
            self.put_definition(name, definition)?;
        }
        self.conn.execute_batch(DROP_STAGING).map_err(&swapping)
    }

    /// The ids by the old rule of the processed events a rebuild met.
    fn write_covered(&mut self, batch: &Batch) -> Result<(), StateError> {
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO rebuild_covered (old) VALUES (?1)")
            .map_err(sql(&self.path, "staging a rebuild's ids"))?;
        for old in batch.covered() {
            insert
                .execute([old])
                .map_err(sql(&self.path, "staging a rebuild's ids"))?;
        }
        Ok(())
    }

    /// What the batch keeps of the filter: its hashes, logged, or the whole
    /// filter in place of the kept one and its log.
    fn write_filter(&mut self, write: &FilterWrite) -> Result<(), StateError> {
        let writing = sql(&self.path, "keeping the filter");
        match write {
            FilterWrite::Log(hashes) => self
                .conn
                .prepare_cached("INSERT INTO filter_log (hashes, sum) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![hashes, load::blob_sum(hashes)]))
                .map(drop)
                .map_err(writing),
            FilterWrite::Snapshot(bits) => self
                .conn
                .execute(
                    "INSERT OR REPLACE INTO filter (id, bits, sum) VALUES (1, ?1, ?2)",
                    params![bits, load::blob_sum(bits)],
                )
                .and_then(|_| self.conn.execute("DELETE FROM filter_log", []))
                .map(drop)
                .map_err(writing),
        }
    }

    fn write_ids(&mut self, batch: &Batch, staged: bool) -> Result<(), StateError> {
        let table = match staged {
            true => "rebuild_seen",
            false => "processed_events",
        };
        let path = self.path.clone();
        let recording = sql(&path, "recording an event id");
        let mut rows = Vec::with_capacity(IDS_PER_INSERT);
        let mut ids = batch.ids();
        loop {
            rows.clear();
            for (id, ty) in ids.by_ref().take(IDS_PER_INSERT) {
                rows.push((id, self.type_code(ty)?, checksum::row(&[id, ty])));
            }
            if rows.is_empty() {
                return Ok(());
            }
            self.crash.step();
            // OR IGNORE: no row can conflict, and a statement that cannot
            // fail halfway needs no statement journal (a copy of every page
            // it changes, which a plain multi-row INSERT keeps).
            let sql_text = match rows.len() {
                IDS_PER_INSERT if table == "processed_events" => &self.insert_ids,
                n => &insert_ids(table, n),
            };
            self.conn
                .prepare_cached(sql_text)
                .and_then(|mut insert| {
                    execute_rows(&mut insert, &rows, |(id, code, sum)| [id, code, sum])
                })
                .map_err(&recording)?;
        }
    }

    fn write_documents(&mut self, batch: &Batch, staged: bool) -> Result<(), StateError> {
        let table = match staged {
            true => "rebuild_documents",
            false => "documents",
        };
        let path = self.path.clone();
        let writing = sql(&path, "writing documents");
        let mut rows: Vec<(&str, &str, &str, i64)> = Vec::with_capacity(DOCS_PER_UPSERT);
        let mut documents = batch.documents().peekable();
        while documents.peek().is_some() {
            rows.clear();
            while rows.len() < DOCS_PER_UPSERT {
                let Some((model, key, text)) = documents.next_if(|(_, _, text)| text.is_some())
                else {
                    break;
                };
                let name = self.models[model.0 as usize].as_str();
                let text = text.expect("written");
                rows.push((name, key, text, checksum::row(&[name, key, text])));
            }
            if !rows.is_empty() {
                self.crash.step();
                let sql_text = match rows.len() {
                    DOCS_PER_UPSERT if table == "documents" => &self.upsert_documents,
                    n => &upsert_documents(table, n),
                };
                self.conn
                    .prepare_cached(sql_text)
                    .and_then(|mut upsert| {
                        execute_rows(&mut upsert, &rows, |(name, key, text, sum)| {
                            [name, key, text, sum]
                        })
                    })
                    .map_err(&writing)?;
            }
            if let Some((model, key, _)) = documents.next_if(|(_, _, text)| text.is_none()) {
                self.crash.step();
                let name = self.models[model.0 as usize].as_str();
                self.conn
                    .prepare_cached(&format!(
                        "DELETE FROM {table} WHERE model = ?1 AND key = ?2"
                    ))
                    .and_then(|mut delete| delete.execute([name, key]))
                    .map_err(&writing)?;
            }
        }
        Ok(())
    }

    fn put_meta(&mut self, entries: &[(&str, String)]) -> Result<(), StateError> {
        entries
            .iter()
            .try_for_each(|(name, value)| self.put_one_meta(name, value))
    }

    fn delete_meta(&mut self, name: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM projector_meta WHERE name = ?1", [name])
            .map(drop)
            .map_err(sql(&self.path, "recording the state's metadata"))
    }
}

impl SqliteState {
    fn put_one_meta(&self, name: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO projector_meta (name, value, sum) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, sum = excluded.sum",
            )
            .and_then(|mut s| s.execute(params![name, value, checksum::row(&[name, value])]))
            .map(drop)
            .map_err(sql(&self.path, "recording the state's metadata"))
    }
}

/// The statement that writes `n` documents, inserting or replacing each.
/// OR IGNORE: no row can break a constraint, and a statement that cannot
/// fail halfway needs no statement journal.
fn upsert_documents(table: &str, n: usize) -> String {
    format!(
        "INSERT OR IGNORE INTO {table} (model, key, doc, sum) VALUES {}
         ON CONFLICT (model, key) DO UPDATE SET doc = excluded.doc, sum = excluded.sum",
        vec!["(?, ?, ?, ?)"; n].join(", ")
    )
}

/// Binds `rows` in place, `N` values each, one row after another, and runs
/// the statement, which writes them all.
fn execute_rows<R, const N: usize>(
    statement: &mut Statement<'_>,
    rows: &[R],
    values: impl for<'r> Fn(&'r R) -> [&'r dyn ToSql; N],
) -> rusqlite::Result<usize> {
    for (i, row) in rows.iter().enumerate() {
        for (j, value) in values(row).into_iter().enumerate() {
            statement.raw_bind_parameter(N * i + j + 1, value)?;
        }
    }
    statement.raw_execute()
}

/// The statement that inserts `n` processed ids.
fn insert_ids(table: &str, n: usize) -> String {
    format!(
        "INSERT OR IGNORE INTO {table} (id, type, sum) VALUES {}",
        vec!["(?, ?, ?)"; n].join(", ")
    )
}

/// Reads what a state holds beside its documents and ids, in one read
/// transaction, every row checked.
fn read(conn: &Connection, path: &Path) -> Result<Read, StateError> {
    conn.execute_batch("BEGIN")
        .map_err(read_failed(path, "projector_meta"))?;
    let read = read_in(conn, path);
    let _ = conn.execute_batch("COMMIT");
    read
}

/// [`read`], inside the caller's transaction.
fn read_in(conn: &Connection, path: &Path) -> Result<Read, StateError> {
    {
        let entries = load::meta(conn, path)?;
        let meta = Meta::new(&entries, "projector_meta", path);
        meta.check_format(FORMAT, &[FORMAT_2, upgrade::FORMAT_3])?;
        let mut rows = meta.rows()?;
        let definitions = load::definitions(conn, path)?;
        let types = load::event_types(conn, path)?;
        if rows.types.is_none() {
            // Written before ids were counted by type: counted once.
            rows.types = Some(load::processed_types(conn, path)?);
        }
        let processed = rows.types.clone().unwrap_or_default();
        let mut stored = meta.stored(definitions, rows.documents.clone(), processed)?;
        // A file state reads from stdin or a log, not a stream.
        stored.checkpoint = None;
        Ok(Read {
            stored,
            rows,
            types,
        })
    }
}

/// Writes a new state's schema into the file at `temp`, and leaves it
/// closed, in WAL mode.
fn create_schema(temp: &Path) -> Result<(), StateError> {
    let failed = |e| creating(temp, e);
    let conn = Connection::open(temp).map_err(failed)?;
    // 16 KiB pages (SQLite's default is 4 KiB): a batch's inserts split
    // and rebalance far fewer B-tree pages.
    conn.execute_batch("PRAGMA page_size = 16384")
        .map_err(failed)?;
    let rows = Rows::default().to_json();
    conn.execute_batch(&format!(
        "BEGIN;
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {FORMAT_VERSION};
         {SCHEMA}
         COMMIT;"
    ))
    .map_err(failed)?;
    // A new state keeps its filter from the start: it holds every id and key.
    for (name, value) in [("format", FORMAT), ("rows", &rows), ("filter", "kept")] {
        conn.execute(
            "INSERT INTO projector_meta (name, value, sum) VALUES (?1, ?2, ?3)",
            params![name, value, checksum::row(&[name, value])],
        )
        .map_err(failed)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(failed)?;
    debug_assert_eq!(mode, "wal");
    conn.close().map_err(|(_, e)| failed(e))
}

fn creating(temp: &Path, error: rusqlite::Error) -> StateError {
    let path = temp.to_owned();
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StateError::DiskFull { path },
        _ => StateError::Sqlite {
            path,
            doing: "creating the state",
            error,
        },
    }
}

/// Checks, reading only, that the schema is a projector state's: its
/// format version, its tables, nothing that is not ours (an index on our
/// tables is allowed). (Pages are checked as they are read; `projector
/// check` has SQLite check them all: [`quick_check`].)
fn check_schema(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(read_failed(path, "the header"))?;
    if !(2..=FORMAT_VERSION).contains(&version) {
        return Err(StateError::NotAState {
            path: path.to_owned(),
            reason: format!(
                "its format is version {version}, and this projector reads version {FORMAT_VERSION}"
            ),
        });
    }
    let objects: Vec<(String, String, String)> = conn
        .prepare("SELECT type, name, tbl_name FROM sqlite_master")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(read_failed(path, "the schema"))?;
    for (kind, name, table) in &objects {
        let ours = match kind.as_str() {
            "table" => {
                TABLES.contains(&name.as_str())
                    || STAGING_TABLES.contains(&name.as_str())
                    || name.starts_with("sqlite_")
            }
            "index" => TABLES.contains(&table.as_str()) || STAGING_TABLES.contains(&table.as_str()),
            _ => false,
        };
        if !ours {
            return Err(StateError::NotAState {
                path: path.to_owned(),
                reason: format!("it holds {kind} \"{name}\", which a projector state does not"),
            });
        }
    }
    let needed = TABLES
        .iter()
        .filter(|t| version >= 3 || !TABLES_SINCE_3.contains(t));
    if let Some(missing) = needed.clone().find(|t| {
        !objects
            .iter()
            .any(|(kind, name, _)| kind == "table" && name == *t)
    }) {
        return Err(damaged(path, format!("table {missing} is missing")));
    }
    Ok(())
}

/// SQLite's check of every page of the file.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(read_failed(path, "the database"))?;
    match check == "ok" {
        true => Ok(()),
        false => Err(damaged(path, format!("SQLite's quick_check: {check}"))),
    }
}

/// The refusal of an SQLite file without our application id: looking
/// inside says whether an earlier projector wrote it. SQLite opens it as
/// immutable: reading only, without locks and without the files it keeps
/// beside a database in WAL mode, so nothing is created or changed.
fn not_ours(path: &Path) -> StateError {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let format: Option<String> = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        c.query_row(
            "SELECT value FROM projector_meta WHERE name = 'format'",
            [],
            |r| r.get(0),
        )
    })
    .ok();
    let reason = match format.as_deref() {
        Some("projector-state 1") => "it was written by an earlier projector (format 1), whose rows carry no checksums; build a new state from the event log: projector replay --config <CONFIG> --state <NEW STATE> <EVENTS.ndjson>".to_owned(),
        _ => "it is an SQLite database that a projector did not make".to_owned(),
    };
    StateError::NotAState {
        path: path.to_owned(),
        reason,
    }
}

fn damaged(path: &Path, detail: String) -> StateError {
    StateError::Damaged {
        path: path.to_owned(),
        detail,
    }
}

/// Maps an SQLite error while reading `what` back: anything but a lock, a
/// full disk or running out of memory means the file is damaged.
fn read_failed<'p>(path: &'p Path, what: &'p str) -> impl Fn(rusqlite::Error) -> StateError + 'p {
    move |error| match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StateError::Locked {
            path: path.to_owned(),
        },
        Some(ErrorCode::DiskFull) => StateError::DiskFull {
            path: path.to_owned(),
        },
        Some(ErrorCode::OutOfMemory | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StateError::Sqlite {
                path: path.to_owned(),
                doing: "reading the state",
                error,
            }
        }
        _ => damaged(path, format!("reading {what}: {error}")),
    }
}

/// Maps an SQLite error to what it means for a state file.
fn sql<'p>(path: &'p Path, doing: &'static str) -> impl Fn(rusqlite::Error) -> StateError + 'p {
    move |error| {
        let path = path.to_owned();
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StateError::Locked { path }
            }
            Some(ErrorCode::DiskFull) => StateError::DiskFull { path },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StateError::Damaged {
                path,
                detail: format!("{doing}: {error}"),
            },
            _ => StateError::Sqlite { path, doing, error },
        }
    }
}
