//! The interpreter: applies one event to the read models bound to its type.
//!
//! An event is applied to all its read models or to none. Application runs in
//! three phases: resolve every binding against the event (keys, field values),
//! check every write against the stored documents, and only then write. The
//! first two phases change nothing, so any failure leaves every store as it was.

use crate::plan::binding::{Action, Binding, FieldMap, Missing, Source};
use crate::plan::{scalar_text, type_name, ModelId, Plan};
use crate::store::{Document, DocumentStore};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// Why an event could not be applied. Nothing was written.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyError {
    /// A required binding's key path found nothing.
    MissingKey { model: ModelId, path: String },
    /// The key path found something that is not a string or a number.
    BadKey {
        model: ModelId,
        path: String,
        found: &'static str,
    },
    /// A mapping declared `missing = "fail"` found nothing.
    MissingField {
        model: ModelId,
        field: String,
        path: String,
    },
    /// An increment amount that is not a number.
    NotANumber {
        model: ModelId,
        field: String,
        source: String,
        found: &'static str,
    },
    /// An increment of a stored field that holds something other than a number.
    FieldNotNumeric {
        model: ModelId,
        key: String,
        field: String,
        found: &'static str,
    },
    /// An increment whose result is not a finite number.
    Overflow {
        model: ModelId,
        key: String,
        field: String,
    },
}

impl ApplyError {
    /// True when the stored state, not the event, is what prevents the write.
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            ApplyError::FieldNotNumeric { .. } | ApplyError::Overflow { .. }
        )
    }

    pub fn describe(&self, plan: &Plan) -> String {
        let name = |m: &ModelId| plan.model_name(*m).to_owned();
        match self {
            ApplyError::MissingKey { model, path } => format!(
                "read model \"{}\" needs a document key at {path}, which the event does not have",
                name(model)
            ),
            ApplyError::BadKey { model, path, found } => format!(
                "read model \"{}\": the document key at {path} must be a string or a number, found {found}",
                name(model)
            ),
            ApplyError::MissingField { model, field, path } => format!(
                "read model \"{}\": field \"{field}\" needs {path} (missing = \"fail\"), which the event does not have",
                name(model)
            ),
            ApplyError::NotANumber {
                model,
                field,
                source,
                found,
            } => format!(
                "read model \"{}\": increment of \"{field}\" by {source} needs a number, found {found}",
                name(model)
            ),
            ApplyError::FieldNotNumeric {
                model,
                key,
                field,
                found,
            } => format!(
                "read model \"{}\": cannot increment field \"{field}\" of document \"{key}\", which holds {found}",
                name(model)
            ),
            ApplyError::Overflow { model, key, field } => format!(
                "read model \"{}\": incrementing field \"{field}\" of document \"{key}\" leaves the range of JSON numbers",
                name(model)
            ),
        }
    }
}

type Fields<'a> = Vec<(&'a str, Cow<'a, Value>)>;

/// One binding, resolved against one event: nothing left to look up.
struct Resolved<'a> {
    model: ModelId,
    key: Cow<'a, str>,
    write: Write<'a>,
}

enum Write<'a> {
    Delete,
    Update {
        put: Option<Fields<'a>>,
        merge: Fields<'a>,
        increment: Vec<(&'a str, &'a Number)>,
        unset: &'a [String],
    },
}

/// A document that an event changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub model: ModelId,
    pub key: String,
}

/// Applies `event` through `bindings` to `stores` (indexed by model). On
/// success, `changed` holds the documents that changed, in binding order (so
/// in model order, one per model at most); on error, no store has changed.
pub fn apply<S: DocumentStore>(
    bindings: &[Binding],
    event: &Value,
    stores: &mut [S],
    changed: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    changed.clear();
    let mut resolved = Vec::with_capacity(bindings.len());
    for binding in bindings {
        if let Some(r) = resolve(binding, event)? {
            resolved.push(r);
        }
    }
    let mut sums = Vec::with_capacity(resolved.len());
    for r in &resolved {
        sums.push(check(r, &stores[r.model.0 as usize])?);
    }
    for (r, sums) in resolved.into_iter().zip(sums) {
        if write(r.write, &r.key, sums, &mut stores[r.model.0 as usize]) {
            changed.push(Change {
                model: r.model,
                key: r.key.into_owned(),
            });
        }
    }
    Ok(())
}

fn resolve<'a>(binding: &'a Binding, event: &'a Value) -> Result<Option<Resolved<'a>>, ApplyError> {
    let model = binding.model;
    let key = match binding.key.find_one(event) {
        None | Some(Value::Null) if binding.optional => return Ok(None),
        None | Some(Value::Null) => {
            return Err(ApplyError::MissingKey {
                model,
                path: binding.key.as_str().to_owned(),
            })
        }
        Some(v) => scalar_text(v).ok_or_else(|| ApplyError::BadKey {
            model,
            path: binding.key.as_str().to_owned(),
            found: type_name(v),
        })?,
    };
    let write = match &binding.action {
        Action::Delete => Write::Delete,
        Action::Write {
            put,
            merge,
            increment,
            unset,
        } => {
            let put = match put {
                Some(fields) => Some(resolve_fields(model, fields, event)?),
                None => None,
            };
            let merge = resolve_fields(model, merge, event)?;
            let mut amounts = Vec::with_capacity(increment.len());
            for (f, value) in increment
                .iter()
                .zip(resolve_values(model, increment, event))
            {
                let Some(value) = value? else { continue };
                match value {
                    Cow::Borrowed(Value::Number(n)) => amounts.push((f.field.as_str(), n)),
                    Cow::Borrowed(Value::Null) | Cow::Owned(Value::Null) => {}
                    other => {
                        return Err(ApplyError::NotANumber {
                            model,
                            field: f.field.clone(),
                            source: f.source.describe(),
                            found: type_name(&other),
                        })
                    }
                }
            }
            Write::Update {
                put,
                merge,
                increment: amounts,
                unset,
            }
        }
    };
    Ok(Some(Resolved { model, key, write }))
}

fn resolve_fields<'a>(
    model: ModelId,
    fields: &'a [FieldMap],
    event: &'a Value,
) -> Result<Fields<'a>, ApplyError> {
    let mut out = Vec::with_capacity(fields.len());
    for (f, value) in fields.iter().zip(resolve_values(model, fields, event)) {
        if let Some(value) = value? {
            out.push((f.field.as_str(), value));
        }
    }
    Ok(out)
}

/// Each mapping's value in `event`, after its missing-data policy: `None` to skip.
fn resolve_values<'a>(
    model: ModelId,
    fields: &'a [FieldMap],
    event: &'a Value,
) -> impl Iterator<Item = Result<Option<Cow<'a, Value>>, ApplyError>> + 'a {
    fields.iter().map(move |f| match &f.source {
        Source::Literal(v) => Ok(Some(Cow::Borrowed(v))),
        Source::Path(path) => match (path.find(event).into_value(), f.missing) {
            (Some(v), _) => Ok(Some(v)),
            (None, Missing::Skip) => Ok(None),
            (None, Missing::Null) => Ok(Some(Cow::Owned(Value::Null))),
            (None, Missing::Fail) => Err(ApplyError::MissingField {
                model,
                field: f.field.clone(),
                path: path.as_str().to_owned(),
            }),
        },
    })
}

/// Checks a resolved write against the stored document and computes the new
/// value of every incremented field.
fn check<S: DocumentStore>(r: &Resolved<'_>, store: &S) -> Result<Vec<Value>, ApplyError> {
    let Write::Update { put, increment, .. } = &r.write else {
        return Ok(Vec::new());
    };
    // After a `put` the document holds only the put fields, and a field is
    // never both put and incremented, so increments then start from zero.
    let current = if put.is_some() {
        None
    } else {
        store.get(&r.key)
    };
    increment
        .iter()
        .map(|(field, by)| {
            let base = current.and_then(|doc| doc.get(*field));
            let base = match base {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n),
                Some(other) => {
                    return Err(ApplyError::FieldNotNumeric {
                        model: r.model,
                        key: r.key.to_string(),
                        field: field.to_string(),
                        found: type_name(other),
                    })
                }
            };
            add(base, by).ok_or_else(|| ApplyError::Overflow {
                model: r.model,
                key: r.key.to_string(),
                field: field.to_string(),
            })
        })
        .collect()
}

/// `base + by`, staying an integer while both are and the sum fits 64 bits;
/// `None` when the result is not a finite number.
fn add(base: Option<&Number>, by: &Number) -> Option<Value> {
    let Some(base) = base else {
        return Some(Value::Number(by.clone()));
    };
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    if let (Some(a), Some(b)) = (int(base), int(by)) {
        let sum = a + b;
        if let Ok(sum) = i64::try_from(sum) {
            return Some(Value::from(sum));
        }
        if let Ok(sum) = u64::try_from(sum) {
            return Some(Value::from(sum));
        }
    }
    Number::from_f64(base.as_f64()? + by.as_f64()?).map(Value::Number)
}

/// Makes the write; returns whether the stored document changed.
fn write<S: DocumentStore>(write: Write<'_>, key: &str, sums: Vec<Value>, store: &mut S) -> bool {
    let Write::Update {
        put,
        merge,
        increment,
        unset,
    } = write
    else {
        return store.remove(key).is_some();
    };
    let sets = merge.into_iter().chain(
        increment
            .into_iter()
            .map(|(f, _)| f)
            .zip(sums.into_iter().map(Cow::Owned)),
    );
    if let Some(put) = put {
        let mut doc = Document::new();
        for (field, value) in put.into_iter().chain(sets) {
            doc.insert(field.to_owned(), value.into_owned());
        }
        // `unset` names no put field (the plan forbids it), so it has nothing to remove.
        let changed = store.get(key) != Some(&doc);
        if changed {
            store.put(key, doc);
        }
        return changed;
    }
    let mut sets = sets.peekable();
    if sets.peek().is_none() {
        // Only removals: never create a document for them.
        return match store.get_mut(key) {
            Some(doc) => unset_fields(doc, unset),
            None => false,
        };
    }
    let (doc, mut changed) = store.get_or_create(key);
    for (field, value) in sets {
        if doc.get(field) != Some(value.as_ref()) {
            doc.insert(field.to_owned(), value.into_owned());
            changed = true;
        }
    }
    unset_fields(doc, unset) || changed
}

fn unset_fields(doc: &mut Document, fields: &[String]) -> bool {
    let mut changed = false;
    for f in fields {
        changed |= doc.remove(f).is_some();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::json;

    /// The models an event updated, or the error it was refused with.
    type Outcome = Result<Vec<String>, String>;

    /// Compiles `toml`, applies `events` in order, returns each outcome and the stores.
    fn run(toml: &str, events: &[Value]) -> (Vec<Outcome>, Vec<MemoryStore>, Plan) {
        let plan = crate::load(toml).unwrap_or_else(|d| panic!("{d:?}")).0;
        let mut stores = vec![MemoryStore::default(); plan.model_count()];
        let mut updated = Vec::new();
        let outcomes = events
            .iter()
            .map(|e| {
                let ty = plan.event_type(e["type"].as_str().unwrap()).unwrap();
                apply(plan.bindings(ty), e, &mut stores, &mut updated)
                    .map(|()| {
                        updated
                            .iter()
                            .map(|c| plan.model_name(c.model).to_owned())
                            .collect()
                    })
                    .map_err(|err| err.describe(&plan))
            })
            .collect();
        (outcomes, stores, plan)
    }

    fn doc(stores: &[MemoryStore], model: usize, key: &str) -> Option<Value> {
        stores[model].get(key).cloned().map(Value::Object)
    }

    const COUNTER: &str = r#"
        [[model]]
        name = "counts"
        key = "$.payload.k"
        on.Hit = { increment = { n = 1, total = "$.payload.amount" }, merge = { last = "$.payload.amount" } }
        on.Reset = { unset = ["n", "total"] }
        on.Set = { put = { n = "$.payload.n" } }
    "#;

    #[test]
    fn increment_creates_at_zero_and_keeps_integers_integral() {
        let hit = |amount: Value| json!({"type": "Hit", "payload": {"k": "a", "amount": amount}});
        let (out, stores, _) = run(COUNTER, &[hit(json!(2)), hit(json!(3)), hit(json!(0.5))]);
        assert!(out.iter().all(|o| o.as_ref().unwrap() == &["counts"]));
        assert_eq!(
            doc(&stores, 0, "a"),
            Some(json!({"n": 3, "total": 5.5, "last": 0.5}))
        );
    }

    #[test]
    fn increment_of_a_text_field_refuses_the_event_and_writes_nothing() {
        let set = json!({"type": "Set", "payload": {"k": "a", "n": "many"}});
        let hit = json!({"type": "Hit", "payload": {"k": "a", "amount": 1}});
        let (out, stores, _) = run(COUNTER, &[set, hit]);
        assert_eq!(
            out[1],
            Err("read model \"counts\": cannot increment field \"n\" of document \"a\", which holds a string".into())
        );
        assert_eq!(doc(&stores, 0, "a"), Some(json!({"n": "many"})));
    }

    #[test]
    fn unset_removes_fields_and_never_creates_documents() {
        let hit = json!({"type": "Hit", "payload": {"k": "a", "amount": 1}});
        let reset = |k: &str| json!({"type": "Reset", "payload": {"k": k}});
        let (out, stores, _) = run(COUNTER, &[hit, reset("a"), reset("a"), reset("b")]);
        assert_eq!(out[1], Ok(vec!["counts".to_owned()]));
        assert_eq!(out[2], Ok(vec![]));
        assert_eq!(out[3], Ok(vec![]));
        assert_eq!(doc(&stores, 0, "a"), Some(json!({"last": 1})));
        assert_eq!(doc(&stores, 0, "b"), None);
    }

    const TWO_MODELS: &str = r#"
        [[model]]
        name = "first"
        key = "$.payload.id"
        on.Made = { put = { id = "$.payload.id" } }
        on.Gone = { delete = true }

        [[model]]
        name = "second"
        key = "$.payload.other"
        on.Made = { merge = { name = { path = "$.payload.name", missing = "fail" } } }

        [[model]]
        name = "third"
        key = "$.payload.maybe"
        on.Made = { optional = true, put = { id = "$.payload.id" } }
    "#;

    #[test]
    fn a_failing_binding_leaves_every_model_unchanged() {
        let made = |payload: Value| json!({"type": "Made", "payload": payload});
        let (out, stores, _) = run(
            TWO_MODELS,
            &[
                made(json!({"id": "1"})),
                made(json!({"id": "2", "other": "o"})),
                made(json!({"id": "3", "other": "o", "name": "n", "maybe": 7})),
            ],
        );
        assert_eq!(
            out[0],
            Err("read model \"second\" needs a document key at $.payload.other, which the event does not have".into())
        );
        assert_eq!(
            out[1],
            Err("read model \"second\": field \"name\" needs $.payload.name (missing = \"fail\"), which the event does not have".into())
        );
        assert_eq!(
            out[2],
            Ok(vec!["first".into(), "second".into(), "third".into()])
        );
        assert_eq!(stores[0].len(), 1);
        assert_eq!(doc(&stores, 2, "7"), Some(json!({"id": "3"})));
    }

    #[test]
    fn only_documents_that_change_are_reported() {
        let made = json!({"type": "Made", "payload": {"id": "1", "other": "o", "name": "n"}});
        let gone = json!({"type": "Gone", "payload": {"id": "1"}});
        let (out, _, _) = run(TWO_MODELS, &[made.clone(), made, gone.clone(), gone]);
        assert_eq!(out[0], Ok(vec!["first".into(), "second".into()]));
        assert_eq!(out[1], Ok(vec![]));
        assert_eq!(out[2], Ok(vec!["first".into()]));
        assert_eq!(out[3], Ok(vec![]));
    }

    #[test]
    fn a_key_must_be_a_string_or_a_number() {
        let made =
            json!({"type": "Made", "payload": {"id": {"nested": 1}, "other": "o", "name": "n"}});
        let (out, _, _) = run(TWO_MODELS, &[made]);
        assert_eq!(
            out[0],
            Err("read model \"first\": the document key at $.payload.id must be a string or a number, found an object".into())
        );
    }

    #[test]
    fn sums_stay_exact_until_they_cannot() {
        let n = |v: Value| serde_json::from_value::<Number>(v).unwrap();
        assert_eq!(
            add(Some(&n(json!(i64::MAX))), &n(json!(1))),
            Some(json!(9223372036854775808u64))
        );
        assert_eq!(add(Some(&n(json!(-5))), &n(json!(2))), Some(json!(-3)));
        assert_eq!(
            add(Some(&n(json!(u64::MAX))), &n(json!(-1))),
            Some(json!(u64::MAX - 1))
        );
        assert_eq!(
            add(Some(&n(json!(u64::MAX))), &n(json!(1))),
            Some(json!(1.8446744073709552e19))
        );
        assert_eq!(add(Some(&n(json!(1.5e308))), &n(json!(1.5e308))), None);
        assert_eq!(add(None, &n(json!(2.5))), Some(json!(2.5)));
    }
}
