//! RFC 9535 compliance: every case of the JSONPath compliance test suite
//! (`tests/jsonpath-cts/cts.json`, BSD-2 licensed, see its README). A valid
//! query selects what the suite expects, in its order or in one of the orders
//! it allows; an invalid one is refused.

use projector::plan::path::{Found, JsonPath};
use serde_json::Value;

#[test]
fn every_case_of_the_compliance_suite_passes() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jsonpath-cts/cts.json");
    let suite: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let cases = suite["tests"].as_array().unwrap();
    let failures: Vec<String> = cases.iter().filter_map(failure).collect();
    let passed = cases.len() - failures.len();
    println!("{passed} of {} cases pass", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What is wrong with the way `case` is handled, if anything.
fn failure(case: &Value) -> Option<String> {
    let name = case["name"].as_str().unwrap();
    let selector = case["selector"].as_str().unwrap();
    let parsed = JsonPath::parse(selector);
    if case["invalid_selector"] == true {
        return parsed
            .is_ok()
            .then(|| format!("{name}: {selector:?} is accepted"));
    }
    let path = match parsed {
        Ok(path) => path,
        Err(e) => return Some(format!("{name}: {selector:?} is refused: {}", e.reason)),
    };
    let got = Value::Array(match path.find(&case["document"]) {
        Found::Nothing => vec![],
        Found::One(v) => vec![v.clone()],
        Found::Many(vs) => vs.into_iter().cloned().collect(),
    });
    let allowed: Vec<&Value> = match case.get("results") {
        Some(Value::Array(orders)) => orders.iter().collect(),
        _ => vec![&case["result"]],
    };
    (!allowed.contains(&&got)).then(|| {
        let allowed: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        format!(
            "{name}: {selector:?} selects {got}, expected {}",
            allowed.join(" or ")
        )
    })
}
