//! Damage is refused, never served: every row a run reads is checked
//! against its checksum, and `projector check` reads every row and every
//! table's committed row count; files that are not a projector state are
//! never written to; each failure has its own exit status (65 damaged or
//! not a state, 74 cannot open or disk full).

use crate::support;

use rusqlite::Connection;
use std::path::Path;
use std::process::Command;
use support::{generated_events, Rng, Run, SmallDisk, TempDir, BIN, CREATED, USERS_ORDERS};

/// A state built from a generated stream, and what it holds: its dump.
struct Built {
    dir: TempDir,
    config: std::path::PathBuf,
    bytes: Vec<u8>,
    dump: String,
}

fn built() -> Built {
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let state = dir.path().join("built.db");
    let events = generated_events(3000, 300, 9);
    Run::new()
        .args(&[
            "--config",
            config.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .stdin(&events.lines().collect::<Vec<_>>())
        .go()
        .success();
    let bytes = std::fs::read(&state).unwrap();
    let dump = dump(&config, &state).expect("the built state opens");
    Built {
        dir,
        config,
        bytes,
        dump,
    }
}

/// Opens the state with no input and dumps it: `Ok(dump)`, or the refusal's
/// exit status and message.
fn dump(config: &Path, state: &Path) -> Result<String, (i32, String)> {
    let dump = state.with_extension("json");
    let out = Run::new()
        .args(&[
            "--config",
            config.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .args(&["--dump", dump.to_str().unwrap()])
        .go();
    match out.code {
        Some(0) => Ok(std::fs::read_to_string(&dump).unwrap()),
        code => Err((code.unwrap_or(-1), out.stderr)),
    }
}

/// `projector check`, then a dump if it passes: `Ok(dump)`, or the first
/// refusal's exit status and message.
fn checked(config: &Path, state: &Path) -> Result<String, (i32, String)> {
    let out = Run::new()
        .args(&["check", "--state", state.to_str().unwrap()])
        .go();
    match out.code {
        Some(0) => {
            assert!(out.stdout.contains(": sound: "), "{}", out.stdout);
            dump(config, state)
        }
        code => Err((code.unwrap_or(-1), out.stderr)),
    }
}

#[test]
fn a_byte_changed_anywhere_is_refused_or_changes_nothing() {
    let b = built();
    let mut rng = Rng::seeded("byte flip");
    let seed = rng.0;
    let copy = b.dir.path().join("copy.db");
    let (mut refused, mut served) = (0, 0);
    for _ in 0..200 {
        let mut bytes = b.bytes.clone();
        let at = 100 + rng.below(bytes.len() as u64 - 100) as usize;
        bytes[at] ^= 1 + rng.below(255) as u8;
        std::fs::write(&copy, &bytes).unwrap();
        match checked(&b.config, &copy) {
            Ok(dump) => {
                served += 1;
                assert!(
                    dump == b.dump,
                    "a change at byte {at} was served as data (seed {seed})"
                );
            }
            Err((code, stderr)) => {
                refused += 1;
                assert_eq!(code, 65, "byte {at}: {stderr} (seed {seed})");
                assert!(
                    stderr.contains("is damaged") || stderr.contains("is not a projector state"),
                    "{stderr}"
                );
                assert!(
                    std::fs::read(&copy).unwrap() == bytes,
                    "a refused state was written to"
                );
            }
        }
    }
    eprintln!("{refused} refused, {served} served unchanged");
    // About 58% of the bytes of this state are checked (the rest is free
    // space in pages): 117 of 200 on average, with a standard deviation of
    // 7. Fewer than 80 would be five deviations off, not chance.
    assert!(
        refused >= 80,
        "only {refused} of 200 changes were refused (seed {seed})"
    );
}

fn refused_untouched(b: &Built, bytes: &[u8], code: i32, says: &str) {
    let copy = b.dir.path().join("refused.db");
    std::fs::write(&copy, bytes).unwrap();
    let (got, stderr) = checked(&b.config, &copy).expect_err("refused");
    assert_eq!(got, code, "{stderr}");
    assert!(stderr.contains(says), "stderr lacks {says:?}: {stderr}");
    assert!(
        std::fs::read(&copy).unwrap() == bytes,
        "the file was changed"
    );
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(!Path::new(&format!("{}{suffix}", copy.display())).exists());
    }
}

/// Applies `sql` to a copy of the built state, as a stray process would.
fn edited(b: &Built, sql: &str) -> Vec<u8> {
    let copy = b.dir.path().join("edited.db");
    std::fs::write(&copy, &b.bytes).unwrap();
    let db = Connection::open(&copy).unwrap();
    db.execute_batch(sql).unwrap();
    db.close().unwrap();
    std::fs::read(&copy).unwrap()
}

#[test]
fn a_changed_or_lost_row_is_refused_naming_its_table_and_key() {
    let b = built();
    let key: String = Connection::open_in_memory()
        .and_then(|_| {
            let copy = b.dir.path().join("look.db");
            std::fs::write(&copy, &b.bytes).unwrap();
            Connection::open(&copy)?.query_row(
                "SELECT key FROM documents WHERE model = 'orders' ORDER BY key LIMIT 1",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    let changed = edited(&b, &format!("UPDATE documents SET doc = replace(doc, '\"amount\"', '\"amounT\"') WHERE model = 'orders' AND key = '{key}'"));
    let says = format!("is damaged: table documents: the row for read model \"orders\", key \"{key}\" does not match its checksum");
    refused_untouched(&b, &changed, 65, &says);
    // A run refuses it too, once it reads that row.
    let copy = b.dir.path().join("read.db");
    std::fs::write(&copy, &changed).unwrap();
    let (code, stderr) = dump(&b.config, &copy).expect_err("refused when read");
    assert_eq!(code, 65, "{stderr}");
    assert!(stderr.contains(&says), "{stderr}");
    refused_untouched(
        &b,
        &edited(&b, "UPDATE processed_events SET id = 'evt-x' WHERE rowid = 7"),
        65,
        "is damaged: table processed_events: the row for event id \"evt-x\" does not match its checksum",
    );
    refused_untouched(
        &b,
        &edited(&b, "DELETE FROM processed_events WHERE rowid = 7"),
        65,
        "is damaged: table processed_events holds 2999 rows, and 3000 were committed",
    );
    refused_untouched(
        &b,
        &edited(
            &b,
            &format!("DELETE FROM documents WHERE model = 'orders' AND key = '{key}'"),
        ),
        65,
        "rows of read model \"orders\", and ",
    );
    refused_untouched(
        &b,
        &edited(
            &b,
            "UPDATE models SET definition = '{}' WHERE name = 'orders'",
        ),
        65,
        "is damaged: table models: the row for read model \"orders\" does not match its checksum",
    );
}

#[test]
fn files_that_are_not_projector_states_are_refused_and_never_written() {
    let b = built();
    refused_untouched(
        &b,
        b"",
        65,
        "is not a projector state: it is empty (0 bytes)",
    );
    refused_untouched(
        &b,
        b"hello\n",
        65,
        "is not a projector state: it is not an SQLite database",
    );

    let foreign = b.dir.path().join("foreign.db");
    let db = Connection::open(&foreign).unwrap();
    db.execute_batch("CREATE VIEW v AS SELECT 1 AS one")
        .unwrap();
    db.close().unwrap();
    refused_untouched(
        &b,
        &std::fs::read(&foreign).unwrap(),
        65,
        "is not a projector state: it is an SQLite database that a projector did not make",
    );
    // Nor is anything created beside one in WAL mode.
    let wal = b.dir.path().join("wal.db");
    let db = Connection::open(&wal).unwrap();
    db.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    db.close().unwrap();
    refused_untouched(
        &b,
        &std::fs::read(&wal).unwrap(),
        65,
        "is not a projector state: it is an SQLite database that a projector did not make",
    );
    refused_untouched(
        &b,
        &edited(&b, "CREATE TABLE notes (text)"),
        65,
        "is not a projector state: it holds table \"notes\", which a projector state does not",
    );
    refused_untouched(
        &b,
        &edited(&b, "PRAGMA user_version = 9"),
        65,
        "is not a projector state: its format is version 9, and this projector reads version 4",
    );
    // An index for applications' queries is allowed.
    let copy = b.dir.path().join("indexed.db");
    std::fs::write(&copy, edited(&b, "CREATE INDEX by_doc ON documents (doc)")).unwrap();
    assert!(dump(&b.config, &copy).is_ok());

    // A state of the format before checksums says so.
    let old = b.dir.path().join("old.db");
    let db = Connection::open(&old).unwrap();
    db.execute_batch(
        "CREATE TABLE projector_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         INSERT INTO projector_meta VALUES ('format', 'projector-state 1');",
    )
    .unwrap();
    db.close().unwrap();
    refused_untouched(
        &b,
        &std::fs::read(&old).unwrap(),
        65,
        "it was written by an earlier projector (format 1)",
    );
}

#[test]
fn a_state_that_cannot_be_opened_is_an_io_error_with_the_os_reason() {
    let b = built();
    let missing = b.dir.path().join("no/such/dir/s.db");
    Run::new()
        .args(&[
            "--config",
            b.config.to_str().unwrap(),
            "--state",
            missing.to_str().unwrap(),
        ])
        .stdin(&[CREATED])
        .go()
        .code_is(74)
        .stdout_is(&[])
        .stderr_has("No such file or directory (os error 2)");

    let state = b.dir.path().join("locked-out.db");
    std::fs::write(&state, &b.bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(b.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // As root, permissions do not apply: run as nobody instead.
    let root = rustix_uid_is_root();
    let mut command = match root {
        true => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        }
        false => Command::new(BIN),
    };
    let out = command
        .args([
            "--config",
            b.config.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("Permission denied (os error 13)"),
        "{stderr}"
    );
}

fn rustix_uid_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_disk_says_disk_full_and_leaves_no_stray_files() {
    let dir = TempDir::new();
    let Some(disk) = SmallDisk::mount(dir.path(), "2m") else {
        support::skipped("this process cannot mount a tmpfs to fill up");
        return;
    };
    let config = dir.write("c.toml", USERS_ORDERS);
    let run = |state: &Path, lines: &[&str]| {
        Run::new()
            .args(&[
                "--config",
                config.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .stdin(lines)
            .go()
    };

    // A new state on a full disk: nothing is left behind.
    disk.fill(4096);
    let state = disk.0.join("s.db");
    run(&state, &[CREATED])
        .code_is(74)
        .stdout_is(&[])
        .stderr_has("disk full");
    assert_eq!(files_in(&disk.0), Vec::<String>::new());
    std::fs::remove_file(disk.0.join("filler")).unwrap();

    // A disk that fills while a state grows: the batch is not committed nor
    // answered, and what was committed opens again.
    let events = generated_events(20_000, 2000, 3);
    let lines: Vec<&str> = events.lines().collect();
    let first = run(&state, &lines[..100]);
    first.success();
    disk.fill(64 * 1024);
    let out = run(&state, &lines);
    out.code_is(74).stderr_has("disk full");
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    // Every event answered as applied was committed: delivered again, it
    // is skipped.
    let before = out.stdout_lines();
    assert!(before.len() < lines.len(), "the disk did not fill");
    let again = run(&state, &lines[..before.len()]);
    again.success();
    let after = again.stdout_lines();
    for (i, reply) in before.iter().enumerate() {
        if reply.contains("read_models_updated") {
            assert!(
                after[i].contains("already_processed"),
                "line {}: {}",
                i + 1,
                after[i]
            );
        }
    }
    assert_eq!(files_in(&disk.0), ["s.db"]);
}
