//! `--state`: restarts resume and say so, the state is readable while a
//! projector runs, bad files are refused untouched, and a process killed at
//! any instant neither loses nor doubles an event.

use crate::support;

use rusqlite::Connection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{
    generated_events, replay_in_memory, repo, stored_ids, times_masked, Rng, Run, Stop, TempDir,
    BIN, CREATED, USERS_ORDERS,
};

/// Runs `projector --state STATE` on one UserCreated event; it must succeed.
fn created_once(state: &str) {
    Run::new()
        .args(&["--state", state])
        .stdin(&[CREATED])
        .go()
        .success();
}

fn state_arg(dir: &TempDir) -> String {
    dir.path().join("state.db").to_str().unwrap().to_owned()
}

#[test]
fn a_restart_resumes_documents_ids_and_subscriptions() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    Run::new()
        .args(&["--state", &state])
        .stdin(&[
            r#"{"type":"subscribe","msg_id":1,"event_types":["UserCreated"]}"#,
            CREATED,
        ])
        .go()
        .success();
    Run::new()
        .args(&["--state", &state])
        .stdin(&[
            CREATED,
            r#"{"type":"event","msg_id":2,"event":{"type":"UserDeleted","id":"e2","payload":{"id":"u1"}}}"#,
            r#"{"type":"query","msg_id":3,"model":"user_listing","key":"u1"}"#,
        ])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "event_skipped", "in_reply_to": 1, "event_id": "e1", "reason": "already_processed"}"#,
            r#"{"type": "event_skipped", "in_reply_to": 2, "event_id": "e2", "reason": "not_subscribed"}"#,
            r#"{"type": "query_result", "in_reply_to": 3, "model": "user_listing", "key": "u1", "document": {"email": null, "id": "u1", "name": "Ann"}}"#,
        ]);
}

#[test]
fn a_start_says_what_it_resumed_in_one_line() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let first = Run::new()
        .args(&["--state", &state])
        .stdin(&[
            r#"{"type":"subscribe","msg_id":1,"event_types":["UserCreated","UserDeleted"]}"#,
            CREATED,
        ])
        .go();
    first.success();
    assert_eq!(
        times_masked(&first.stderr),
        format!("projector: created the state {state} in <t> s: documents: user_listing 0, user_by_email 0, user_activity 0, long_sessions 0; processed event ids: 0; subscribed to: all event types\n")
    );
    let again = Run::new().args(&["--state", &state]).go();
    again.success();
    assert_eq!(
        times_masked(&again.stderr),
        format!("projector: resumed the state {state} in <t> s: documents: user_listing 1, user_by_email 1, user_activity 0, long_sessions 0; processed event ids: 1; subscribed to: UserCreated, UserDeleted\n")
    );
}

/// Subscriptions changed by many messages of one batch are recorded as they
/// stand at its end (once per batch, not once per message).
#[test]
fn subscriptions_changed_many_times_in_a_batch_resume_as_they_ended() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let mut lines: Vec<String> = (0..2000)
        .map(|i| {
            format!(r#"{{"type":"subscribe","msg_id":{i},"event_types":["New{i}a","New{i}b"]}}"#)
        })
        .collect();
    lines.push(
        r#"{"type":"subscribe","msg_id":1,"event_types":["UserCreated","UserDeleted"]}"#.to_owned(),
    );
    lines.push(
        r#"{"type":"unsubscribe","msg_id":2,"event_types":["UserCreated","New7a"]}"#.to_owned(),
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Run::new()
        .args(&["--state", &state])
        .stdin(&lines)
        .go()
        .success();
    let stored: String = Connection::open(&state)
        .unwrap()
        .query_row(
            "SELECT value FROM projector_meta WHERE name = 'subscriptions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let stored: Vec<String> = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored.len(), 4000);
    assert!(stored.contains(&"UserDeleted".to_owned()) && stored.contains(&"New7b".to_owned()));
    assert!(!stored.contains(&"UserCreated".to_owned()) && !stored.contains(&"New7a".to_owned()));
    Run::new()
        .args(&["--state", &state])
        .stdin(&[
            CREATED,
            r#"{"type":"event","msg_id":2,"event":{"type":"UserDeleted","id":"e2","payload":{"id":"u1"}}}"#,
        ])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "event_skipped", "in_reply_to": 1, "event_id": "e1", "reason": "not_subscribed"}"#,
            r#"{"type": "read_models_updated", "in_reply_to": 2, "event_id": "e2", "updated_models": []}"#,
        ]);
}

#[test]
fn documents_are_readable_with_plain_sql() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    created_once(&state);
    let db = Connection::open(&state).unwrap();
    let rows: Vec<(String, String)> = db
        .prepare("SELECT key, doc FROM documents WHERE model = 'user_listing'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [(
            "u1".to_owned(),
            r#"{"email":null,"id":"u1","name":"Ann"}"#.to_owned()
        )]
    );
    let ids: Vec<String> = db
        .prepare("SELECT id FROM processed_events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["e1"]);
}

/// Runs `projector run --state` on `bytes` written as the state file; it must
/// be refused with `code` and a message containing `says`, the file unchanged.
fn refused(bytes: &[u8], code: i32, says: &str) {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    std::fs::write(&state, bytes).unwrap();
    let out = Run::new().args(&["--state", &state]).stdin(&[CREATED]).go();
    out.code_is(code).stdout_is(&[]);
    assert!(out.stderr.contains(says), "stderr: {}", out.stderr);
    assert!(
        std::fs::read(&state).unwrap() == bytes,
        "the state file was changed"
    );
}

#[test]
fn a_file_that_is_not_a_state_is_refused_untouched() {
    refused(
        b"hello, I am a text file\n",
        65,
        "is not a projector state: it is not an SQLite database; it was left untouched",
    );
    let dir = TempDir::new();
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    refused(
        &std::fs::read(&other).unwrap(),
        65,
        "is not a projector state: it is an SQLite database that a projector did not make",
    );
}

#[test]
fn a_torn_or_garbled_state_is_refused_untouched() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let events = generated_events(3000, 300, 7);
    let lines: Vec<&str> = events.lines().collect();
    Run::new()
        .config(USERS_ORDERS)
        .args(&["--state", &state])
        .stdin(&lines)
        .go()
        .success();
    let whole = std::fs::read(&state).unwrap();
    assert!(whole.len() > 64 * 1024, "the state is large enough to tear");
    refused(&whole[..whole.len() / 2], 65, "is damaged");
    let mut garbled = whole.clone();
    for b in &mut garbled[4096..whole.len() - 4096] {
        *b ^= 0x5a;
    }
    refused(&garbled, 65, "is damaged");
    refused(&whole[..10], 65, "is not a projector state");
}

/// A projector serving `--state STATE` in the repository, its stdin and
/// stdout kept for the test to talk to it.
struct Serving {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Serving {
    fn start(state: &str) -> Serving {
        let mut child = Command::new(BIN)
            .args(["--state", state])
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Serving {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends a line and waits for its reply: once it is read, what the
    /// line did is committed.
    fn send(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        reply
    }

    fn finish(self) {
        drop(self.stdin);
        let mut child = self.child;
        assert!(child.wait().unwrap().success());
    }
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn other_processes_read_and_back_up_the_state_while_a_projector_runs() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let mut serving = Serving::start(&state);
    assert!(serving.send(CREATED).contains("read_models_updated"));

    // Read-only and read-write connections both read the live state.
    let reader =
        Connection::open_with_flags(&state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    assert_eq!(count(&reader, "SELECT count(*) FROM documents"), 2);
    let other = Connection::open(&state).unwrap();
    assert_eq!(count(&other, "SELECT count(*) FROM processed_events"), 1);
    if let Ok(out) = Command::new("sqlite3")
        .args([
            "-readonly",
            &state,
            "SELECT count(*) FROM documents WHERE model = 'user_listing'",
        ])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{out:?}");
    }

    // A live backup, while the projector goes on committing.
    let backup = dir.path().join("backup.db");
    other
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();
    let deleted = r#"{"type":"event","msg_id":2,"event":{"type":"UserDeleted","id":"e2","payload":{"id":"u1"}}}"#;
    assert!(serving.send(deleted).contains("read_models_updated"));
    assert_eq!(count(&reader, "SELECT count(*) FROM processed_events"), 2);

    // A second projector is still refused.
    let out = Run::new().args(&["--state", &state]).stdin(&[CREATED]).go();
    out.code_is(75)
        .stdout_is(&[])
        .stderr_has("is in use by another running projector");
    drop((reader, other));
    serving.finish();

    // The backup is a state as it was: a projector resumes from it.
    let backup = backup.to_str().unwrap();
    Run::new()
        .args(&["--state", backup])
        .stdin(&[
            deleted,
            r#"{"type":"query","msg_id":3,"model":"user_listing","key":"u1"}"#,
        ])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "read_models_updated", "in_reply_to": 2, "event_id": "e2", "updated_models": ["user_listing", "user_by_email"]}"#,
            r#"{"type": "query_result", "in_reply_to": 3, "model": "user_listing", "key": "u1", "document": null}"#,
        ]);
}

/// Distinct event ids per event type in a stream.
fn distinct_per_type(events: &str) -> HashMap<String, usize> {
    let mut seen = HashSet::new();
    let mut counts = HashMap::new();
    for line in events.lines() {
        let msg: Value = serde_json::from_str(line).unwrap();
        let event = &msg["body"]["event"];
        if let Some(id) = event["id"].as_str() {
            if seen.insert(id.to_owned()) {
                *counts
                    .entry(event["type"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Delivers the whole stream to `run --state` and stops it as `stop` says.
fn deliver(
    config: &Path,
    state: &str,
    cache_mb: &str,
    events: &str,
    stop: Stop,
) -> (Vec<String>, bool) {
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--state",
        state,
        "--cache-mb",
        cache_mb,
    ];
    support::deliver(&args, events, stop, (50, Duration::from_millis(1)), || {})
}

/// Runs the stream `runs` times against one state, stopping each run as
/// `stop` picks, then once to the end; the read models must equal a clean
/// in-memory run's and every event must have been applied exactly once.
/// Each run's cache holds `cache_mb` (0: only what a batch not yet committed
/// wrote, so that documents and ids are read back from the state all the
/// time).
fn exactly_once_despite(runs: usize, cache_mb: &str, mut stop: impl FnMut() -> Stop, seed: u64) {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let config = dir.write("users-orders.toml", USERS_ORDERS);
    let events = generated_events(3000, 300, 7);
    let log = dir.write("events.ndjson", &events);
    let clean = dir.path().join("clean.json");
    replay_in_memory(&config, &log, &clean);

    let (mut replied, mut stopped) = (0, 0);
    for _ in 0..runs {
        let (applied, was_stopped) = deliver(&config, &state, cache_mb, &events, stop());
        stopped += usize::from(was_stopped);
        // A reply means durable: whatever was answered as applied is in the state.
        let durable = stored_ids(Path::new(&state));
        for id in &applied {
            assert!(
                durable.contains(id),
                "{id} was replied to as applied but is not in the state (seed {seed})"
            );
        }
        replied += applied.len();
    }
    eprintln!(
        "{stopped} of {runs} runs stopped while running; {replied} events replied to as applied"
    );
    assert!(replied > 0, "no run got as far as a reply (seed {seed})");
    assert!(
        stopped * 3 >= runs,
        "only {stopped} of {runs} runs were stopped while running (seed {seed})"
    );

    let dumped = dir.path().join("dumped.json");
    Run::new()
        .config(USERS_ORDERS)
        .args(&["--state", &state, "--dump", dumped.to_str().unwrap()])
        .stdin(&events.lines().collect::<Vec<_>>())
        .go()
        .success();
    let dumped = std::fs::read_to_string(&dumped).unwrap();
    let counts: Value = serde_json::from_str(&dumped).unwrap();
    for (ty, n) in distinct_per_type(&events) {
        assert_eq!(
            counts["applied_per_type"][&ty]["events"], n,
            "{ty} events applied, against {n} distinct ids (seed {seed})"
        );
    }
    assert!(
        dumped == std::fs::read_to_string(&clean).unwrap(),
        "the read models differ from a clean run (seed {seed})"
    );
}

#[test]
fn killed_at_random_moments_every_event_is_applied_exactly_once() {
    let mut rng = Rng::seeded("crash test");
    let seed = rng.0;
    exactly_once_despite(
        30,
        "0",
        || Stop::KillAfter(Duration::from_millis(rng.below(70))),
        seed,
    );
}

/// The whole stream takes some 600 write steps (a BEGIN, the ids' and the
/// documents' multi-row statements, a COMMIT) in batches of about ten, so
/// crash points drawn from the first 80 steps of each run land anywhere in a
/// batch (before, among and after its id inserts, document writes and
/// commit) while the state still advances a few batches per run.
#[test]
fn crashed_between_any_two_writes_every_event_is_applied_exactly_once() {
    let mut rng = Rng::seeded("crash test");
    let seed = rng.0;
    exactly_once_despite(30, "256", || Stop::CrashAtStep(1 + rng.below(80)), seed);
}
