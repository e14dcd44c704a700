//! A durable state is read through a cache bounded by `--cache-mb`: with a
//! cache far smaller than the state, so that documents are evicted and read
//! back all the time, and a restart in the middle, SQLite and PostgreSQL give
//! the replies and the documents that a run in memory gives, on a stream
//! whose hot documents grow by one list entry per order.

use crate::support;

use std::path::Path;
use support::{generated_events, repo, PgDb, Run, TempDir};

/// `examples/users-orders.toml`: `orders_per_customer` appends every order
/// id to its customer's list.
fn config() -> String {
    repo()
        .join("examples/users-orders.toml")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A generated stream in which `user-0` places about 60% of the orders, as
/// a hot aggregate does: its `orders_per_customer` list grows by one entry
/// per order. An event is picked by its id, so a redelivery stays a copy.
fn hot_stream(events: usize, users: usize, seed: u64) -> Vec<String> {
    generated_events(events, users, seed)
        .lines()
        .map(|line| {
            let mut message: serde_json::Value = serde_json::from_str(line).unwrap();
            let event = &mut message["body"]["event"];
            let id = event["id"].as_str().unwrap_or_default();
            let pick = id
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
            if event["type"] == "OrderPlaced" && pick % 10 < 6 {
                event["payload"]["user_id"] = "user-0".into();
            }
            message.to_string()
        })
        .collect()
}

/// The replies and the dump of a run in memory.
fn in_memory(lines: &[&str], dir: &TempDir) -> (String, String) {
    let dump = dir.path().join("memory.json");
    let out = Run::new()
        .args(&["--config", &config(), "--dump", dump.to_str().unwrap()])
        .stdin(lines)
        .go();
    out.success();
    (out.stdout, std::fs::read_to_string(dump).unwrap())
}

/// Two runs on the state `state` (the arguments that name it), each given
/// half of `lines`, with `cache_mb`; their replies and the last one's dump.
fn in_halves(lines: &[&str], state: &[&str], cache_mb: &str, dump: &Path) -> (String, String) {
    let (first, second) = lines.split_at(lines.len() / 2);
    let mut replies = String::new();
    for (half, last) in [(first, false), (second, true)] {
        let mut args = vec!["--config", &*config(), "--cache-mb", cache_mb]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        args.extend(state.iter().map(|s| s.to_string()));
        if last {
            args.extend(["--dump".to_owned(), dump.to_str().unwrap().to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Run::new().args(&args).stdin(half).go();
        out.success();
        replies.push_str(&out.stdout);
    }
    (replies, std::fs::read_to_string(dump).unwrap())
}

fn check(state: &[&str]) {
    let mut args = vec!["check"];
    args.extend(state);
    let out = Run::new().args(&args).go();
    out.success();
    assert!(out.stdout.contains(": sound: "), "{}", out.stdout);
}

#[test]
fn a_cache_far_smaller_than_the_state_answers_as_memory_does() {
    let dir = TempDir::new();
    let events = hot_stream(40_000, 2_000, 11);
    let lines: Vec<&str> = events.iter().map(String::as_str).collect();
    let (replies, dump) = in_memory(&lines, &dir);
    let models: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let hot = &models["orders_per_customer"]["user-0"]["order_ids"];
    assert!(hot.as_array().unwrap().len() > 10_000, "user-0 is not hot");

    let file = dir.path().join("small.db");
    let state = ["--state", file.to_str().unwrap()];
    let got = in_halves(&lines, &state, "1", &dir.path().join("small.json"));
    assert!(got.0 == replies, "SQLite with a 1 MiB cache: other replies");
    assert!(got.1 == dump, "SQLite with a 1 MiB cache: other documents");
    check(&state);
    // The cache holds 13/16 MiB of documents (estimated at twice their text):
    // a fraction of the state.
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 4 << 20, "the state is only {size} bytes");

    let db = PgDb::new("bounded");
    let url = db.url();
    for (schema, cache_mb) in [("none", "0"), ("large", "256")] {
        let state = ["--state", &url, "--schema", schema];
        let got = in_halves(&lines, &state, cache_mb, &dir.path().join("pg.json"));
        assert!(
            got.0 == replies,
            "PostgreSQL, {cache_mb} MiB: other replies"
        );
        assert!(got.1 == dump, "PostgreSQL, {cache_mb} MiB: other documents");
        check(&state);
    }
}

#[test]
fn queries_read_what_the_cache_evicted() {
    let dir = TempDir::new();
    let mut lines = hot_stream(20_000, 1_000, 5);
    let queries = [
        r#"{"type":"query","msg_id":900001,"model":"orders_per_customer","key":"user-0"}"#,
        r#"{"type":"query","msg_id":900002,"model":"user_listing","limit":5,"after":"user-10"}"#,
        r#"{"type":"query","msg_id":900003,"model":"orders","key":"order-1"}"#,
        r#"{"type":"query","msg_id":900004,"model":"orders","key":"no-such-order"}"#,
    ];
    lines.extend(queries.iter().map(|q| q.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (replies, _) = in_memory(&lines, &dir);
    let file = dir.path().join("q.db");
    let out = Run::new()
        .args(&["--config", &config(), "--cache-mb", "1"])
        .args(&["--state", file.to_str().unwrap()])
        .stdin(&lines)
        .go();
    out.success();
    assert!(out.stdout == replies, "other replies to the queries");
    let tail: Vec<&str> = replies.lines().rev().take(4).collect();
    assert!(tail.iter().all(|r| r.contains("query_result")), "{tail:?}");
}

/// A state written before the filter was kept (format 2) is upgraded when
/// opened: it keeps no filter, so its runs ask it for ids and documents,
/// and answer as memory does.
#[test]
fn a_state_of_the_format_before_the_filter_is_upgraded() {
    let dir = TempDir::new();
    let events = hot_stream(6_000, 300, 3);
    let lines: Vec<&str> = events.iter().map(String::as_str).collect();
    let (replies, dump) = in_memory(&lines, &dir);
    let (first, second) = lines.split_at(lines.len() / 2);
    let file = dir.path().join("old.db");
    let state = file.to_str().unwrap();
    let first_run = Run::new()
        .args(&["--config", &config(), "--state", state])
        .stdin(first)
        .go();
    first_run.success();

    // As format 2 left it: no filter, ids not counted by type.
    let db = rusqlite::Connection::open(&file).unwrap();
    let rows: String = db
        .query_row(
            "SELECT value FROM projector_meta WHERE name = 'rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    rows.as_object_mut().unwrap().remove("processed_types");
    let sum = |fields: &[&str]| i64::from(crc32fast::hash(fields.join("\0").as_bytes()));
    for (name, value) in [
        ("rows", rows.to_string()),
        ("format", "projector-state 2".to_owned()),
    ] {
        db.execute(
            "UPDATE projector_meta SET value = ?2, sum = ?3 WHERE name = ?1",
            rusqlite::params![name, value, sum(&[name, &value])],
        )
        .unwrap();
    }
    db.execute_batch(
        "DELETE FROM projector_meta WHERE name = 'filter';
         DROP TABLE filter; DROP TABLE filter_log; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(db);

    let dumped = dir.path().join("old.json");
    let second_run = Run::new()
        .args(&["--config", &config(), "--state", state, "--cache-mb", "0"])
        .args(&["--dump", dumped.to_str().unwrap()])
        .stdin(second)
        .go();
    second_run.success();
    assert!(
        first_run.stdout.clone() + &second_run.stdout == replies,
        "other replies after the upgrade"
    );
    assert!(std::fs::read_to_string(&dumped).unwrap() == dump);
    check(&["--state", state]);
    let db = rusqlite::Connection::open(&file).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let kept: Option<String> = db
        .query_row(
            "SELECT value FROM projector_meta WHERE name = 'filter'",
            [],
            |r| r.get(0),
        )
        .ok();
    assert_eq!(kept, None);
}

/// A rebuild streams through the cache too: with a cache far smaller than
/// the rebuilt models (`orders` alone holds several MiB), SQLite and PostgreSQL swap in what a run in memory
/// with the new definition builds. A rebuild refused at its end (its log
/// lacks processed events) leaves what it staged, which the state's check
/// tolerates and the next opening clears.
#[test]
fn a_rebuild_through_a_small_cache_builds_what_memory_builds() {
    let dir = TempDir::new();
    let events = hot_stream(24_000, 1_500, 17);
    let lines: Vec<&str> = events.iter().map(String::as_str).collect();
    let changed = std::fs::read_to_string(config())
        .unwrap()
        .replace("max_amount", "top_amount");
    let changed = dir.write("changed.toml", &changed);
    let changed = changed.to_str().unwrap();
    let expected = dir.path().join("expected.json");
    Run::new()
        .args(&["--config", changed, "--dump", expected.to_str().unwrap()])
        .stdin(&lines)
        .go()
        .success();
    let expected = std::fs::read_to_string(expected).unwrap();
    let log = dir.write("all.ndjson", &(lines.join("\n") + "\n"));
    let tail = dir.write("tail.ndjson", &(lines[lines.len() / 2..].join("\n") + "\n"));
    let processed = &lines[..lines.len() * 2 / 3];

    let file = dir.path().join("rebuilt.db");
    let db = PgDb::new("bounded_rebuild");
    let url = db.url();
    let states: [(Vec<&str>, &str); 2] = [
        (vec!["--state", file.to_str().unwrap()], "1"),
        (vec!["--state", &url, "--schema", "rebuilt"], "0"),
    ];
    for (state, cache_mb) in &states {
        let mut run = Run::new().args(&["--config", &config()]).args(state);
        run = run.stdin(processed);
        run.go().success();
        let replay = |log: &Path, dump: &Path| {
            Run::new()
                .args(&[
                    "replay",
                    "--config",
                    changed,
                    "--rebuild",
                    "orders_per_customer",
                ])
                .args(&["--rebuild", "orders"])
                .args(&["--cache-mb", cache_mb, "--dump", dump.to_str().unwrap()])
                .args(state)
                .arg(log.to_str().unwrap())
                .go()
        };
        let refused = replay(&tail, &dir.path().join("no.json"));
        assert_ne!(refused.code, Some(0), "{}", refused.stderr);
        refused.stderr_has("--allow-incomplete");
        check(state);
        let dump = dir.path().join("rebuilt.json");
        replay(&log, &dump).success();
        assert!(
            std::fs::read_to_string(&dump).unwrap() == expected,
            "{state:?}: the rebuild holds other documents"
        );
        check(state);
    }
    let left: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rebuild%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the staging outlived the swap");
}
