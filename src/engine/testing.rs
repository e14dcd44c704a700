//! `projector test`: runs the config's `[[tests]]` through a fresh engine.
//!
//! Each test's events are sent as event messages; every reply must be what
//! the test expects (when it says), no event may be refused unless the test
//! expects the error, and each expected document must be exactly as written.
//! Then the test runs again with every event delivered twice (the events,
//! then all of them again, as a bus replaying after a failure would), and
//! must give the same documents: idempotency, checked for free.

use crate::engine::Engine;
use crate::plan::config_tests::ConfigTest;
use crate::plan::Plan;
use crate::store::DocumentStore;
use serde_json::{json, Value};

/// What went wrong in one test, one line (or block) per problem.
pub type Failures = Vec<String>;

/// Runs one test; an empty list means it passed.
pub fn run(plan: &Plan, test: &ConfigTest) -> Failures {
    let mut failures = Vec::new();
    let (mut engine, replies) = deliver(plan, &test.events, 1);
    for (i, reply) in replies.iter().enumerate() {
        let n = i + 1;
        match test.replies.as_ref().and_then(|r| r.get(i)) {
            Some(want) if !subset(want, reply) => failures.push(format!(
                "event {n}: the reply differs\n    want (at least) {want}\n    got             {reply}"
            )),
            Some(_) => {}
            None if reply["type"] == "error" => {
                failures.push(format!("event {n} was refused: {}", reply["text"].as_str().unwrap_or_default()))
            }
            None => {}
        }
    }
    for e in &test.expect {
        let model = plan
            .model_by_name(&e.model)
            .expect("checked when the config was compiled");
        let got = engine
            .store(model)
            .get(&crate::store::Key::new(&e.key))
            .cloned()
            .map(Value::from);
        if got != e.document {
            failures.push(format!(
                "{}/{}: {}\n{}",
                e.model,
                e.key,
                match (&e.document, &got) {
                    (Some(_), Some(_)) => "the document differs (- expected, + actual)",
                    (Some(_), None) => "the document is missing",
                    (None, _) => "the document should not exist",
                },
                diff(e.document.as_ref(), got.as_ref())
            ));
        }
    }
    let (mut twice, _) = deliver(plan, &test.events, 2);
    let (mut once_dump, mut twice_dump) = (Vec::new(), Vec::new());
    // In memory: nothing to fail.
    let _ = engine.dump(&mut once_dump);
    let _ = twice.dump(&mut twice_dump);
    if once_dump != twice_dump {
        let parse = |d: &[u8]| serde_json::from_slice::<Value>(d).unwrap_or(Value::Null);
        failures.push(format!(
            "delivering every event twice gives other documents (- once, + twice)\n{}",
            diff(Some(&parse(&once_dump)), Some(&parse(&twice_dump)))
        ));
    }
    failures
}

/// A fresh in-memory engine that has handled `events`, `times` times over;
/// the replies to the first pass, parsed.
fn deliver(plan: &Plan, events: &[Value], times: usize) -> (Engine, Vec<Value>) {
    let mut engine = Engine::in_memory(plan.clone());
    let mut replies = Vec::new();
    let mut out = Vec::new();
    for _ in 0..times {
        for (i, event) in events.iter().enumerate() {
            let message = json!({"type": "event", "msg_id": i + 1, "event": event});
            let Value::Object(body) = message else {
                unreachable!("json! of an object")
            };
            out.clear();
            // In memory nothing can fail to be recorded.
            let _ = engine.handle(&body, &mut out);
            replies.push(serde_json::from_slice(&out).unwrap_or(Value::Null));
        }
    }
    replies.truncate(events.len());
    (engine, replies)
}

/// True when every field of `want` is in `got` with an equal value.
fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| subset(v, gv))),
        _ => want == got,
    }
}

/// A line diff of two values printed as indented JSON.
pub fn diff(want: Option<&Value>, got: Option<&Value>) -> String {
    let lines = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(v) => serde_json::to_string_pretty(v)
                .expect("values print")
                .lines()
                .map(str::to_owned)
                .collect(),
            None => vec!["(none)".to_owned()],
        }
    };
    let (a, b) = (lines(want), lines(got));
    // Longest common subsequence, then walk it.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("      {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("    - {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("    + {}\n", b[j]));
            j += 1;
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff(
            Some(&json!({"a": 1, "b": 2})),
            Some(&json!({"a": 1, "b": 3})),
        );
        assert_eq!(
            d,
            "      {\n        \"a\": 1,\n    -   \"b\": 2\n    +   \"b\": 3\n      }"
        );
        assert_eq!(diff(None, Some(&json!(1))), "    - (none)\n    + 1");
    }

    #[test]
    fn replies_match_by_subset() {
        assert!(subset(
            &json!({"type": "x"}),
            &json!({"type": "x", "in_reply_to": 1})
        ));
        assert!(!subset(&json!({"type": "y"}), &json!({"type": "x"})));
    }
}
