//! A configuration checked against real events (`validate --samples LOG`):
//! each path a binding reads that no sample of its event type carries (with
//! the nearest path the samples do carry), each value a sample gives an
//! operation that the operation cannot use, and each bound event type the
//! samples lack. What the compiler cannot know (the shape of the events)
//! the samples tell.

use super::path::{Found, JsonPath};
use crate::config::diag::{did_you_mean, Diagnostic, Kind, Spanned};
use crate::config::raw::{FieldOp, RawBinding, RawConfig, RawMapping, Test};
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
