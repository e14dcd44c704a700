//! Checks across bindings that need the whole configuration: a field written
//! as different types of value, and keys the configuration itself treats as
//! optional.

use crate::config::diag::{Diagnostic, Kind, SourceMap, Spanned};
use crate::config::raw::{FieldOp, MetaField, Missing, RawConfig, RawField, RawMapping};
use std::collections::{HashMap, HashSet};

/// What a mapping writes into its field, when the config alone tells.
fn written_type(op: Option<FieldOp>, mapping: &RawMapping) -> Option<&'static str> {
    match op {
        Some(FieldOp::Increment) => return Some("a number"),
        Some(FieldOp::Append | FieldOp::AddToSet | FieldOp::Remove) => return Some("an array"),
        _ => {}
    }
    match mapping {
        RawMapping::Literal { value, .. } if !value.is_null() => Some(super::type_name(value)),
        // A path that can select several values yields their list.
        RawMapping::Path { path, .. }
            if !matches!(op, Some(FieldOp::Max | FieldOp::Min))
                && super::path::JsonPath::parse(&path.value).is_ok_and(|p| !p.is_singular()) =>
        {
            Some("an array")
        }
        RawMapping::Meta { field, .. } => Some(match field {
            MetaField::EventId | MetaField::EventType => "a string",
            MetaField::Position => "a number",
        }),
        _ => None,
    }
}

/// Every field of a model must be written as one type of value, by every binding.
pub fn check_field_types(raw: &RawConfig, map: &SourceMap<'_>, diags: &mut Vec<Diagnostic>) {
    for model in &raw.models {
        let Some(name) = &model.name else { continue };
        let mut seen: HashMap<String, (&'static str, usize)> = HashMap::new();
        for b in &model.on {
            let fields = b.put.iter().flatten().map(|f| (None, f)).chain(
                b.ops
                    .iter()
                    .flat_map(|(op, fs)| fs.iter().map(|f| (Some(op.value), f))),
            );
            for (op, f) in fields {
                let mut writes = Vec::new();
                // A nested field makes each enclosing field an object.
                let segments: Vec<&str> = f.name.value.split('.').collect();
                for i in 1..segments.len() {
                    writes.push((segments[..i].join("."), "an object"));
                }
                if let Some(ty) = written_type(op, &f.value) {
                    writes.push((f.name.value.clone(), ty));
                }
                for (field, ty) in writes {
                    check_one(name, f, field, ty, &mut seen, map, diags);
                }
            }
        }
    }
}

fn check_one(
    model: &Spanned<String>,
    f: &RawField,
    field: String,
    ty: &'static str,
    seen: &mut HashMap<String, (&'static str, usize)>,
    map: &SourceMap<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let line = map.place(f.name.span.start).line;
    match seen.get(&field) {
        Some((first, first_line)) if *first != ty => diags.push(Diagnostic::error(
            f.name.span.clone(),
            Kind::TypeConflict {
                model: model.value.clone(),
                field,
                first,
                first_line: *first_line,
                second: ty,
            },
        )),
        Some(_) => {}
        None => {
            seen.insert(field, (ty, line));
        }
    }
}

/// A required key read from a path that another mapping of the same event
/// type declares may be missing (`missing = "skip"` or `"null"`).
pub fn check_keys_may_be_missing(raw: &RawConfig, diags: &mut Vec<Diagnostic>) {
    let mut optional_paths: HashMap<&str, HashSet<&str>> = HashMap::new();
    for model in &raw.models {
        for b in &model.on {
            let fields = b
                .put
                .iter()
                .flatten()
                .chain(b.ops.iter().flat_map(|(_, fs)| fs));
            for f in fields {
                if let RawMapping::Path {
                    path,
                    missing:
                        Some(Spanned {
                            value: Missing::Skip | Missing::Null,
                            ..
                        }),
                } = &f.value
                {
                    optional_paths
                        .entry(&b.event_type.value)
                        .or_default()
                        .insert(&path.value);
                }
            }
        }
    }
    for model in &raw.models {
        let Some(name) = &model.name else { continue };
        for b in &model.on {
            let Some(key) = b.key.as_ref().or(model.key.as_ref()) else {
                continue;
            };
            let Some(paths) = optional_paths.get(b.event_type.value.as_str()) else {
                continue;
            };
            if b.optional {
                continue;
            }
            let read = key_paths(&key.value);
            if let Some(path) = read.into_iter().find(|p| paths.contains(p)) {
                diags.push(Diagnostic::warning(
                    key.span.clone(),
                    Kind::KeyMayBeMissing {
                        path: path.to_owned(),
                        model: name.value.clone(),
                        event_type: b.event_type.value.clone(),
                    },
                ));
            }
        }
    }
}

/// The paths a key reads: itself, or the `{...}` parts of a template.
fn key_paths(key: &str) -> Vec<&str> {
    if !key.contains('{') {
        return vec![key];
    }
    key.split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(path, _)| path))
        .collect()
}
