//! The everyday tools around a configuration: `explain` (a document's
//! history, field by field, replayed from a log).

use crate::support;

use serde_json::Value;
use support::{Run, TempDir};

const CONFIG: &str = r#"
[[model]]
name = "customers"
key = "$.payload.id"
on.Registered = { put = { name = "$.payload.name", address = { value = { city = "?" } } } }
on.Moved = { merge = { "address.city" = "$.payload.city" } }
on.Renamed = { merge = { name = "$.payload.name" } }
on.Left = { delete = true }
"#;

const LOG: &str = r#"{"type":"event","msg_id":1,"event":{"type":"Registered","id":"e1","payload":{"id":"c1","name":"Ann"}}}
{"type":"event","msg_id":2,"event":{"type":"Registered","id":"e2","payload":{"id":"c2","name":"Bo"}}}
{"type":"event","msg_id":3,"event":{"type":"Moved","id":"e3","payload":{"id":"c1","city":"Oslo"}}}
{"type":"event","msg_id":4,"event":{"type":"Moved","id":"e3","payload":{"id":"c1","city":"Oslo"}}}
{"type":"event","msg_id":5,"event":{"type":"Renamed","id":"e5","payload":{"id":"c1","name":"Anne"}}}
{"type":"event","msg_id":6,"event":{"type":"Moved","id":"e6","payload":{"id":"c1","city":"Oslo"}}}
{"type":"event","msg_id":7,"event":{"type":"Left","id":"e7","payload":{"id":"c1"}}}
"#;

fn explain(more: &[&str]) -> support::Output {
    let dir = TempDir::new();
    dir.write("c.toml", CONFIG);
    dir.write("log.ndjson", LOG);
    Run::new()
        .args(&["explain", "-c", "c.toml", "--log", "log.ndjson"])
        .args(more)
        .cwd(dir.path())
        .go()
}

#[test]
fn explain_shows_each_event_that_changed_a_document_and_each_field_old_to_new() {
    explain(&["customers", "c1"]).success().stdout_is(&[
        "customers c1, replayed from log.ndjson:",
        "  line 1: e1 (Registered)",
        "    address.city: (absent) -> \"?\"",
        "    name: (absent) -> \"Ann\"",
        "  line 3: e3 (Moved)",
        "    address.city: \"?\" -> \"Oslo\"",
        "  line 5: e5 (Renamed)",
        "    name: \"Ann\" -> \"Anne\"",
        "  line 7: e7 (Left)",
        "    address.city: \"Oslo\" -> (absent)",
        "    name: \"Anne\" -> (absent)",
        "4 events changed it; it is now absent",
    ]);
}

#[test]
fn explain_follows_one_field_and_speaks_json() {
    let out = explain(&["customers", "c1", "--field", "name", "--format", "json"]);
    out.success();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let lines: Vec<u64> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 5, 7]);
    assert_eq!(
        report["events"][1]["fields"],
        serde_json::json!([{"field": "name", "old": "Ann", "new": "Anne"}])
    );
    assert_eq!(report["events"][2]["fields"][0].get("new"), None);
    assert_eq!(report["document"], Value::Null);
    explain(&["nobody", "c1"])
        .code_is(64)
        .stderr_has("declares no read model \"nobody\"");
}

/// `validate --samples LOG`: paths no sample carries (with the field they
/// likely meant), values an operation cannot use, types without samples.
#[test]
fn validate_checks_the_bindings_against_sample_events() {
    let dir = TempDir::new();
    dir.write(
        "c.toml",
        r#"[[model]]
name = "stats"
key = "$.payload.user"
on.Ordered = { increment = { orders = 1, total = "$.payload.ammount", lines = "$.payload.note" } }
on.Refunded = { increment = { refunds = 1 } }
"#,
    );
    dir.write(
        "samples.ndjson",
        concat!(
            r#"{"type":"event","msg_id":1,"event":{"type":"Ordered","id":"e1","payload":{"user":"u1","amount":5,"note":3}}}"#,
            "\n",
            r#"{"src":"bus","dest":"p","body":{"type":"event","msg_id":2,"event":{"type":"Ordered","id":"e2","payload":{"user":"u2","amount":7,"note":"rush"}}}}"#,
            "\n",
            r#"{"type":"Ordered","id":"e3","payload":{"user":"u3","amount":1}}"#,
            "\n",
        ),
    );
    let out = Run::new()
        .args(&["validate", "c.toml", "--samples", "samples.ndjson"])
        .cwd(dir.path())
        .go();
    out.success()
        .stdout_is(&["c.toml: ok: 1 read model, 2 event types"])
        .stderr_is(concat!(
            "c.toml:4:50: warning[P0105]: `$.payload.ammount` is in none of the 3 `Ordered` samples\n",
            "  |\n",
            "4 | on.Ordered = { increment = { orders = 1, total = \"$.payload.ammount\", lines = \"$.payload.note\" } }\n",
            "  |                                                  ^^^^^^^^^^^^^^^^^^^ did you mean `$.payload.amount`? the samples carry it\n",
            "c.toml:4:79: warning[P0106]: `$.payload.note` holds a string in the sample on line 2, which `increment` (a number) cannot use\n",
            "  |\n",
            "4 | on.Ordered = { increment = { orders = 1, total = \"$.payload.ammount\", lines = \"$.payload.note\" } }\n",
            "  |                                                                               ^^^^^^^^^^^^^^^^\n",
            "c.toml:5:4: warning[P0104]: the samples hold no `Refunded` event: its bindings were not checked\n",
            "  |\n",
            "5 | on.Refunded = { increment = { refunds = 1 } }\n",
            "  |    ^^^^^^^^\n",
        ));
    Run::new()
        .args(&[
            "validate",
            "c.toml",
            "--samples",
            "samples.ndjson",
            "--deny-warnings",
        ])
        .cwd(dir.path())
        .go()
        .code_is(78);
}
