//! `--state`: restarts resume, bad files are refused untouched, stale models
//! are caught, `replay` rebuilds, and a process killed at any instant neither
//! loses nor doubles an event.

mod support;

use rusqlite::Connection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{repo, Run, TempDir, BIN};

/// The users-orders read models, plus a count of applied events per type.
const USERS_ORDERS: &str = r#"
[[model]]
name = "user_listing"
key = "$.payload.id"
on.UserCreated = { put = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserUpdated = { merge = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserDeleted = { delete = true }

[[model]]
name = "orders"
key = "$.payload.order_id"
on.OrderPlaced = { put = { order_id = "$.payload.order_id", user_id = "$.payload.user_id", amount = "$.payload.amount" } }

[[model]]
name = "user_order_stats"
key = "$.payload.user_id"
on.OrderPlaced = { increment = { order_count = 1, total_spent = "$.payload.amount" }, merge = { last_order_id = "$.payload.order_id" } }

[[model]]
name = "applied_per_type"
key = "$.type"
on.UserCreated = { increment = { events = 1 } }
on.UserUpdated = { increment = { events = 1 } }
on.UserDeleted = { increment = { events = 1 } }
on.OrderPlaced = { increment = { events = 1 } }
"#;

const CREATED: &str = r#"{"type":"event","msg_id":1,"event":{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann"}}}"#;

/// A users-orders stream from the shared generator: every line an envelope.
fn generated_events(events: usize) -> String {
    let out = Command::new("python3")
        .arg(repo().join("../shared/bench/gen_events.py"))
        .args([
            "--events",
            &events.to_string(),
            "--users",
            "300",
            "--seed",
            "7",
        ])
        .output()
        .expect("python3 runs the event generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `projector replay --config C --dump DUMP LOG`, in memory.
fn replay_in_memory(config: &Path, log: &Path, dump: &Path) {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    Run::new()
        .args(&[
            "replay",
            "--config",
            &path(config),
            "--dump",
            &path(dump),
            &path(log),
        ])
        .go()
        .success();
}

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
        ])
        .stderr_is("");
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
        "is not a projector state: it is an SQLite database without projector tables",
    );
}

#[test]
fn a_torn_or_garbled_state_is_refused_untouched() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let events = generated_events(3000);
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

#[test]
fn a_state_in_use_by_another_projector_is_refused() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let mut first = Command::new(BIN)
        .args(["--state", &state])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = first.stdin.take().unwrap();
    writeln!(stdin, "{CREATED}").unwrap();
    let mut reply = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut reply)
        .unwrap();
    assert!(reply.contains("read_models_updated"));
    let out = Run::new().args(&["--state", &state]).stdin(&[CREATED]).go();
    out.code_is(75).stdout_is(&[]);
    assert!(
        out.stderr
            .contains("is in use by another running projector"),
        "{}",
        out.stderr
    );
    drop(stdin);
    assert!(first.wait().unwrap().success());
}

#[test]
fn changed_models_are_refused_until_rebuilt_from_the_log() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let log = dir.write("events.ndjson", &generated_events(2000));
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Run::new()
        .config(USERS_ORDERS)
        .args(&["--state", &state])
        .stdin(&lines)
        .go()
        .success();

    // Orders now also keep the amount in cents; the other models are as they were.
    let changed = USERS_ORDERS.replace(
        "amount = \"$.payload.amount\" } }",
        "amount = \"$.payload.amount\", currency = { value = \"EUR\" } } }",
    );
    assert_ne!(changed, USERS_ORDERS);
    let out = Run::new()
        .config(&changed)
        .args(&["--state", &state])
        .stdin(&[CREATED])
        .go();
    out.code_is(78).stdout_is(&[]);
    let expected = format!(
        "projector: {state} was written with other read-model definitions:\n  orders: its definition changed\nrefusing to run on stale read models; rebuild them from the event log with\n  projector replay --config <CONFIG> --state {state} --rebuild orders <EVENTS.ndjson>\n"
    );
    out.stderr_is(&expected);

    let config = dir.write("changed.toml", &changed);
    let rebuilt = dir.path().join("rebuilt.json");
    let out = Run::new()
        .args(&[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--state",
            &state,
            "--rebuild",
            "orders",
        ])
        .args(&["--dump", rebuilt.to_str().unwrap(), log.to_str().unwrap()])
        .go();
    out.success();
    assert!(
        out.stderr
            .contains("rebuilding read model \"orders\": dropped "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("replay: done: "), "{}", out.stderr);

    // The rebuilt state equals a fresh in-memory run of the new config over the log.
    let fresh = dir.path().join("fresh.json");
    replay_in_memory(&config, &log, &fresh);
    assert_eq!(
        std::fs::read_to_string(&rebuilt).unwrap(),
        std::fs::read_to_string(&fresh).unwrap()
    );
    assert!(std::fs::read_to_string(&rebuilt)
        .unwrap()
        .contains("\"currency\": \"EUR\""));

    // And the state now runs.
    Run::new()
        .config(&changed)
        .args(&["--state", &state])
        .stdin(&[CREATED])
        .go()
        .success();
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

/// A small xorshift generator: the kill points vary from run to run, and the
/// seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How a run ends early: killed with SIGKILL after a delay, or aborted by the
/// projector itself just before its n-th write step (PROJECTOR_TEST_CRASH_AT_STEP).
enum Stop {
    KillAfter(Duration),
    CrashAtStep(u64),
}

/// Delivers the whole stream to `run --state` and stops it as `stop` says
/// (unless it finishes first). Returns the ids it replied to as applied, and
/// whether it was stopped while running.
fn deliver(config: &Path, state: &str, events: &str, stop: Stop) -> (Vec<String>, bool) {
    let mut command = Command::new(BIN);
    command
        .args(["--config", config.to_str().unwrap(), "--state", state])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Stop::CrashAtStep(n) = stop {
        command.env("PROJECTOR_TEST_CRASH_AT_STEP", n.to_string());
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: Vec<String> = events.lines().map(|l| format!("{l}\n")).collect();
    // Delivered over time, as a bus would, so that a run commits many small
    // batches (about 50 events, some 110 write steps each).
    let writer = std::thread::spawn(move || {
        for chunk in input.chunks(50) {
            if stdin.write_all(chunk.concat().as_bytes()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let reply: Value = serde_json::from_str(&line).ok()?;
                (reply["type"] == "read_models_updated")
                    .then(|| reply["event_id"].as_str().unwrap().to_owned())
            })
            .collect::<Vec<_>>()
    });
    let stopped = match stop {
        Stop::KillAfter(delay) => {
            std::thread::sleep(delay);
            let running = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            child.wait().unwrap();
            running
        }
        Stop::CrashAtStep(_) => !child.wait().unwrap().success(),
    };
    writer.join().unwrap();
    (reader.join().unwrap(), stopped)
}

/// The ids in the state (none when it was killed before its schema was made).
fn processed_ids(state: &str) -> HashSet<String> {
    let db = Connection::open(state).unwrap();
    let Ok(mut select) = db.prepare("SELECT id FROM processed_events") else {
        return HashSet::new();
    };
    let ids = select
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}

/// Runs the stream `runs` times against one state, stopping each run as
/// `stop` picks, then once to the end; the read models must equal a clean
/// in-memory run's and every event must have been applied exactly once.
fn exactly_once_despite(runs: usize, mut stop: impl FnMut() -> Stop, seed: u64) {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    let config = dir.write("users-orders.toml", USERS_ORDERS);
    let events = generated_events(3000);
    let log = dir.write("events.ndjson", &events);
    let clean = dir.path().join("clean.json");
    replay_in_memory(&config, &log, &clean);

    let (mut replied, mut stopped) = (0, 0);
    for _ in 0..runs {
        let (applied, was_stopped) = deliver(&config, &state, &events, stop());
        stopped += usize::from(was_stopped);
        // A reply means durable: whatever was answered as applied is in the state.
        let durable = processed_ids(&state);
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

fn seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed: {seed}");
    seed
}

#[test]
fn killed_at_random_moments_every_event_is_applied_exactly_once() {
    let seed = seed();
    let mut rng = Rng(seed);
    exactly_once_despite(
        30,
        || Stop::KillAfter(Duration::from_millis(rng.below(70))),
        seed,
    );
}

/// The whole stream takes about 7,000 write steps in batches of some 110, so
/// crash points drawn from the first 500 steps of each run land anywhere in a
/// batch (before, among and after its id inserts, document writes and
/// commit) while the state still advances a few batches per run.
#[test]
fn crashed_between_any_two_writes_every_event_is_applied_exactly_once() {
    let seed = seed();
    let mut rng = Rng(seed);
    exactly_once_despite(30, || Stop::CrashAtStep(1 + rng.below(500)), seed);
}

#[test]
fn a_removed_model_has_its_documents_dropped_and_rebuild_needs_a_known_model() {
    let dir = TempDir::new();
    let state = state_arg(&dir);
    created_once(&state);
    let only_listing = r#"
[[model]]
name = "user_listing"
key = "$.payload.id"
on.UserCreated = { put = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserUpdated = { merge = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserDeleted = { delete = true }
"#;
    Run::new()
        .config(only_listing)
        .args(&["--state", &state])
        .go()
        .success()
        .stderr_is(concat!(
            "projector: read model \"long_sessions\" is no longer configured: dropped 0 documents\n",
            "projector: read model \"user_activity\" is no longer configured: dropped 0 documents\n",
            "projector: read model \"user_by_email\" is no longer configured: dropped 1 document\n",
        ));
    let log = dir.write("events.ndjson", &format!("{CREATED}\n"));
    Run::new()
        .args(&[
            "replay",
            "--state",
            &state,
            "--rebuild",
            "nope",
            log.to_str().unwrap(),
        ])
        .go()
        .code_is(78)
        .stderr_is(
            "projector: --rebuild nope: the configuration declares no read model \"nope\"\n",
        );
}
