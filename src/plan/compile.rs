//! Compiles a [`RawConfig`] into a [`Plan`], checking every meaning and
//! reporting every problem with its place.

use super::binding::{
    Action, Binding, Condition, FieldMap, FieldOp, FieldPath, Key, Missing, Part, Source,
};
use super::event_id::{Derive, EventIdRule};
use super::path::{JsonPath, PathError};
use super::{ModelId, Plan, TypeId};
use crate::config::diag::{Diagnostic, Kind, SourceMap, Span, Spanned};
use crate::config::raw::{
    RawBinding, RawCondition, RawConfig, RawDerive, RawField, RawMapping, RawModel,
};
use crate::util::hash::FastMap;
use regex::Regex;
use std::collections::HashMap;

/// Compiles `raw` (read from `source`). Returns the plan when no error was
/// found outside its `[[tests]]` (a test with an error is left out of it);
/// errors and warnings alike are pushed to `diags`.
pub fn compile(raw: &RawConfig, source: &str, diags: &mut Vec<Diagnostic>) -> Option<Plan> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let map = SourceMap::new(source);
    let mut c = Compiler {
        source,
        map: &map,
        diags,
    };
    let event_id = c.event_id(raw);

    let mut models = Vec::new();
    let mut first_seen: HashMap<&str, &Span> = HashMap::new();
    let mut types: FastMap<String, TypeId> = FastMap::default();
    let mut type_names: Vec<String> = Vec::new();
    let mut routes: Vec<Vec<Binding>> = Vec::new();
    let mut indexes = Vec::new();
    for (i, model) in raw.models.iter().enumerate() {
        let id = ModelId(i as u32);
        let name = c.model_name(model, &mut first_seen);
        models.push(name.to_owned());
        indexes.push(c.indexes(model));
        if model.on.is_empty() && !model.on_invalid {
            c.diags.push(Diagnostic::warning(
                model
                    .name
                    .as_ref()
                    .map_or(model.span.clone(), |n| n.span.clone()),
                Kind::ModelNeverUpdated {
                    name: name.to_owned(),
                },
            ));
        }
        // Compiled once per model, so a bad model key is reported once.
        let model_key = model.key.as_ref().map(|k| c.key(k));
        for raw_binding in &model.on {
            let Some(binding) = c.binding(id, model, model_key.as_ref(), raw_binding) else {
                continue;
            };
            let ty = *types
                .entry(raw_binding.event_type.value.clone())
                .or_insert_with(|| {
                    type_names.push(raw_binding.event_type.value.clone());
                    routes.push(Vec::new());
                    TypeId(type_names.len() as u32 - 1)
                });
            routes[ty.0 as usize].push(binding);
        }
    }
    let mut plan = Plan {
        event_id: event_id?,
        models,
        indexes,
        types,
        type_names,
        routes,
        tests: Vec::new(),
        partition: None,
        cache_mb: raw.cache_mb.map(|mb| mb as usize),
    };
    super::types::check_field_types(raw, &map, c.diags);
    super::types::check_keys_may_be_missing(raw, c.diags);
    super::event_types::check_misspelt(raw, c.diags);
    let errors_after = c.diags.iter().filter(|d| d.is_error()).count();
    // The tests are checked last, and their problems marked: a plan whose
    // read models are sound is returned even when a test is not.
    let before = c.diags.len();
    let mut declared: Vec<&str> = Vec::new();
    for b in raw.models.iter().flat_map(|m| &m.on) {
        if !declared.contains(&b.event_type.value.as_str()) {
            declared.push(&b.event_type.value);
        }
    }
    plan.tests = super::config_tests::compile(&raw.tests, &plan, &declared, c.diags);
    Diagnostic::mark_in_tests(&mut c.diags[before..]);
    (errors_after == errors_before).then_some(plan)
}

struct Compiler<'a> {
    source: &'a str,
    map: &'a SourceMap<'a>,
    diags: &'a mut Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn error(&mut self, span: Span, kind: Kind) {
        self.diags.push(Diagnostic::error(span, kind));
    }

    /// Parses a JSONPath written at `text`, pointing into the string on error.
    /// A path a user wrote; `numeric` when what it selects must be a number
    /// (an `increment`), which a text is not, for the hint.
    fn path(&mut self, text: &Spanned<String>, numeric: bool) -> Option<JsonPath> {
        match JsonPath::parse(&text.value) {
            Ok(path) => Some(path),
            Err(PathError { reason, at }) => {
                let span = match self.inner(text) {
                    Some(inner) if text.value.starts_with('$') => {
                        inner.start + at.start..inner.start + at.end
                    }
                    _ => text.span.clone(),
                };
                let kind = if text.value.starts_with('$') {
                    Kind::BadJsonPath {
                        path: text.value.clone(),
                        reason,
                    }
                } else {
                    Kind::NotAPath {
                        text: text.value.clone(),
                        numeric,
                    }
                };
                self.error(span, kind);
                None
            }
        }
    }

    /// A path that must select one value: a document key or an event id.
    fn singular_path(&mut self, text: &Spanned<String>, what: &'static str) -> Option<JsonPath> {
        let path = self.path(text, false)?;
        if !path.is_singular() {
            self.error(
                text.span.clone(),
                Kind::NotSingular {
                    path: text.value.clone(),
                    what,
                },
            );
            return None;
        }
        if path.is_root() {
            self.error(text.span.clone(), Kind::WholeEvent { what });
            return None;
        }
        self.never_matches(&path, text)?;
        Some(path)
    }

    fn never_matches(&mut self, path: &JsonPath, text: &Spanned<String>) -> Option<()> {
        match path.never_matches() {
            Some(reason) => {
                self.error(
                    text.span.clone(),
                    Kind::NeverMatches {
                        path: text.value.clone(),
                        reason,
                    },
                );
                None
            }
            None => Some(()),
        }
    }

    /// The span of a string's contents when it is written without escapes.
    fn inner(&self, text: &Spanned<String>) -> Option<Span> {
        let written = self.source.get(text.span.clone())?;
        let quote = written.chars().next()?;
        let inner = written.get(1..written.len().checked_sub(1)?)?;
        ((quote == '"' || quote == '\'') && inner == text.value)
            .then(|| text.span.start + 1..text.span.end - 1)
    }

    fn event_id(&mut self, raw: &RawConfig) -> Option<EventIdRule> {
        let path = self.singular_path(&raw.event_id.path, "event id");
        let derive = match &raw.event_id.derive {
            Some(d) => Some(self.derive(d)?),
            None => None,
        };
        Some(EventIdRule {
            path: path?,
            derive,
        })
    }

    fn derive(&mut self, d: &RawDerive) -> Option<Derive> {
        let from = self.singular_path(&d.from, "derive `from`");
        let pattern = match Regex::new(&d.pattern.value) {
            Ok(re) => Some(re),
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason).to_owned();
                self.error(d.pattern.span.clone(), Kind::BadRegex { reason });
                None
            }
        };
        if let Some(re) = &pattern {
            for group in template_groups(&d.template.value) {
                let known = match group.parse::<usize>() {
                    Ok(n) => n < re.captures_len(),
                    Err(_) => re.capture_names().flatten().any(|n| n == group),
                };
                if !known {
                    self.error(d.template.span.clone(), Kind::BadTemplate { group });
                }
            }
        }
        Some(Derive {
            from: from?,
            pattern: pattern?,
            template: d.template.value.clone(),
        })
    }

    /// A model's `indexes`, each a path of field names; a bad one is reported.
    fn indexes(&mut self, model: &RawModel) -> Vec<Vec<String>> {
        let mut paths: Vec<Vec<String>> = Vec::new();
        for index in &model.indexes {
            let path: Vec<String> = index.value.split('.').map(str::to_owned).collect();
            let reason = if path.iter().any(String::is_empty) {
                "names no field: write a field name, or a dotted path such as \"address.city\""
            } else if index.value.chars().any(char::is_control) {
                "holds a control character"
            } else if paths.contains(&path) {
                "is listed twice"
            } else {
                paths.push(path);
                continue;
            };
            self.error(
                index.span.clone(),
                Kind::BadIndex {
                    index: index.value.clone(),
                    reason,
                },
            );
        }
        paths
    }

    /// Checks a model's name; returns it, or a stand-in for messages when it is absent.
    fn model_name<'r>(
        &mut self,
        model: &'r RawModel,
        first_seen: &mut HashMap<&'r str, &'r Span>,
    ) -> &'r str {
        let Some(name) = &model.name else {
            return "?";
        };
        let bad = if name.value.is_empty() {
            Some("is empty")
        } else if name.value.chars().any(char::is_control) {
            Some("contains a control character")
        } else {
            None
        };
        if let Some(reason) = bad {
            self.error(
                name.span.clone(),
                Kind::BadName {
                    name: name.value.clone(),
                    reason,
                },
            );
        }
        if let Some(first) = first_seen.get(name.value.as_str()) {
            let first_line = self.map.place(first.start).line;
            self.error(
                name.span.clone(),
                Kind::DuplicateModel {
                    name: name.value.clone(),
                    first_line,
                },
            );
        } else {
            first_seen.insert(&name.value, &name.span);
        }
        &name.value
    }

    fn binding(
        &mut self,
        model: ModelId,
        raw_model: &RawModel,
        model_key: Option<&Option<Key>>,
        b: &RawBinding,
    ) -> Option<Binding> {
        let key = match (&b.key, model_key) {
            (Some(key), _) => self.key(key),
            (None, Some(key)) => key.clone(),
            (None, None) => {
                self.error(
                    b.event_type.span.clone(),
                    Kind::NoKey {
                        model: raw_model.name.as_ref().map_or("?", |n| &n.value).to_owned(),
                        event_type: b.event_type.value.clone(),
                    },
                );
                None
            }
        };
        let when: Vec<Option<Condition>> = b.when.iter().map(|c| self.condition(c)).collect();
        let action = self.action(b);
        Some(Binding {
            model,
            key: key?,
            optional: b.optional,
            when: when.into_iter().collect::<Option<_>>()?,
            action: action?,
        })
    }

    /// A document key: one path, or a template of text and `{path}`s.
    fn key(&mut self, text: &Spanned<String>) -> Option<Key> {
        if !text.value.contains('{') {
            return self.singular_path(text, "document key").map(Key::Path);
        }
        let mut parts = Vec::new();
        let mut rest = text.value.as_str();
        let bad = |c: &mut Self, reason| {
            c.error(text.span.clone(), Kind::BadKeyTemplate { reason });
            None
        };
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return bad(self, "a `{` is not closed");
            };
            let inner = &rest[open + 1..open + close];
            if inner.is_empty() {
                return bad(self, "`{}` names no path");
            }
            let path = Spanned::new(text.span.clone(), inner.to_owned());
            parts.push(Part::Path(self.singular_path(&path, "document key")?));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return bad(self, "a `}` has no `{`");
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Some(Key::Template {
            text: text.value.clone(),
            parts,
        })
    }

    fn condition(&mut self, c: &RawCondition) -> Option<Condition> {
        let path = self.path(&c.path, false)?;
        self.never_matches(&path, &c.path)?;
        Some(Condition {
            path,
            test: c.test.value.clone(),
        })
    }

    fn action<'r>(&mut self, b: &'r RawBinding) -> Option<Action> {
        let writes = b.put.is_some() || !b.ops.is_empty() || b.unset.is_some();
        match &b.delete {
            Some(Spanned { span, value: false }) => {
                self.error(span.clone(), Kind::DeleteFalse);
                return None;
            }
            Some(Spanned { span, value: true }) if writes => {
                self.error(
                    span.clone(),
                    Kind::DeleteWithWrites {
                        event_type: b.event_type.value.clone(),
                    },
                );
                return None;
            }
            Some(_) => return Some(Action::Delete),
            None if !writes && b.has_unknown_keys => return None,
            None if !writes => {
                self.error(
                    b.event_type.span.clone(),
                    Kind::EmptyBinding {
                        event_type: b.event_type.value.clone(),
                    },
                );
                return None;
            }
            None => {}
        }
        let mut written: Vec<(&'r Spanned<String>, FieldPath, &'static str)> = Vec::new();
        let mut ok = true;
        let mut put = None;
        if let Some(fields) = &b.put {
            let mut out = Vec::new();
            for field in fields {
                ok &= self.written_once(&mut written, &field.name, "put");
                match self.field(field, None) {
                    Some(f) => out.push(f),
                    None => ok = false,
                }
            }
            put = Some(out);
        }
        let mut ops = Vec::new();
        for (op, fields) in &b.ops {
            for field in fields {
                ok &= self.written_once(&mut written, &field.name, op.value.name());
                match self.field(field, Some(op.value)) {
                    Some(f) => ops.push((op.value, f)),
                    None => ok = false,
                }
            }
        }
        let mut unset = Vec::new();
        for name in b.unset.iter().flatten() {
            ok &= self.written_once(&mut written, name, "unset");
            unset.push(FieldPath::new(&name.value));
        }
        ok.then_some(Action::Write { put, ops, unset })
    }

    /// Checks that no earlier operation of the binding wrote this field, or a
    /// field inside it or around it.
    fn written_once<'r>(
        &mut self,
        written: &mut Vec<(&'r Spanned<String>, FieldPath, &'static str)>,
        name: &'r Spanned<String>,
        op: &'static str,
    ) -> bool {
        let path = FieldPath::new(&name.value);
        let clash = written.iter().find(|(_, other, _)| other.overlaps(&path));
        let kind = match clash {
            None => {
                written.push((name, path, op));
                return true;
            }
            Some((_, other, first)) if *other == path => Kind::FieldWrittenTwice {
                field: name.value.clone(),
                first,
            },
            Some((other, ..)) => Kind::FieldOverlap {
                field: name.value.clone(),
                other: other.value.clone(),
            },
        };
        self.error(name.span.clone(), kind);
        false
    }

    /// A field mapping, for `put` (`op` = None) or a field operation.
    fn field(&mut self, f: &RawField, op: Option<FieldOp>) -> Option<FieldMap> {
        // A missing value: `put` writes null, every other operation leaves the field.
        let default_missing = if op.is_none() {
            Missing::Null
        } else {
            Missing::Skip
        };
        let (source, missing) = match &f.value {
            RawMapping::Path { path, missing } => {
                let compiled = self.path(path, matches!(op, Some(FieldOp::Increment)))?;
                self.never_matches(&compiled, path)?;
                (
                    Source::Path(compiled),
                    missing.as_ref().map_or(default_missing, |m| m.value),
                )
            }
            RawMapping::Literal { span, value } => {
                let kind = match op {
                    Some(FieldOp::Increment) if !value.is_number() => Some(Kind::NotANumber {
                        field: f.name.value.clone(),
                        found: super::type_name(value),
                    }),
                    Some(op @ (FieldOp::Max | FieldOp::Min))
                        if !(value.is_number() || value.is_string()) =>
                    {
                        Some(Kind::NotComparable {
                            op: op.name(),
                            field: f.name.value.clone(),
                            found: super::type_name(value),
                        })
                    }
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.error(span.clone(), kind);
                    return None;
                }
                (Source::Literal(value.clone()), default_missing)
            }
            RawMapping::Meta { field, .. } => (Source::Meta(*field), default_missing),
        };
        Some(FieldMap {
            field: FieldPath::new(&f.name.value),
            source,
            missing,
        })
    }
}

/// The capture groups a regex replacement template refers to (`$1`, `${name}`).
fn template_groups(template: &str) -> Vec<String> {
    let mut groups = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                groups.push(braced[..end].to_owned());
                rest = &braced[end + 1..];
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                groups.push(rest[..end].to_owned());
            }
            rest = &rest[end..];
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::diag::Kind;
    use crate::plan::binding::Action;

    fn plan(toml: &str) -> Plan {
        crate::load(toml).unwrap_or_else(|d| panic!("{d:?}")).0
    }

    fn kinds(toml: &str) -> Vec<Kind> {
        crate::load(toml)
            .expect_err("an invalid config")
            .into_iter()
            .map(|d| d.kind)
            .collect()
    }

    #[test]
    fn routes_list_bindings_in_model_order() {
        let p = plan(
            r#"
            [[model]]
            name = "a"
            key = "$.payload.id"
            on.Second = { delete = true }
            on.First = { delete = true }
            [[model]]
            name = "b"
            key = "$.payload.id"
            on.First = { delete = true }
            "#,
        );
        let first = p.event_type("First").unwrap();
        let models: Vec<&str> = p
            .bindings(first)
            .iter()
            .map(|b| p.model_name(b.model))
            .collect();
        assert_eq!(models, ["a", "b"]);
        assert_eq!(p.type_count(), 2);
        assert!(p.event_type("Third").is_none());
    }

    #[test]
    fn a_binding_key_overrides_the_model_key_and_defaults_fill_in() {
        let p = plan(
            r#"
            [[model]]
            name = "m"
            key = "$.payload.id"
            on.A = { put = { x = "$.payload.x" }, merge = { y = "$.payload.y" }, increment = { n = 1 } }
            on.B = { key = "$.payload.other", optional = true, unset = ["x"] }
            "#,
        );
        let a = &p.bindings(p.event_type("A").unwrap())[0];
        let b = &p.bindings(p.event_type("B").unwrap())[0];
        assert_eq!((a.key.as_str(), a.optional), ("$.payload.id", false));
        assert_eq!((b.key.as_str(), b.optional), ("$.payload.other", true));
        let Action::Write { put, ops, .. } = &a.action else {
            panic!("a write")
        };
        assert_eq!(put.as_ref().unwrap()[0].missing, Missing::Null);
        assert_eq!(
            (ops[0].0, ops[0].1.missing),
            (FieldOp::Merge, Missing::Skip)
        );
        assert_eq!(
            (ops[1].0, ops[1].1.missing),
            (FieldOp::Increment, Missing::Skip)
        );
        assert_eq!(p.event_id.path.as_str(), "$.id");
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let found = kinds(
            r#"
            [[model]]
            name = "m"
            on.A = { put = { x = "x" } }
            [[model]]
            name = "m"
            key = "$..id"
            on.B = { delete = true }
            "#,
        );
        assert!(matches!(found[0], Kind::NoKey { .. }), "{found:?}");
        assert!(matches!(found[1], Kind::NotAPath { .. }), "{found:?}");
        assert!(
            matches!(found[2], Kind::DuplicateModel { first_line: 3, .. }),
            "{found:?}"
        );
        assert!(matches!(found[3], Kind::NotSingular { .. }), "{found:?}");
        assert_eq!(found.len(), 4);
    }

    #[test]
    fn template_groups_follow_regex_replacement_syntax() {
        assert_eq!(template_groups("evt-$1"), ["1"]);
        assert_eq!(template_groups("${kind}-${2}x$$3"), ["kind", "2"]);
        assert!(template_groups("no groups").is_empty());
    }
}
