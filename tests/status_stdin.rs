//! `projector status` on the state of a projector reading stdin, an SQLite
//! file or a PostgreSQL schema: what it is, who holds it now (a dead
//! holder told apart), its read models, documents and processed ids.

use crate::support;

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::versions::USERS_ORDERS;
use support::{PgDb, Run, TempDir, BIN};

const EVENTS: [&str; 2] = [
    r#"{"type":"event","msg_id":1,"event":{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann","email":"a@x"}}}"#,
    r#"{"type":"event","msg_id":2,"event":{"type":"OrderPlaced","id":"e2","payload":{"order_id":"o1","user_id":"u1","amount":2}}}"#,
];

/// `projector run --state STATE` on [`EVENTS`], to the end of its input.
fn fill(config: &Path, state: &str) {
    Run::new()
        .args(&["--config", config.to_str().unwrap(), "--state", state])
        .stdin(&EVENTS)
        .go()
        .success();
}

/// A projector on `state` that waits for more input; its stdin kept open.
fn holding(config: &Path, state: &str) -> Child {
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "--state", state])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Answered: it holds the state.
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(format!("{}\n", EVENTS[0]).as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("already_processed"), "{line}");
    child
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn status(state: &str, format: &str) -> support::Output {
    Run::new()
        .args(&["status", "--state", state, "--format", format])
        .go()
}

/// The lines of a state holding [`EVENTS`], after its name and holder.
const CONTENTS: [&str; 3] = [
    "  read models: orders 1 document, user_listing 1 document, user_order_stats 1 document",
    "  processed event ids: 2 (OrderPlaced 1, UserCreated 1)",
    "  subscribed to: every event type",
];

fn expected(name: &str, holder: &str) -> Vec<String> {
    let mut lines = vec![
        format!("{name}: the state of a projector reading stdin (`projector run --state`); it has no units of work and no stream"),
        format!("  {holder}"),
    ];
    lines.extend(CONTENTS.iter().map(|l| l.to_string()));
    lines
}

fn stdout_is(out: &support::Output, lines: &[String]) {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    out.success().stdout_is(&lines);
}

#[test]
fn status_of_an_sqlite_state_says_what_it_holds_and_which_projector_holds_it() {
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let path = dir.path().join("state.db");
    let state = path.to_str().unwrap();
    status(state, "human").success().stdout_is(&[&format!(
        "{state}: there is no state here: no projector has run with it"
    )]);
    fill(&config, state);
    stdout_is(
        &status(state, "human"),
        &expected(state, "no projector holds it now"),
    );
    let mut child = holding(&config, state);
    let holder = format!("projector pid {} on {}", child.id(), host());
    stdout_is(
        &status(state, "human"),
        &expected(state, &format!("held by {holder}")),
    );
    let report: Value = serde_json::from_str(&status(state, "json").success().stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "state": state,
            "kind": "stdin",
            "held": true,
            "holder": holder,
            "lease_expires_in": null,
            "holder_gone": false,
            "read_models": {"orders": 1, "user_listing": 1, "user_order_stats": 1},
            "processed_events": 2,
            "processed_by_type": {"OrderPlaced": 1, "UserCreated": 1},
            "subscriptions": null,
            "checkpoint": null,
        })
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    stdout_is(
        &status(state, "human"),
        &expected(state, "no projector holds it now"),
    );
}

#[test]
fn status_of_a_postgres_state_tells_a_live_holder_from_a_dead_one() {
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let db = PgDb::new("status_stdin");
    let url = db.url();
    status(&url, "human").success().stdout_is(&[&format!(
        "{url}: there is no state here: no projector has run with it"
    )]);
    fill(&config, &url);
    stdout_is(
        &status(&url, "human"),
        &expected(&url, "no projector holds it now"),
    );
    let mut child = holding(&config, &url);
    let holder = format!("projector pid {} on {}", child.id(), host());
    let out = status(&url, "human");
    let lease = regex::Regex::new(r"lease expires in \d+\.\d s").unwrap();
    let masked = lease
        .replace(&out.stdout, "lease expires in S s")
        .into_owned();
    let want: String = expected(&url, &format!("held by {holder}, lease expires in S s"))
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(masked, want);
    let report: Value = serde_json::from_str(&status(&url, "json").success().stdout).unwrap();
    assert_eq!(
        (&report["held"], &report["holder"]),
        (&Value::from(true), &Value::from(holder.clone()))
    );
    assert!(
        report["lease_expires_in"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    // Killed, it leaves its claim behind, which its connection's end frees.
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = format!("not held: its claim by {holder} ended with that projector's connection to the database; the next projector claims it at once");
    let started = Instant::now();
    loop {
        let out = status(&url, "human");
        if out.stdout.contains(&gone) {
            stdout_is(&out, &expected(&url, &gone));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", out.stdout);
        std::thread::sleep(Duration::from_millis(50));
    }
    let report: Value = serde_json::from_str(&status(&url, "json").success().stdout).unwrap();
    assert_eq!(
        (&report["held"], &report["holder_gone"]),
        (&Value::from(false), &Value::from(true))
    );
    // A cluster's status wants its stream.
    Run::new()
        .args(&["status", "--state", &url, "--schema", "cluster"])
        .go()
        .success()
        .stdout_is(&[&format!(
            "{url} (schema cluster): there is no state here: no projector has run with it"
        )]);
}
