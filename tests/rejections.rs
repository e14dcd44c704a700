//! `projector rejections list | retry | drop` on the main schema a real
//! cluster made (a nats-server and a database of the test's own), with
//! rows of `rejections` written in: a parked event, events parked behind
//! it on its documents and on documents they share, another parked event
//! with one behind it, one of another unit, one recorded.

use crate::support;

use support::{run_until_caught_up, NatsServer, Output, PgDb, Run, TempDir};

const USERS_ORDERS: &str = include_str!("../bench/users-orders.toml");

/// The rows written in after the cluster ran. 3 is parked; 4 (on u1) and 5
/// (on o4, which 4 changes) wait behind it, and 9 (on u2, which 5 changes)
/// too; 7 is parked with 10 behind it; 8 is of another unit; 6 was passed by.
const ROWS: &str = r#"
INSERT INTO projector.rejections
    (unit, position, id, code, error, text, at, status, documents, behind) VALUES
('orders+user_order_stats', 3, 'o3', 22,
 'event o3 (OrderPlaced) was not applied, and no read model changed: read model "user_order_stats": incrementing field "total_spent" of document "u1" by "ten", which is not a number',
 '{"type":"OrderPlaced","id":"o3","payload":{"order_id":"o3","user_id":"u1","amount":"ten"}}',
 '2026-03-01 12:00:03+00', 'parked', '[["orders", "o3"], ["user_order_stats", "u1"]]', NULL),
('orders+user_order_stats', 4, 'o4', 0, 'held behind the parked event at sequence 3',
 '{"type":"OrderPlaced","id":"o4","payload":{"order_id":"o4","user_id":"u1","amount":4}}',
 '2026-03-01 12:00:04+00', 'parked', '[["orders", "o4"], ["user_order_stats", "u1"]]', 3),
('orders+user_order_stats', 5, 'o4b', 0, 'held behind the parked event at sequence 3',
 '{"type":"OrderPlaced","id":"o4b","payload":{"order_id":"o4","user_id":"u2","amount":5}}',
 '2026-03-01 12:00:05+00', 'parked', '[["orders", "o4"], ["user_order_stats", "u2"]]', 3),
('orders+user_order_stats', 6, NULL, 12, 'input line 6 is not JSON: expected value at line 1 column 1',
 'not json', '2026-03-01 12:00:06+00', 'recorded', '[]', NULL),
('orders+user_order_stats', 7, 'o7', 22,
 'event o7 (OrderPlaced) was not applied: read model "orders" needs a document key at $.payload.order_id',
 '{"type":"OrderPlaced","id":"o7","payload":{"order":"o7","user_id":"u3","amount":7}}',
 '2026-03-01 12:00:07+00', 'parked', '[["orders", "o7"], ["user_order_stats", "u3"]]', NULL),
('user_listing 2/4', 8, 'c8', 22, '$.payload.email is not text',
 '{"type":"UserUpdated","id":"c8","payload":{"id":"u1","email":8}}',
 '2026-03-01 12:00:08+00', 'parked', '[["user_listing", "u1"]]', NULL),
('orders+user_order_stats', 9, 'o9', 0, 'held behind the parked event at sequence 3',
 '{"type":"OrderPlaced","id":"o9","payload":{"order_id":"o9","user_id":"u2","amount":9}}',
 '2026-03-01 12:00:09+00', 'parked', '[["orders", "o9"], ["user_order_stats", "u2"]]', 3),
('orders+user_order_stats', 10, 'o10', 0, 'held behind the parked event at sequence 7',
 '{"type":"OrderPlaced","id":"o10","payload":{"order_id":"o10","user_id":"u3","amount":10}}',
 '2026-03-01 12:00:10+00', 'parked', '[["orders", "o10"], ["user_order_stats", "u3"]]', 7)
"#;

/// A main schema made by a cluster that ran to the end of a stream of two
/// events and stopped, with [`ROWS`] in its `rejections`.
fn cluster(what: &str) -> (NatsServer, PgDb) {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .args(&["--config", config.to_str().unwrap()])
        .stdin(&[
            r#"{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann","email":"a@x"}}"#,
            r#"{"type":"OrderPlaced","id":"e2","payload":{"order_id":"o1","user_id":"u1","amount":2}}"#,
        ])
        .go()
        .success();
    let db = PgDb::new(what);
    run_until_caught_up(&nats, &db, &config, 2);
    db.client().batch_execute(ROWS).unwrap();
    (nats, db)
}

/// `projector rejections ARGS --state <db>`.
fn rejections(db: &PgDb, args: &[&str]) -> Output {
    Run::new()
        .arg("rejections")
        .args(args)
        .args(&["--state", &db.url()])
        .go()
}

/// Every row's position and status, by position.
fn statuses(db: &PgDb) -> Vec<(i64, String)> {
    db.client()
        .query(
            "SELECT position, status FROM projector.rejections ORDER BY position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn expect(statuses: &[(i64, &str)]) -> Vec<(i64, String)> {
    statuses.iter().map(|(p, s)| (*p, s.to_string())).collect()
}

#[test]
fn list_prints_the_open_rejections_as_a_table_and_every_column_as_json() {
    let (_nats, db) = cluster("rejections_list");
    rejections(&db, &["list"]).success().stdout_is(&[
        "POSITION  UNIT                     STATUS  CODE  ID   DOCUMENTS                        ERROR",
        "       3  orders+user_order_stats  parked    22  o3   orders/o3, user_order_stats/u1   event o3 (OrderPlaced) …",
        "       4  orders+user_order_stats  parked     0  o4   orders/o4, user_order_stats/u1   held behind the parked …",
        "       5  orders+user_order_stats  parked     0  o4b  orders/o4, user_order_stats/u2   held behind the parked …",
        "       7  orders+user_order_stats  parked    22  o7   orders/o7, user_order_stats/u3   event o7 (OrderPlaced) …",
        "       8  user_listing 2/4         parked    22  c8   user_listing/u1                  $.payload.email is not …",
        "       9  orders+user_order_stats  parked     0  o9   orders/o9, user_order_stats/u2   held behind the parked …",
        "      10  orders+user_order_stats  parked     0  o10  orders/o10, user_order_stats/u3  held behind the parked …",
        "7 events: 7 parked",
    ]);
    rejections(&db, &["list", "--key", "u1", "--format", "json"]).success().stdout_is(&[
        r#"{"unit":"orders+user_order_stats","position":3,"id":"o3","code":22,"error":"event o3 (OrderPlaced) was not applied, and no read model changed: read model \"user_order_stats\": incrementing field \"total_spent\" of document \"u1\" by \"ten\", which is not a number","text":"{\"type\":\"OrderPlaced\",\"id\":\"o3\",\"payload\":{\"order_id\":\"o3\",\"user_id\":\"u1\",\"amount\":\"ten\"}}","at":"2026-03-01T12:00:03.000000Z","status":"parked","documents":[["orders","o3"],["user_order_stats","u1"]],"behind":null}"#,
        r#"{"unit":"orders+user_order_stats","position":4,"id":"o4","code":0,"error":"held behind the parked event at sequence 3","text":"{\"type\":\"OrderPlaced\",\"id\":\"o4\",\"payload\":{\"order_id\":\"o4\",\"user_id\":\"u1\",\"amount\":4}}","at":"2026-03-01T12:00:04.000000Z","status":"parked","documents":[["orders","o4"],["user_order_stats","u1"]],"behind":3}"#,
        r#"{"unit":"user_listing 2/4","position":8,"id":"c8","code":22,"error":"$.payload.email is not text","text":"{\"type\":\"UserUpdated\",\"id\":\"c8\",\"payload\":{\"id\":\"u1\",\"email\":8}}","at":"2026-03-01T12:00:08.000000Z","status":"parked","documents":[["user_listing","u1"]],"behind":null}"#,
    ]);
    rejections(&db, &["list", "--status", "recorded", "--format", "json"]).success().stdout_is(&[
        r#"{"unit":"orders+user_order_stats","position":6,"id":null,"code":12,"error":"input line 6 is not JSON: expected value at line 1 column 1","text":"not json","at":"2026-03-01T12:00:06.000000Z","status":"recorded","documents":[],"behind":null}"#,
    ]);
    rejections(&db, &["list", "--status", "all", "--code", "12"]).success().stdout_is(&[
        "POSITION  UNIT                     STATUS    CODE  ID  DOCUMENTS  ERROR",
        "       6  orders+user_order_stats  recorded    12  -              input line 6 is not JSON: expecte…",
        "1 event: 1 recorded",
    ]);
    rejections(&db, &["list", "--model", "orders", "--key", "u1"])
        .success()
        .stdout_is(&["no rejections match (status parked or retry)"]);
    rejections(&db, &["list", "--unit", "user_listing 2/4", "--status", "parked,recorded"])
        .success()
        .stdout_is(&[
            "POSITION  UNIT              STATUS  CODE  ID  DOCUMENTS        ERROR",
            "       8  user_listing 2/4  parked    22  c8  user_listing/u1  $.payload.email is not text",
            "1 event: 1 parked",
        ]);
}

#[test]
fn retry_marks_a_parked_event_with_the_rest_of_its_sequence_and_leaves_one_held_by_another() {
    let (_nats, db) = cluster("rejections_retry");
    rejections(
        &db,
        &["retry", "--model", "user_order_stats", "--key", "u1"],
    )
    .success()
    .stdout_is(&[
        "asked to retry 4 events: orders+user_order_stats at 3, 4, 5, 9",
        "the instances owning these units apply them, in position order, at their next batch",
    ]);
    assert_eq!(
        statuses(&db),
        expect(&[
            (3, "retry"),
            (4, "retry"),
            (5, "retry"),
            (6, "recorded"),
            (7, "parked"),
            (8, "parked"),
            (9, "retry"),
            (10, "parked"),
        ])
    );
    // 10 waits behind 7, which stays parked.
    rejections(&db, &["retry", "--position", "10"])
        .success()
        .stdout_is(&["left parked, 1 event: orders+user_order_stats at 10: they wait behind earlier parked events of their documents, which are not retried (retry those, and these come with them)"]);
    rejections(&db, &["retry", "--key", "u1", "--code", "0"])
        .success()
        .stdout_is(&["no parked event matches: nothing to retry"]);
    rejections(&db, &["retry", "--key", "u3"])
        .success()
        .stdout_is(&[
            "asked to retry 2 events: orders+user_order_stats at 7, 10",
            "the instances owning these units apply them, in position order, at their next batch",
        ]);
    rejections(
        &db,
        &[
            "list",
            "--status",
            "retry",
            "--unit",
            "orders+user_order_stats",
        ],
    )
    .success()
    .stdout_has("6 events: 6 retry\n");
    assert_eq!(
        statuses(&db)
            .iter()
            .filter(|(_, s)| s == "parked")
            .collect::<Vec<_>>(),
        [&(8, "parked".to_owned())]
    );
}

#[test]
fn drop_wants_a_filter_or_all_and_drops_what_matches() {
    let (_nats, db) = cluster("rejections_drop");
    let before = statuses(&db);
    rejections(&db, &["drop"]).code_is(64).stderr_is(
        "projector: rejections drop: give a filter (--unit, --model, --key, --code, --position), or --all to drop every event parked, to retry or recorded\n",
    );
    assert_eq!(statuses(&db), before);
    rejections(&db, &["drop", "--position", "7"])
        .success()
        .stdout_is(&[
            "dropped 1 event (not to be applied): orders+user_order_stats at 7",
            "1 parked event waited behind it and stays parked: retry or drop it too",
        ]);
    rejections(&db, &["drop", "--position", "7"])
        .success()
        .stdout_is(&["no event parked, to retry or recorded matches: nothing dropped"]);
    rejections(&db, &["drop", "--unit", "user_listing 2/4"])
        .success()
        .stdout_is(&["dropped 1 event (not to be applied): user_listing 2/4 at 8"]);
    assert_eq!(
        statuses(&db),
        expect(&[
            (3, "parked"),
            (4, "parked"),
            (5, "parked"),
            (6, "recorded"),
            (7, "dropped"),
            (8, "dropped"),
            (9, "parked"),
            (10, "parked"),
        ])
    );
    rejections(&db, &["drop", "--all"]).success().stdout_is(&[
        "dropped 6 events (not to be applied): orders+user_order_stats at 3, 4, 5, 6, 9, 10",
    ]);
    assert!(statuses(&db).iter().all(|(_, s)| s == "dropped"));
    rejections(&db, &["list"])
        .success()
        .stdout_is(&["no rejections match (status parked or retry)"]);
}

#[test]
fn a_state_that_is_no_cluster_s_and_an_unreachable_database_are_named_without_a_password() {
    let db = PgDb::new("rejections_none");
    let url = db.url();
    Run::new()
        .args(&["--state", &url, "--schema", "single"])
        .go()
        .success();
    Run::new()
        .args(&["rejections", "list", "--state", &url, "--schema", "single"])
        .go()
        .code_is(65)
        .stderr_is(&format!(
            "projector: {url} (schema single) is not a projector state: schema \"single\" holds the state of one projector; the table rejections is in a cluster's main schema, where `projector run --source …` keeps it: name that with --schema; it was left untouched\n"
        ));
    Run::new()
        .args(&["rejections", "retry", "--state", &url, "--key", "k"])
        .go()
        .code_is(65)
        .stderr_is(&format!(
            "projector: {url} is not a projector state: schema \"projector\" has no table rejections: no `projector run --source …` has run with it; name a cluster's main schema with --schema; it was left untouched\n"
        ));
    let out = Run::new()
        .args(&["rejections", "drop", "--all"])
        .args(&["--state", "postgres://ann:secret@127.0.0.1:1/app"])
        .env("PROJECTOR_RETRY_SECONDS", "0.2")
        .go();
    out.code_is(74).stderr_is(
        "projector: postgres://ann:***@127.0.0.1:1/app: connecting to 127.0.0.1:1 failed: error connecting to server: Connection refused (os error 111) (retried for the time PROJECTOR_RETRY_SECONDS allows; nothing uncommitted was replied to)\n",
    );
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    Run::new()
        .args(&["rejections", "list", "--state", "state.db"])
        .go()
        .code_is(64)
        .stderr_is("projector: --state: rejections are kept by a cluster's PostgreSQL state: postgres://USER@HOST:PORT/DATABASE or \"host=HOST dbname=DATABASE …\"\n");
}

#[test]
fn every_event_refused_is_recorded_under_the_unit_of_its_own_group() {
    let nats = NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let event = |e: &str| format!(r#"{{"type":"event","event":{e}}}"#).into_bytes();
    let last = nats.publish_raw(
        "EVENTS",
        &[
            event(r#"{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann"}}"#),
            // 2: no id; 3: no key; 4: no id; 5: no key of orders; 6: no type
            event(r#"{"type":"UserCreated","payload":{"id":"u7","name":"Bo"}}"#),
            event(r#"{"type":"UserCreated","id":"e3","payload":{"name":"Cy"}}"#),
            event(r#"{"type":"OrderPlaced","payload":{"order_id":"o4","user_id":"u4","amount":4}}"#),
            event(r#"{"type":"OrderPlaced","id":"e5","payload":{"user_id":"u5","amount":5}}"#),
            event(r#"{"id":"e6","payload":{"id":"u1"}}"#),
            event(r#"{"type":"OrderPlaced","id":"e7","payload":{"order_id":"o7","user_id":"u1","amount":7}}"#),
        ],
    );
    let db = PgDb::new("rejections_units");
    run_until_caught_up(&nats, &db, &config, last);
    let rows: Vec<String> = db
        .client()
        .query(
            "SELECT position, unit, code, status, documents::text, error FROM projector.rejections
             ORDER BY position, unit",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let (position, unit, code, status, documents, error): (
                i64,
                String,
                i32,
                String,
                String,
                String,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            format!("{position} | {unit} | {code} {status} {documents} | {error}")
        })
        .collect();
    // Each is refused once, by the unit its type and key send it to.
    assert_eq!(
        rows,
        [
            r#"2 | user_listing 2/4 | 12 parked [["user_listing", "u7"]] | the event has no id at $.id"#,
            r#"3 | user_listing 1/4 | 12 parked [] | event e3 (UserCreated) was not applied, and no read model changed: read model "user_listing" needs a document key at $.payload.id, which the event does not have"#,
            r#"4 | orders+user_order_stats | 12 parked [["orders", "o4"], ["user_order_stats", "u4"]] | the event has no id at $.id"#,
            r#"5 | orders+user_order_stats | 12 parked [["user_order_stats", "u5"]] | event e5 (OrderPlaced) was not applied, and no read model changed: read model "orders" needs a document key at $.payload.order_id, which the event does not have"#,
            r#"6 | user_listing 1/4 | 12 recorded [] | the event has no "type""#,
        ],
        "{rows:#?}"
    );
    let orders: Vec<String> = db.view("projector", "orders").into_keys().collect();
    assert_eq!(orders, ["o7"]);
    let users: Vec<String> = db.view("projector", "user_listing").into_keys().collect();
    assert_eq!(users, ["u1"]);
}
