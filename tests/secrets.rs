//! A password given in the connection settings (a URL, its query, libpq's
//! key=value form) is never printed: every command, on its way to success
//! and on every failure path, against the local PostgreSQL server (trust authentication: the password is taken
//! and ignored, so the commands run for real) and a nats-server of the
//! test's own.

use crate::support;

use std::time::Duration;
use support::{generated_events, NatsServer, Output, PgDb, Run, TempDir};

const USERS_ORDERS: &str = include_str!("../bench/users-orders.toml");
const SECRET: &str = "Sup3rS3cretPW";

/// The ways `--state` carries the password: a URL's user information, its
/// query, libpq's key=value settings.
fn with_password(db: &str) -> Vec<String> {
    vec![
        format!("postgres://postgres:{SECRET}@127.0.0.1:5432/{db}"),
        format!("postgres://postgres@127.0.0.1:5432/{db}?password={SECRET}"),
        format!("host=127.0.0.1 port=5432 user=postgres dbname={db} password='{SECRET}'"),
    ]
}

fn never_shows_the_password(out: &Output, what: &str) {
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
        "{what} printed the password:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn no_command_prints_a_password_given_in_the_state_whether_it_succeeds_or_fails() {
    let db = PgDb::new("secrets");
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let changed = dir.write(
        "v2.toml",
        &USERS_ORDERS.replace(
            "merge = { last_order_id = \"$.payload.order_id\" }",
            "merge = { last_order_id = \"$.payload.order_id\" }\nwhen = { path = \"$.payload.amount\", ge = 100 }",
        ),
    );
    let events = generated_events(200, 20, 4);
    let lines: Vec<&str> = events.lines().collect();
    let nats = NatsServer::start();
    Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .config(USERS_ORDERS)
        .stdin(&lines)
        .go()
        .success();
    let c = config.to_str().unwrap();
    let v2 = changed.to_str().unwrap();
    for url in with_password(&db.name) {
        let stdin_schema = ["--schema", "stdin_state"];
        let runs: Vec<(&str, Vec<&str>, bool)> = vec![
            ("run", vec!["run", "-c", c, "--state", &url], true),
            ("plan", vec!["plan", "-c", v2, "--state", &url], false),
            ("status", vec!["status", "-c", c, "--state", &url], false),
            ("check", vec!["check", "--state", &url], false),
            (
                "rejections",
                vec!["rejections", "list", "--state", &url],
                false,
            ),
        ];
        for (what, args, stdin) in runs {
            let mut run = Run::new().args(&args).args(&stdin_schema);
            if stdin {
                run = run.stdin(&lines);
            }
            never_shows_the_password(&run.go(), what);
        }
        // A cluster: run until stopped by the end of its budget, then the
        // refusals that suggest commands.
        let source = nats.stream("EVENTS");
        let cluster = std::process::Command::new(support::BIN)
            .args(["run", "-c", c, "--source", &source, "--state", &url])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &cluster.id().to_string()])
            .status();
        let out = cluster.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains(SECRET), "run --source: {said}");
        assert!(
            said.contains("postgres://postgres") || said.contains("user=postgres"),
            "{said}"
        );
        for (what, args) in [
            (
                "undeployed",
                vec!["run", "-c", v2, "--source", &source, "--state", &url],
            ),
            ("cluster plan", vec!["plan", "-c", v2, "--state", &url]),
            (
                "cluster status",
                vec!["status", "-c", c, "--source", &source, "--state", &url],
            ),
            (
                "rejections list",
                vec!["rejections", "list", "--state", &url],
            ),
        ] {
            never_shows_the_password(&Run::new().args(&args).go(), what);
        }
    }
    failures_show_no_password(c, lines[0]);
}

/// Failures: a database that does not exist, a server that does not
/// answer.
fn failures_show_no_password(c: &str, line: &str) {
    for url in with_password("no_such_database_here").into_iter().chain([
        format!("postgres://postgres:{SECRET}@127.0.0.1:1/db"),
        format!("host=127.0.0.1 port=1 dbname=db password={SECRET}"),
    ]) {
        for args in [
            vec!["run", "-c", c, "--state", &url],
            vec!["plan", "-c", c, "--state", &url],
            vec!["status", "-c", c, "--state", &url],
        ] {
            let out = Run::new()
                .args(&args)
                .env("PROJECTOR_RETRY_SECONDS", "1")
                .stdin(&[line])
                .go();
            assert_ne!(out.code, Some(0), "{args:?}");
            never_shows_the_password(&out, &format!("{args:?}"));
        }
    }
}
