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

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The suite's selectors and documents.
    fn suite() -> &'static [(String, Value)] {
        static SUITE: std::sync::OnceLock<Vec<(String, Value)>> = std::sync::OnceLock::new();
        SUITE.get_or_init(|| {
            let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jsonpath-cts/cts.json");
            let suite: Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            suite["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let document = c.get("document").cloned().unwrap_or(Value::Null);
                    (c["selector"].as_str().unwrap().to_owned(), document)
                })
                .collect()
        })
    }

    /// Pieces a changed selector is made of: JSONPath's own, and odd ones.
    const PIECES: &[&str] = &[
        "$",
        "@",
        ".",
        "..",
        "[",
        "]",
        "?",
        "*",
        ":",
        ",",
        "'",
        "\"",
        "(",
        ")",
        "==",
        "!=",
        "<=",
        ">",
        "!",
        "&&",
        "||",
        "-",
        "0",
        "1",
        "-0",
        "9007199254740993",
        "1e400",
        "length(",
        "count(",
        "match(",
        "search(",
        "value(",
        " ",
        "\\",
        "\\u",
        "é",
        "\u{10FFFF}",
        "\u{0}",
        "true",
        "null",
        "a",
    ];

    fn changed(selector: &str, at: usize, cut: usize, piece: &str) -> String {
        let chars: Vec<char> = selector.chars().collect();
        let at = at % (chars.len() + 1);
        let end = (at + cut % 3).min(chars.len());
        let mut out: String = chars[..at].iter().collect();
        out.push_str(piece);
        out.extend(&chars[end..]);
        out
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED),
            ..Default::default()
        })]

        /// A selector of the suite changed here and there is parsed or
        /// refused without a panic; a refusal points inside the text, at
        /// character boundaries; what parses selects without a panic.
        #[test]
        fn a_changed_selector_is_refused_at_its_place_or_selects(
            case in 0usize..10_000,
            edits in prop::collection::vec((any::<usize>(), any::<usize>(), prop::sample::select(PIECES)), 1..4),
        ) {
            let (selector, document) = &suite()[case % suite().len()];
            let mut text = selector.clone();
            for (at, cut, piece) in edits {
                text = changed(&text, at, cut, piece);
            }
            match JsonPath::parse(&text) {
                Ok(path) => {
                    let _ = path.find(document);
                }
                Err(e) => {
                    prop_assert!(e.at.start <= e.at.end && e.at.end <= text.len(), "{text:?}: {:?}", e.at);
                    prop_assert!(text.is_char_boundary(e.at.start) && text.is_char_boundary(e.at.end), "{text:?}: {:?}", e.at);
                }
            }
        }
    }
}
