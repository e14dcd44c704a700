//! Nested fields of a document: `address.city` reaches into `address`.

use crate::store::Document;
use serde_json::{Map, Value};

/// Where a field path leads in a document.
#[derive(Debug, PartialEq)]
pub enum Lookup<'d> {
    Found(&'d Value),
    /// The field, or an object on the way to it, is absent (or null).
    Absent,
    /// The object on the way at this depth holds something else.
    Blocked {
        depth: usize,
        found: &'d Value,
    },
}

pub fn get<'d>(doc: &'d Document, path: &[String]) -> Lookup<'d> {
    let (last, parents) = path.split_last().expect("a field path has a name");
    let mut at = doc;
    for (depth, segment) in parents.iter().enumerate() {
        at = match at.get(segment) {
            None | Some(Value::Null) => return Lookup::Absent,
            Some(Value::Object(inner)) => inner,
            Some(found) => return Lookup::Blocked { depth, found },
        };
    }
    match at.get(last) {
        None | Some(Value::Null) => Lookup::Absent,
        Some(v) => Lookup::Found(v),
    }
}

/// The slot for a field, creating the objects on the way (a null on the way
/// becomes an object); `None` if one of them holds something else.
pub fn slot<'d>(doc: &'d mut Document, path: &[String]) -> Option<&'d mut Value> {
    let (last, parents) = path.split_last().expect("a field path has a name");
    let mut at = doc;
    for segment in parents {
        let next = at.entry(segment.clone()).or_insert(Value::Null);
        if next.is_null() {
            *next = Value::Object(Map::new());
        }
        at = next.as_object_mut()?;
    }
    Some(at.entry(last.clone()).or_insert(Value::Null))
}

/// Sets a field; returns whether its value changed.
pub fn set(doc: &mut Document, path: &[String], value: Value) -> bool {
    if let [name] = path {
        // The common case, one lookup when the field exists.
        return match doc.get_mut(name) {
            Some(old) if *old == value => false,
            Some(old) => {
                *old = value;
                true
            }
            None => {
                doc.insert(name.clone(), value);
                true
            }
        };
    }
    if leaf(doc, path) == Some(&value) {
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

/// The value stored at a field, null included.
fn leaf<'d>(doc: &'d Document, path: &[String]) -> Option<&'d Value> {
    let (last, parents) = path.split_last()?;
    let mut at = doc;
    for segment in parents {
        at = at.get(segment)?.as_object()?;
    }
    at.get(last)
}

/// Removes a field; returns whether it was there.
pub fn remove(doc: &mut Document, path: &[String]) -> bool {
    let (last, parents) = path.split_last().expect("a field path has a name");
    let mut at = doc;
    for segment in parents {
        match at.get_mut(segment) {
            Some(Value::Object(inner)) => at = inner,
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
        v.as_object().unwrap().clone()
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn nested_fields_are_created_read_and_removed() {
        let mut d = doc(json!({"a": null}));
        assert!(set(&mut d, &path("a.b.c"), json!(1)));
        assert!(!set(&mut d, &path("a.b.c"), json!(1)));
        assert!(set(&mut d, &path("a.n"), Value::Null));
        assert!(!set(&mut d, &path("a.n"), Value::Null));
        assert!(remove(&mut d, &path("a.n")));
        assert_eq!(Value::Object(d.clone()), json!({"a": {"b": {"c": 1}}}));
        assert_eq!(get(&d, &path("a.b.c")), Lookup::Found(&json!(1)));
        assert_eq!(get(&d, &path("a.x.c")), Lookup::Absent);
        assert!(remove(&mut d, &path("a.b.c")));
        assert!(!remove(&mut d, &path("a.b.c")));
        assert_eq!(Value::Object(d), json!({"a": {"b": {}}}));
    }

    #[test]
    fn a_value_on_the_way_blocks_the_path() {
        let d = doc(json!({"a": "text"}));
        assert_eq!(
            get(&d, &path("a.b")),
            Lookup::Blocked {
                depth: 0,
                found: &json!("text")
            }
        );
    }
}
