//! Reads the spanned TOML tree into [`RawConfig`], reporting every shape problem.
//!
//! serde's derive stops at the first unknown key; this walker keeps going, so a
//! config with five mistakes gets five diagnostics in one run.

use super::raw::*;
use crate::config::diag::{Diagnostic, Kind, Span, Spanned, BINDING_KEYS};
use serde_json::Value;
use toml::de::{DeTable, DeValue};

type Node<'i> = toml::Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["cache_mb", "event_id", "model", "tests"];
const EVENT_ID_KEYS: &[&str] = &["path", "derive"];
const DERIVE_KEYS: &[&str] = &["from", "pattern", "template"];
const MODEL_KEYS: &[&str] = &["name", "key", "on", "indexes"];
const MAPPING_KEYS: &[&str] = &["path", "missing", "value", "meta"];
const CONDITION_KEYS: &[&str] = &["path", "exists", "eq", "ne", "lt", "le", "gt", "ge", "in"];
const TEST_KEYS: &[&str] = &["name", "events", "expect", "replies"];
const EXPECT_KEYS: &[&str] = &["model", "key", "document", "absent"];

/// The default place of an event's id.
pub const DEFAULT_ID_PATH: &str = "$.id";

pub fn read(root: &DeTable<'_>, root_span: Span, diags: &mut Vec<Diagnostic>) -> RawConfig {
    let mut r = Reader { diags };
    r.check_keys(root, "the top level", TOP_KEYS);
    let event_id = match root.get("event_id") {
        Some(node) => r.event_id(node),
        None => None,
    }
    .unwrap_or_else(|| RawEventId {
        path: Spanned::new(0..0, DEFAULT_ID_PATH.to_owned()),
        derive: None,
    });
    let cache_mb = root.get("cache_mb").and_then(|node| match node.get_ref() {
        DeValue::Integer(n) => match n.to_string().parse::<u64>() {
            Ok(mb) if mb <= 1_048_576 => Some(mb),
            _ => {
                r.wrong_type(
                    node.span(),
                    "cache_mb",
                    "a whole number of MiB from 0 to 1048576",
                    node.get_ref(),
                );
                None
            }
        },
        other => {
            r.wrong_type(
                node.span(),
                "cache_mb",
                "a whole number of MiB from 0 to 1048576",
                other,
            );
            None
        }
    });
    let mut models = Vec::new();
    if let Some(node) = root.get("model") {
        match node.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let Some(m) = r.model(item) {
                        models.push(m);
                    }
                }
            }
            other => r.wrong_type(
                node.span(),
                "model",
                "an array of tables ([[model]])",
                other,
            ),
        }
    }
    let mut tests = Vec::new();
    if let Some(node) = root.get("tests") {
        let before = r.diags.len();
        match node.get_ref() {
            DeValue::Array(items) => tests.extend(items.iter().filter_map(|item| r.test(item))),
            other => r.wrong_type(
                node.span(),
                "tests",
                "an array of tables ([[tests]])",
                other,
            ),
        }
        Diagnostic::mark_in_tests(&mut r.diags[before..]);
    }
    if models.is_empty() && !r.diags.iter().any(Diagnostic::is_error) {
        r.diags.push(Diagnostic::warning(
            root_span.start..root_span.start,
            Kind::NoModels,
        ));
    }
    RawConfig {
        event_id,
        cache_mb,
        models,
        tests,
    }
}

struct Reader<'d> {
    diags: &'d mut Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Span, kind: Kind) {
        self.diags.push(Diagnostic::error(span, kind));
    }

    fn wrong_type(&mut self, span: Span, key: &str, expected: &'static str, found: &DeValue) {
        self.error(
            span,
            Kind::WrongType {
                key: key.to_owned(),
                expected,
                found: match found {
                    DeValue::String(_) => "a string",
                    DeValue::Integer(_) => "an integer",
                    DeValue::Float(_) => "a float",
                    DeValue::Boolean(_) => "a boolean",
                    DeValue::Datetime(_) => "a datetime",
                    DeValue::Array(_) => "an array",
                    DeValue::Table(_) => "a table",
                },
            },
        );
    }

    /// Reports every key of `table` that is not `expected`; returns whether
    /// all were.
    fn check_keys(
        &mut self,
        table: &DeTable<'_>,
        name: &'static str,
        expected: &'static [&'static str],
    ) -> bool {
        let mut known = true;
        for key in table.keys() {
            if !expected.contains(&key.get_ref().as_ref()) {
                known = false;
                self.error(
                    key.span(),
                    Kind::UnknownKey {
                        key: key.get_ref().to_string(),
                        table: name,
                        expected,
                    },
                );
            }
        }
        known
    }

    fn table<'a, 'i>(&mut self, node: &'a Node<'i>, key: &str) -> Option<&'a DeTable<'i>> {
        match node.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(node.span(), key, "a table", other);
                None
            }
        }
    }

    fn string(&mut self, node: &Node<'_>, key: &str) -> Option<Spanned<String>> {
        match node.get_ref() {
            DeValue::String(s) => Some(Spanned::new(node.span(), s.to_string())),
            other => {
                self.wrong_type(node.span(), key, "a string", other);
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node<'_>, key: &str) -> Option<Spanned<bool>> {
        match node.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(node.span(), *b)),
            other => {
                self.wrong_type(node.span(), key, "true or false", other);
                None
            }
        }
    }

    fn required_string(
        &mut self,
        table: &DeTable<'_>,
        span: &Span,
        key: &'static str,
        table_name: &str,
    ) -> Option<Spanned<String>> {
        match table.get(key) {
            Some(node) => self.string(node, key),
            None => {
                self.error(
                    span.clone(),
                    Kind::MissingKey {
                        key,
                        table: table_name.to_owned(),
                    },
                );
                None
            }
        }
    }

    fn event_id(&mut self, node: &Node<'_>) -> Option<RawEventId> {
        let table = self.table(node, "event_id")?;
        self.check_keys(table, "[event_id]", EVENT_ID_KEYS);
        let path = match table.get("path") {
            Some(p) => self.string(p, "path")?,
            None => Spanned::new(node.span(), DEFAULT_ID_PATH.to_owned()),
        };
        let derive = match table.get("derive") {
            Some(d) => self.derive(d),
            None => None,
        };
        Some(RawEventId { path, derive })
    }

    fn derive(&mut self, node: &Node<'_>) -> Option<RawDerive> {
        let table = self.table(node, "derive")?;
        self.check_keys(table, "[event_id.derive]", DERIVE_KEYS);
        let span = node.span();
        let from = self.required_string(table, &span, "from", "[event_id.derive]");
        let pattern = self.required_string(table, &span, "pattern", "[event_id.derive]");
        let template = self.required_string(table, &span, "template", "[event_id.derive]");
        Some(RawDerive {
            span,
            from: from?,
            pattern: pattern?,
            template: template?,
        })
    }

    fn model(&mut self, node: &Node<'_>) -> Option<RawModel> {
        let table = self.table(node, "model")?;
        self.check_keys(table, "[[model]]", MODEL_KEYS);
        let span = node.span();
        let name = self.required_string(table, &span, "name", "[[model]]");
        let key = table.get("key").and_then(|k| self.string(k, "key"));
        let mut on = Vec::new();
        let mut on_invalid = false;
        if let Some(bindings) = table.get("on") {
            on_invalid = !bindings.get_ref().is_table();
            if let Some(bindings) = self.table(bindings, "on") {
                for (event_type, binding) in bindings.iter() {
                    let event_type =
                        Spanned::new(event_type.span(), event_type.get_ref().to_string());
                    if let Some(b) = self.binding(event_type, binding) {
                        on.push(b);
                    }
                }
            }
        }
        let indexes = table
            .get("indexes")
            .and_then(|n| self.strings(n, "indexes", "an array of field names"))
            .unwrap_or_default();
        Some(RawModel {
            span,
            name,
            key,
            on,
            on_invalid,
            indexes,
        })
    }

    fn binding(&mut self, event_type: Spanned<String>, node: &Node<'_>) -> Option<RawBinding> {
        let table = self.table(node, &event_type.value)?;
        let mut has_unknown_keys = false;
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if BINDING_KEYS.contains(&name) {
                continue;
            }
            has_unknown_keys = true;
            let kind = if crate::config::diag::did_you_mean(name, &["key", "optional"]).is_some() {
                Kind::UnknownKey {
                    key: name.to_owned(),
                    table: "a binding",
                    expected: BINDING_KEYS,
                }
            } else {
                Kind::UnknownOperation {
                    name: name.to_owned(),
                }
            };
            self.error(key.span(), kind);
        }
        let mut b = RawBinding {
            key: table.get("key").and_then(|k| self.string(k, "key")),
            optional: table
                .get("optional")
                .and_then(|o| self.boolean(o, "optional"))
                .is_some_and(|o| o.value),
            delete: table.get("delete").and_then(|d| self.boolean(d, "delete")),
            event_type,
            has_unknown_keys,
            ..RawBinding::default()
        };
        if let Some(when) = table.get("when") {
            b.when = self.conditions(when);
        }
        b.put = table.get("put").and_then(|n| self.fields(n, "put"));
        for (name, node) in table.iter() {
            if let Some(op) = FieldOp::from_name(name.get_ref()) {
                match self.fields(node, op.name()) {
                    Some(fields) => b.ops.push((Spanned::new(name.span(), op), fields)),
                    // Reported; the binding is not also "without operation".
                    None => b.has_unknown_keys = true,
                }
            }
        }
        b.unset = table.get("unset").and_then(|n| self.names(n));
        Some(b)
    }

    /// `when`: one condition table, or an array of them that must all hold.
    fn conditions(&mut self, node: &Node<'_>) -> Vec<RawCondition> {
        match node.get_ref() {
            DeValue::Table(_) => self.condition(node).into_iter().collect(),
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| self.condition(item))
                .collect(),
            other => {
                self.wrong_type(
                    node.span(),
                    "when",
                    "a condition table or an array of them",
                    other,
                );
                Vec::new()
            }
        }
    }

    fn condition(&mut self, node: &Node<'_>) -> Option<RawCondition> {
        let table = self.table(node, "when")?;
        let known = self.check_keys(table, "a condition", CONDITION_KEYS);
        let span = node.span();
        let path = self.required_string(table, &span, "path", "the condition");
        let tests: Vec<_> = table
            .iter()
            .filter(|(k, _)| Test::WORDS.contains(&k.get_ref().as_ref()))
            .collect();
        let [(word, value)] = tests.as_slice() else {
            // A misspelt test is reported as an unknown key, not twice.
            if !tests.is_empty() || known {
                self.error(span, Kind::ConditionTests { found: tests.len() });
            }
            return None;
        };
        let test = match word.get_ref().as_ref() {
            "exists" => Test::Exists(self.boolean(value, "exists")?.value),
            "in" => match self.literal(value)? {
                Value::Array(items) => Test::In(items),
                _ => {
                    self.wrong_type(value.span(), "in", "an array of values", value.get_ref());
                    return None;
                }
            },
            word => {
                let v = self.literal(value)?;
                match word {
                    "eq" => Test::Eq(v),
                    "ne" => Test::Ne(v),
                    "lt" => Test::Lt(v),
                    "le" => Test::Le(v),
                    "gt" => Test::Gt(v),
                    _ => Test::Ge(v),
                }
            }
        };
        Some(RawCondition {
            span,
            path: path?,
            test: Spanned::new(value.span(), test),
        })
    }

    fn test(&mut self, node: &Node<'_>) -> Option<RawTest> {
        let table = self.table(node, "tests")?;
        self.check_keys(table, "[[tests]]", TEST_KEYS);
        let span = node.span();
        let name = self.required_string(table, &span, "name", "[[tests]]");
        let events = match table.get("events") {
            Some(events) => self.json_list(events, "events")?,
            None => {
                let table = "[[tests]]".to_owned();
                self.error(
                    span.clone(),
                    Kind::MissingKey {
                        key: "events",
                        table,
                    },
                );
                return None;
            }
        };
        let mut expect = Vec::new();
        if let Some(node) = table.get("expect") {
            match node.get_ref() {
                DeValue::Array(items) => {
                    expect.extend(items.iter().filter_map(|item| self.expectation(item)))
                }
                other => self.wrong_type(node.span(), "expect", "an array of expectations", other),
            }
        }
        let replies = match table.get("replies") {
            Some(replies) => Some(self.json_list(replies, "replies")?),
            None => None,
        };
        Some(RawTest {
            span,
            name: name?,
            events,
            expect,
            replies,
        })
    }

    /// An array of JSON objects, each written as a TOML table or as JSON text
    /// (the way to write `null`).
    fn json_list(&mut self, node: &Node<'_>, key: &str) -> Option<Vec<Spanned<Value>>> {
        let DeValue::Array(items) = node.get_ref() else {
            self.wrong_type(
                node.span(),
                key,
                "an array of tables or JSON strings",
                node.get_ref(),
            );
            return None;
        };
        // Every bad item is reported; the good ones are kept.
        Some(
            items
                .iter()
                .filter_map(|item| Some(Spanned::new(item.span(), self.json_object(item, key)?)))
                .collect(),
        )
    }

    fn json_object(&mut self, node: &Node<'_>, key: &str) -> Option<Value> {
        let value = match node.get_ref() {
            DeValue::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(v) => v,
                Err(e) => {
                    let reason = e.to_string();
                    self.error(node.span(), Kind::BadJson { reason });
                    return None;
                }
            },
            _ => self.literal(node)?,
        };
        if !value.is_object() {
            self.wrong_type(node.span(), key, "a table or a JSON object", node.get_ref());
            return None;
        }
        Some(value)
    }

    fn expectation(&mut self, node: &Node<'_>) -> Option<RawExpectation> {
        let table = self.table(node, "expect")?;
        self.check_keys(table, "an expectation", EXPECT_KEYS);
        let span = node.span();
        let model = self.required_string(table, &span, "model", "the expectation");
        let key = self.required_string(table, &span, "key", "the expectation");
        let absent = table.get("absent").and_then(|a| self.boolean(a, "absent"));
        let document = match (table.get("document"), absent) {
            (Some(doc), None) => Some(self.json_object(doc, "document")?),
            (None, Some(Spanned { value: true, .. })) => None,
            _ => {
                self.error(span.clone(), Kind::ExpectationShape);
                return None;
            }
        };
        Some(RawExpectation {
            span,
            model: model?,
            key: key?,
            document,
        })
    }

    fn fields(&mut self, node: &Node<'_>, op: &str) -> Option<Vec<RawField>> {
        let table = self.table(node, op)?;
        let mut fields = Vec::new();
        for (name, value) in table.iter() {
            let name = Spanned::new(name.span(), name.get_ref().to_string());
            if let Some(value) = self.mapping(value, &name.value) {
                fields.push(RawField { name, value });
            }
        }
        Some(fields)
    }

    fn names(&mut self, node: &Node<'_>) -> Option<Vec<Spanned<String>>> {
        self.strings(node, "unset", "an array of field names")
    }

    /// An array of strings under `key`; `what` names it when it is not.
    fn strings(
        &mut self,
        node: &Node<'_>,
        key: &str,
        what: &'static str,
    ) -> Option<Vec<Spanned<String>>> {
        match node.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|item| self.string(item, key))
                    .collect(),
            ),
            other => {
                self.wrong_type(node.span(), key, what, other);
                None
            }
        }
    }

    fn mapping(&mut self, node: &Node<'_>, field: &str) -> Option<RawMapping> {
        let span = node.span();
        match node.get_ref() {
            DeValue::String(s) => Some(RawMapping::Path {
                path: Spanned::new(span, s.to_string()),
                missing: None,
            }),
            DeValue::Table(table) => {
                self.check_keys(table, "a field mapping", MAPPING_KEYS);
                let sources: Vec<&str> = ["path", "value", "meta"]
                    .into_iter()
                    .filter(|k| table.contains_key(*k))
                    .collect();
                match sources.as_slice() {
                    ["path"] => {
                        let path = self.string(table.get("path")?, "path")?;
                        let missing = table.get("missing").and_then(|m| self.missing(m));
                        Some(RawMapping::Path { path, missing })
                    }
                    [one] => {
                        if let Some((key, _)) = table.get_key_value("missing") {
                            self.error(key.span(), Kind::MissingOnLiteral);
                        }
                        let node = table.get(*one)?;
                        if *one == "value" {
                            return Some(RawMapping::Literal {
                                span: node.span(),
                                value: self.literal(node)?,
                            });
                        }
                        let word = self.string(node, "meta")?;
                        match MetaField::from_word(&word.value) {
                            Some(field) => Some(RawMapping::Meta {
                                span: word.span,
                                field,
                            }),
                            None => {
                                self.error(
                                    word.span,
                                    Kind::UnknownWord {
                                        key: "meta",
                                        word: word.value,
                                        expected: MetaField::WORDS,
                                    },
                                );
                                None
                            }
                        }
                    }
                    [] => {
                        let field = field.to_owned();
                        self.error(span, Kind::NoSource { field });
                        None
                    }
                    _ => {
                        let field = field.to_owned();
                        self.error(span, Kind::PathAndValue { field });
                        None
                    }
                }
            }
            _ => Some(RawMapping::Literal {
                span,
                value: self.literal(node)?,
            }),
        }
    }

    fn missing(&mut self, node: &Node<'_>) -> Option<Spanned<Missing>> {
        let word = self.string(node, "missing")?;
        match Missing::from_word(&word.value) {
            Some(m) => Some(Spanned::new(word.span, m)),
            None => {
                self.error(
                    word.span,
                    Kind::UnknownWord {
                        key: "missing",
                        word: word.value,
                        expected: Missing::WORDS,
                    },
                );
                None
            }
        }
    }

    /// A TOML value as the JSON value it stands for.
    fn literal(&mut self, node: &Node<'_>) -> Option<Value> {
        Some(match node.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::from(n),
                Err(_) => {
                    self.error(
                        node.span(),
                        Kind::BadLiteral {
                            reason: "integer out of range",
                        },
                    );
                    return None;
                }
            },
            DeValue::Float(f) => {
                let parsed = f.as_str().replace('_', "").parse::<f64>().ok();
                match parsed.and_then(serde_json::Number::from_f64) {
                    Some(n) => Value::Number(n),
                    None => {
                        self.error(
                            node.span(),
                            Kind::BadLiteral {
                                reason: "JSON has no NaN or infinity",
                            },
                        );
                        return None;
                    }
                }
            }
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::String(d.to_string()),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    out.push(self.literal(item)?);
                }
                Value::Array(out)
            }
            DeValue::Table(t) => {
                let mut out = serde_json::Map::new();
                for (k, v) in t.iter() {
                    out.insert(k.get_ref().to_string(), self.literal(v)?);
                }
                Value::Object(out)
            }
        })
    }
}
