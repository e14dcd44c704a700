//! `projector test`, and the users-orders example against the reference projector.

use crate::support;

use serde_json::Value;
use std::process::{Command, Stdio};
use support::{repo, Run, TempDir};

#[test]
fn the_bundled_and_example_configs_pass_their_own_tests() {
    for config in ["projections.toml", "examples/users-orders.toml"] {
        let out = Run::new().args(&["test", config]).go();
        out.success();
        assert!(
            out.stdout.ends_with(" passed, 0 failed\n"),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.starts_with("0 passed"), "{config} has no tests");
    }
}

#[test]
fn a_broken_mapping_fails_its_test_with_a_diff() {
    let example = std::fs::read_to_string(repo().join("examples/users-orders.toml")).unwrap();
    // The stats now count from the wrong field.
    let broken = example.replace(
        "total_spent = \"$.payload.amount\"",
        "total_spent = \"$.payload.amout\"",
    );
    assert_ne!(broken, example);
    let dir = TempDir::new();
    let config = dir.write("broken.toml", &broken);
    let out = Run::new().args(&["test", config.to_str().unwrap()]).go();
    out.code_is(1).stdout_is(&[
        "test a user's orders are listed, counted and summed ... FAILED",
        "  user_order_stats/user-1: the document differs (- expected, + actual)",
        "      {",
        "        \"last_order_id\": \"order-3\",",
        "    -   \"order_count\": 3,",
        "    -   \"total_spent\": 59.75",
        "    +   \"order_count\": 3",
        "      }",
        "test an update keeps the fields it does not carry, a delete removes the user ... ok",
        "1 passed, 1 failed",
    ]);
}

#[test]
fn a_refused_event_and_a_wrong_reply_fail_a_test() {
    let config = r#"
[[model]]
name = "users"
key = "$.payload.id"
on.UserCreated = { put = { name = "$.payload.name" } }

[[tests]]
name = "refused"
events = [{ type = "UserCreated", id = "e1", payload = { name = "no id" } }]

[[tests]]
name = "wrong reply"
events = [{ type = "UserCreated", id = "e1", payload = { id = "u1" } }]
replies = [{ updated_models = [] }]
"#;
    let dir = TempDir::new();
    let path = dir.write("c.toml", config);
    Run::new().args(&["test", path.to_str().unwrap()]).go().code_is(1).stdout_is(&[
        "test refused ... FAILED",
        "  event 1 was refused: event e1 (UserCreated) was not applied, and no read model changed: read model \"users\" needs a document key at $.payload.id, which the event does not have",
        "test wrong reply ... FAILED",
        "  event 1: the reply differs",
        "    want (at least) {\"updated_models\":[]}",
        "    got             {\"event_id\":\"e1\",\"in_reply_to\":1,\"type\":\"read_models_updated\",\"updated_models\":[\"users\"]}",
        "0 passed, 2 failed",
    ]);
}

/// The TOML users-orders models build exactly the documents the hand-written
/// Python reference builds, on a generated stream with redeliveries.
#[test]
fn the_users_orders_example_equals_the_reference_projector() {
    let dir = TempDir::new();
    let events = Command::new("python3")
        .arg(repo().join("tests/shared/gen_events.py"))
        .args(["--events", "20000", "--users", "2000"])
        .output()
        .unwrap();
    assert!(events.status.success());
    let log = dir.path().join("events.ndjson");
    std::fs::write(&log, &events.stdout).unwrap();

    let reference = dir.path().join("reference.json");
    let status = Command::new("python3")
        .arg(repo().join("tests/shared/reference_projector.py"))
        .args(["--dump", reference.to_str().unwrap()])
        .stdin(std::fs::File::open(&log).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let ours = dir.path().join("ours.json");
    Run::new()
        .args(&[
            "replay",
            "--config",
            "examples/users-orders.toml",
            "--dump",
            ours.to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .go()
        .success();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    let ours: Value = serde_json::from_str(&std::fs::read_to_string(ours).unwrap()).unwrap();
    for model in ["user_listing", "orders", "user_order_stats"] {
        assert!(!reference[model].as_object().unwrap().is_empty());
        assert!(
            ours[model] == reference[model],
            "{model} differs from the reference"
        );
    }
}
