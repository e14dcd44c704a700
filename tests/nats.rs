//! `projector publish --to nats://…` against a nats-server of its own:
//! every event stored once, with its id as Nats-Msg-Id, exactly as written.

use crate::support;

use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::{generated_events, NatsServer, Run, USERS_ORDERS};

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

/// `projector publish --to STREAM` with stdin open, fed `lines`.
fn publishing(
    nats: &NatsServer,
    lines: &[String],
) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write;
    let mut child = std::process::Command::new(support::BIN)
        .args(["publish", "--to", &nats.stream("S")])
        .env(
            "PROJECTOR_CONFIG",
            support::repo().join("bench/users-orders.toml"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    (child, stdin)
}

/// Waits until the stream `S` holds `n` messages.
fn stored(nats: &NatsServer, n: u64) {
    let started = Instant::now();
    while nats.count("S") < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} stored",
            nats.count("S")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Distinct events `e1`…: `n` of them from `from` on.
fn events(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            format!(
                r#"{{"type":"UserCreated","id":"e{i}","payload":{{"id":"u{i}","name":"A","email":"a@x"}}}}"#
            )
        })
        .collect()
}

/// The process's end within `within`: its exit code and stderr.
fn ended(child: std::process::Child, within: Duration) -> (Option<i32>, String) {
    let pid = child.id();
    let started = Instant::now();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < within {
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let out = child.wait_with_output().unwrap();
    let _ = watchdog.join();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_interrupted_publish_says_how_many_events_were_stored_and_from_which_line_to_go_on() {
    let nats = NatsServer::start();
    let (child, stdin) = publishing(&nats, &events(1, 100));
    stored(&nats, 100);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stderr) = ended(child, Duration::from_secs(15));
    drop(stdin);
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "publish: interrupted by SIGINT: 100 events from 100 lines stored in {} (sequences 1..100); \
             0 redeliveries dropped by JetStream as already stored; line 101 on not stored: publish \
             them again (a line stored already is dropped by JetStream as a redelivery within the \
             stream's duplicate window)\n",
            nats.stream("S")
        )
    );
}

#[test]
fn a_publish_that_fails_midway_says_how_many_events_were_stored_and_from_which_line_to_go_on() {
    use std::io::Write;
    let mut nats = NatsServer::start();
    let (child, mut stdin) = publishing(&nats, &events(1, 50));
    stored(&nats, 50);
    let address = nats.stream("S");
    nats.kill();
    for line in events(51, 10) {
        let _ = writeln!(stdin, "{line}");
    }
    drop(stdin);
    let (code, stderr) = ended(child, Duration::from_secs(60));
    assert_eq!(code, Some(74), "{stderr}");
    let summary = stderr.lines().last().unwrap();
    assert_eq!(
        summary,
        format!(
            "publish: stopped by that error: 50 events from 60 lines stored in {address} \
             (sequences 1..50); 0 redeliveries dropped by JetStream as already stored; line 51 on \
             not stored: publish them again (a line stored already is dropped by JetStream as a \
             redelivery within the stream's duplicate window)"
        ),
        "{stderr}"
    );
}
