//! `[[tests]]` checked against the read models they name.

use super::Plan;
use crate::config::diag::{Diagnostic, Kind};
use crate::config::raw::RawTest;
use serde_json::Value;
use std::collections::HashMap;

/// One config test: events in, documents (and replies) expected out.
#[derive(Debug, Clone)]
pub struct ConfigTest {
    pub name: String,
    pub events: Vec<Value>,
    pub expect: Vec<Expectation>,
    /// Per event, fields its reply must have.
    pub replies: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
pub struct Expectation {
    pub model: String,
    pub key: String,
    /// `None`: the document must not exist.
    pub document: Option<Value>,
}

/// Checks the tests against the compiled models; events of types no model
/// reacts to (none of `declared`, the types the configuration binds, even
/// in a binding with an error, in the order written) are warned about, with
/// the bound type each looks like a misspelling of.
pub fn compile(
    raw: &[RawTest],
    plan: &Plan,
    declared: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Vec<ConfigTest> {
    let mut out = Vec::new();
    let mut warned: HashMap<&str, ()> = HashMap::new();
    for test in raw {
        let mut ok = true;
        for event in &test.events {
            match event.value.get("type") {
                Some(Value::String(ty)) => {
                    if !declared.contains(&ty.as_str()) && warned.insert(ty, ()).is_none() {
                        diags.push(Diagnostic::warning(
                            event.span.clone(),
                            Kind::EventTypeUnused {
                                event_type: ty.clone(),
                                nearest: super::event_types::nearest_bound(ty, declared)
                                    .map(str::to_owned),
                            },
                        ));
                    }
                }
                _ => {
                    ok = false;
                    diags.push(Diagnostic::error(
                        event.span.clone(),
                        Kind::MissingKey {
                            key: "type",
                            table: "the test event".to_owned(),
                        },
                    ));
                }
            }
        }
        for e in &test.expect {
            if plan.model_by_name(&e.model.value).is_none() {
                ok = false;
                diags.push(Diagnostic::error(
                    e.model.span.clone(),
                    Kind::UnknownTestModel {
                        name: e.model.value.clone(),
                    },
                ));
            }
        }
        if ok {
            out.push(ConfigTest {
                name: test.name.value.clone(),
                events: test.events.iter().map(|e| e.value.clone()).collect(),
                expect: test
                    .expect
                    .iter()
                    .map(|e| Expectation {
                        model: e.model.value.clone(),
                        key: e.key.value.clone(),
                        document: e.document.clone(),
                    })
                    .collect(),
                replies: test
                    .replies
                    .as_ref()
                    .map(|r| r.iter().map(|v| v.value.clone()).collect()),
            });
        }
    }
    out
}
