//! The state file before SQLite reads it: created whole or not at all,
//! locked against a second projector, and recognised by its header.
//!
//! - A new state is built in a temporary file beside the path, with its
//!   schema committed, and only then linked into place: a crash or a full
//!   disk while creating it leaves no file at the path (and the temporary
//!   one is removed, or reused by the next attempt).
//! - A projector holds an advisory lock (`flock`) on the file for its whole
//!   run. SQLite does not use that kind of lock, so other processes read
//!   the database (`sqlite3`, backups) while the projector writes it; a
//!   second projector fails to take the lock and is refused.
//! - A projector state is an SQLite database whose header carries our
//!   `application_id`; anything else is refused before SQLite touches it,
//!   so nothing is ever written to a file that is not ours.

use super::super::StateError;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// `PRAGMA application_id` of a projector state: "PRJS".
pub const APPLICATION_ID: u32 = 0x5052_4A53;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A state file held by this process: no other projector opens it while
/// this lives. Drop it only after SQLite has closed the file.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How the file at a state's path looked when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing was there: a new state was created.
    Created,
    /// A projector state.
    State,
    /// An SQLite database without our application id, which may be a state
    /// written by an earlier projector: the caller looks inside, reading
    /// only, to say so.
    OtherSqlite,
}

/// Opens the state at `path` for writing and locks it; where nothing is,
/// creates one, with `build` writing its schema into the temporary file.
pub fn open_locked(
    path: &Path,
    build: impl Fn(&Path) -> Result<(), StateError>,
) -> Result<(Lock, Found), StateError> {
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => {
                let lock = lock(file, path)?;
                let found = check_header(&lock._file, path)?;
                return Ok((lock, found));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(cannot_open(path, e)),
        }
        match create(path, &build)? {
            Some(lock) => return Ok((lock, Found::Created)),
            // Another process created it meanwhile: open that one.
            None => continue,
        }
    }
}

/// Checks, reading only, the file at `path`; `None` when there is none.
pub fn open_for_reading(path: &Path) -> Result<Option<Found>, StateError> {
    match File::open(path) {
        Ok(file) => check_header(&file, path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cannot_open(path, e)),
    }
}

/// The lock of the existing state at `path`, when no projector holds it.
pub fn lock_if_free(path: &Path) -> Option<Lock> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    lock(file, path).ok()
}

fn lock(file: File, path: &Path) -> Result<Lock, StateError> {
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(StateError::Locked {
            path: path.to_owned(),
        }),
        Err(TryLockError::Error(e)) => Err(cannot_open(path, e)),
    }
}

fn cannot_open(path: &Path, error: io::Error) -> StateError {
    StateError::CannotOpen {
        path: path.to_owned(),
        error,
    }
}

/// The file's first 100 bytes must be an SQLite header with our
/// application id.
fn check_header(file: &File, path: &Path) -> Result<Found, StateError> {
    let mut header = [0u8; 100];
    let mut read = 0;
    while read < header.len() {
        match file.read_at(&mut header[read..], read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot_open(path, e)),
        }
    }
    let not_a_state = |reason: &str| {
        Err(StateError::NotAState {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if read == 0 {
        return not_a_state(
            "it is empty (0 bytes), and a state never is; if it should be one, restore it from a backup, else remove it and start again",
        );
    }
    if read < header.len() || &header[..16] != SQLITE_MAGIC {
        return not_a_state("it is not an SQLite database");
    }
    let id = u32::from_be_bytes(header[68..72].try_into().expect("4 bytes"));
    match id {
        APPLICATION_ID => Ok(Found::State),
        0 => Ok(Found::OtherSqlite),
        other => not_a_state(&format!(
            "it is an SQLite database of another application (application_id {other:#010x})"
        )),
    }
}

/// Where a new state at `path` is built before it is linked into place.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.creating"))
}

/// The files SQLite may keep beside a database.
pub fn companions(path: &Path) -> [PathBuf; 3] {
    ["-journal", "-wal", "-shm"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

fn remove_with_companions(path: &Path) {
    let _ = fs::remove_file(path);
    for companion in companions(path) {
        let _ = fs::remove_file(companion);
    }
}

/// Builds a new state in a temporary file and links it to `path`; `None`
/// when a file appeared at `path` meanwhile.
fn create(
    path: &Path,
    build: &impl Fn(&Path) -> Result<(), StateError>,
) -> Result<Option<Lock>, StateError> {
    let temp = temporary(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&temp)
        .map_err(|e| create_failed(path, e))?;
    // Held from here on: once linked, the lock is the new state's.
    let lock = lock(file, path)?;
    // What an interrupted creation left is started over.
    for companion in companions(&temp) {
        let _ = fs::remove_file(companion);
    }
    let built = lock
        ._file
        .set_len(0)
        .map_err(|e| create_failed(path, e))
        .and_then(|()| build(&temp))
        .and_then(|()| lock._file.sync_all().map_err(|e| create_failed(path, e)));
    if let Err(e) = built {
        remove_with_companions(&temp);
        return Err(e);
    }
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(create_failed(path, e)),
    }
    // The new name is durable once its directory is.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(Some(lock))
}

fn create_failed(path: &Path, error: io::Error) -> StateError {
    if error.kind() == ErrorKind::StorageFull {
        return StateError::DiskFull {
            path: path.to_owned(),
        };
    }
    StateError::CannotOpen {
        path: path.to_owned(),
        error,
    }
}
