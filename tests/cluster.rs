//! `projector run --source nats://… --state postgres://…` as several
//! instances sharing the units of work, against a nats-server of its own
//! and a database of its own: the read models always end equal to an
//! in-memory run of the same stream, whoever was killed, stopped or cut
//! off on the way.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{generated_events, unit_checkpoints, NatsServer, PgDb, Run, TempDir, SERVING};

/// The benchmark's read models: user_listing splits in 4 (all its bindings
/// key alike); orders and user_order_stats share OrderPlaced and key it
/// differently, so they are one unit.
const USERS_ORDERS: &str = include_str!("../bench/users-orders.toml");

/// The lease every instance here takes: a dead one's units are free that
/// long after.
const LEASE_SECONDS: u64 = 2;

const MODELS: [&str; 3] = ["user_listing", "orders", "user_order_stats"];

type Models = BTreeMap<String, BTreeMap<String, Value>>;

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn start(nats: &NatsServer, db: &PgDb, config: &Path, dir: &TempDir, name: &str) -> Instance {
        Instance::start_with(nats, db, config, dir, name, &[])
    }

    fn start_with(
        nats: &NatsServer,
        db: &PgDb,
        config: &Path,
        dir: &TempDir,
        name: &str,
        args: &[&str],
    ) -> Instance {
        let log = dir.path().join(format!("{name}.log"));
        let child = Command::new(support::BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--state", &db.url(), "--source", &nats.stream("EVENTS")])
            .args(args)
            .env("PROJECTOR_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance { child, log }
    }

    /// Its exit status, once it exited within `within`.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM: it must commit, release and exit 0; returns its log.
    /// Sent once the instance says it runs (its handlers are installed
    /// before), however soon after its start that is.
    fn terminate(mut self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.log().contains("projector: consuming ") && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "{status}: {log}");
        log
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A broker, a database and a directory of a test's own, the benchmark's
/// configuration in it, a generated stream (`events` events over `users`
/// users, from `seed`) and the read models memory builds from it.
struct Setup {
    nats: NatsServer,
    db: PgDb,
    dir: TempDir,
    config: PathBuf,
    events: String,
    expected: Models,
}

impl Setup {
    fn new(what: &str, (events, users, seed): (usize, usize, u64)) -> Setup {
        let nats = NatsServer::start();
        let db = PgDb::new(what);
        let dir = TempDir::new();
        let config = dir.write("c.toml", USERS_ORDERS);
        let events = generated_events(events, users, seed);
        let expected = in_memory(&dir, &config, &events);
        Setup {
            nats,
            db,
            dir,
            config,
            events,
            expected,
        }
    }
}

/// Waits until `instance` logged `text`.
fn wait_for_log(instance: &Instance, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !instance.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "not logged: {text}\n{}",
            instance.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes `lines`; returns the stream's last sequence.
fn publish(nats: &NatsServer, lines: &[&str]) -> u64 {
    Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .config(USERS_ORDERS)
        .stdin(lines)
        .go()
        .success();
    nats.messages("EVENTS").len() as u64
}

/// Waits until every unit has applied the stream up to `last`.
fn caught_up(db: &PgDb, last: u64, within: Duration) {
    let started = Instant::now();
    loop {
        let at = unit_checkpoints(db);
        if !at.is_empty() && at.iter().all(|c| *c == Some(last)) && views_made(db) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the units' checkpoints are {at:?}, not all {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the read models' views show the serving version.
fn views_made(db: &PgDb) -> bool {
    db.client()
        .query_one(
            "SELECT views FROM projector._projector_versions WHERE status = 'serving'",
            &[],
        )
        .is_ok_and(|r| r.get(0))
}

/// The read models, through their views in the main schema.
fn read_models(db: &PgDb) -> Models {
    MODELS
        .iter()
        .map(|m| (m.to_string(), db.view("projector", m)))
        .collect()
}

/// The read models an in-memory run of `events` builds.
fn in_memory(dir: &TempDir, config: &Path, events: &str) -> Models {
    let log = dir.write("events.ndjson", events);
    let dump = dir.path().join("memory.json");
    support::replay_in_memory(config, &log, &dump);
    serde_json::from_str(&std::fs::read_to_string(dump).unwrap()).unwrap()
}

fn assert_same(db: &PgDb, expected: &Models, what: &str) {
    let got = read_models(db);
    for model in MODELS {
        assert!(
            got[model] == expected[model],
            "{what}: read model {model} differs from the in-memory run's ({} documents, {} expected)",
            got[model].len(),
            expected[model].len()
        );
    }
}

/// `projector status --format json`, parsed.
fn status(nats: &NatsServer, db: &PgDb, config: &Path) -> Value {
    let out = Run::new()
        .args(&["status", "--config", config.to_str().unwrap()])
        .args(&["--source", &nats.stream("EVENTS"), "--state", &db.url()])
        .args(&["--format", "json"])
        .go();
    out.success();
    serde_json::from_str(&out.stdout).unwrap()
}

/// Units owned per owner, from a status report.
fn owners(report: &Value) -> BTreeMap<String, usize> {
    let mut owners = BTreeMap::new();
    for unit in report["units"].as_array().unwrap() {
        if let Some(owner) = unit["owner"].as_str() {
            *owners.entry(owner.to_owned()).or_default() += 1;
        }
    }
    owners
}

/// Waits until the units are owned `shares` (sorted) among the instances.
fn balanced(nats: &NatsServer, db: &PgDb, config: &Path, shares: &[usize]) -> Value {
    let started = Instant::now();
    loop {
        let report = status(nats, db, config);
        let mut got: Vec<usize> = owners(&report).into_values().collect();
        got.sort();
        if got == shares {
            return report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6 * LEASE_SECONDS),
            "units are owned {got:?}, not {shares:?}: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_two_or_four_instances_build_what_memory_builds_and_share_the_units_fairly() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let events = generated_events(4000, 300, 15);
    let lines: Vec<&str> = events.lines().collect();
    let last = publish(&nats, &lines);
    let expected = in_memory(&dir, &config, &events);

    for (n, shares) in [(1, &[5][..]), (2, &[2, 3]), (4, &[1, 1, 1, 2])] {
        let db = PgDb::new(&format!("cluster{n}"));
        let instances: Vec<Instance> = (0..n)
            .map(|i| Instance::start(&nats, &db, &config, &dir, &format!("n{n}-{i}")))
            .collect();
        caught_up(&db, last, Duration::from_secs(60));
        assert_same(&db, &expected, &format!("{n} instances"));
        let report = balanced(&nats, &db, &config, shares);
        assert_eq!(report["lag"], 0, "{report}");
        assert_eq!(report["units_owned"], 5, "{report}");
        // Each instance reads the stream once, for all of its units.
        let deadline = Instant::now() + Duration::from_secs(10);
        while nats.consumers("EVENTS") != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(nats.consumers("EVENTS"), n, "consumers of {n} instances");
        for instance in instances {
            let log = instance.terminate();
            assert!(log.contains("projector: claimed unit "), "{log}");
            assert!(log.contains("projector: SIGTERM: "), "{log}");
        }
        // Given up on the way out: nobody owns anything, nothing is lost.
        let report = status(&nats, &db, &config);
        assert!(owners(&report).is_empty(), "{report}");
        assert_same(&db, &expected, &format!("{n} instances, stopped"));
    }
}

/// Publishes `lines` in `chunks` parts, `pause` apart, on a thread.
fn publish_over_time(
    nats: &NatsServer,
    lines: Vec<String>,
    chunks: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    let to = nats.stream("EVENTS");
    std::thread::spawn(move || {
        for chunk in lines.chunks(lines.len().div_ceil(chunks)) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            Run::new()
                .args(&["publish", "--to", &to])
                .config(USERS_ORDERS)
                .stdin(&chunk)
                .go()
                .success();
            std::thread::sleep(pause);
        }
    })
}

#[test]
fn killed_and_stopped_instances_are_taken_over_and_a_stopped_one_commits_nothing_on_waking() {
    let Setup {
        nats,
        db,
        dir,
        config,
        events,
        expected,
    } = Setup::new("chaos_kill", (6000, 300, 16));
    let lines: Vec<&str> = events.lines().collect();
    // The stream exists before anyone looks at it; the rest comes over time.
    let (first, rest) = lines.split_at(200);
    publish(&nats, first);
    let rest = rest.iter().map(|l| l.to_string()).collect();
    let publisher = publish_over_time(&nats, rest, 30, Duration::from_millis(300));

    let a = Instance::start(&nats, &db, &config, &dir, "a");
    let b = Instance::start(&nats, &db, &config, &dir, "b");
    balanced(&nats, &db, &config, &[2, 3]);

    // SIGKILL: a's units are free once its leases lapse; c and b take them.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let c = Instance::start(&nats, &db, &config, &dir, "c");
    balanced(&nats, &db, &config, &[2, 3]);

    // SIGSTOP b past its lease: c takes everything over; woken, b finds
    // its units gone and commits nothing more.
    b.signal("STOP");
    std::thread::sleep(Duration::from_secs(LEASE_SECONDS * 2 + 1));
    let report = balanced(&nats, &db, &config, &[5]);
    b.signal("CONT");
    assert!(owners(&report)
        .keys()
        .all(|o| !o.contains(&format!("pid {} ", b.child.id()))));
    publisher.join().unwrap();
    let last = nats.messages("EVENTS").len() as u64;
    caught_up(&db, last, Duration::from_secs(60));
    balanced(&nats, &db, &config, &[2, 3]);
    assert_same(&db, &expected, "after SIGKILL and SIGSTOP");
    let b_log = b.terminate();
    assert!(b_log.contains("projector: lost unit "), "{b_log}");
    // Its next commit was refused by the fencing token.
    assert!(
        b_log.contains("its batch was refused: another instance claimed the unit"),
        "{b_log}"
    );
    c.terminate();
    assert_same(&db, &expected, "at the end");
}

#[test]
fn connections_cut_and_a_broker_restarted_mid_stream_lose_and_double_nothing() {
    let Setup {
        mut nats,
        db,
        dir,
        config,
        events,
        expected,
    } = Setup::new("chaos_cut", (6000, 300, 17));
    let lines: Vec<&str> = events.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);

    let a = Instance::start(&nats, &db, &config, &dir, "a");
    let b = Instance::start(&nats, &db, &config, &dir, "b");
    let publisher = publish_over_time(
        &nats,
        first.iter().map(|l| l.to_string()).collect(),
        10,
        Duration::from_millis(200),
    );
    // Every connection of the instances to the database, cut twice once
    // they have joined (when the stream exists).
    wait_for_log(&a, "claimed unit");
    wait_for_log(&b, "claimed unit");
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        let cut: i64 = db
            .client()
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(cut > 0);
    }
    publisher.join().unwrap();
    // The broker goes away for a second and comes back with its stream.
    nats.restart(Duration::from_secs(1));
    let last = publish(&nats, second);
    caught_up(&db, last, Duration::from_secs(60));
    assert_same(&db, &expected, "after cuts and a broker restart");
    let report = status(&nats, &db, &config);
    assert_eq!(report["lag"], 0, "{report}");
    for instance in [a, b] {
        instance.terminate();
    }
}

#[test]
fn a_stream_is_resumed_from_each_units_checkpoint_after_kills() {
    let nats = NatsServer::start();
    let db = PgDb::new("resume");
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let events = generated_events(3000, 200, 8);
    let lines: Vec<&str> = events.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);

    let published = publish(&nats, first);
    let run = Instance::start(&nats, &db, &config, &dir, "first");
    caught_up(&db, published, Duration::from_secs(30));
    let log = run.terminate();
    assert!(log.contains("applying from sequence 1\n"), "{log}");

    // Nobody consumes: the lag is what the second half adds.
    let all = publish(&nats, second);
    let report = status(&nats, &db, &config);
    assert_eq!(report["lag"], all - published, "{report}");
    assert!(owners(&report).is_empty());
    assert!(report["units"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["checkpoint"] == published));

    // SIGKILL at random moments: each start resumes from the checkpoints.
    let mut rng = support::Rng::seeded("cluster kills");
    for i in 0..3 {
        let mut run = Instance::start(&nats, &db, &config, &dir, &format!("killed{i}"));
        std::thread::sleep(Duration::from_millis(300 + rng.below(500)));
        run.child.kill().unwrap();
        run.child.wait().unwrap();
    }
    let run = Instance::start(&nats, &db, &config, &dir, "last");
    caught_up(&db, all, Duration::from_secs(60));
    let log = run.terminate();
    assert!(!log.contains("applying from sequence 1\n"), "{log}");
    assert_same(&db, &in_memory(&dir, &config, &events), "after kills");
    // Each unit holds each id it applied once: the user_listing units
    // between them hold each user event's id once.
    let mut client = db.client();
    let mut ids = Vec::new();
    for schema in client
        .query(SERVING, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|s| s.contains("user_listing"))
    {
        for row in client
            .query(
                &format!("SELECT id FROM \"{schema}\"._projector_processed"),
                &[],
            )
            .unwrap()
        {
            ids.push(row.get::<_, String>(0));
        }
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "an id applied by two units");
    let user_events = nats
        .messages("EVENTS")
        .iter()
        .filter(|(_, m)| m.contains("\"type\":\"User"))
        .count();
    assert_eq!(ids.len(), user_events);
}

#[test]
fn refused_events_are_recorded_with_their_position_and_the_rest_goes_on_or_stops_there() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let good = |i: usize| {
        format!(
            r#"{{"type":"OrderPlaced","id":"o{i}","payload":{{"order_id":"o{i}","user_id":"u1","amount":{i}.5}}}}"#
        )
    };
    let mut lines: Vec<String> = (1..=6).map(good).collect();
    // Sequence 6: no order_id; sequence 8: an amount that is text.
    lines.insert(
        5,
        r#"{"type":"OrderPlaced","id":"bad-key","payload":{"user_id":"u1","amount":1}}"#.to_owned(),
    );
    lines.push(
        r#"{"type":"OrderPlaced","id":"bad-amount","payload":{"order_id":"x","user_id":"u1","amount":"ten"}}"#
            .to_owned(),
    );
    let events: Vec<String> = lines
        .iter()
        .map(|l| format!(r#"{{"type":"event","event":{l}}}"#))
        .collect();
    let events = events.join("\n");
    let last = publish(&nats, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(last, 8);
    let expected = in_memory(&dir, &config, &events);

    let db = PgDb::new("rejections");
    let run = Instance::start_with(
        &nats,
        &db,
        &config,
        &dir,
        "record",
        &["--metrics", "127.0.0.1:0", "--on-refused", "record"],
    );
    caught_up(&db, last, Duration::from_secs(30));
    // The metrics count this instance's events, and the units' lag once the
    // coordinator has looked (a third of a lease apart).
    let started = Instant::now();
    let metrics = loop {
        let metrics = scrape(&run.log());
        if metrics.contains("projector_unit_lag{unit=\"orders+user_order_stats\"} 0\n") {
            break metrics;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for line in [
        "projector_events_applied_total 6\n",
        "projector_events_skipped_total 0\n",
        "projector_events_refused_total 2\n",
        "projector_units_owned 5\n",
        "projector_unit_owned{unit=\"user_listing 1/4\"} 1\n",
        "# TYPE projector_batch_commit_seconds histogram\n",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        !metrics.contains("projector_batch_commit_seconds_count 0\n"),
        "{metrics}"
    );
    run.terminate();
    assert_same(&db, &expected, "refused events recorded");
    let rows: Vec<(String, i64, Option<String>, i32, String, String)> = db
        .client()
        .query(
            "SELECT unit, position, id, code, error, text FROM projector.rejections ORDER BY position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (unit, position, id, code, error, text) = &rows[0];
    assert_eq!(
        (unit.as_str(), *position, id.as_deref(), *code),
        ("orders+user_order_stats", 6, Some("bad-key"), 12)
    );
    assert!(error.contains("bad-key"), "{error}");
    let event: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(event["event"]["payload"]["user_id"], "u1", "{text}");
    let (_, position, id, code, _, _) = &rows[1];
    assert_eq!(
        (*position, id.as_deref(), *code),
        (8, Some("bad-amount"), 12)
    );

    // --on-refused stop: committed up to the event before, exit 65.
    let db = PgDb::new("rejections_stop");
    let out = Run::new()
        .args(&["run", "--config", config.to_str().unwrap()])
        .args(&["--state", &db.url(), "--source", &nats.stream("EVENTS")])
        .args(&["--on-refused", "stop"])
        .env("PROJECTOR_LEASE_SECONDS", &LEASE_SECONDS.to_string())
        .go();
    out.code_is(65).stderr_has(
        "unit orders+user_order_stats: the message at sequence 6 (id bad-key) was refused (error 12)",
    );
    let at = unit_checkpoints(&db);
    assert!(at.contains(&Some(5)), "{at:?}");
    let recorded: i64 = db
        .client()
        .query_one("SELECT count(*) FROM projector.rejections", &[])
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
    assert_eq!(db.view("projector", "orders").len(), 5);
}

/// The metrics an instance serves, at the address its log names.
fn scrape(log: &str) -> String {
    use std::io::{Read, Write};
    let url = log
        .lines()
        .find_map(|l| l.strip_prefix("projector: metrics at http://"))
        .unwrap_or_else(|| panic!("no metrics address: {log}"));
    let addr = url.strip_suffix("/metrics").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn a_changed_definition_is_built_beside_the_serving_one_and_the_views_switch_when_it_caught_up() {
    let nats = NatsServer::start();
    let db = PgDb::new("rebuild");
    let dir = TempDir::new();
    let v1 = dir.write("v1.toml", USERS_ORDERS);
    // user_order_stats counts only orders of 100 or more: its unit is
    // rebuilt; user_listing's are kept.
    let changed = USERS_ORDERS.replace(
        "merge = { last_order_id = \"$.payload.order_id\" }",
        "merge = { last_order_id = \"$.payload.order_id\" }\n\
         when = { path = \"$.payload.amount\", ge = 100 }",
    );
    assert_ne!(changed, USERS_ORDERS);
    let v2 = dir.write("v2.toml", &changed);
    let events = generated_events(6000, 300, 21);
    let lines: Vec<&str> = events.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let published = publish(&nats, first);
    let old = Instance::start(&nats, &db, &v1, &dir, "old");
    caught_up(&db, published, Duration::from_secs(30));

    // The plan says what starting with the new configuration does.
    let out = Run::new()
        .args(&[
            "plan",
            "--config",
            v2.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .go();
    out.code_is(2)
        .stdout_has("unit orders+user_order_stats: definition changed: built from the stream's start in schema projector_orders_1of1_")
        .stdout_has("unit user_listing 1/4: unchanged")
        .stdout_has("`projector run --source … --deploy` with this configuration builds version 2 beside version 1");

    // Without --deploy, an instance of another configuration is refused.
    let mut refused = Instance::start(&nats, &db, &v2, &dir, "refused");
    let code = refused.wait_exit(Duration::from_secs(20));
    let said = refused.log();
    assert_eq!(code, Some(78), "{said}");
    assert!(
        said.contains("serves version 1 of the configuration, live since 20") && said.contains(&format!(
            "and {} differs from it; nothing was claimed. See what deploying it changes with `projector plan --config {} --state {}`, then start this instance with --deploy",
            v2.display(),
            v2.display(),
            db.url()
        )),
        "{said}"
    );

    // A new instance deploys version 2; the old one keeps serving version 1
    // (and helps build version 2) while more events come in.
    let before = read_models(&db);
    let new = Instance::start_with(&nats, &db, &v2, &dir, "new", &["--deploy"]);
    let publisher = publish_over_time(
        &nats,
        second.iter().map(|l| l.to_string()).collect(),
        10,
        Duration::from_millis(150),
    );
    // Until the switch, and at it, the views keep answering: version 1's
    // documents, then version 2's.
    let started = Instant::now();
    loop {
        let status: Option<String> = db
            .client()
            .query_one(
                "SELECT status FROM projector._projector_versions WHERE version = 2",
                &[],
            )
            .ok()
            .map(|r| r.get(0));
        let stats = db.view("projector", "user_order_stats");
        assert!(!stats.is_empty());
        if status.as_deref() == Some("serving") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no switch");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!before["user_order_stats"].is_empty());
    publisher.join().unwrap();
    let last = nats.messages("EVENTS").len() as u64;
    caught_up(&db, last, Duration::from_secs(60));
    assert_same(
        &db,
        &in_memory(&dir, &v2, &events),
        "version 2, switched to",
    );
    let report = status(&nats, &db, &v2);
    assert_eq!(report["version"], 2, "{report}");
    assert_eq!(report["building"], Value::Null, "{report}");
    // The instance of version 1 stands by, and one started again with it is
    // refused: a retired configuration never switches the views back.
    wait_for_log(&old, "this instance's configuration is no longer served or built (version 2 is live): it gives its units up and claims none");
    let mut again = Instance::start(&nats, &db, &v1, &dir, "again");
    let code = again.wait_exit(Duration::from_secs(20));
    let said = again.log();
    assert_eq!(code, Some(78), "{said}");
    assert!(
        said.contains("serves version 2 of the configuration, live since 20")
            && said.contains(&format!("and {} is version 1, retired at 20", v1.display())),
        "{said}"
    );
    let report = status(&nats, &db, &v2);
    assert_eq!(report["version"], 2, "{report}");
    let log = new.terminate() + &old.terminate();
    assert!(
        log.contains(
            "--deploy: this configuration is version 2, built beside the live one and switched to once it has caught up\n"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "building version 2 beside it: orders+user_order_stats (each from its checkpoint: the stream's start for a new one)\n"
        ),
        "{log}"
    );
    assert!(
        log.contains("version 2 of the configuration caught up: the read models' views switched to it from version 1"),
        "{log}"
    );
    // Nothing left to do with version 2's configuration.
    Run::new()
        .args(&[
            "plan",
            "--config",
            v2.to_str().unwrap(),
            "--state",
            &db.url(),
        ])
        .go()
        .success();

    // Going back is a deploy: the plan shows the retired unit resumed where
    // it stopped, and version 3 (version 1's configuration) is switched to.
    Run::new()
        .args(&["plan", "--config", v1.to_str().unwrap(), "--state", &db.url()])
        .go()
        .code_is(2)
        .stdout_has("unit orders+user_order_stats: definition changed: built from sequence ")
        .stdout_has(", where a retired version left it, in schema projector_orders_1of1_")
        .stdout_has("`projector run --source … --deploy` with this configuration builds version 3 beside version 2");
    let back = Instance::start_with(&nats, &db, &v1, &dir, "back", &["--deploy"]);
    let started = Instant::now();
    while status(&nats, &db, &v1)["version"] != 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            back.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    caught_up(&db, last, Duration::from_secs(30));
    assert_same(
        &db,
        &in_memory(&dir, &v1, &events),
        "version 3, back to version 1's configuration",
    );
    back.terminate();
}

#[test]
fn no_message_in_a_stream_is_lost_joined_or_obeyed_each_one_refused_is_recorded() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let order = |i: usize| {
        format!(
            r#"{{"type":"event","event":{{"type":"OrderPlaced","id":"o{i}","payload":{{"order_id":"o{i}","user_id":"u1","amount":{i}}}}}}}"#
        )
    };
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(3000), "]".repeat(3000));
    let payloads: Vec<Vec<u8>> = vec![
        order(1).into(),
        // 2: half-written, cut inside a key
        br#"{"type":"event","event":{"type":"OrderPlaced","id":"cut","payload":{"order_id":"cut","user_id":"u1","amo"#.to_vec(),
        order(2).into(),
        // 4: not UTF-8
        b"{\"type\":\"event\",\"event\":{\"type\":\"OrderPlaced\",\"id\":\"\xff\"}}".to_vec(),
        // 5: not an object; 6: nested 3,000 deep; 7: over --max-line-bytes
        b"[1, 2]".to_vec(),
        deep.into(),
        format!("{{\"type\":\"init\",\"pad\":\"{}\"}}", "x".repeat(5000)).into(),
        // 8-11: control messages never steer what a stream instance projects
        br#"{"type":"unsubscribe","msg_id":1,"event_types":["OrderPlaced","UserCreated","UserUpdated"]}"#.to_vec(),
        br#"{"src":"c","dest":"p","body":{"type":"subscribe","msg_id":2,"event_types":["Nothing"]}}"#.to_vec(),
        br#"{"type":"init","msg_id":3,"node_id":"x","node_ids":["x"]}"#.to_vec(),
        br#"{"type":"query","msg_id":4,"model":"orders","key":"o1"}"#.to_vec(),
        order(3).into(),
        // 13: a message over several lines is one message
        order(4).replace(",\"", ",\n  \"").into(),
        order(5).into(),
    ];
    let last = nats.publish_raw("EVENTS", &payloads);
    assert_eq!(last, 14);
    let good: Vec<String> = (1..=5).map(order).collect();
    let expected = in_memory(&dir, &config, &good.join("\n"));

    let db = PgDb::new("odd_messages");
    let run = Instance::start_with(
        &nats,
        &db,
        &config,
        &dir,
        "record",
        &["--max-line-bytes", "4096", "--metrics", "127.0.0.1:0"],
    );
    caught_up(&db, last, Duration::from_secs(30));
    let metrics = scrape(&run.log());
    let log = run.terminate();
    assert_same(&db, &expected, "odd messages refused, the rest applied");
    // Every unit reads every message: each records what it refused.
    let rows: Vec<(i64, i32, i64, String)> = db
        .client()
        .query(
            "SELECT position, code, count(DISTINCT unit), min(text) FROM projector.rejections
             GROUP BY position, code ORDER BY position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let positions: Vec<(i64, i32, i64)> = rows.iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(
        positions,
        [2, 4, 5, 6, 7]
            .map(|p| (p, 12, 5))
            .into_iter()
            .chain([8, 9, 10, 11].map(|p| (p, 10, 5)))
            .collect::<Vec<_>>(),
        "{rows:?}"
    );
    assert!(rows[0].3.ends_with(r#""user_id":"u1","amo"#), "{rows:?}");
    assert!(rows[1].3.contains("\"id\":\"\u{fffd}\""), "{rows:?}");
    assert_eq!(rows[4].3, "", "a line over the limit is not held");
    assert!(rows[5].3.contains("unsubscribe"), "{rows:?}");
    assert!(
        metrics.contains("projector_events_refused_total 45\n"),
        "{metrics}"
    );
    for position in [2, 4, 5, 6, 7, 8, 9, 10, 11] {
        let line = format!("the message at sequence {position} was refused");
        assert!(log.contains(&line), "{line}: {log}");
    }

    // --on-refused stop halts at the first of them, whatever it is.
    let db = PgDb::new("odd_messages_stop");
    let out = Run::new()
        .args(&["run", "--config", config.to_str().unwrap()])
        .args(&["--state", &db.url(), "--source", &nats.stream("EVENTS")])
        .args(&["--on-refused", "stop"])
        .env("PROJECTOR_LEASE_SECONDS", &LEASE_SECONDS.to_string())
        .go();
    out.code_is(65)
        .stderr_has("the message at sequence 2 was refused (error 12)");
    assert!(
        unit_checkpoints(&db).iter().all(|c| c.unwrap_or(0) <= 1),
        "{:?}",
        unit_checkpoints(&db)
    );
}

/// Each row of rejections: its position, status and the event it waits behind.
type Statuses = Vec<(i64, String, Option<i64>)>;

#[test]
fn a_refused_event_is_parked_with_the_later_events_of_its_documents_and_retried_in_order() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let order = |id: &str, user: &str, amount: &str| {
        format!(
            r#"{{"type":"OrderPlaced","id":"{id}","payload":{{"order_id":"{id}","user_id":"{user}","amount":{amount}}}}}"#
        )
    };
    // Sequence 2 is refused (an amount that is text): u1's later orders
    // wait behind it, u2's go on.
    let stream = [
        order("o1", "u1", "10"),
        order("bad", "u1", "\"ten\""),
        order("o2", "u1", "20"),
        order("o3", "u2", "30"),
        order("o4", "u1", "40"),
    ];
    let last = publish(
        &nats,
        &stream.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let events = |ids: &[usize]| {
        ids.iter()
            .map(|&i| format!(r#"{{"type":"event","event":{}}}"#, stream[i]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let db = PgDb::new("parked");
    let status = |db: &PgDb| -> Statuses {
        db.client()
            .query(
                "SELECT position, status, behind FROM projector.rejections ORDER BY position",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let run = Instance::start_with(
        &nats,
        &db,
        &config,
        &dir,
        "park",
        &["--metrics", "127.0.0.1:0"],
    );
    caught_up(&db, last, Duration::from_secs(30));
    let parked = |p: i64, behind: Option<i64>| (p, "parked".to_owned(), behind);
    assert_eq!(
        status(&db),
        [parked(2, None), parked(3, Some(2)), parked(5, Some(2))]
    );
    assert_same(&db, &in_memory(&dir, &config, &events(&[0, 3])), "u1 held");
    let started = Instant::now();
    let metrics = loop {
        let metrics = scrape(&run.log());
        if metrics.contains("projector_unit_parked{unit=\"orders+user_order_stats\"} 3\n") {
            break metrics;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        metrics.contains("projector_events_parked_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("projector_unit_parked{unit=\"user_listing 1/4\"} 0\n"),
        "{metrics}"
    );
    let documents: String = db
        .client()
        .query_one(
            "SELECT documents::text FROM projector.rejections WHERE position = 2",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        documents,
        r#"[["orders", "bad"], ["user_order_stats", "u1"]]"#
    );
    run.terminate();

    // Held across a restart: a new order of u1 waits too.
    let last = publish(&nats, &[&order("o5", "u1", "50")]);
    let run = Instance::start(&nats, &db, &config, &dir, "restarted");
    caught_up(&db, last, Duration::from_secs(30));
    assert_eq!(status(&db).last(), Some(&parked(6, Some(2))));

    // Retrying the refused one: refused again, it and its sequence stay.
    let ask = |args: &[&str]| {
        Run::new()
            .arg("rejections")
            .args(args)
            .args(&["--state", &db.url()])
            .go()
            .success()
            .stdout
            .clone()
    };
    let asked = ask(&["retry", "--position", "2"]);
    assert!(
        asked.starts_with("asked to retry 4 events: orders+user_order_stats at 2, 3, 5, 6"),
        "{asked}"
    );
    let settled = |want: &dyn Fn(&Statuses) -> bool| {
        let started = Instant::now();
        loop {
            let now = status(&db);
            if want(&now) {
                return now;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{now:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let error_of = |p: i64| -> String {
        db.client()
            .query_one(
                "SELECT error FROM projector.rejections WHERE position = $1",
                &[&p],
            )
            .unwrap()
            .get(0)
    };
    let before = error_of(3);
    settled(&|rows| rows.iter().all(|r| r.1 == "parked") && error_of(3) != before);
    assert!(
        error_of(3).starts_with("not retried: an earlier event of its documents was refused again")
    );
    assert!(error_of(2).contains("was not applied"), "{}", error_of(2));

    // Dropped, and what waited behind it retried: applied in order, once.
    ask(&["drop", "--position", "2"]);
    ask(&["retry", "--model", "user_order_stats", "--key", "u1"]);
    let rows = settled(&|rows| rows.iter().all(|r| r.1 != "parked" && r.1 != "retry"));
    let statuses: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["dropped", "retried", "retried", "retried"]);
    let all = (0..5).filter(|&i| i != 1).collect::<Vec<_>>();
    let mut with_o5 = events(&all);
    with_o5.push_str(&format!(
        "\n{{\"type\":\"event\",\"event\":{}}}",
        order("o5", "u1", "50")
    ));
    assert_same(&db, &in_memory(&dir, &config, &with_o5), "retried in order");
    // u1 is free again: its next order is applied at once.
    let last = publish(&nats, &[&order("o6", "u1", "60")]);
    caught_up(&db, last, Duration::from_secs(30));
    assert_eq!(status(&db).len(), 4);
    run.terminate();
}

#[test]
fn an_event_parked_without_a_document_holds_nothing_and_is_retried_alone() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let last = publish(
        &nats,
        &[
            r#"{"type":"OrderPlaced","id":"nokey","payload":{"amount":1}}"#,
            r#"{"type":"OrderPlaced","id":"o1","payload":{"order_id":"o1","user_id":"u1","amount":2}}"#,
        ],
    );
    let db = PgDb::new("parked_alone");
    let run = Instance::start(&nats, &db, &config, &dir, "alone");
    caught_up(&db, last, Duration::from_secs(30));
    let row = |db: &PgDb| -> (String, String, String) {
        let r = db
            .client()
            .query_one(
                "SELECT status, documents::text, at::text FROM projector.rejections",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let (status, documents, at) = row(&db);
    assert_eq!((status.as_str(), documents.as_str()), ("parked", "[]"));
    assert_eq!(db.view("projector", "orders").len(), 1, "o1 is not held");
    Run::new()
        .args(&[
            "rejections",
            "retry",
            "--position",
            "1",
            "--state",
            &db.url(),
        ])
        .go()
        .success();
    // Applied again, refused again: parked anew.
    let started = Instant::now();
    loop {
        let (status, _, again) = row(&db);
        if status == "parked" && again != at {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{status} {again}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run.terminate();
}

#[test]
fn a_state_follows_one_stream_and_refuses_another_or_one_made_again_under_its_name() {
    let Setup {
        nats,
        db,
        dir,
        config,
        events,
        ..
    } = Setup::new("streams", (300, 20, 5));
    let lines: Vec<&str> = events.lines().collect();
    let last = publish(&nats, &lines);
    let first = Instance::start(&nats, &db, &config, &dir, "first");
    caught_up(&db, last, Duration::from_secs(30));
    first.terminate();
    let before = unit_checkpoints(&db);
    let recorded: (String, String) = db
        .client()
        .query_one("SELECT name, created FROM projector._projector_stream", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(recorded.0, "EVENTS");
    let run_on = |stream: &str| {
        Run::new()
            .args(&["run", "--config", config.to_str().unwrap()])
            .args(&["--state", &db.url(), "--source", &nats.stream(stream)])
            .env("PROJECTOR_LEASE_SECONDS", &LEASE_SECONDS.to_string())
            .go()
    };

    nats.publish_raw("OTHER", &[lines[0].as_bytes().to_vec()]);
    let out = run_on("OTHER");
    out.code_is(78)
        .stderr_has(&format!(
            "projector: {} follows stream \"EVENTS\" (created {}), and {} is stream \"OTHER\" (created 20",
            db.url(),
            recorded.1,
            nats.stream("OTHER")
        ))
        .stderr_has("its checkpoints are positions in the stream it follows, so it cannot take another. Give --source that stream, or start on another --schema or database to build from this one\n");

    // The same name, deleted and made again, is another stream.
    nats.delete_stream("EVENTS");
    publish(&nats, &lines);
    let out = run_on("EVENTS");
    out.code_is(78)
        .stderr_has("(a stream deleted and made again under its name is another stream)\n");
    assert_eq!(unit_checkpoints(&db), before, "nothing was applied");
}

/// `SELECT count(*)` on the view `model` by a reader of its own, which
/// gives up after 2 s: whether it answered.
fn fresh_read(db: &PgDb, model: &str) -> bool {
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "SET statement_timeout = '2s'; SELECT count(*) FROM projector.{model}"
        ))
        .is_ok()
}

#[test]
fn a_readers_long_transaction_holds_up_neither_claims_nor_other_readers_and_a_switch_waits_for_it()
{
    let Setup {
        nats,
        db,
        dir,
        config,
        events,
        ..
    } = Setup::new("readers", (3000, 200, 8));
    let lines: Vec<&str> = events.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let last = publish(&nats, first);
    let a = Instance::start(&nats, &db, &config, &dir, "a");
    caught_up(&db, last, Duration::from_secs(30));

    // A reader holds every view in an open transaction.
    let mut reader = db.client();
    let mut held = reader.transaction().unwrap();
    for model in MODELS {
        held.batch_execute(&format!("SELECT count(*) FROM projector.{model}"))
            .unwrap();
    }

    // A second instance joins: units move, every fresh reader answers.
    let b = Instance::start(&nats, &db, &config, &dir, "b");
    let started = Instant::now();
    while b.log().matches("claimed unit").count() < 2 {
        for model in MODELS {
            assert!(fresh_read(&db, model), "a read of {model} timed out");
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{}", b.log());
    }

    // A deploy builds version 2 and catches up; the switch waits for the
    // reader, whom nobody queues behind.
    let changed = USERS_ORDERS.replace(
        "merge = { last_order_id = \"$.payload.order_id\" }",
        "merge = { last_order_id = \"$.payload.order_id\" }\n\
         when = { path = \"$.payload.amount\", ge = 100 }",
    );
    let v2 = dir.write("v2.toml", &changed);
    let c = Instance::start_with(&nats, &db, &v2, &dir, "c", &["--deploy"]);
    let last = publish(&nats, second);
    let started = Instant::now();
    let held_said = "switching to version 2: readers hold the views in open transactions";
    while ![&a, &b, &c].iter().any(|i| i.log().contains(held_said)) {
        for model in MODELS {
            assert!(fresh_read(&db, model), "a read of {model} timed out");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}{}{}",
            a.log(),
            b.log(),
            c.log()
        );
    }
    let serving = |db: &PgDb| -> i32 {
        db.client()
            .query_one(
                "SELECT version FROM projector._projector_versions WHERE status = 'serving'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(serving(&db), 1);
    held.commit().unwrap();
    let started = Instant::now();
    while serving(&db) != 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "no switch");
        std::thread::sleep(Duration::from_millis(50));
    }
    caught_up(&db, last, Duration::from_secs(30));
    assert_same(
        &db,
        &in_memory(&dir, &v2, &events),
        "switched after the reader",
    );
    for instance in [c, b] {
        instance.terminate();
    }
    a.terminate();
}

/// `projector_events_applied_total` in a scrape.
fn applied(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("projector_events_applied_total "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap()
}

/// One HTTP/1.1 request on a connection of its own: the status line and the
/// body.
fn http(addr: &str, method: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn the_metrics_server_answers_fifty_clients_at_once_while_idle_ones_hold_connections_open() {
    use std::io::Write;
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("users-orders.toml", USERS_ORDERS);
    let events = generated_events(200, 20, 7);
    let last = publish(&nats, &events.lines().collect::<Vec<_>>());
    let db = PgDb::new("metrics_server");
    let run = Instance::start_with(
        &nats,
        &db,
        &config,
        &dir,
        "m",
        &["--metrics", "127.0.0.1:0"],
    );
    caught_up(&db, last, Duration::from_secs(30));
    let log = run.log();
    let addr = log
        .lines()
        .find_map(|l| l.strip_prefix("projector: metrics at http://"))
        .and_then(|url| url.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address: {log}"))
        .to_owned();

    // Twenty-five clients that connect and say nothing, or half a request.
    let idle: Vec<std::net::TcpStream> = (0..25)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            if i % 2 == 1 {
                stream.write_all(b"GET /metr").unwrap();
            }
            stream
        })
        .collect();
    // Fifty at once, each answered in full; a server that served one
    // connection at a time would wait on every idle one first.
    let answers: Vec<(String, String)> = std::thread::scope(|s| {
        let asking: Vec<_> = (0..50)
            .map(|_| s.spawn(|| http(&addr, "GET", "/metrics")))
            .collect();
        asking.into_iter().map(|a| a.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert_eq!(status, "HTTP/1.1 200 OK");
        // Caught up: every scrape counts the same events.
        assert_eq!(applied(body), applied(&answers[0].1));
        assert!(applied(body) > 0, "{body}");
        assert!(
            body.contains("# TYPE projector_batch_commit_seconds histogram\n"),
            "{body}"
        );
        assert!(
            body.contains("projector_batch_commit_seconds_bucket{le=\"+Inf\"} "),
            "{body}"
        );
    }
    drop(idle);

    // Only GET (and HEAD) of /metrics.
    for method in ["POST", "PUT", "DELETE"] {
        let (status, _) = http(&addr, method, "/metrics");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed", "{method}");
    }
    assert_eq!(http(&addr, "GET", "/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(&addr, "GET", "/metrics/x").0, "HTTP/1.1 404 Not Found");
    let (status, body) = http(&addr, "HEAD", "/metrics");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
}
