//! The schemas a switch retires: listed by `projector plan`, dropped by
//! `projector gc` (never while a reader's transaction holds them, never one
//! a version served or built uses), and by the instances once retired
//! longer than PROJECTOR_GC_SECONDS.

use crate::support;

use std::time::{Duration, Instant};
use support::versions::Cluster;

/// A cluster that served version 1 and switched to version 2, which
/// rebuilt one unit: returns it and the retired unit's schema.
fn switched(what: &str, env: &[(&str, &str)]) -> (Cluster, String, String) {
    let c = Cluster::new(what);
    c.serve(&c.v1);
    let log = c.run_until(&c.v2, env, || c.version("serving") == Some(2));
    let old: String =
        c.db.client()
            .query_one(
                "SELECT schema FROM projector._projector_units
             WHERE version = 1 AND name = 'orders+user_order_stats'",
                &[],
            )
            .unwrap()
            .get(0);
    (c, old, log)
}

/// `retired N s ago` for any N.
fn masked(text: &str) -> String {
    regex::Regex::new(r"retired \d+ s ago")
        .unwrap()
        .replace_all(text, "retired N s ago")
        .into_owned()
}

#[test]
fn gc_drops_a_retired_schema_no_version_uses_once_no_reader_holds_it() {
    let c = Cluster::new("gc_cli");
    c.serve(&c.v1);
    let url = c.db.url();
    // While version 2 is being built, nothing is retired.
    c.register(&c.v2);
    c.projector(&["gc", "--dry-run"]).success().stdout_is(&[
        "no retired schema to drop: every unit schema is used by a version served or built, or already dropped",
    ]);
    c.run_until(&c.v2, &[], || c.version("serving") == Some(2));
    let schemas = c.unit_schemas();
    assert_eq!(schemas.len(), 6, "{schemas:?}");
    let old: String =
        c.db.client()
            .query_one(
                "SELECT schema FROM projector._projector_units
             WHERE version = 1 AND name = 'orders+user_order_stats'",
                &[],
            )
            .unwrap()
            .get(0);
    let retired = format!("{old} (unit orders+user_order_stats of version 1, retired N s ago)");

    // plan lists it; gc --dry-run says it would drop it, and drops nothing.
    let v2 = c.v2.to_str().unwrap();
    let plan = c.projector(&["plan", "--config", v2]);
    plan.success();
    let lines = plan.stdout_lines();
    assert_eq!(
        masked(&lines[lines.len() - 3..].join("\n")),
        format!(
            "Nothing to do: every unit is served as it is.\n\
             Retired schemas that no version uses (projector gc --state {url} drops them):\n  {retired}"
        )
    );
    let out = c.projector(&["gc", "--dry-run"]);
    assert_eq!(
        masked(&out.stdout),
        format!(
            "would drop schema {retired}\n1 schema would be dropped: projector gc --state {url}\n"
        )
    );
    c.projector(&["gc", "--older-than", "3600"]).success().stdout_is(&[
        "no retired schema to drop: every unit schema is used by a version served or built, or already dropped",
    ]);
    assert_eq!(c.unit_schemas(), schemas);

    // A reader's transaction holds its tables: gc gives up, and the reader
    // and the readers after it were never queued behind it for long.
    let mut reader = c.db.client();
    let mut tx = reader.transaction().unwrap();
    let sql = format!("SELECT count(*) FROM \"{old}\".orders");
    let count: i64 = tx.query_one(&sql, &[]).unwrap().get(0);
    assert_eq!(count, 1);
    let started = Instant::now();
    let other = std::thread::spawn({
        let (url, sql) = (url.clone(), sql.clone());
        move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut slowest = Duration::ZERO;
            while started.elapsed() < Duration::from_secs(4) {
                let asked = Instant::now();
                client.query_one(&sql, &[]).unwrap();
                slowest = slowest.max(asked.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            slowest
        }
    });
    c.projector(&["gc"]).code_is(75).stdout_is(&[&format!(
        "left schema {old} in place: its tables stayed locked (a transaction reading or writing them) each of 5 tries; run gc again later"
    )]);
    let slowest = other.join().unwrap();
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    let count: i64 = tx.query_one(&sql, &[]).unwrap().get(0);
    assert_eq!(count, 1);
    tx.commit().unwrap();

    // Once it is free, it is dropped; the serving version's are untouched.
    let out = c.projector(&["gc"]);
    out.success();
    assert_eq!(masked(&out.stdout), format!("dropped schema {retired}\n"));
    let left: Vec<String> = schemas.into_iter().filter(|s| *s != old).collect();
    assert_eq!(c.unit_schemas(), left);
    let orders: Vec<String> = c.db.view("projector", "orders").into_keys().collect();
    assert_eq!(orders, ["o1"]);
    c.projector(&["gc"]).success().stdout_is(&[
        "no retired schema to drop: every unit schema is used by a version served or built, or already dropped",
    ]);
    let plan = c.projector(&["plan", "--config", v2]);
    assert_eq!(
        plan.success().stdout_lines().last().unwrap(),
        &"Nothing to do: every unit is served as it is."
    );
}

#[test]
fn gc_names_what_it_cannot_drop_and_what_is_no_cluster() {
    let (c, old, _) = switched("gc_refusals", &[]);
    c.db.client()
        .batch_execute(&format!(
            "CREATE VIEW public.old_orders AS SELECT * FROM \"{old}\".orders"
        ))
        .unwrap();
    c.projector(&["gc"]).code_is(75).stdout_is(&[&format!(
        "left schema {old} in place: public.old_orders outside it reads its tables: drop or change that view first"
    )]);
    let url = c.db.url();
    c.projector(&["gc", "--schema", "other"]).code_is(65).stderr_is(&format!(
        "projector: {url} (schema other) is not a projector state: schema \"other\" holds no cluster's versions: gc drops what `projector run --source …` retired; name a cluster's main schema with --schema; it was left untouched\n"
    ));
    support::Run::new()
        .args(&["gc", "--state", "state.db"])
        .go()
        .code_is(64)
        .stderr_is("projector: --state: gc works on a cluster's PostgreSQL state: postgres://USER@HOST:PORT/DATABASE or \"host=HOST dbname=DATABASE …\"\n");
}

#[test]
fn the_instances_drop_a_schema_retired_longer_than_projector_gc_seconds() {
    let c = Cluster::new("gc_instances");
    c.serve(&c.v1);
    let before = c.unit_schemas();
    let log = c.run_until(&c.v2, &[("PROJECTOR_GC_SECONDS", "0")], || {
        c.version("serving") == Some(2) && c.unit_schemas().len() < before.len() + 1
    });
    let old: String =
        c.db.client()
            .query_one(
                "SELECT schema FROM projector._projector_units
             WHERE version = 1 AND name = 'orders+user_order_stats'",
                &[],
            )
            .unwrap()
            .get(0);
    assert!(!c.unit_schemas().contains(&old));
    assert_eq!(c.unit_schemas().len(), 5);
    assert!(
        masked(&log).contains(&format!(
            "projector: dropped schema {old} (unit orders+user_order_stats of version 1, retired N s ago): retired longer than PROJECTOR_GC_SECONDS (0 s)\n"
        )),
        "{log}"
    );
}
