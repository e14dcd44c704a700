//! `projector publish --to nats://…` against a nats-server of its own:
//! every event stored once, with its id as Nats-Msg-Id, exactly as written.

mod support;

use serde_json::Value;
use std::collections::HashSet;
use support::{generated_events, NatsServer, PgDb, Run, USERS_ORDERS};

#[test]
fn publish_stores_each_event_once_as_written_with_its_id() {
    let nats = NatsServer::start();
    let events = generated_events(500, 50, 4);
    let lines: Vec<&str> = events.lines().collect();
    let published = Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .config(USERS_ORDERS)
        .stdin(&lines)
        .go();
    published.success();

    // The first delivery of each id, in order, is what the stream holds.
    let mut seen = HashSet::new();
    let mut expected = Vec::new();
    let mut events = 0;
    for line in &lines {
        let msg: Value = serde_json::from_str(line).unwrap();
        // The stream starts with a subscribe message, which is not published.
        let Some(id) = msg["body"]["event"]["id"].as_str() else {
            continue;
        };
        events += 1;
        let id = id.to_owned();
        if seen.insert(id.clone()) {
            expected.push((Some(id), line.to_string()));
        }
    }
    assert!(expected.len() < events, "the stream has redeliveries");
    let stored = nats.messages("EVENTS");
    assert!(
        stored == expected,
        "the stream holds other messages than the distinct events"
    );
    published.stderr_has(&format!(
        "publish: {} events from {} lines stored in {} (sequences 1..{}); {} redeliveries dropped by JetStream as already stored",
        expected.len(),
        lines.len(),
        nats.stream("EVENTS"),
        expected.len(),
        events - expected.len()
    ));

    // Published again: every one is a redelivery, and nothing is stored twice.
    Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .config(USERS_ORDERS)
        .stdin(&lines)
        .go()
        .success()
        .stderr_has("publish: 0 events from");
    assert_eq!(nats.messages("EVENTS").len(), expected.len());
}

#[test]
fn bare_events_are_wrapped_and_bad_lines_refused_while_the_rest_is_published() {
    let nats = NatsServer::start();
    let out = Run::new()
        .args(&["publish", "--to", &nats.stream("BARE")])
        .config(USERS_ORDERS)
        .stdin(&[
            r#"{"type":"UserCreated","id":"e1","payload":{"id":"u1","n":1.50,"s":"\ud800"}}"#,
            "not json",
            r#"{"type":"query","msg_id":3,"model":"orders","key":"o1"}"#,
            r#"{"type":"UserCreated","payload":{"id":"u2"}}"#,
        ])
        .go();
    out.code_is(65)
        .stderr_has("publish: line 2: not valid JSON")
        .stderr_has("publish: line 3: a query message, not an event: not published")
        .stderr_has("1 event without an id (published without Nats-Msg-Id); 1 other message (not events) skipped; 1 line refused");
    assert_eq!(
        nats.messages("BARE"),
        [
            (
                Some("e1".to_owned()),
                r#"{"type":"event","event":{"type":"UserCreated","id":"e1","payload":{"id":"u1","n":1.50,"s":"\ud800"}}}"#.to_owned()
            ),
            (
                None,
                r#"{"type":"event","event":{"type":"UserCreated","payload":{"id":"u2"}}}"#.to_owned()
            ),
        ]
    );
}

#[test]
fn a_broker_that_does_not_answer_is_an_io_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Run::new()
        .args(&["publish", "--to", &format!("nats://127.0.0.1:{port}/S")])
        .config(USERS_ORDERS)
        .go()
        .code_is(74)
        .stderr_has("cannot connect");
    Run::new()
        .args(&["publish", "--to", "nats://127.0.0.1:4222/a.b"])
        .config(USERS_ORDERS)
        .go()
        .code_is(64)
        .stderr_has("cannot name a JetStream stream");
}

/// `projector run --source STREAM --state DB` in the background.
fn consuming(
    nats: &NatsServer,
    db: &PgDb,
    config: &std::path::Path,
    dump: Option<&std::path::Path>,
) -> std::process::Child {
    let mut command = std::process::Command::new(support::BIN);
    command
        .args(["--config", config.to_str().unwrap(), "--state", &db.url()])
        .args(["--source", &nats.stream("EVENTS")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(dump) = dump {
        command.args(["--dump", dump.to_str().unwrap()]);
    }
    command.spawn().unwrap()
}

/// Waits until the state's checkpoint reaches `sequence`.
fn caught_up(db: &PgDb, sequence: u64) {
    let started = std::time::Instant::now();
    loop {
        let at: Option<String> = db
            .client()
            .query_opt(
                "SELECT value FROM projector._projector_meta WHERE name = 'checkpoint'",
                &[],
            )
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if at.as_deref() == Some(sequence.to_string().as_str()) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the checkpoint is at {at:?}, not {sequence}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `projector status --format json`, parsed.
fn status(nats: &NatsServer, db: &PgDb, config: &std::path::Path) -> Value {
    let out = Run::new()
        .args(&["status", "--config", config.to_str().unwrap()])
        .args(&["--source", &nats.stream("EVENTS"), "--state", &db.url()])
        .args(&["--format", "json"])
        .go();
    out.success();
    serde_json::from_str(&out.stdout).unwrap()
}

/// Stops a run with SIGTERM; returns what it logged.
fn terminate(child: std::process::Child) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_stream_is_consumed_into_postgres_and_resumed_from_its_checkpoint_exactly_once() {
    let nats = NatsServer::start();
    let db = PgDb::new("source");
    let dir = support::TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let events = generated_events(3000, 200, 8);
    let lines: Vec<&str> = events.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let publish = |part: &[&str]| {
        Run::new()
            .args(&["publish", "--to", &nats.stream("EVENTS")])
            .config(USERS_ORDERS)
            .stdin(part)
            .go()
            .success();
        nats.messages("EVENTS").len() as u64
    };

    // The first half, consumed, then SIGTERM: caught up and committed.
    let published = publish(first);
    let run = consuming(&nats, &db, &config, None);
    caught_up(&db, published);
    assert!(terminate(run).contains("from sequence 1\n"));

    // SIGKILL at random moments while the second half comes in: each
    // restart resumes from the checkpoint.
    let mut rng = support::Rng::seeded("nats source kills");
    let all = publish(second);
    // Nobody consumes: the lag is what the second half added.
    let report = status(&nats, &db, &config);
    assert_eq!(report["lag"], all - published, "{report}");
    assert_eq!(report["units"][0]["owner"], Value::Null);
    assert_eq!(report["units"][0]["checkpoint"], published);
    for _ in 0..4 {
        let mut run = consuming(&nats, &db, &config, None);
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        run.kill().unwrap();
        run.wait().unwrap();
        // The killed run's claim would lapse with its lease; end it now.
        db.client()
            .execute(
                "UPDATE projector._projector_lease SET expires = clock_timestamp()",
                &[],
            )
            .unwrap();
    }
    let dump = dir.path().join("dump.json");
    let checkpoint: String = db
        .client()
        .query_one(
            "SELECT value FROM projector._projector_meta WHERE name = 'checkpoint'",
            &[],
        )
        .unwrap()
        .get(0);
    let run = consuming(&nats, &db, &config, Some(&dump));
    caught_up(&db, all);
    let report = status(&nats, &db, &config);
    assert_eq!(report["lag"], 0, "{report}");
    assert!(report["units"][0]["owner"]
        .as_str()
        .is_some_and(|o| o.starts_with("projector pid ")));
    let log = terminate(run);
    // It resumes after the committed checkpoint, not from the start.
    let from = checkpoint.parse::<u64>().unwrap() + 1;
    assert!(from > published, "the checkpoint went back");
    assert!(log.contains(&format!("from sequence {from}\n")), "{log}");

    let events_log = dir.write("events.ndjson", &events);
    let clean = dir.path().join("clean.json");
    support::replay_in_memory(&config, &events_log, &clean);
    assert!(
        std::fs::read_to_string(&dump).unwrap() == std::fs::read_to_string(&clean).unwrap(),
        "the read models differ from the in-memory run's"
    );
    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id) FROM projector._projector_processed",
            &[],
        )
        .unwrap();
    let (ids, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (ids, distinct),
        (all as i64, all as i64),
        "every event applied once"
    );
}
