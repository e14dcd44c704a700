//! `projector publish --to nats://…` against a nats-server of its own:
//! every event stored once, with its id as Nats-Msg-Id, exactly as written.

mod support;

use serde_json::Value;
use std::collections::HashSet;
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
