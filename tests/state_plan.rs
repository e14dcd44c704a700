//! Config changes under a state are planned, never silent: `projector plan`
//! says what starting would do, and `run` refuses every difference the
//! command line does not resolve, naming the command that does.

use crate::support;

use serde_json::Value;
use std::path::Path;
use support::{stored_documents, Run, TempDir, CREATED};

/// A counter per user and a listing, keyed by the event's `user` field.
const COUNTS: &str = r#"
[event_id]
path = "$.id"

[[model]]
name = "counts"
key = "$.payload.user"
on.Clicked = { increment = { clicks = 1 } }

[[model]]
name = "listing"
key = "$.payload.user"
on.Clicked = { merge = { seen = true } }
"#;

const CLICK: &str = r#"{"type":"event","msg_id":1,"event":{"type":"Clicked","id":"e1","payload":{"user":"u1","eid":"x1"}}}"#;

fn query(model: &str) -> String {
    format!(r#"{{"type":"query","msg_id":9,"model":"{model}","key":"u1"}}"#)
}

/// A directory with the configuration `c.toml` and the state `s.db` built
/// from one click under it; commands run there, so paths print short.
fn clicked_once() -> TempDir {
    let dir = TempDir::new();
    dir.write("c.toml", COUNTS);
    Run::new()
        .cwd(dir.path())
        .args(&["--config", "c.toml", "--state", "s.db"])
        .stdin(&[CLICK])
        .go()
        .success();
    dir
}

fn in_dir(dir: &TempDir) -> Run {
    Run::new().cwd(dir.path())
}

#[test]
fn changing_the_event_id_rule_is_refused_until_the_ids_are_found_anew() {
    let dir = clicked_once();
    dir.write("c.toml", &COUNTS.replace("\"$.id\"", "\"$.payload.eid\""));
    dir.write("log.ndjson", &format!("{CLICK}\n"));

    // The redelivered click would count twice: nothing starts.
    let out = in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .stdin(&[CLICK])
        .go();
    out.code_is(78).stdout_is(&[]).stderr_is(concat!(
        "projector: s.db was built by rules other than c.toml declares; nothing was changed, and nothing runs until this is resolved:\n",
        "  [event_id]  changed    processed event ids (1) were found as $.id; found as $.payload.eid they would all be new: rebuild every read model from the event log, finding the ids anew\n",
        "                         projector replay --config c.toml --state s.db --rebuild-all <EVENTS.ndjson>\n",
        "  counts      unchanged  1 document: rebuilt with every model, since the event-id rule changed\n",
        "  listing     unchanged  1 document: rebuilt with every model, since the event-id rule changed\n",
        "All at once:\n",
        "  projector replay --config c.toml --state s.db --rebuild-all <EVENTS.ndjson>\n",
        "(`projector plan --config c.toml --state s.db` shows the whole plan.)\n",
    ));
    assert_eq!(
        stored_documents(&dir.path().join("s.db"), "counts")["u1"],
        r#"{"clicks":1}"#
    );

    // Rebuilding every model from the log finds the processed ids anew.
    in_dir(&dir)
        .args(&[
            "replay",
            "--config",
            "c.toml",
            "--state",
            "s.db",
            "--rebuild-all",
            "log.ndjson",
        ])
        .go()
        .success();
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .stdin(&[CLICK, &query("counts")])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "event_skipped", "in_reply_to": 1, "event_id": "x1", "reason": "already_processed"}"#,
            r#"{"type": "query_result", "in_reply_to": 9, "model": "counts", "key": "u1", "document": {"clicks": 1}}"#,
        ]);
}

#[test]
fn a_state_is_never_opened_with_the_bundled_configuration() {
    let dir = TempDir::new();
    let bundled = std::fs::read_to_string(support::repo().join("projections.toml")).unwrap();
    dir.write("projections.toml", &bundled);
    in_dir(&dir)
        .args(&["--state", "s.db"])
        .stdin(&[CREATED])
        .go()
        .success();
    std::fs::remove_file(dir.path().join("projections.toml")).unwrap();
    let before = std::fs::read(dir.path().join("s.db")).unwrap();

    let out = in_dir(&dir)
        .args(&["--state", "s.db"])
        .stdin(&[CREATED])
        .go();
    out.code_is(78).stdout_is(&[]).stderr_is(
        "projector: no --config given, and there is no ./projections.toml; a state is only ever opened with a configuration named for it (the bundled one is for runs in memory)\n",
    );
    assert_eq!(std::fs::read(dir.path().join("s.db")).unwrap(), before);
    let replay = in_dir(&dir)
        .args(&["replay", "--state", "s.db", "/dev/null"])
        .go();
    replay.code_is(78);
    // In memory the bundled configuration still stands in.
    in_dir(&dir).stdin(&[CREATED]).go().success();
}

#[test]
fn a_model_left_out_of_the_configuration_is_kept_until_dropped_by_name() {
    let dir = clicked_once();
    let state = dir.path().join("s.db");
    let only_counts = &COUNTS[..COUNTS.find("[[model]]\nname = \"listing\"").unwrap()];
    dir.write("c.toml", only_counts);

    let out = in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .stdin(&[CLICK])
        .go();
    out.code_is(78).stdout_is(&[]).stderr_is(concat!(
        "projector: s.db was built by rules other than c.toml declares; nothing was changed, and nothing runs until this is resolved:\n",
        "  listing     removed    no longer configured; its 1 document would be dropped: drop them explicitly\n",
        "                         projector run --config c.toml --state s.db --drop listing\n",
        "All at once:\n",
        "  projector run --config c.toml --state s.db --drop listing\n",
        "(`projector plan --config c.toml --state s.db` shows the whole plan.)\n",
    ));
    assert_eq!(stored_documents(&state, "listing").len(), 1);

    // --drop must name a removed model.
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db", "--drop", "counts"])
        .go()
        .code_is(78)
        .stderr_has("--drop counts: \"counts\" is still configured");
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db", "--drop", "listing"])
        .stdin(&[CLICK])
        .go()
        .success()
        .stdout_is(&[r#"{"type": "event_skipped", "in_reply_to": 1, "event_id": "e1", "reason": "already_processed"}"#])
        .stderr_has("projector: read model \"listing\" is no longer configured: dropped 1 document (--drop listing)\n");
    assert!(stored_documents(&state, "listing").is_empty());
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .success();
}

/// The README's worked example: add a model, change one, remove one.
#[test]
fn plan_shows_each_difference_with_the_command_that_resolves_it() {
    let dir = clicked_once();
    let changed = COUNTS
        .replace(
            "increment = { clicks = 1 }",
            "increment = { clicks = 1, score = 10 }",
        )
        .replace("name = \"listing\"", "name = \"last_click\"")
        .replace(
            "merge = { seen = true }",
            "merge = { event = { meta = \"event_id\" } }",
        );
    dir.write("c.toml", &changed);
    let plan = in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go();
    plan.code_is(2).stdout_is(&[
        "Plan for the state s.db with c.toml:",
        "  [event_id]  unchanged  found as $.id",
        "  counts      changed    1 document, built by another definition: rebuild it from the event log",
        "                         projector replay --config c.toml --state s.db --rebuild counts <EVENTS.ndjson>",
        "  last_click  new        1 processed event of its types came before it: backfill it from the event log",
        "                         projector replay --config c.toml --state s.db --rebuild last_click <EVENTS.ndjson>",
        "  listing     removed    no longer configured; its 1 document would be dropped: drop them explicitly",
        "                         projector run --config c.toml --state s.db --drop listing",
        "3 differences need a command before `projector run` starts on this state. All at once:",
        "  projector replay --config c.toml --state s.db --rebuild counts --rebuild last_click --drop listing <EVENTS.ndjson>",
    ]);

    let json = in_dir(&dir)
        .args(&[
            "plan", "--config", "c.toml", "--state", "s.db", "--format", "json",
        ])
        .go();
    json.code_is(2);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["needs_action"], true);
    assert_eq!(report["event_id"]["status"], "unchanged");
    let models: Vec<(&str, &str, &str)> = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
                m["need"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            ("counts", "changed", "rebuild"),
            ("last_click", "new", "backfill"),
            ("listing", "removed", "drop")
        ]
    );

    // The command it gives resolves everything, and then there is nothing to do.
    dir.write("log.ndjson", &format!("{CLICK}\n"));
    let all = report["command"]
        .as_str()
        .unwrap()
        .replace("<EVENTS.ndjson>", "log.ndjson");
    let args: Vec<&str> = all.split(' ').skip(1).collect();
    in_dir(&dir).args(&args).go().success();
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .success()
        .stdout_is(&[
            "Plan for the state s.db with c.toml:",
            "  [event_id]  unchanged  found as $.id",
            "  counts      unchanged  1 document",
            "  last_click  unchanged  1 document",
            "Nothing to do: `projector run` starts on this state as it is.",
        ]);
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .stdin(&[&query("counts"), &query("last_click")])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "query_result", "in_reply_to": 9, "model": "counts", "key": "u1", "document": {"clicks": 1, "score": 10}}"#,
            r#"{"type": "query_result", "in_reply_to": 9, "model": "last_click", "key": "u1", "document": {"event": "e1"}}"#,
        ]);
}

#[test]
fn plan_reads_only_and_says_when_there_is_nothing_to_plan() {
    let dir = TempDir::new();
    dir.write("c.toml", COUNTS);
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .success()
        .stdout_is(&["There is no state at s.db: `projector run --config c.toml --state s.db` creates it, with 2 read models. Nothing to do."]);
    assert!(!dir.path().join("s.db").exists());

    dir.write("bad.toml", "[[model]]\nname = 1\n");
    in_dir(&dir)
        .args(&["plan", "--config", "bad.toml", "--state", "s.db"])
        .go()
        .code_is(78);
    dir.write("s.db", "not a database");
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .code_is(65)
        .stderr_has("s.db is not a projector state: it is not an SQLite database");
    assert_eq!(
        std::fs::read(dir.path().join("s.db")).unwrap(),
        b"not a database"
    );
}

#[test]
fn a_model_that_a_rebuild_would_leave_as_it_is_is_recorded_without_one() {
    let dir = clicked_once();
    // A new model of a type never processed, and a changed one that holds
    // nothing and reacts to such a type: rebuilding them changes nothing.
    let more = format!(
        "{}\n[[model]]\nname = \"refunds\"\nkey = \"$.payload.user\"\non.Refunded = {{ increment = {{ n = 1 }} }}\n",
        COUNTS
    );
    dir.write("c.toml", &more);
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .success()
        .stdout_has("  refunds     new        no processed events of its types: it starts empty");
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .go()
        .success();
    dir.write("c.toml", &more.replace("{ n = 1 }", "{ n = 2 }"));
    in_dir(&dir)
        .args(&["plan", "--config", "c.toml", "--state", "s.db"])
        .go()
        .success()
        .stdout_has("  refunds     changed    no documents, and no processed events of its types: the new definition is recorded at start");
    in_dir(&dir)
        .args(&["--config", "c.toml", "--state", "s.db"])
        .go()
        .success();
    assert!(
        support::stored_definition(Path::new(&dir.path().join("s.db")), "refunds")
            .unwrap()
            .contains("\"n\"")
    );
}
