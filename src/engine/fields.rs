//! Nested fields of a document: `address.city` reaches into `address`.

use crate::plan::binding::FieldPath;
use crate::store::{Document, FieldValue, Stored};
use crate::value::event::Val;
use serde_json::{Map, Value};

/// Where a field path leads in a document.
#[derive(Debug, PartialEq)]
pub enum Lookup<'d> {
    Found(FieldValue<'d>),
    /// The field, or an object on the way to it, is absent (or null).
    Absent,
    /// The object on the way at this depth holds something else.
    Blocked {
        depth: usize,
        found: FieldValue<'d>,
    },
}

pub fn get<'d>(doc: &'d Document, path: &FieldPath) -> Lookup<'d> {
    let mut at = match doc.field(path.head) {
        None => return Lookup::Absent,
        Some(v) if v.is_null() => return Lookup::Absent,
        Some(v) => v,
    };
    for (depth, segment) in path.segments[1..].iter().enumerate() {
        at = match at {
            FieldValue::Json(Value::Object(inner)) => match inner.get(segment) {
                None | Some(Value::Null) => return Lookup::Absent,
                Some(v) => FieldValue::Json(v),
            },
            found => return Lookup::Blocked { depth, found },
        };
    }
    Lookup::Found(at)
}

/// The slot for a field, creating the objects on the way (a null on the way
/// becomes an object); `None` if one of them holds something else.
pub fn slot<'d>(doc: &'d mut Document, path: &FieldPath) -> Option<&'d mut Value> {
    let mut at = doc.slot(path.head);
    for segment in &path.segments[1..] {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        at = at
            .as_object_mut()?
            .entry(segment.clone())
            .or_insert(Value::Null);
    }
    Some(at)
}

/// Sets a field; returns whether its value changed.
pub fn set(doc: &mut Document, path: &FieldPath, value: Value) -> bool {
    if path.segments.len() == 1 {
        // The common case, one lookup when the field exists.
        return doc.set(path.head, value);
    }
    if leaf(doc, path).is_some_and(|held| held.holds(&value)) {
        return false;
    }
    match slot(doc, path) {
        Some(slot) => {
            *slot = value;
            true
        }
        None => false,
    }
}

/// [`set`] for a value from an event.
pub fn set_val(doc: &mut Document, path: &FieldPath, value: Val<'_>) -> bool {
    match path.segments.len() {
        1 => doc.set_val(path.head, value),
        _ => set(doc, path, value.into_value()),
    }
}

/// [`set`] for a value as a document holds it.
pub fn set_stored(doc: &mut Document, path: &FieldPath, value: Stored) -> bool {
    match path.segments.len() {
        1 => doc.set_stored(path.head, value),
        _ => set(doc, path, value.into_value()),
    }
}

/// The value stored at a field, null included.
fn leaf<'d>(doc: &'d Document, path: &FieldPath) -> Option<FieldValue<'d>> {
    let mut at = doc.field(path.head)?;
    for segment in &path.segments[1..] {
        let FieldValue::Json(object) = at else {
            return None;
        };
        at = FieldValue::Json(object.as_object()?.get(segment)?);
    }
    Some(at)
}

/// Removes a field; returns whether it was there.
pub fn remove(doc: &mut Document, path: &FieldPath) -> bool {
    let Some((last, inner)) = path.segments[1..].split_last() else {
        return doc.remove(&path.head).is_some();
    };
    let mut at = match doc.field_mut(path.head) {
        Some(Value::Object(map)) => map,
        _ => return false,
    };
    for segment in inner {
        match at.get_mut(segment) {
            Some(Value::Object(map)) => at = map,
            _ => return false,
        }
    }
    at.remove(last).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        serde_json::from_value(v).unwrap()
    }

    fn path(p: &str) -> FieldPath {
        FieldPath::new(p)
    }

    #[test]
    fn nested_fields_are_created_read_and_removed() {
        let mut d = doc(json!({"a": null}));
        assert!(set(&mut d, &path("a.b.c"), json!(1)));
        assert!(!set(&mut d, &path("a.b.c"), json!(1)));
        assert!(set(&mut d, &path("a.n"), Value::Null));
        assert!(!set(&mut d, &path("a.n"), Value::Null));
        assert!(remove(&mut d, &path("a.n")));
        assert_eq!(Value::from(d.clone()), json!({"a": {"b": {"c": 1}}}));
        assert_eq!(
            get(&d, &path("a.b.c")),
            Lookup::Found(FieldValue::Json(&json!(1)))
        );
        assert_eq!(get(&d, &path("a.x.c")), Lookup::Absent);
        assert!(remove(&mut d, &path("a.b.c")));
        assert!(!remove(&mut d, &path("a.b.c")));
        assert_eq!(Value::from(d), json!({"a": {"b": {}}}));
    }

    #[test]
    fn a_value_on_the_way_blocks_the_path() {
        let d = doc(json!({"a": "text"}));
        assert_eq!(
            get(&d, &path("a.b")),
            Lookup::Blocked {
                depth: 0,
                found: FieldValue::Text("text")
            }
        );
    }
}
