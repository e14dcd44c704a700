//! `projector plan --diff N --source ADDR`: a configuration change shown on
//! live documents, before (as the state holds them) and after (as the new
//! configuration makes them from their events): from a state of its own and
//! a log file, and from a cluster's PostgreSQL state and its NATS stream.

use crate::support;

use serde_json::{json, Value};
use support::{run_until_caught_up, NatsServer, PgDb, Run, TempDir};

/// Orders, and a count per customer: one group (both react to
/// OrderPlaced, keyed differently).
const V1: &str = r#"
[[model]]
name = "orders"
key = "$.payload.order_id"
on.OrderPlaced = { put = { order_id = "$.payload.order_id", amount = "$.payload.amount" } }
on.OrderShipped = { merge = { shipped = true } }

[[model]]
name = "customers"
key = "$.payload.customer"
on.OrderPlaced = { increment = { orders = 1, total = "$.payload.amount" } }
"#;

/// Orders gain their currency and carrier, `big_orders` is new, and
/// `customers` is removed.
const V2: &str = r#"
[[model]]
name = "orders"
key = "$.payload.order_id"
on.OrderPlaced = { put = { order_id = "$.payload.order_id", amount = "$.payload.amount", currency = "$.payload.currency" } }
on.OrderShipped = { merge = { shipped = true, carrier = "$.payload.carrier" } }

[[model]]
name = "big_orders"
key = "$.payload.customer"
on.OrderPlaced = { when = { path = "$.payload.amount", ge = 100 }, append = { order_ids = "$.payload.order_id" } }
"#;

fn placed(id: &str, order: &str, customer: &str, amount: u32, currency: &str) -> String {
    format!(
        r#"{{"type":"event","event":{{"type":"OrderPlaced","id":"{id}","payload":{{"order_id":"{order}","customer":"{customer}","amount":{amount},"currency":"{currency}"}}}}}}"#
    )
}

fn shipped(id: &str, order: &str, carrier: &str) -> String {
    format!(
        r#"{{"type":"event","event":{{"type":"OrderShipped","id":"{id}","payload":{{"order_id":"{order}","carrier":"{carrier}"}}}}}}"#
    )
}

/// Three orders, one shipped (and its event delivered twice).
fn log() -> Vec<String> {
    vec![
        placed("e1", "o2", "c1", 150, "EUR"),
        placed("e2", "o1", "c2", 20, "USD"),
        placed("e3", "o3", "c1", 300, "EUR"),
        shipped("e4", "o1", "DHL"),
        shipped("e4", "o1", "DHL"),
    ]
}

/// The diff `V2` makes of the documents `log` builds with `V1`.
const DIFF: [&str; 19] = [
    "  orders  changed",
    "    \"o1\"  +carrier +currency",
    "      before  {\"amount\": 20, \"order_id\": \"o1\", \"shipped\": true}",
    "      after   {\"amount\": 20, \"carrier\": \"DHL\", \"currency\": \"USD\", \"order_id\": \"o1\", \"shipped\": true}",
    "    \"o2\"  +currency",
    "      before  {\"amount\": 150, \"order_id\": \"o2\"}",
    "      after   {\"amount\": 150, \"currency\": \"EUR\", \"order_id\": \"o2\"}",
    "  big_orders  new",
    "    \"c1\"  new",
    "      before  (none)",
    "      after   {\"order_ids\": [\"o2\", \"o3\"]}",
    "  customers  removed",
    "    \"c1\"  removed",
    "      before  {\"orders\": 2, \"total\": 450}",
    "      after   (none)",
    "    \"c2\"  removed",
    "      before  {\"orders\": 1, \"total\": 20}",
    "      after   (none)",
    "",
];

/// A directory with `v1.toml`, `v2.toml`, `log.ndjson` (`lines`) and the
/// state `s.db` that `V1` builds from it; commands run there.
fn built(lines: &[String]) -> TempDir {
    let dir = TempDir::new();
    dir.write("v1.toml", V1);
    dir.write("v2.toml", V2);
    dir.write("log.ndjson", &(lines.join("\n") + "\n"));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    in_dir(&dir)
        .args(&["--config", "v1.toml", "--state", "s.db"])
        .stdin(&lines)
        .go()
        .success();
    dir
}

fn in_dir(dir: &TempDir) -> Run {
    Run::new().cwd(dir.path())
}

fn with_newlines(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn a_change_is_shown_on_the_documents_of_a_state_before_and_after_from_a_log() {
    let dir = built(&log());
    let plan = in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
        .args(&["--diff", "2", "--source", "log.ndjson"])
        .go();
    let mut expected = vec![
        "Plan for the state s.db with v2.toml:",
        "  [event_id]  unchanged  found as $.id",
        "  orders      changed    3 documents, built by another definition: rebuild it from the event log",
        "                         projector replay --config v2.toml --state s.db --rebuild orders <EVENTS.ndjson>",
        "  big_orders  new        3 processed events of its types came before it: backfill it from the event log",
        "                         projector replay --config v2.toml --state s.db --rebuild big_orders <EVENTS.ndjson>",
        "  customers   removed    no longer configured; its 2 documents would be dropped: drop them explicitly",
        "                         projector run --config v2.toml --state s.db --drop customers",
        "3 differences need a command before `projector run` starts on this state. All at once:",
        "  projector replay --config v2.toml --state s.db --rebuild orders --rebuild big_orders --drop customers <EVENTS.ndjson>",
        "Diff, up to 2 documents per read model: before, as the state holds them; after, as v2.toml makes them from their events in log.ndjson (5 messages read; 4 events applied to them):",
    ];
    expected.extend(&DIFF[..DIFF.len() - 1]);
    plan.code_is(2).stdout_is(&expected).stderr_is("");

    let json = in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
        .args(&["--diff", "2", "--source", "log.ndjson", "--format", "json"])
        .go();
    json.code_is(2);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["needs_action"], true);
    assert_eq!(
        report["diff_source"],
        json!({"source": "log.ndjson", "documents_per_model": 2, "messages": 5, "to_sequence": null, "applied": 4})
    );
    let no_fields = json!([]);
    assert_eq!(
        report["diff"],
        json!([
            {"model": "orders", "status": "changed", "documents": [
                {"key": "o1", "change": "changed",
                 "before": {"amount": 20, "order_id": "o1", "shipped": true},
                 "after": {"amount": 20, "carrier": "DHL", "currency": "USD", "order_id": "o1", "shipped": true},
                 "added": ["carrier", "currency"], "removed": no_fields, "changed": no_fields},
                {"key": "o2", "change": "changed",
                 "before": {"amount": 150, "order_id": "o2"},
                 "after": {"amount": 150, "currency": "EUR", "order_id": "o2"},
                 "added": ["currency"], "removed": no_fields, "changed": no_fields},
            ]},
            {"model": "big_orders", "status": "new", "documents": [
                {"key": "c1", "change": "new", "before": null, "after": {"order_ids": ["o2", "o3"]},
                 "added": no_fields, "removed": no_fields, "changed": no_fields},
            ]},
            {"model": "customers", "status": "removed", "documents": [
                {"key": "c1", "change": "removed", "before": {"orders": 2, "total": 450}, "after": null,
                 "added": no_fields, "removed": no_fields, "changed": no_fields},
                {"key": "c2", "change": "removed", "before": {"orders": 1, "total": 20}, "after": null,
                 "added": no_fields, "removed": no_fields, "changed": no_fields},
            ]},
        ])
    );
}

/// Only the events of the documents shown are applied: a log of thousands
/// of other orders gives the same diff, and applies as few events.
#[test]
fn the_events_of_other_documents_are_not_applied_and_change_nothing() {
    let orders_only = V2
        .split("[[model]]\nname = \"big_orders\"")
        .next()
        .unwrap()
        .to_owned()
        + "\n[[model]]\nname = \"customers\"\nkey = \"$.payload.customer\"\non.OrderPlaced = { increment = { orders = 1, total = \"$.payload.amount\" } }\n";
    let mut busy = Vec::new();
    for (i, line) in log().into_iter().enumerate() {
        busy.push(line);
        for j in 0..1000 {
            let n = i * 1000 + j;
            let id = format!("x{n}");
            busy.push(placed(
                &id,
                &format!("p{n:05}"),
                &format!("d{}", n % 97),
                5,
                "SEK",
            ));
            if n % 3 == 0 {
                busy.push(shipped(&format!("s{n}"), &format!("p{n:05}"), "UPS"));
            }
        }
    }
    let quiet = built(&log());
    let busy = built(&busy);
    let mut diffs = Vec::new();
    for dir in [&quiet, &busy] {
        dir.write("v2.toml", &orders_only);
        let out = in_dir(dir)
            .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
            .args(&["--diff", "2", "--source", "log.ndjson"])
            .go();
        out.code_is(2);
        let diff = out.stdout.split_once("\nDiff, ").unwrap().1.to_owned();
        diffs.push(diff);
    }
    let body = with_newlines(&DIFF[..7]);
    assert_eq!(
        diffs[0],
        format!("up to 2 documents per read model: before, as the state holds them; after, as v2.toml makes them from their events in log.ndjson (5 messages read; 3 events applied to them):\n{body}")
    );
    assert_eq!(
        diffs[1],
        format!("up to 2 documents per read model: before, as the state holds them; after, as v2.toml makes them from their events in log.ndjson (6672 messages read; 3 events applied to them):\n{body}")
    );
}

/// A key made another way: the live documents have none after, and the
/// first ones the new configuration makes are shown beside them.
#[test]
fn a_key_made_another_way_shows_the_live_documents_gone_and_the_first_ones_made() {
    let dir = built(&log());
    dir.write(
        "v2.toml",
        &V1.replace(
            "key = \"$.payload.order_id\"",
            "key = \"{$.payload.customer}/{$.payload.order_id}\"",
        ),
    );
    let out = in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
        .args(&["--diff", "1", "--source", "log.ndjson"])
        .go();
    out.code_is(2);
    let diff = out.stdout.split_once("\nDiff, ").unwrap().1;
    assert_eq!(
        diff,
        with_newlines(&[
            "up to 1 document per read model: before, as the state holds them; after, as v2.toml makes them from their events in log.ndjson (5 messages read; 1 event applied to them):",
            "  orders  changed",
            "    \"o1\"  gone",
            "      before  {\"amount\": 20, \"order_id\": \"o1\", \"shipped\": true}",
            "      after   (none)",
            "    \"c1/o2\"  new",
            "      before  (none)",
            "      after   {\"amount\": 150, \"order_id\": \"o2\"}",
        ])
    );
}

/// A state of its own in PostgreSQL, built from a log that subscribes to
/// OrderPlaced alone: the shipments count neither before nor after.
#[test]
fn a_postgresql_state_is_diffed_with_the_subscriptions_of_its_log() {
    let db = PgDb::new("plan_diff_state");
    let dir = TempDir::new();
    dir.write("v2.toml", V2);
    let mut lines =
        vec![r#"{"type":"subscribe","msg_id":0,"event_types":["OrderPlaced"]}"#.to_owned()];
    lines.extend(log());
    dir.write("log.ndjson", &(lines.join("\n") + "\n"));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Run::new()
        .config(V1)
        .args(&["--state", &db.url()])
        .stdin(&lines)
        .go()
        .success();
    let out = in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", &db.url()])
        .args(&["--diff", "1", "--source", "log.ndjson"])
        .go();
    out.code_is(2);
    let diff = out.stdout.split_once("\nDiff, ").unwrap().1;
    assert_eq!(
        diff,
        with_newlines(&[
            "up to 1 document per read model: before, as the state holds them; after, as v2.toml makes them from their events in log.ndjson (6 messages read; 3 events applied to them):",
            "  orders  changed",
            "    \"o1\"  +currency",
            "      before  {\"amount\": 20, \"order_id\": \"o1\"}",
            "      after   {\"amount\": 20, \"currency\": \"USD\", \"order_id\": \"o1\"}",
            "  big_orders  new",
            "    \"c1\"  new",
            "      before  (none)",
            "      after   {\"order_ids\": [\"o2\", \"o3\"]}",
            "  customers  removed",
            "    \"c1\"  removed",
            "      before  {\"orders\": 2, \"total\": 450}",
            "      after   (none)",
        ])
    );
}

#[test]
fn diff_needs_a_source_and_a_source_needs_diff() {
    let dir = built(&log());
    in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db", "--diff", "2"])
        .go()
        .code_is(64)
        .stdout_is(&[])
        .stderr_is("projector: --diff needs --source: the events the documents after the change are computed from (nats://HOST:PORT/STREAM, or a file of messages as `replay` reads them)\n");
    in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
        .args(&["--source", "log.ndjson"])
        .go()
        .code_is(64)
        .stderr_is("projector: --source is read only with --diff N: the number of documents to show per read model\n");
    in_dir(&dir)
        .args(&["plan", "--config", "v2.toml", "--state", "s.db"])
        .args(&["--diff", "2", "--source", "missing.ndjson"])
        .go()
        .code_is(74)
        .stdout_is(&[])
        .stderr_is("projector: --source: cannot read missing.ndjson: No such file or directory (os error 2)\n");
}

/// Orders and customers, each a group of its own split in 4 units.
const CLUSTER_V1: &str = r#"
[[model]]
name = "orders"
key = "$.payload.order_id"
on.OrderPlaced = { put = { order_id = "$.payload.order_id", amount = "$.payload.amount" } }
on.OrderShipped = { merge = { shipped = true } }

[[model]]
name = "customers"
key = "$.payload.customer"
on.CustomerJoined = { put = { name = "$.payload.name" } }
"#;

#[test]
fn a_cluster_change_is_shown_on_its_serving_documents_from_its_stream() {
    let nats = NatsServer::start();
    let db = PgDb::new("plan_diff");
    let dir = TempDir::new();
    let v1 = dir.write("v1.toml", CLUSTER_V1);
    dir.write(
        "v2.toml",
        &CLUSTER_V1.replace(
            "on.OrderShipped = { merge = { shipped = true } }",
            "on.OrderShipped = { merge = { shipped = true, carrier = \"$.payload.carrier\" } }",
        ),
    );
    // 40 orders over the 4 units of `orders`, every fourth one shipped.
    let mut lines = vec![
        r#"{"type":"CustomerJoined","id":"j1","payload":{"customer":"c1","name":"Ann"}}"#
            .to_owned(),
    ];
    for i in 1..=40 {
        lines.push(placed(
            &format!("e{i}"),
            &format!("o{i:02}"),
            "c1",
            i * 10,
            "EUR",
        ));
        if i % 4 == 1 {
            lines.push(shipped(&format!("s{i}"), &format!("o{i:02}"), "DHL"));
        }
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Run::new()
        .args(&[
            "publish",
            "--config",
            v1.to_str().unwrap(),
            "--to",
            &nats.stream("EVENTS"),
        ])
        .stdin(&lines)
        .go()
        .success();
    run_until_caught_up(&nats, &db, &v1, lines.len() as u64);

    let out = Run::new()
        .cwd(dir.path())
        .args(&["plan", "--config", "v2.toml", "--state", &db.url()])
        .args(&["--diff", "2", "--source", &nats.stream("EVENTS")])
        .go();
    out.code_is(2);
    let (plan, diff) = out.stdout.split_once("Diff, ").unwrap();
    assert_eq!(
        plan.lines().filter(|l| l.contains(": unchanged")).count(),
        4,
        "{plan}"
    );
    assert_eq!(
        plan.lines()
            .filter(|l| l.contains(": definition changed"))
            .count(),
        4,
        "{plan}"
    );
    assert_eq!(
        diff,
        with_newlines(&[
            &format!("up to 2 documents per read model: before, as the state holds them; after, as v2.toml makes them from their events in {} up to sequence 51 (51 messages read; 3 events applied to them):", nats.stream("EVENTS")),
            "  orders  rebuilt",
            "    \"o01\"  +carrier",
            "      before  {\"amount\": 10, \"order_id\": \"o01\", \"shipped\": true}",
            "      after   {\"amount\": 10, \"carrier\": \"DHL\", \"order_id\": \"o01\", \"shipped\": true}",
            "    \"o02\"  unchanged",
            "      before  {\"amount\": 20, \"order_id\": \"o02\"}",
            "      after   {\"amount\": 20, \"order_id\": \"o02\"}",
        ])
    );

    // Keys made another way: the stream is read again, up to the same
    // sequence, for the first documents they make.
    dir.write(
        "v3.toml",
        &CLUSTER_V1.replace(
            "key = \"$.payload.order_id\"",
            "key = \"n{$.payload.order_id}\"",
        ),
    );
    let out = Run::new()
        .cwd(dir.path())
        .args(&["plan", "--config", "v3.toml", "--state", &db.url()])
        .args(&["--diff", "1", "--source", &nats.stream("EVENTS")])
        .go();
    out.code_is(2);
    assert_eq!(
        out.stdout.split_once("Diff, ").unwrap().1,
        with_newlines(&[
            &format!("up to 1 document per read model: before, as the state holds them; after, as v3.toml makes them from their events in {} up to sequence 51 (51 messages read; 2 events applied to them):", nats.stream("EVENTS")),
            "  orders  rebuilt",
            "    \"o01\"  gone",
            "      before  {\"amount\": 10, \"order_id\": \"o01\", \"shipped\": true}",
            "      after   (none)",
            "    \"no01\"  new",
            "      before  (none)",
            "      after   {\"amount\": 10, \"order_id\": \"o01\", \"shipped\": true}",
        ])
    );
}
