//! The logs, `projector status` and `projector plan` count a cluster's
//! units alike: each unit once, a unit the serving version shares with the
//! version being built too, and say how many are being built.

use crate::support;

use serde_json::Value;
use support::versions::Cluster;

#[test]
fn logs_status_and_plan_count_a_shared_unit_once_and_say_how_many_are_being_built() {
    let c = Cluster::new("unit_counts");
    let log = c.serve(&c.v1);
    assert!(
        log.contains("projector: serving version 1 of the configuration: 5 units: user_listing 1/4, user_listing 2/4, user_listing 3/4, user_listing 4/4, orders+user_order_stats\n"),
        "{log}"
    );
    let url = c.db.url();
    let source = c.nats.stream("EVENTS");
    let status = |format: &str| c.projector(&["status", "--source", &source, "--format", format]);
    status("human").success().stdout_is(&[
        &format!("{url} from {source}: lag 0 (stream at sequence 2); 5 units, 0 owned"),
        "serving version 1:",
        "  unit user_listing 1/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 2/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 3/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 4/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit orders+user_order_stats (orders, user_order_stats): not owned; checkpoint 2; lag 0",
    ]);

    // Version 2 changes one unit: five are shared, one is built.
    c.register(&c.v2);
    status("human").success().stdout_is(&[
        &format!("{url} from {source}: lag 0 (stream at sequence 2); 6 units, 1 of them being built, 0 owned"),
        "serving version 1:",
        "  unit user_listing 1/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 2/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 3/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit user_listing 4/4 (user_listing): not owned; checkpoint 2; lag 0",
        "  unit orders+user_order_stats (orders, user_order_stats): not owned; checkpoint 2; lag 0",
        "building version 2 beside it, from the stream's start (lag 2; the views switch to it when it catches up; it shares its other 4 units with version 1):",
        "  unit orders+user_order_stats (orders, user_order_stats): not owned; no checkpoint; lag 2",
    ]);
    let report: Value = serde_json::from_str(&status("json").success().stdout).unwrap();
    assert_eq!(
        (
            &report["unit_count"],
            &report["units_being_built"],
            &report["units_owned"]
        ),
        (&Value::from(6), &Value::from(1), &Value::from(0)),
        "{report}"
    );
    assert_eq!(report["units"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(report["building"]["shared"], 4, "{report}");
    let built = report["building"]["units"].as_array().unwrap();
    assert_eq!(built.len(), 1, "{report}");
    assert_eq!(built[0]["unit"], "orders+user_order_stats");

    let v2 = c.v2.to_str().unwrap();
    let out = c.projector(&["plan", "--config", v2]);
    out.code_is(2);
    let lines = out.stdout_lines();
    assert_eq!(
        lines[0],
        format!("Plan for the cluster {url} (serving version 1, building version 2: 6 units, 1 of them being built) with {v2}:")
    );
    assert!(
        lines.last().unwrap().starts_with("`projector run --source …` with this configuration builds version 2 beside version 1 (6 units, 1 of them being built); when every unit"),
        "{}",
        out.stdout
    );
    let report: Value = serde_json::from_str(
        &c.projector(&["plan", "--config", v2, "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        (
            &report["unit_count"],
            &report["units_being_built"],
            &report["planned"]
        ),
        (
            &Value::from(6),
            &Value::from(1),
            &serde_json::json!({"unit_count": 6, "units_being_built": 1})
        ),
        "{report}"
    );

    // An instance builds it, says so, and switches to it.
    let log = c.run_until(&c.v2, &[], || c.version("serving") == Some(2));
    assert!(
        log.contains("projector: serving version 1 of the configuration: 6 units, 1 of them being built: user_listing 1/4, user_listing 2/4, user_listing 3/4, user_listing 4/4, orders+user_order_stats; building version 2 beside it: orders+user_order_stats (each from its checkpoint: the stream's start for a new one)\n"),
        "{log}"
    );
    let out = c.projector(&["plan", "--config", v2]);
    out.success();
    assert_eq!(
        out.stdout_lines()[0],
        format!("Plan for the cluster {url} (serving version 2: 5 units) with {v2}:")
    );
}
