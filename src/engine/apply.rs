//! The interpreter: applies one event to the read models bound to its type.
//!
//! An event is applied to all its read models or to none. Application runs in
//! three phases: resolve every binding against the event (conditions, keys,
//! field values), check every write against the stored documents (computing
//! what each operation will do), and only then write. The first two phases
//! change nothing, so any failure leaves every store as it was.

use crate::engine::fields::{self, Lookup};
use crate::plan::binding::{
    Action, Binding, Condition, FieldMap, FieldOp, FieldPath, MetaField, Missing, Source, Test,
};
use crate::plan::{type_name, ModelId, Plan};
use crate::store::{Document, DocumentStore, FieldValue, Stored};
use crate::value::event::{Event, Val};
use crate::value::number;
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// What is known about an event beyond its fields.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    /// The message's position in the stream, from 1.
    pub position: u64,
}

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
    /// A stored field holds a value the operation cannot work on.
    FieldHolds {
        model: ModelId,
        key: String,
        field: String,
        op: &'static str,
        found: &'static str,
    },
    /// `max` or `min` given values (by a path that selects several) that
    /// cannot be compared with each other.
    Incomparable {
        model: ModelId,
        field: String,
        source: String,
    },
    /// An increment whose result is too large to hold: an integer of more
    /// than [`number::MAX_DIGITS`] digits, or past the largest double.
    Overflow {
        model: ModelId,
        /// The document's, or none for the sum of the values a path selects.
        key: Option<String>,
        field: String,
        why: number::TooLarge,
    },
}

impl ApplyError {
    /// True when the stored state, not the event, is what prevents the write.
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            ApplyError::FieldHolds { .. } | ApplyError::Overflow { .. }
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
            ApplyError::FieldHolds {
                model,
                key,
                field,
                op,
                found,
            } => format!(
                "read model \"{}\": cannot {op} field \"{field}\" of document \"{key}\", which holds {found}",
                name(model)
            ),
            ApplyError::Incomparable {
                model,
                field,
                source,
            } => format!(
                "read model \"{}\": the values {source} selects for field \"{field}\" are not all numbers or all strings, so none is the largest or smallest",
                name(model)
            ),
            ApplyError::Overflow {
                model,
                key,
                field,
                why,
            } => {
                let limit = match why {
                    number::TooLarge::Digits => {
                        format!("an integer of more than {} digits", number::MAX_DIGITS)
                    }
                    number::TooLarge::Float => "a number past the largest double".to_owned(),
                };
                let document = match key {
                    Some(key) => format!(" of document \"{key}\""),
                    None => " by the sum of the values selected".to_owned(),
                };
                format!(
                    "read model \"{}\": incrementing field \"{field}\"{document} would make {limit}, which cannot be held",
                    name(model)
                )
            }
        }
    }
}

pub use crate::store::Change;

/// One binding, resolved against one event: the document's key and what to
/// write, with every value taken out of the event. It borrows neither the
/// event nor the plan, so the reading thread can resolve an event ahead of
/// the engine (see [`crate::engine::digest`]).
#[derive(Debug)]
pub struct Resolved {
    /// The binding's place among its event type's bindings.
    binding: usize,
    key: crate::store::Key,
    write: Write,
}

impl Resolved {
    /// The binding's place among its event type's bindings.
    pub fn binding(&self) -> usize {
        self.binding
    }

    /// The document's key.
    pub fn key(&self) -> &crate::store::Key {
        &self.key
    }

    /// Starts loading what the engine reads of this besides itself: its
    /// operations.
    pub fn prefetch(&self) {
        if let Write::Update { ops, .. } = &self.write {
            crate::util::prefetch::prefetch_all(ops.as_slice());
        }
    }

    /// The read model and key of the document this writes, given the
    /// bindings it was resolved from.
    pub fn document<'a>(&'a self, bindings: &[Binding]) -> (ModelId, &'a crate::store::Key) {
        (bindings[self.binding].model, &self.key)
    }
}

#[derive(Debug)]
enum Write {
    Delete,
    Update {
        /// The document a `put` makes, built as it is resolved.
        put: Option<Document>,
        ops: Vec<Op>,
    },
}

/// A field operation (by its place in the binding's list): the value it was
/// given, until the check against the stored document turns that into what
/// the operation will do.
#[derive(Debug)]
struct Op {
    index: usize,
    effect: Effect,
    /// The value is the list a path that selects several values yielded:
    /// `append`, `add_to_set` and `remove` take each of its elements.
    spread: bool,
}

#[derive(Debug)]
enum Effect {
    /// Resolved, not checked yet.
    Given(Stored),
    Set(Stored),
    /// Add these at the end of the list.
    Push(Vec<Value>),
    /// Remove every element equal to one of these.
    RemoveAll(Vec<Value>),
    Keep,
}

/// Applies `event` through `bindings` to `stores` (indexed by model). On
/// success, `changed` holds the documents that changed, in binding order (so
/// in model order, one per model at most); on error, no store has changed.
pub fn apply<S: DocumentStore>(
    bindings: &[Binding],
    event: &Value,
    meta: &Meta<'_>,
    stores: &mut [S],
    changed: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    apply_event(bindings, &Event::from(event), meta, stores, changed)
}

/// [`apply`] for an event as the interpreter reads it.
pub fn apply_event<S: DocumentStore>(
    bindings: &[Binding],
    event: &Event<'_>,
    meta: &Meta<'_>,
    stores: &mut [S],
    changed: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    changed.clear();
    let mut resolved = resolve(bindings, event, meta)?;
    apply_resolved(bindings, &mut resolved, stores, changed)
}

/// The first phase: every binding resolved against the event, in order;
/// those whose conditions fail or whose optional key is missing are left out.
pub fn resolve(
    bindings: &[Binding],
    event: &Event<'_>,
    meta: &Meta<'_>,
) -> Result<Vec<Resolved>, ApplyError> {
    let mut resolved = Vec::with_capacity(bindings.len());
    for (i, binding) in bindings.iter().enumerate() {
        if let Some(r) = resolve_binding(i, binding, event, meta)? {
            resolved.push(r);
        }
    }
    Ok(resolved)
}

/// The other two phases: checks `resolved` (made by [`resolve`] from these
/// `bindings`) against the stores, then writes it. Changed documents are
/// reported as by [`apply`]. What is written is moved out of `resolved`,
/// which is spent: the vectors it is left holding are freed with it, by its
/// owner (the reading thread, for a digest).
pub fn apply_resolved<S: DocumentStore>(
    bindings: &[Binding],
    resolved: &mut [Resolved],
    stores: &mut [S],
    changed: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    changed.clear();
    for r in resolved.iter_mut() {
        let binding = &bindings[r.binding];
        check(binding, r, &stores[binding.model.0 as usize])?;
    }
    for r in resolved.iter_mut() {
        let binding = &bindings[r.binding];
        let model = binding.model;
        let store = &mut stores[model.0 as usize];
        if write(binding, &mut r.write, &r.key, store) {
            changed.push(Change {
                model,
                key: r.key.clone(),
            });
        }
    }
    Ok(())
}

fn resolve_binding(
    index: usize,
    binding: &Binding,
    event: &Event<'_>,
    meta: &Meta<'_>,
) -> Result<Option<Resolved>, ApplyError> {
    let model = binding.model;
    if !binding.when.iter().all(|c| holds(c, event)) {
        return Ok(None);
    }
    let key = match binding.key.resolve(event) {
        Ok(Some(key)) => crate::store::Key::new(&key),
        Ok(None) if binding.optional => return Ok(None),
        Ok(None) => {
            return Err(ApplyError::MissingKey {
                model,
                path: binding.key.as_str().to_owned(),
            })
        }
        Err((path, found)) => return Err(ApplyError::BadKey { model, path, found }),
    };
    let write = match &binding.action {
        Action::Delete => Write::Delete,
        Action::Write { put, ops, .. } => {
            let put = match put {
                Some(fields) => {
                    let mut doc = Document::with_capacity(fields.len());
                    for f in fields {
                        if let Some(v) = value(model, f, event, meta)? {
                            fields::set_val(&mut doc, &f.field, v);
                        }
                    }
                    Some(doc)
                }
                None => None,
            };
            let mut resolved_ops = Vec::with_capacity(ops.len());
            for (index, (op, f)) in ops.iter().enumerate() {
                let Some(v) = value(model, f, event, meta)? else {
                    continue;
                };
                let several = matches!(&f.source, Source::Path(p) if !p.is_singular());
                let given = match (op, several) {
                    (FieldOp::Increment, false) if !v.is_number() => {
                        if v.is_null() {
                            continue;
                        }
                        return Err(ApplyError::NotANumber {
                            model,
                            field: f.field.text.clone(),
                            source: f.source.describe(),
                            found: v.type_name(),
                        });
                    }
                    (FieldOp::Increment, true) => Stored::new(sum(model, f, v.into_value())?),
                    (FieldOp::Max | FieldOp::Min, true) => {
                        Stored::new(extreme(model, *op, f, v.into_value())?)
                    }
                    _ => Stored::from_val(v),
                };
                let spread =
                    several && matches!(op, FieldOp::Append | FieldOp::AddToSet | FieldOp::Remove);
                resolved_ops.push(Op {
                    index,
                    effect: Effect::Given(given),
                    spread,
                });
            }
            Write::Update {
                put,
                ops: resolved_ops,
            }
        }
    };
    Ok(Some(Resolved {
        binding: index,
        key,
        write,
    }))
}

/// Whether a `when` condition holds for the event. For a path that selects
/// several values, a test holds when one of them passes it (`ne`: when none
/// equals the value; `exists`: when it selects any).
pub(crate) fn holds(c: &Condition, event: &Event<'_>) -> bool {
    let found = c.path.select(event);
    if !c.path.is_singular() {
        let Some(Value::Array(items)) = found.as_deref() else {
            return c.test == Test::Exists(false);
        };
        let mut values = items.iter().filter(|v| !v.is_null());
        let ordered = |v: &Value, want: &Value, accept: fn(Ordering) -> bool| {
            compare(v, want).is_some_and(accept)
        };
        return match &c.test {
            Test::Exists(expected) => values.next().is_some() == *expected,
            Test::Eq(want) => values.any(|v| same(v, want)),
            Test::Ne(want) => !values.any(|v| same(v, want)),
            Test::In(options) => values.any(|v| options.iter().any(|o| same(v, o))),
            Test::Lt(want) => values.any(|v| ordered(v, want, Ordering::is_lt)),
            Test::Le(want) => values.any(|v| ordered(v, want, Ordering::is_le)),
            Test::Gt(want) => values.any(|v| ordered(v, want, Ordering::is_gt)),
            Test::Ge(want) => values.any(|v| ordered(v, want, Ordering::is_ge)),
        };
    }
    let found = found.as_deref().filter(|v| !v.is_null());
    let ordered = |want: &Value, accept: fn(Ordering) -> bool| {
        found.and_then(|v| compare(v, want)).is_some_and(accept)
    };
    match &c.test {
        Test::Exists(expected) => found.is_some() == *expected,
        Test::Eq(want) => found.is_some_and(|v| same(v, want)),
        Test::Ne(want) => !found.is_some_and(|v| same(v, want)),
        Test::In(options) => found.is_some_and(|v| options.iter().any(|o| same(v, o))),
        Test::Lt(want) => ordered(want, Ordering::is_lt),
        Test::Le(want) => ordered(want, Ordering::is_le),
        Test::Gt(want) => ordered(want, Ordering::is_gt),
        Test::Ge(want) => ordered(want, Ordering::is_ge),
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// The order of two numbers (exactly, [`number::compare`]) or two strings;
/// `None` for anything else.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(number::compare(
            number::read(x.as_str()),
            number::read(y.as_str()),
        )),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A mapping's value in `event`, after its missing-data policy: `None` to skip.
fn value<'a>(
    model: ModelId,
    f: &'a FieldMap,
    event: &'a Event<'a>,
    meta: &Meta<'a>,
) -> Result<Option<Val<'a>>, ApplyError> {
    match &f.source {
        Source::Literal(v) => Ok(Some(Val::Json(Cow::Borrowed(v)))),
        Source::Meta(field) => Ok(Some(Val::Json(Cow::Owned(match field {
            MetaField::EventId => Value::String(meta.id.to_owned()),
            MetaField::EventType => Value::String(meta.event_type.to_owned()),
            MetaField::Position => Value::from(meta.position),
        })))),
        Source::Path(path) => match (path.select_val(event), f.missing) {
            (Some(v), _) => Ok(Some(v)),
            (None, Missing::Skip) => Ok(None),
            (None, Missing::Null) => Ok(Some(Val::Json(Cow::Owned(Value::Null)))),
            (None, Missing::Fail) => Err(ApplyError::MissingField {
                model,
                field: f.field.text.clone(),
                path: path.as_str().to_owned(),
            }),
        },
    }
}

/// What `increment` adds for a path that selects several values: their
/// sum, each a number.
fn sum(model: ModelId, f: &FieldMap, list: Value) -> Result<Value, ApplyError> {
    let Value::Array(items) = list else {
        unreachable!("a path that selects several values yields a list")
    };
    let mut total: Option<number::Owned> = None;
    for item in &items {
        let Value::Number(n) = item else {
            return Err(ApplyError::NotANumber {
                model,
                field: f.field.text.clone(),
                source: f.source.describe(),
                found: type_name(item),
            });
        };
        let n = number::read(n.as_str());
        let sum = number::add(total.as_ref().map(number::Owned::as_num), n);
        total = Some(sum.map_err(|why| ApplyError::Overflow {
            model,
            key: None,
            field: f.field.text.clone(),
            why,
        })?);
    }
    Ok(total
        .expect("a path that selects nothing is missing, not empty")
        .into_value())
}

/// What `max` (`min`) compares with the field for a path that selects
/// several values: the largest (smallest) of them.
fn extreme(model: ModelId, op: FieldOp, f: &FieldMap, list: Value) -> Result<Value, ApplyError> {
    let Value::Array(items) = list else {
        unreachable!("a path that selects several values yields a list")
    };
    let mut best: Option<Value> = None;
    for item in items {
        best = Some(match best {
            None => item,
            Some(b) => match compare(&item, &b) {
                Some(Ordering::Greater) if op == FieldOp::Max => item,
                Some(Ordering::Less) if op == FieldOp::Min => item,
                Some(_) => b,
                None => {
                    return Err(ApplyError::Incomparable {
                        model,
                        field: f.field.text.clone(),
                        source: f.source.describe(),
                    })
                }
            },
        });
    }
    Ok(best.expect("a path that selects nothing is missing, not empty"))
}

/// Checks a resolved write against the stored document and decides what
/// each operation does.
fn check<S: DocumentStore>(
    binding: &Binding,
    r: &mut Resolved,
    store: &S,
) -> Result<(), ApplyError> {
    let model = binding.model;
    let Resolved { key, write, .. } = r;
    let (Write::Update { put, ops }, Action::Write { ops: declared, .. }) =
        (write, &binding.action)
    else {
        return Ok(());
    };
    let empty = Document::new();
    let base = match put {
        Some(doc) => doc,
        None => store.get(key).unwrap_or(&empty),
    };
    for Op {
        index,
        effect,
        spread,
    } in ops.iter_mut()
    {
        let (op, f) = &declared[*index];
        let field = &f.field;
        let Effect::Given(v) = std::mem::replace(effect, Effect::Keep) else {
            unreachable!("each operation is checked once")
        };
        let holds = |found: &Value| ApplyError::FieldHolds {
            model,
            key: key.as_str().to_owned(),
            field: field.text.clone(),
            op: op.name(),
            found: type_name(found),
        };
        if *op == FieldOp::Merge && field.segments.len() == 1 {
            // A merge of a top-level field overwrites whatever is there.
            *effect = Effect::Set(v);
            continue;
        }
        let current = match fields::get(base, field) {
            // A merge overwrites whatever is at the field: no need to read it.
            Lookup::Found(_) if *op == FieldOp::Merge => None,
            Lookup::Found(c) => Some(c),
            Lookup::Absent => None,
            Lookup::Blocked { found, .. } => return Err(holds(&found.as_json())),
        };
        *effect = match (op, current) {
            (FieldOp::Merge, _) => Effect::Set(v),
            (FieldOp::SetIfAbsent, None) => Effect::Set(v),
            (FieldOp::SetIfAbsent, Some(_)) => Effect::Keep,
            (FieldOp::Increment, current) => match incremented(current, &v) {
                Ok(sum) => Effect::Set(sum),
                Err(NotAdded::Holds(found)) => return Err(holds(&found)),
                Err(NotAdded::TooLarge(why)) => {
                    return Err(ApplyError::Overflow {
                        model,
                        key: Some(key.as_str().to_owned()),
                        field: field.text.clone(),
                        why,
                    })
                }
            },
            (op, current) => {
                let values = match (*spread, v.into_value()) {
                    (true, Value::Array(items)) => items,
                    (_, v) => vec![v],
                };
                stored_effect(*op, values, current.map(FieldValue::as_json))
                    .map_err(|found| holds(&found))?
            }
        };
    }
    Ok(())
}

/// Why an increment adds nothing.
enum NotAdded {
    /// The field holds this, which is not a number.
    Holds(Value),
    /// The sum is too large.
    TooLarge(number::TooLarge),
}

/// What an increment by `v` writes over the field holding `current`: their
/// sum (`v` when the field is absent).
#[inline]
fn incremented(current: Option<FieldValue<'_>>, v: &Stored) -> Result<Stored, NotAdded> {
    let base = match current {
        None => None,
        Some(c) => match c.as_number() {
            Some(n) => Some(n),
            None => return Err(NotAdded::Holds(c.as_json().into_owned())),
        },
    };
    let by = v
        .as_number()
        .expect("resolve keeps only numeric increments");
    let sum = number::add(base, by).map_err(NotAdded::TooLarge)?;
    Ok(Stored::from_owned(sum))
}

/// The effect of the operations that compare with or change what is stored
/// (max, min and the list operations), given their values (several when a
/// path selected several, for the list operations); the stored value when
/// it is not one they can work on.
fn stored_effect(
    op: FieldOp,
    mut values: Vec<Value>,
    current: Option<Cow<'_, Value>>,
) -> Result<Effect, Value> {
    Ok(match (op, current.as_deref()) {
        (FieldOp::Max | FieldOp::Min, current) => {
            let v = values.pop().expect("max and min compare one value");
            match current {
                None => Effect::Set(Stored::new(v)),
                Some(c) => match compare(&v, c) {
                    Some(Ordering::Greater) if op == FieldOp::Max => Effect::Set(Stored::new(v)),
                    Some(Ordering::Less) if op == FieldOp::Min => Effect::Set(Stored::new(v)),
                    Some(_) => Effect::Keep,
                    None => return Err(c.clone()),
                },
            }
        }
        (FieldOp::Append, None) => Effect::Set(Stored::new(Value::Array(values))),
        (FieldOp::AddToSet, None) => {
            Effect::Set(Stored::new(Value::Array(new_elements(&[], values))))
        }
        (FieldOp::Append, Some(Value::Array(_))) => Effect::Push(values),
        (FieldOp::AddToSet, Some(Value::Array(items))) => match new_elements(items, values) {
            added if added.is_empty() => Effect::Keep,
            added => Effect::Push(added),
        },
        (FieldOp::Remove, None) => Effect::Keep,
        (FieldOp::Remove, Some(Value::Array(items))) => {
            match items.iter().any(|i| values.iter().any(|v| same(i, v))) {
                true => Effect::RemoveAll(values),
                false => Effect::Keep,
            }
        }
        (FieldOp::Merge | FieldOp::SetIfAbsent | FieldOp::Increment, None) => {
            unreachable!("the caller decides these")
        }
        (_, Some(other)) => return Err(other.clone()),
    })
}

/// The values a set does not hold yet, each once, in order.
fn new_elements(set: &[Value], values: Vec<Value>) -> Vec<Value> {
    let mut added: Vec<Value> = Vec::new();
    for v in values {
        if !set.iter().chain(&added).any(|i| same(i, &v)) {
            added.push(v);
        }
    }
    added
}

/// Makes the write; returns whether the stored document changed.
fn write<S: DocumentStore>(
    binding: &Binding,
    write: &mut Write,
    key: &crate::store::Key,
    store: &mut S,
) -> bool {
    let (
        Write::Update { put, ops },
        Action::Write {
            ops: declared,
            unset,
            ..
        },
    ) = (write, &binding.action)
    else {
        return store.remove(key).is_some();
    };
    let field = |op: &Op| &declared[op.index].1.field;
    let effect = |op: &mut Op| std::mem::replace(&mut op.effect, Effect::Keep);
    if let Some(mut doc) = put.take() {
        for op in ops.iter_mut() {
            apply_effect(&mut doc, field(op), effect(op));
        }
        // `unset` names no put field (the plan forbids it), so it has nothing to remove.
        return store.replace(key, doc);
    }
    let writes = ops.iter().any(|op| !matches!(op.effect, Effect::Keep));
    if !writes {
        // Only removals (or nothing): never create a document for them.
        return match store.get_mut(key) {
            Some(doc) => unset_fields(doc, unset),
            None => false,
        };
    }
    let (doc, mut changed) = store.get_or_create(key);
    for op in ops.iter_mut() {
        changed |= apply_effect(doc, field(op), effect(op));
    }
    unset_fields(doc, unset) || changed
}

fn apply_effect(doc: &mut Document, field: &FieldPath, effect: Effect) -> bool {
    match effect {
        Effect::Keep => false,
        Effect::Given(_) => unreachable!("every operation is checked before the write"),
        Effect::Set(v) => fields::set_stored(doc, field, v),
        Effect::Push(values) => match fields::slot(doc, field) {
            Some(Value::Array(items)) => {
                let pushed = !values.is_empty();
                items.extend(values);
                pushed
            }
            _ => false,
        },
        Effect::RemoveAll(values) => match fields::slot(doc, field) {
            Some(Value::Array(items)) => {
                let before = items.len();
                items.retain(|i| !values.iter().any(|v| same(i, v)));
                items.len() != before
            }
            _ => false,
        },
    }
}

fn unset_fields(doc: &mut Document, unset: &[FieldPath]) -> bool {
    let mut changed = false;
    for f in unset {
        changed |= fields::remove(doc, f);
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
                let meta = Meta {
                    id: "e",
                    event_type: "t",
                    position: 1,
                };
                apply(plan.bindings(ty), e, &meta, &mut stores, &mut updated)
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
        stores[model]
            .get(&crate::store::Key::new(key))
            .cloned()
            .map(Value::from)
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
}
