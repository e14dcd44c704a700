//! The SQLite state file behind `--state`.
//!
//! Schema (query it with the `sqlite3` shell):
//!
//! ```sql
//! projector_meta(name PRIMARY KEY, value)          -- format, config fingerprint, subscriptions
//! models(name PRIMARY KEY, definition)             -- each read model's definition when last built
//! documents(model, key, doc, PRIMARY KEY (model, key))  -- doc is the document as JSON text
//! processed_events(id)                             -- every event id applied
//! ```
//!
//! `processed_events` is read only whole, when a run starts, so it is a
//! plain table appended to, without an index; files made before hold it as
//! `(id PRIMARY KEY) WITHOUT ROWID`, which is read and written the same way.
//!
//! The file is opened in WAL mode with `synchronous = FULL` and an exclusive
//! lock held for the whole run. Events are applied in batches, and each
//! [`Batch`] (its event ids, the documents it changed, the subscriptions) is
//! written in one transaction; the server writes a batch's replies only after
//! that has committed.

use super::batch::Batch;
use super::{Restored, Stale, StateError};
use crate::dedup::{IdHash, Processed};
use crate::plan::{ModelId, Plan};
use crate::store::{Document, DocumentStore, MemoryStore};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FORMAT: &str = "projector-state 1";

/// Event ids are inserted this many to a statement.
const IDS_PER_INSERT: usize = 64;

const SCHEMA: &str = "
CREATE TABLE projector_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE models (name TEXT PRIMARY KEY, definition TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE documents (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;
CREATE TABLE processed_events (id TEXT NOT NULL);
";

const TABLES: &[&str] = &["projector_meta", "models", "documents", "processed_events"];

pub struct SqliteState {
    conn: Connection,
    path: PathBuf,
    models: Vec<String>,
    crash: CrashPoint,
}

/// Fault injection for the crash tests: with `PROJECTOR_TEST_CRASH_AT_STEP=N`
/// the process aborts, as abruptly as SIGKILL, just before the N-th write step
/// (a BEGIN, an insert of event ids, a document write or a COMMIT). Walking N
/// over a run puts a crash between every two writes, which random kills
/// rarely hit.
struct CrashPoint {
    at: Option<u64>,
    steps: u64,
}

impl CrashPoint {
    fn from_env() -> Self {
        let at = std::env::var("PROJECTOR_TEST_CRASH_AT_STEP")
            .ok()
            .and_then(|v| v.parse().ok());
        CrashPoint { at, steps: 0 }
    }

    fn step(&mut self) {
        self.steps += 1;
        if self.at == Some(self.steps) {
            std::process::abort();
        }
    }
}

/// What opening a state did, beyond restoring it: lines for the log.
pub type Notes = Vec<String>;

impl SqliteState {
    /// Opens (or creates) the state at `path` for `plan`, dropping the
    /// documents of the models named in `rebuild`. Refuses a file that is not
    /// a projector state, is damaged, is in use, or holds stale read models.
    pub fn open(
        path: &Path,
        plan: &Plan,
        rebuild: &[String],
    ) -> Result<(SqliteState, Restored, Notes), StateError> {
        for name in rebuild {
            if plan.model_by_name(name).is_none() {
                return Err(StateError::UnknownModel { name: name.clone() });
            }
        }
        check_header(path)?;
        let conn = Connection::open(path).map_err(sql(path, "opening the state"))?;
        let models = plan.model_names().map(str::to_owned).collect();
        let state = SqliteState {
            conn,
            path: path.to_owned(),
            models,
            crash: CrashPoint::from_env(),
        };
        // Read-only checks first: nothing is written to a file that turns out
        // not to be a projector state (switching to WAL rewrites the header).
        state
            .conn
            .busy_timeout(Duration::ZERO)
            .map_err(sql(path, "configuring the state"))?;
        let fresh = state.check()?;
        state.configure()?;
        state.execute("BEGIN IMMEDIATE", "locking the state")?;
        let opened = state
            .create_schema(fresh)
            .and_then(|()| state.reconcile_models(plan, rebuild));
        let notes = match opened {
            Ok(notes) => {
                state.execute("COMMIT", "recording the read-model definitions")?;
                notes
            }
            Err(e) => {
                let _ = state.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        let restored = state.restore(plan)?;
        Ok((state, restored, notes))
    }

    fn execute(&self, sql_text: &str, doing: &'static str) -> Result<(), StateError> {
        self.conn
            .execute_batch(sql_text)
            .map_err(sql(&self.path, doing))
    }

    fn configure(&self) -> Result<(), StateError> {
        let conn = &self.conn;
        let path = &self.path;
        conn.busy_timeout(Duration::ZERO)
            .map_err(sql(path, "configuring the state"))?;
        // 16 KiB pages (SQLite's default is 4 KiB): a batch's inserts split
        // and rebalance far fewer B-tree pages. This applies only to a new
        // file; an existing one keeps the page size it was made with.
        conn.execute_batch("PRAGMA page_size = 16384")
            .map_err(sql(path, "configuring the state"))?;
        conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
            .map_err(sql(path, "locking the state"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(path, "opening the state"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::NotAState {
                path: path.clone(),
                reason: format!("it cannot be switched to WAL mode (journal mode {mode})"),
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
        )
    }

    /// Checks, reading only, that the file is empty (returns true) or a
    /// sound projector state (false).
    fn check(&self) -> Result<bool, StateError> {
        let path = &self.path;
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql(path, "checking the state"))?;
        if check != "ok" {
            return Err(StateError::Corrupt {
                path: path.clone(),
                detail: check,
            });
        }
        let tables: HashSet<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(sql(path, "reading the schema"))?;
        if tables.is_empty() {
            return Ok(true);
        }
        if !tables.contains("projector_meta") {
            return Err(StateError::NotAState {
                path: path.clone(),
                reason: "it is an SQLite database without projector tables".to_owned(),
            });
        }
        let format = self.meta("format")?.unwrap_or_default();
        if format != FORMAT {
            return Err(StateError::NotAState {
                path: path.clone(),
                reason: format!(
                    "its format is \"{format}\", and this projector reads \"{FORMAT}\""
                ),
            });
        }
        if let Some(missing) = TABLES.iter().find(|t| !tables.contains(**t)) {
            return Err(StateError::Corrupt {
                path: path.clone(),
                detail: format!("table {missing} is missing"),
            });
        }
        Ok(false)
    }

    fn create_schema(&self, fresh: bool) -> Result<(), StateError> {
        if !fresh {
            return Ok(());
        }
        self.execute(SCHEMA, "creating the schema")?;
        self.conn
            .execute(
                "INSERT INTO projector_meta (name, value) VALUES ('format', ?1)",
                [FORMAT],
            )
            .map(drop)
            .map_err(sql(&self.path, "creating the schema"))
    }

    fn meta(&self, name: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT value FROM projector_meta WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path, "reading the state's metadata"))
    }

    fn reconcile_models(&self, plan: &Plan, rebuild: &[String]) -> Result<Notes, StateError> {
        let path = &self.path;
        let stored: HashMap<String, String> = self
            .conn
            .prepare("SELECT name, definition FROM models")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(sql(path, "reading the model definitions"))?;
        let processed_any: bool = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM processed_events)", [], |r| {
                r.get(0)
            })
            .map_err(sql(path, "reading the processed events"))?;
        let mut stale = Vec::new();
        let mut notes = Vec::new();
        let mut fingerprint = Fnv::default();
        for (i, name) in self.models.iter().enumerate() {
            let definition = plan.model_definition(ModelId(i as u32));
            fingerprint.write(definition.as_bytes());
            let rebuilding = rebuild.contains(name);
            match stored.get(name) {
                Some(old) if *old == definition && !rebuilding => continue,
                Some(_) if !rebuilding => stale.push(Stale::Changed(name.clone())),
                None if processed_any && !rebuilding => stale.push(Stale::Added(name.clone())),
                _ => {}
            }
            if rebuilding {
                let dropped = self.drop_documents(name)?;
                notes.push(format!(
                    "rebuilding read model \"{name}\": dropped {}",
                    documents(dropped)
                ));
            }
            self.conn
                .execute(
                    "INSERT INTO models (name, definition) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET definition = excluded.definition",
                    params![name, definition],
                )
                .map_err(sql(path, "recording the model definitions"))?;
        }
        if !stale.is_empty() {
            return Err(StateError::StaleModels {
                path: path.clone(),
                models: stale,
            });
        }
        let mut gone: Vec<&String> = stored.keys().filter(|n| !self.models.contains(n)).collect();
        gone.sort();
        for name in gone {
            let dropped = self.drop_documents(name)?;
            self.conn
                .execute("DELETE FROM models WHERE name = ?1", [name])
                .map_err(sql(path, "dropping a removed model"))?;
            notes.push(format!(
                "read model \"{name}\" is no longer configured: dropped {}",
                documents(dropped)
            ));
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO projector_meta (name, value) VALUES ('config_fingerprint', ?1)",
                [format!("{:016x}", fingerprint.0)],
            )
            .map_err(sql(path, "recording the config fingerprint"))?;
        Ok(notes)
    }

    fn drop_documents(&self, model: &str) -> Result<usize, StateError> {
        self.conn
            .execute("DELETE FROM documents WHERE model = ?1", [model])
            .map_err(sql(&self.path, "dropping documents"))
    }

    fn restore(&self, plan: &Plan) -> Result<Restored, StateError> {
        let path = &self.path;
        let reading = sql(path, "reading the state");
        let mut stores = vec![MemoryStore::default(); plan.model_count()];
        let mut docs = self
            .conn
            .prepare("SELECT model, key, doc FROM documents")
            .map_err(&reading)?;
        let mut rows = docs.query([]).map_err(&reading)?;
        while let Some(row) = rows.next().map_err(&reading)? {
            let model: String = row.get(0).map_err(&reading)?;
            let key: String = row.get(1).map_err(&reading)?;
            let text: String = row.get(2).map_err(&reading)?;
            let Some(id) = plan.model_by_name(&model) else {
                continue;
            };
            let doc: Document = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                detail: format!("document {model}/{key} is not a JSON object: {e}"),
            })?;
            stores[id.0 as usize].put(&key, doc);
        }
        let mut processed = Processed::default();
        let mut ids = self
            .conn
            .prepare("SELECT id FROM processed_events")
            .map_err(&reading)?;
        let mut rows = ids.query([]).map_err(&reading)?;
        while let Some(row) = rows.next().map_err(&reading)? {
            processed.record(IdHash::of(&row.get::<_, String>(0).map_err(&reading)?));
        }
        let subscriptions = match self.meta("subscriptions")? {
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    detail: format!("the stored subscriptions are not a list of names: {e}"),
                })?,
            ),
            None => None,
        };
        Ok(Restored {
            stores,
            processed,
            subscriptions,
        })
    }
}

impl SqliteState {
    /// Commits `batch` in one transaction: its event ids, its documents
    /// (written, or deleted when gone) and its subscriptions.
    pub fn write(&mut self, batch: &Batch) -> Result<(), StateError> {
        self.crash.step();
        self.execute("BEGIN IMMEDIATE", "starting a transaction")?;
        match self.write_batch(batch) {
            Ok(()) => {
                self.crash.step();
                self.execute("COMMIT", "committing a batch")
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), StateError> {
        let conn = &self.conn;
        let crash = &mut self.crash;
        let recording = sql(&self.path, "recording an event id");
        let ids: Vec<&str> = batch.ids().collect();
        let mut many = conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO processed_events (id) VALUES {}",
                vec!["(?)"; IDS_PER_INSERT].join(", ")
            ))
            .map_err(&recording)?;
        let mut chunks = ids.chunks_exact(IDS_PER_INSERT);
        for chunk in &mut chunks {
            crash.step();
            many.execute(rusqlite::params_from_iter(chunk))
                .map_err(&recording)?;
        }
        let mut one = conn
            .prepare_cached("INSERT OR IGNORE INTO processed_events (id) VALUES (?1)")
            .map_err(&recording)?;
        for id in chunks.remainder() {
            crash.step();
            one.execute([id]).map_err(&recording)?;
        }
        let writing = sql(&self.path, "writing documents");
        let mut upsert = conn
            .prepare_cached(
                "INSERT INTO documents (model, key, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (model, key) DO UPDATE SET doc = excluded.doc",
            )
            .map_err(&writing)?;
        let mut delete = conn
            .prepare_cached("DELETE FROM documents WHERE model = ?1 AND key = ?2")
            .map_err(&writing)?;
        for (model, key, text) in batch.documents() {
            crash.step();
            let name = &self.models[model.0 as usize];
            match text {
                Some(text) => upsert.execute(params![name, key, text]),
                None => delete.execute(params![name, key]),
            }
            .map_err(&writing)?;
        }
        let result = match &batch.subscriptions {
            None => return Ok(()),
            Some(Some(names)) => conn.execute(
                "INSERT OR REPLACE INTO projector_meta (name, value) VALUES ('subscriptions', ?1)",
                [serde_json::to_string(names).expect("strings serialize")],
            ),
            Some(None) => conn.execute(
                "DELETE FROM projector_meta WHERE name = 'subscriptions'",
                [],
            ),
        };
        result
            .map(drop)
            .map_err(sql(&self.path, "recording the subscriptions"))
    }
}

fn documents(n: usize) -> String {
    format!("{n} document{}", if n == 1 { "" } else { "s" })
}

/// Refuses, before SQLite touches it, a non-empty file that is not an SQLite database.
fn check_header(path: &Path) -> Result<(), StateError> {
    let mut header = Vec::with_capacity(16);
    match std::fs::File::open(path) {
        Ok(file) => {
            file.take(16)
                .read_to_end(&mut header)
                .map_err(|e| StateError::NotAState {
                    path: path.to_owned(),
                    reason: format!("it cannot be read: {e}"),
                })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StateError::NotAState {
                path: path.to_owned(),
                reason: format!("it cannot be opened: {e}"),
            })
        }
    }
    if header.is_empty() || header == b"SQLite format 3\0" {
        return Ok(());
    }
    Err(StateError::NotAState {
        path: path.to_owned(),
        reason: "it is not an SQLite database".to_owned(),
    })
}

/// Maps an SQLite error to what it means for a state file.
fn sql<'p>(path: &'p Path, doing: &'static str) -> impl Fn(rusqlite::Error) -> StateError + 'p {
    move |error| {
        let path = path.to_owned();
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StateError::Locked { path }
            }
            Some(ErrorCode::NotADatabase) => StateError::NotAState {
                path,
                reason: "it is not an SQLite database".to_owned(),
            },
            Some(ErrorCode::DatabaseCorrupt) => StateError::Corrupt {
                path,
                detail: error.to_string(),
            },
            _ => StateError::Sqlite { path, doing, error },
        }
    }
}

/// FNV-1a, 64 bits: a fingerprint that stays the same across builds.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
