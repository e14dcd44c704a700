//! `--state postgres://…` against the local PostgreSQL, each test in a
//! database of its own: the same replies and read models as in memory and
//! in SQLite, views applications can query, one writer per schema, exactly
//! once across kills and lost connections, and rebuilds readers never see
//! half done.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    as_strs, generated_events, keyed_pages, meta_as_earlier, replay_in_memory, surrogate_lines,
    PgDb, Rng, Run, Stop, TempDir, BIN, SURROGATE_MODELS, USERS_ORDERS,
};

/// A run of `projector --state DB --schema SCHEMA` with the users-orders models.
fn pg_run(db: &PgDb, schema: &str) -> Run {
    Run::new()
        .config(USERS_ORDERS)
        .args(&["--state", &db.url(), "--schema", schema])
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The dump of a run as `{"model": {"key": document}}`.
fn dump_of(path: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn memory_sqlite_and_postgres_give_the_same_replies_dumps_and_views() {
    let dir = TempDir::new();
    let db = PgDb::new("differential");
    let events = generated_events(4000, 300, 11);
    let all = lines(&events);
    let (first, second) = all.split_at(all.len() / 2);
    let sqlite = dir.path().join("state.db");
    let dump = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    let memory = Run::new()
        .config(USERS_ORDERS)
        .args(&["--dump", &dump("memory.json")])
        .stdin(&all)
        .go();
    memory.success();
    // The durable runs stop halfway and resume from their state.
    let mut replies = BTreeMap::new();
    for (name, state, schema) in [
        ("sqlite", sqlite.to_str().unwrap().to_owned(), "unused"),
        ("postgres", db.url(), "projector"),
        ("postgres, own schema", db.url(), "second"),
    ] {
        let mut got = String::new();
        for (half, input) in [first, second].iter().enumerate() {
            let out = Run::new()
                .config(USERS_ORDERS)
                .args(&["--state", &state, "--schema", schema])
                .args(&["--dump", &dump(&format!("{name}-{half}.json"))])
                .stdin(input)
                .go();
            out.success();
            got.push_str(&out.stdout);
        }
        replies.insert(name, got);
        assert_eq!(
            std::fs::read_to_string(dump(&format!("{name}-1.json"))).unwrap(),
            std::fs::read_to_string(dump("memory.json")).unwrap(),
            "{name}: the dump differs from the in-memory run's"
        );
    }
    for (name, got) in &replies {
        assert!(
            *got == memory.stdout,
            "{name}: the replies differ from the in-memory run's"
        );
    }
    // Applications read the same documents through the views.
    let dumped = dump_of(Path::new(&dump("memory.json")));
    assert_eq!(dumped.len(), 4);
    for schema in ["projector", "second"] {
        for (model, documents) in &dumped {
            let view = db.view(schema, model);
            assert_eq!(view.len(), documents.len(), "{schema}.{model}");
            for (key, doc) in documents {
                assert!(
                    same_json(&view[key], doc),
                    "{schema}.{model} {key}: {} in the view, {doc} in the dump",
                    view[key]
                );
            }
        }
    }
}

/// Equal as JSON values: numbers by value (jsonb keeps its own spelling).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_str().parse::<f64>().unwrap() == y.as_str().parse::<f64>().unwrap()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

const VALUES: &str = r#"
[[model]]
name = "things"
key = "$.payload.k"
on.Put = { put = { v = "$.payload.v" } }
"#;

#[test]
fn documents_and_keys_come_back_exactly_and_the_view_holds_what_jsonb_can() {
    let db = PgDb::new("values");
    let put = |id: usize, key: &str, value: &str| {
        format!(
            r#"{{"type":"event","msg_id":{id},"event":{{"type":"Put","id":"e{id}","payload":{{"k":{key},"v":{value}}}}}}}"#
        )
    };
    let events = [
        put(1, r#""nul\u0000key""#, r#""a\u0000b""#),
        put(2, r#""lone""#, r#""\ud800x""#),
        put(
            3,
            r#""big""#,
            "[1e400, -1e400, 18446744073709551617, 1.50, -0]",
        ),
        put(
            4,
            r#""order""#,
            r#"{"z": 1, "a": 2, "m": {"y": 1, "b": 2}}"#,
        ),
        put(5, r#""plane16""#, "\"\u{10FFFF}\u{100000}\""),
    ];
    let queries: Vec<String> = ["nul\\u0000key", "lone", "big", "order", "plane16"]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                r#"{{"type":"query","msg_id":{},"model":"things","key":"{k}"}}"#,
                10 + i
            )
        })
        .collect();
    let run = |input: &[String]| {
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        Run::new()
            .config(VALUES)
            .args(&["--state", &db.url()])
            .stdin(&input)
            .go()
    };
    let in_memory = {
        let mut input = events.to_vec();
        input.extend(queries.iter().cloned());
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        Run::new().config(VALUES).stdin(&input).go()
    };
    run(&events).success();
    // Read back after a restart: byte for byte what memory answers.
    let restarted = run(&queries);
    restarted.success();
    let want: Vec<&str> = in_memory.stdout.lines().skip(events.len()).collect();
    restarted.stdout_is(&want);

    let view = db.view("projector", "things");
    assert_eq!(view["nul\u{1}\u{1}key"]["v"], "a\u{FFFD}b");
    assert_eq!(view["lone"]["v"], "\u{FFFD}x");
    assert_eq!(view["plane16"]["v"], "\u{10FFFF}\u{100000}");
    let big = &view["big"]["v"];
    // 1e400 is held as written, which jsonb's numeric holds too.
    assert_eq!(big[0].as_str(), None);
    assert!(big[0].to_string().parse::<f64>().unwrap().is_infinite());
    assert!(big[1].to_string().parse::<f64>().unwrap() == f64::NEG_INFINITY);
    assert_eq!(big[2].to_string(), "18446744073709551617");
    assert_eq!(view["order"]["v"]["m"]["b"], 2);
}

/// Rewrites the state in schema `projector` into the form a projector of
/// format 2 wrote: lone surrogates after U+10FFFF, that character twice,
/// U+D7FF once, a NUL in a column as U+10FFFF U+F0800; the kept filter as
/// that projector kept it.
fn as_format_2(db: &PgDb) {
    use projector::state::filter::{domain, id_hash, key_hash};
    use projector::value::surrogate::earlier;
    // A column as the text it holds, and that text as format 2 held it.
    let held = |column: &str| {
        column
            .replace("\u{1}\u{1}", "\0")
            .replace("\u{1}\u{2}", "\u{1}")
    };
    let column = |held: &str| earlier(held).replace('\0', "\u{10FFFF}\u{F0800}");
    let mut client = db.client();
    let mut hashes = Vec::new();
    let tables = client
        .query("SELECT name, tbl FROM projector._projector_models", &[])
        .unwrap();
    for table in &tables {
        let (model, table): (&str, &str) = (table.get(0), table.get(1));
        let table = format!("projector.\"{table}\"");
        let rows = client
            .query(&format!("SELECT key, body, doc::text FROM {table}"), &[])
            .unwrap();
        client
            .execute(&format!("DELETE FROM {table}"), &[])
            .unwrap();
        for row in &rows {
            let (key, body, doc): (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
            hashes.push(key_hash(&domain(model), &earlier(&held(key))));
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (key, body, doc) VALUES ($1, $2, $3::text::jsonb)"
                    ),
                    &[&column(&held(key)), &earlier(body).as_ref(), &doc],
                )
                .unwrap();
        }
    }
    let ids = client
        .query("SELECT id, type FROM projector._projector_processed", &[])
        .unwrap();
    client
        .execute("DELETE FROM projector._projector_processed", &[])
        .unwrap();
    for row in &ids {
        let (id, ty): (&str, &str) = (row.get(0), row.get(1));
        hashes.push(id_hash(&earlier(&held(id))));
        client
            .execute(
                "INSERT INTO projector._projector_processed (id, type) VALUES ($1, $2)",
                &[&column(&held(id)), &column(&held(ty))],
            )
            .unwrap();
    }
    let meta = client
        .query(
            "SELECT name, value FROM projector._projector_meta WHERE name IN ('rows', 'subscriptions')",
            &[],
        )
        .unwrap();
    for row in &meta {
        let (name, value): (&str, &str) = (row.get(0), row.get(1));
        client
            .execute(
                "UPDATE projector._projector_meta SET value = $2 WHERE name = $1",
                &[&name, &meta_as_earlier(value)],
            )
            .unwrap();
    }
    client
        .batch_execute(
            "DELETE FROM projector._projector_filter; DELETE FROM projector._projector_filter_log;
             UPDATE projector._projector_meta SET value = 'projector-postgres 2' WHERE name = 'format'",
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO projector._projector_filter_log (hashes) VALUES ($1)",
            &[&projector::util::bloom::hashes_to_bytes(&hashes)],
        )
        .unwrap();
}

/// A state written by a projector that held lone surrogates and NUL
/// characters in their earlier forms (format 2) is upgraded once claimed:
/// it answers as memory does, knows the events it applied, and pages keys
/// by code point; its view holds a NUL as U+0001 U+0001.
#[test]
fn a_state_of_the_earlier_form_of_lone_surrogates_is_upgraded() {
    let dir = TempDir::new();
    let db = PgDb::new("earlier");
    let first = surrogate_lines(100);
    let mut second = first.clone();
    second.extend(surrogate_lines(200));
    second.extend(keyed_pages(300, &[r#""\ud7ff""#, r#""\udfff\uffff""#]));
    second.push(r#"{"type":"query","msg_id":99,"model":"values"}"#.to_owned());
    let all: Vec<&str> = first.iter().chain(&second).map(String::as_str).collect();
    let memory_dump = dir.path().join("memory.json");
    let memory = Run::new()
        .config(SURROGATE_MODELS)
        .args(&["--dump", memory_dump.to_str().unwrap()])
        .stdin(&all)
        .go();
    memory.success();

    let run = |lines: &[String], dump: Option<&Path>| {
        let mut run =
            Run::new()
                .config(SURROGATE_MODELS)
                .args(&["--state", &db.url(), "--cache-mb", "0"]);
        if let Some(dump) = dump {
            run = run.args(&["--dump", dump.to_str().unwrap()]);
        }
        let out = run.stdin(&as_strs(lines)).go();
        out.success();
        out.stdout
    };
    let before = run(&first, None);
    as_format_2(&db);
    let dump = dir.path().join("state.json");
    let after = run(&second, Some(&dump));
    assert_eq!(before + &after, memory.stdout);
    assert_eq!(
        std::fs::read_to_string(dump).unwrap(),
        std::fs::read_to_string(memory_dump).unwrap()
    );
    let check = Run::new().args(&["check", "--state", &db.url()]).go();
    check.success();
    assert!(check.stdout.contains(": sound: "), "{}", check.stdout);
    let view = db.view("projector", "keyed");
    assert_eq!(
        view["\u{1}\u{1}x"]["v"]["\u{10FFFF}"],
        json_value("[\"\u{FFFD}x\"]")
    );
    assert!(view.contains_key("\u{D7FF}\u{F0000}"));
}

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Starts `projector --state DB` reading from a pipe that stays open.
fn serving(db: &PgDb, schema: &str, config: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--state",
            &db.url(),
            "--schema",
            schema,
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the running projector has answered an event, so that it
/// holds the state.
fn answered_one(child: &mut Child) {
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        r#"{{"type":"event","msg_id":1,"event":{{"type":"UserCreated","id":"held-1","payload":{{"id":"u1"}}}}}}"#
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains(r#""event_id": "held-1""#), "{line}");
}

#[test]
fn one_writer_per_schema_and_a_dead_writers_claim_ends_with_its_connection() {
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let db = PgDb::new("lease");
    let short = [("PROJECTOR_LEASE_SECONDS", "2")];
    let mut first = serving(&db, "projector", &config, &short);
    answered_one(&mut first);

    // A second projector on the same schema is refused; on another one it runs.
    pg_run(&db, "projector")
        .go()
        .code_is(75)
        .stderr_has("is in use by another running projector (projector pid ");
    pg_run(&db, "other").go().success();

    // The first outlives its lease while it waits for input: its heartbeat renews it.
    std::thread::sleep(Duration::from_secs(3));
    pg_run(&db, "projector").go().code_is(75);

    // Killed, it cannot release its claim: refused until the lease lapses.
    // Killed, it cannot release its claim, but its connection ends with
    // it: a successor claims the state as soon as the server sees that,
    // long before the lease lapses.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed = Instant::now();
    loop {
        let out = pg_run(&db, "projector").go();
        if out.code == Some(0) {
            break;
        }
        out.code_is(75);
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "the claim outlived its writer's connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A projector that stops cleanly gives its claim up at once.
    let mut second = serving(&db, "projector", &config, &[]);
    answered_one(&mut second);
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
    pg_run(&db, "projector").go().success();
}

/// Delivers the stream to `run --state DB` over time and stops it as
/// `stop` says; with `cuts`, terminates every connection to the database
/// that many times while it runs, and the run must go on to the end.
fn deliver(
    db: &PgDb,
    config: &Path,
    events: &str,
    stop: Stop,
    (cuts, cache_mb): (usize, &str),
) -> (Vec<String>, bool) {
    let url = db.url();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--state",
        &url,
        "--cache-mb",
        cache_mb,
    ];
    // Slower while connections are cut, so that the run outlasts the cuts.
    let pace = match cuts {
        0 => (20, Duration::from_millis(2)),
        _ => (10, Duration::from_millis(10)),
    };
    let cut = || {
        let mut admin = db.client();
        let mut cut_total = 0;
        for _ in 0..cuts {
            std::thread::sleep(Duration::from_millis(100));
            // The projector's connections come back as it needs them: a
            // cut waits a while for one to cut (the run may end first).
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            loop {
                let cut: i64 = admin
                    .query_one(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                         FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                cut_total += cut;
                if cut > 0 || std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert!(
            cuts == 0 || cut_total > 0,
            "no connection of the projector to cut"
        );
    };
    let (applied, stopped) = support::deliver(&args, events, stop, pace, cut);
    assert!(cuts == 0 || !stopped, "a lost connection stopped the run");
    (applied, stopped)
}

/// Runs the stream `runs` times against one state, each run stopped as
/// `stop` picks, then once to the end: every event replied to as applied
/// is durable, and the read models equal a clean in-memory run's, with
/// every counter counted once.
/// Each run's cache holds `cache_mb` (0: only what a batch not yet
/// committed wrote, so that documents and ids are read back all the time).
fn exactly_once_despite(
    runs: usize,
    (cuts, cache_mb): (usize, &str),
    mut stop: impl FnMut() -> Stop,
    seed: u64,
) {
    let dir = TempDir::new();
    let db = PgDb::new("exactly_once");
    let config = dir.write("users-orders.toml", USERS_ORDERS);
    let events = generated_events(2000, 200, 7);
    let log = dir.write("events.ndjson", &events);
    let clean = dir.path().join("clean.json");
    replay_in_memory(&config, &log, &clean);

    let (mut replied, mut stopped) = (0, 0);
    for _ in 0..runs {
        let (applied, was_stopped) = deliver(&db, &config, &events, stop(), (cuts, cache_mb));
        stopped += usize::from(was_stopped);
        let durable: HashSet<String> = db.ids("projector");
        for id in &applied {
            assert!(
                durable.contains(id),
                "{id} was replied to but is not in the state (seed {seed})"
            );
        }
        replied += applied.len();
        // A killed run's claim would lapse with its lease (see the lease
        // test); here it is ended at once, so the next run need not wait.
        let _ = db.client().execute(
            "UPDATE projector._projector_lease SET expires = clock_timestamp()",
            &[],
        );
    }
    eprintln!(
        "{stopped} of {runs} runs stopped while running; {replied} events replied to as applied"
    );
    assert!(replied > 0, "no run got as far as a reply (seed {seed})");

    let dumped = dir.path().join("dumped.json");
    Run::new()
        .args(&["--config", config.to_str().unwrap(), "--state", &db.url()])
        .args(&["--dump", dumped.to_str().unwrap()])
        .stdin(&lines(&events))
        .go()
        .success();
    assert!(
        std::fs::read_to_string(&dumped).unwrap() == std::fs::read_to_string(&clean).unwrap(),
        "the read models differ from a clean run (seed {seed})"
    );
    let views = db.view("projector", "applied_per_type");
    let clean = dump_of(&clean);
    for (ty, doc) in &clean["applied_per_type"] {
        assert_eq!(
            views[ty]["events"], doc["events"],
            "{ty}: counted twice? (seed {seed})"
        );
    }
    let mut check = db.client();
    let n: i64 = check
        .query_one("SELECT count(*) FROM projector._projector_processed", &[])
        .unwrap()
        .get(0);
    let distinct: i64 = check
        .query_one(
            "SELECT count(DISTINCT id) FROM projector._projector_processed",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, distinct, "an event id was recorded twice (seed {seed})");
}

#[test]
fn killed_at_random_moments_every_event_is_applied_exactly_once() {
    let mut rng = Rng::seeded("postgres kill test");
    let seed = rng.0;
    exactly_once_despite(
        12,
        (0, "0"),
        || Stop::KillAfter(Duration::from_millis(rng.below(150))),
        seed,
    );
}

#[test]
fn crashed_between_any_two_writes_every_event_is_applied_exactly_once() {
    let mut rng = Rng::seeded("postgres crash test");
    let seed = rng.0;
    // A batch is two steps (its transaction's start and its commit).
    exactly_once_despite(
        12,
        (0, "256"),
        || Stop::CrashAtStep(1 + rng.below(16)),
        seed,
    );
}

#[test]
fn connections_cut_under_a_run_neither_lose_nor_double_anything() {
    exactly_once_despite(1, (6, "0"), || Stop::Finish, 0);
}

#[test]
fn a_database_that_stays_away_stops_the_run_with_a_clear_message() {
    Run::new()
        .config(USERS_ORDERS)
        .env("PROJECTOR_RETRY_SECONDS", "1")
        .args(&["--state", "postgres://postgres@127.0.0.1:1/none"])
        .go()
        .code_is(74)
        .stderr_has("postgres://postgres@127.0.0.1:1/none: connecting to 127.0.0.1:1 failed");
}

/// `projector replay --config CONFIG --state DB --rebuild MODEL LOG`, which must succeed.
fn rebuild(db: &PgDb, config: &Path, model: &str, log: &Path) {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let args = ["replay", "--config", &path(config), "--state", &db.url()];
    Run::new()
        .args(&args)
        .args(&["--rebuild", model, &path(log)])
        .go()
        .success();
}

/// The users-orders models with `orders` keeping only large orders.
fn large_orders_only() -> String {
    USERS_ORDERS.replace(
        r#"on.OrderPlaced = { put = { order_id"#,
        r#"on.OrderPlaced = { when = [{ path = "$.payload.amount", gt = 250 }], put = { order_id"#,
    )
}

#[test]
fn a_rebuild_swaps_in_whole_while_readers_keep_reading() {
    let dir = TempDir::new();
    let db = PgDb::new("rebuild");
    let events = generated_events(6000, 300, 5);
    let log = dir.write("events.ndjson", &events);
    let old_config = dir.write("old.toml", USERS_ORDERS);
    let new_config = dir.write("new.toml", &large_orders_only());
    Run::new()
        .args(&[
            "--config",
            old_config.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .stdin(&lines(&events))
        .go()
        .success();
    let count = |client: &mut postgres::Client| -> Result<i64, postgres::Error> {
        Ok(client
            .query_one("SELECT count(*) FROM projector.orders", &[])?
            .get(0))
    };
    let old = count(&mut db.client()).unwrap();
    let clean = dir.path().join("clean.json");
    replay_in_memory(&new_config, &log, &clean);
    let new = dump_of(&clean)["orders"].len() as i64;
    assert!(new < old && new > 0, "{new} of {old} orders are large");

    // The changed model is refused until it is rebuilt, and the plan says so.
    Run::new()
        .args(&[
            "--config",
            new_config.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .go()
        .code_is(78)
        .stderr_has("--rebuild orders");
    Run::new()
        .args(&[
            "plan",
            "--config",
            new_config.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .go()
        .code_is(2)
        .stdout_has("orders");

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let mut client = db.client();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let n = count(&mut client).expect("a reader never gets an error");
                if seen.last() != Some(&n) {
                    seen.push(n);
                }
            }
            seen.push(count(&mut client).unwrap());
            seen
        })
    };
    rebuild(&db, &new_config, "orders", &log);
    done.store(true, Ordering::SeqCst);
    let mut seen = reader.join().unwrap();
    seen.dedup();
    assert_eq!(
        seen,
        [old, new],
        "readers saw only the old and then the new version"
    );

    let dumped = dir.path().join("after.json");
    Run::new()
        .args(&[
            "--config",
            new_config.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .args(&["--dump", dumped.to_str().unwrap()])
        .go()
        .success();
    assert!(std::fs::read_to_string(dumped).unwrap() == std::fs::read_to_string(&clean).unwrap());
    // The old version's table is gone: one document table per model.
    let tables: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'projector' AND tablename LIKE '\\_projector\\_doc\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 4);
}

#[test]
fn names_postgres_cannot_hold_are_refused_before_anything_is_written() {
    let db = PgDb::new("names");
    let long = "m".repeat(64);
    for name in [long.as_str(), "_projector_meta"] {
        let config = format!(
            "[[model]]\nname = \"{name}\"\nkey = \"$.id\"\non.T = {{ put = {{ a = \"$.a\" }} }}\n"
        );
        Run::new()
            .config(&config)
            .args(&["--state", &db.url()])
            .go()
            .code_is(78)
            .stderr_has("cannot be a view in PostgreSQL");
    }
    let schemas: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'projector'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0);
}

#[test]
fn a_schema_name_is_never_sql_and_one_postgresql_would_cut_is_refused() {
    let db = PgDb::new("hostile");
    let config = "[[model]]\nname = \"things\"\nkey = \"$.payload.id\"\non.T = { put = { a = \"$.payload.a\" } }\n";
    let event =
        r#"{"type":"event","msg_id":1,"event":{"type":"T","id":"e1","payload":{"id":"k","a":1}}}"#;
    let longest = "s".repeat(63);
    for schema in [
        "' || (SELECT 1/0)::text || '",
        "a\"b'c\\d$1",
        "x'); DROP SCHEMA public CASCADE; --",
        "Größe ünïcödé",
        longest.as_str(),
    ] {
        Run::new()
            .config(config)
            .args(&["--state", &db.url(), "--schema", schema])
            .stdin(&[event])
            .go()
            .success()
            .stdout_is(&[r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["things"]}"#]);
        let docs: i64 = db
            .client()
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{}\".things",
                    schema.replace('"', "\"\"")
                ),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(docs, 1, "{schema}");
        for command in ["plan", "status"] {
            let out = Run::new()
                .config(config)
                .args(&[command, "--state", &db.url(), "--schema", schema])
                .go();
            assert!(
                !out.stderr.contains("syntax error") && !out.stderr.contains("division by zero"),
                "{command} {schema}: {}",
                out.stderr
            );
        }
    }
    // 64 bytes: PostgreSQL would cut it to another schema's name.
    let long = "s".repeat(64);
    Run::new()
        .config(config)
        .args(&["--state", &db.url(), "--schema", &long])
        .stdin(&[event])
        .go()
        .code_is(78)
        .stderr_has("--schema cannot be a PostgreSQL schema name: it is 64 bytes long, and PostgreSQL keeps names of at most 63; choose another");
    let schemas: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sss%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(schemas, 1, "only the 63-byte one");
    let public: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(public, 1);
}

#[test]
fn declared_indexes_are_made_kept_in_step_with_the_config_and_rebuilt() {
    let db = PgDb::new("indexes");
    let config = |indexes: &str| {
        USERS_ORDERS.replace(
            "name = \"user_listing\"\n",
            &format!("name = \"user_listing\"\nindexes = {indexes}\n"),
        )
    };
    let events = generated_events(300, 30, 3);
    let indexes = || -> Vec<String> {
        let mut found: Vec<String> = db
            .client()
            .query(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'projector' AND indexname LIKE '%\\_ix\\_%'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0).split(" USING ").nth(1).unwrap().to_owned())
            .collect();
        found.sort();
        found
    };
    Run::new()
        .config(&config(r#"["email", "address.city"]"#))
        .args(&["--state", &db.url()])
        .stdin(&lines(&events))
        .go()
        .success();
    assert_eq!(
        indexes(),
        [
            "btree ((((doc -> 'address'::text) ->> 'city'::text)))",
            "btree (((doc ->> 'email'::text)))"
        ]
    );
    // Queries written as the README shows use them.
    let mut client = db.client();
    client.batch_execute("SET enable_seqscan = off").unwrap();
    let plan: String = client
        .query(
            "EXPLAIN SELECT key FROM projector.user_listing WHERE doc ->> 'email' = 'x'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(plan.contains("Index"), "{plan}");

    // A declaration removed is an index dropped; the documents stay.
    Run::new()
        .config(&config(r#"["name"]"#))
        .args(&["--state", &db.url()])
        .go()
        .success();
    assert_eq!(indexes(), ["btree (((doc ->> 'name'::text)))"]);

    // A rebuild's new table has them too.
    let dir = TempDir::new();
    let log = dir.write("events.ndjson", &events);
    let cfg = dir.write("c.toml", &config(r#"["name"]"#));
    rebuild(&db, &cfg, "user_listing", &log);
    assert_eq!(indexes(), ["btree (((doc ->> 'name'::text)))"]);

    // validate checks them.
    let out = Run::new()
        .args(&["validate"])
        .config(&config(r#"["", "a..b", "email", "email"]"#))
        .go();
    out.code_is(78);
    assert_eq!(out.stderr.matches("P0034").count(), 3, "{}", out.stderr);
}

#[test]
fn a_removed_model_is_kept_until_dropped_and_then_its_view_and_table_go() {
    let db = PgDb::new("drop");
    let events = generated_events(200, 20, 9);
    Run::new()
        .config(USERS_ORDERS)
        .args(&["--state", &db.url()])
        .stdin(&lines(&events))
        .go()
        .success();
    let without_orders = {
        let start = USERS_ORDERS.find("[[model]]\nname = \"orders\"").unwrap();
        let end = USERS_ORDERS[start + 1..].find("[[model]]").unwrap() + start + 1;
        format!("{}{}", &USERS_ORDERS[..start], &USERS_ORDERS[end..])
    };
    let relations = || -> i64 {
        db.client()
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'projector' AND c.relkind IN ('r', 'v')",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let before = relations();
    Run::new()
        .config(&without_orders)
        .args(&["--state", &db.url()])
        .go()
        .code_is(78)
        .stderr_has("--drop orders");
    assert_eq!(relations(), before, "nothing changed while refused");
    assert!(!db.view("projector", "orders").is_empty());
    Run::new()
        .config(&without_orders)
        .args(&["--state", &db.url(), "--drop", "orders"])
        .go()
        .success()
        .stderr_has("read model \"orders\" is no longer configured: dropped");
    // Its view and its table are gone; the others stay.
    assert_eq!(relations(), before - 2);
    assert!(!db.view("projector", "user_listing").is_empty());
}
