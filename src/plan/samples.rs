//! A configuration checked against real events (`validate --samples LOG`):
//! each path a binding reads that no sample of its event type carries (with
//! the nearest path the samples do carry), each value a sample gives an
//! operation that the operation cannot use, each condition that compares a
//! path with a literal of another type than the samples give it, and each
//! bound event type the samples lack. What the compiler cannot know (the
//! shape of the events) the samples tell.

use super::path::{Found, JsonPath};
use crate::config::diag::{did_you_mean, Diagnostic, Kind, Spanned};
use crate::config::raw::{FieldOp, RawBinding, RawCondition, RawConfig, RawMapping, Test};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One sample: an event object and its line in the log.
pub struct Sample {
    pub line: usize,
    pub event: Value,
}

/// What a path is read for, which decides what values it may meet.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    /// A document key: a string or a number.
    Key,
    /// A condition, which any value (or none) may meet.
    Condition,
    /// A field operation's value.
    Field(Option<FieldOp>),
}

/// Checks every binding of `raw` against the samples of its event type,
/// pushing warnings to `diags`.
pub fn check(raw: &RawConfig, samples: &[Sample], diags: &mut Vec<Diagnostic>) {
    let mut by_type: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        if let Some(ty) = sample.event.get("type").and_then(Value::as_str) {
            by_type.entry(ty).or_default().push(sample);
        }
    }
    let mut unsampled = BTreeSet::new();
    for model in &raw.models {
        for binding in &model.on {
            let ty = binding.event_type.value.as_str();
            let Some(samples) = by_type.get(ty) else {
                if unsampled.insert(ty) {
                    diags.push(Diagnostic::warning(
                        binding.event_type.span.clone(),
                        Kind::NoSamples {
                            event_type: ty.to_owned(),
                        },
                    ));
                }
                continue;
            };
            let key = binding.key.as_ref().or(model.key.as_ref());
            for (path, usage) in paths(binding, key) {
                check_path(path, usage, ty, samples, diags);
            }
            for condition in &binding.when {
                check_condition(condition, samples, diags);
            }
        }
    }
}

/// Every path a binding reads, and what for.
fn paths<'r>(
    binding: &'r RawBinding,
    key: Option<&'r Spanned<String>>,
) -> Vec<(Spanned<String>, Use)> {
    let mut out = Vec::new();
    if let Some(key) = key {
        out.extend(key_paths(key).into_iter().map(|p| (p, Use::Key)));
    }
    for condition in &binding.when {
        // A path tested for absence is meant to be missing at times.
        if condition.test.value != Test::Exists(false) {
            out.push((condition.path.clone(), Use::Condition));
        }
    }
    let put = binding.put.iter().flatten().map(|f| (f, None));
    let ops = binding
        .ops
        .iter()
        .flat_map(|(op, fields)| fields.iter().map(move |f| (f, Some(op.value))));
    for (field, op) in put.chain(ops) {
        if let RawMapping::Path { path, .. } = &field.value {
            out.push((path.clone(), Use::Field(op)));
        }
    }
    out
}

/// The paths of a key: itself, or the `{path}` parts of a template.
fn key_paths(key: &Spanned<String>) -> Vec<Spanned<String>> {
    if !key.value.contains('{') {
        return vec![key.clone()];
    }
    let mut out = Vec::new();
    let mut rest = key.value.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        // The span of the template's text, inside its quote.
        let start = key.span.start + 1 + offset + open + 1;
        out.push(Spanned::new(start..start + inner.len(), inner.to_owned()));
        offset += open + close + 1;
        rest = &rest[open + close + 1..];
    }
    out
}

fn check_path(
    text: Spanned<String>,
    usage: Use,
    event_type: &str,
    samples: &[&Sample],
    diags: &mut Vec<Diagnostic>,
) {
    // A path that does not compile was reported by the compiler.
    let Ok(path) = JsonPath::parse(&text.value) else {
        return;
    };
    let mut matched = false;
    for sample in samples {
        let found = match path.find(&sample.event) {
            Found::Nothing => continue,
            Found::One(v) => vec![v],
            Found::Many(vs) => vs,
        };
        matched = true;
        if let Some(bad) = found.iter().find(|v| !usable(usage, v)) {
            diags.push(Diagnostic::warning(
                text.span.clone(),
                Kind::SampleUnusable {
                    path: text.value.clone(),
                    what: what(usage),
                    found: super::type_name(bad),
                    line: sample.line,
                },
            ));
            return;
        }
    }
    if !matched {
        diags.push(Diagnostic::warning(
            text.span.clone(),
            Kind::NeverInSamples {
                path: text.value.clone(),
                event_type: event_type.to_owned(),
                samples: samples.len(),
                nearest: nearest(&text.value, &carried_paths(samples)),
            },
        ));
    }
}

/// A condition whose literal has another type than every value the samples
/// give its path. Values of two types are never equal and have no order, so
/// the condition never holds (`ne` always does): `ge = "500"` on amounts
/// that are numbers. Samples that give the path values of several types
/// say nothing about which one is meant, and are left alone.
fn check_condition(c: &RawCondition, samples: &[&Sample], diags: &mut Vec<Diagnostic>) {
    let (test, literals): (&'static str, Vec<&Value>) = match &c.test.value {
        Test::Exists(_) => return,
        Test::Eq(v) => ("eq", vec![v]),
        Test::Ne(v) => ("ne", vec![v]),
        Test::Lt(v) => ("lt", vec![v]),
        Test::Le(v) => ("le", vec![v]),
        Test::Gt(v) => ("gt", vec![v]),
        Test::Ge(v) => ("ge", vec![v]),
        Test::In(vs) => ("in", vs.iter().collect()),
    };
    // A path that does not compile was reported by the compiler.
    let Ok(path) = JsonPath::parse(&c.path.value) else {
        return;
    };
    let mut sampled = None;
    for sample in samples {
        let found = match path.find(&sample.event) {
            Found::Nothing => continue,
            Found::One(v) => vec![v],
            Found::Many(vs) => vs,
        };
        // Null is read as missing, never compared.
        for ty in found
            .into_iter()
            .filter(|v| !v.is_null())
            .map(super::type_name)
        {
            match sampled {
                None => sampled = Some(ty),
                Some(seen) if seen == ty => {}
                Some(_) => return,
            }
        }
    }
    let Some(sampled) = sampled else { return };
    let Some(other) = literals.iter().find(|v| super::type_name(v) != sampled) else {
        return;
    };
    let rewritten = match &c.test.value {
        Test::In(_) => literals
            .iter()
            .map(|v| written_as(v, sampled))
            .collect::<Option<Vec<_>>>()
            .map(|vs| format!("[{}]", vs.join(", "))),
        _ => written_as(other, sampled),
    };
    diags.push(Diagnostic::warning(
        c.test.span.clone(),
        Kind::ConditionTypes {
            test,
            path: c.path.value.clone(),
            sampled,
            literal: super::type_name(other),
            rewritten: rewritten.map(|r| format!("{test} = {r}")),
        },
    ));
}

/// A scalar literal as TOML text of the type `ty` names, when it reads as
/// one: the string "500" as the number 500, the number 7 as "7", the
/// string "true" as true.
fn written_as(v: &Value, ty: &str) -> Option<String> {
    let string = |text: &str| serde_json::to_string(text).ok();
    match (v, ty) {
        (Value::String(s), "a string") => string(s),
        (Value::Number(n), "a string") => string(&n.to_string()),
        (Value::Bool(b), "a string") => string(&b.to_string()),
        // JSON's numbers are TOML's too.
        (Value::String(s), "a number") => Some(s.parse::<serde_json::Number>().ok()?.to_string()),
        (Value::Number(n), "a number") => Some(n.to_string()),
        (Value::String(s), "a boolean") => {
            matches!(s.as_str(), "true" | "false").then(|| s.clone())
        }
        (Value::Bool(b), "a boolean") => Some(b.to_string()),
        _ => None,
    }
}

/// The carried path `path` most likely meant: one beside it whose last name
/// is a near miss of its last name (`$.payload.ammount` → `$.payload.amount`).
fn nearest(path: &str, carried: &BTreeSet<String>) -> Option<String> {
    let (parent, last) = path.rsplit_once('.')?;
    let siblings: Vec<&str> = carried
        .iter()
        .filter_map(|c| {
            c.rsplit_once('.')
                .filter(|(p, _)| *p == parent)
                .map(|(_, name)| name)
        })
        .collect();
    did_you_mean(last, &siblings).map(|name| format!("{parent}.{name}"))
}

/// Whether a value can serve what the path is read for.
fn usable(usage: Use, value: &Value) -> bool {
    match usage {
        Use::Key => value.is_string() || value.is_number(),
        Use::Condition | Use::Field(None) => true,
        Use::Field(Some(FieldOp::Increment)) => value.is_number(),
        Use::Field(Some(FieldOp::Max | FieldOp::Min)) => value.is_string() || value.is_number(),
        Use::Field(Some(_)) => true,
    }
}

fn what(usage: Use) -> &'static str {
    match usage {
        Use::Key => "a document key (a string or a number)",
        Use::Field(Some(FieldOp::Increment)) => "`increment` (a number)",
        Use::Field(Some(FieldOp::Max)) => "`max` (a number or a string)",
        Use::Field(Some(FieldOp::Min)) => "`min` (a number or a string)",
        Use::Condition | Use::Field(_) => "its operation",
    }
}

/// Every path to a value in the samples: `$.payload.amount`, and
/// `$.payload.items[*].sku` for what is inside lists.
fn carried_paths(samples: &[&Sample]) -> BTreeSet<String> {
    fn walk(value: &Value, at: String, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (name, v) in map {
                    walk(v, format!("{at}.{name}"), out);
                }
            }
            Value::Array(items) => {
                for v in items {
                    walk(v, format!("{at}[*]"), out);
                }
            }
            _ => {}
        }
        out.insert(at);
    }
    let mut out = BTreeSet::new();
    for sample in samples {
        walk(&sample.event, "$".to_owned(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The P0108 hints for a condition, against samples of these payloads.
    fn hints(when: &str, payloads: &[&str]) -> Vec<String> {
        let config = format!(
            "[[model]]\nname = \"m\"\nkey = \"$.id\"\non.A = {{ when = {when}, merge = {{ x = 1 }} }}\n"
        );
        let samples: Vec<Sample> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Sample {
                line: i + 1,
                event: serde_json::from_str(&format!(r#"{{"type":"A","id":"e","payload":{p}}}"#))
                    .unwrap(),
            })
            .collect();
        let (_, diags) = crate::load_with_samples(&config, Some(&samples)).unwrap();
        diags
            .iter()
            .filter(|d| d.kind.code() == "P0108")
            .map(|d| format!("{} | {}", d.kind.message(), d.kind.help().unwrap()))
            .collect()
    }

    #[test]
    fn a_literal_of_another_type_than_the_samples_is_warned_about() {
        let amounts = [r#"{"n":5}"#, r#"{"n":2.5}"#, r#"{"n":null}"#, "{}"];
        assert_eq!(
            hints(r#"{ path = "$.payload.n", ge = "500" }"#, &amounts),
            ["`ge` compares `$.payload.n`, a number in the samples, with a string | write `ge = 500`: a string has no order with a number, so the condition never holds"]
        );
        assert_eq!(
            hints(r#"{ path = "$.payload.n", eq = "many" }"#, &amounts),
            ["`eq` compares `$.payload.n`, a number in the samples, with a string | compare with a number: a string never equals a number, so the condition never holds"]
        );
        let codes = [r#"{"c":"7"}"#];
        assert_eq!(
            hints(r#"{ path = "$.payload.c", ne = 7 }"#, &codes),
            ["`ne` compares `$.payload.c`, a string in the samples, with a number | write `ne = \"7\"`: a number never equals a string, so the condition always holds"]
        );
        assert_eq!(
            hints(r#"{ path = "$.payload.c", in = ["6", 7] }"#, &codes)[0]
                .split(" | ")
                .nth(1),
            Some(
                r#"write `in = ["6", "7"]`: a number never equals a string, so the condition never holds"#
            )
        );
        let flags = [r#"{"f":[true,false]}"#];
        assert_eq!(
            hints(r#"{ path = "$.payload.f[*]", eq = "true" }"#, &flags)[0]
                .split(" | ")
                .nth(1),
            Some(
                "write `eq = true`: a string never equals a boolean, so the condition never holds"
            )
        );
    }

    #[test]
    fn matching_mixed_or_absent_samples_are_left_alone() {
        let none: [&str; 0] = [];
        assert!(hints(r#"{ path = "$.payload.n", ge = 500 }"#, &[r#"{"n":5}"#]).is_empty());
        assert!(hints(r#"{ path = "$.payload.n", ge = "b" }"#, &[r#"{"n":"a"}"#]).is_empty());
        let mixed = [r#"{"n":5}"#, r#"{"n":"5"}"#];
        assert!(hints(r#"{ path = "$.payload.n", eq = "5" }"#, &mixed).is_empty());
        assert!(hints(
            r#"{ path = "$.payload.n", exists = true }"#,
            &[r#"{"n":5}"#]
        )
        .is_empty());
        assert!(hints(r#"{ path = "$.payload.n", eq = "5" }"#, &none).is_empty());
        assert!(hints(r#"{ path = "$.payload.n", eq = "5" }"#, &[r#"{"m":5}"#]).is_empty());
    }
}
