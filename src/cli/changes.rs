//! The fields that differ between two versions of a document, as dotted
//! paths into nested objects: what `explain` shows per event and
//! `plan --diff` per document.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One field that differs: its value before and after (`None`: absent).
pub struct FieldChange {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The fields that differ between two versions of a document (`None`:
/// none), in field order; lists and other values are compared whole.
pub fn fields(old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff("", old, new, &mut out);
    out
}

fn diff(prefix: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    fn as_object<'a>(
        value: Option<&'a Value>,
        empty: &'a Map<String, Value>,
    ) -> Option<&'a Map<String, Value>> {
        match value {
            None => Some(empty),
            Some(Value::Object(map)) => Some(map),
            Some(_) => None,
        }
    }
    let empty = Map::new();
    match (as_object(old, &empty), as_object(new, &empty)) {
        (Some(old_map), Some(new_map)) if !prefix.is_empty() || old.is_some() || new.is_some() => {
            let names: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
            for name in names {
                let field = match prefix {
                    "" => name.clone(),
                    _ => format!("{prefix}.{name}"),
                };
                diff(&field, old_map.get(name), new_map.get(name), out);
            }
        }
        _ if old == new => {}
        _ => out.push(FieldChange {
            field: prefix.to_owned(),
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

/// A value as the field lists show it.
pub fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changed(old: Value, new: Value) -> Vec<(String, String, String)> {
        fields(Some(&old), Some(&new))
            .into_iter()
            .map(|c| (c.field, shown(c.old.as_ref()), shown(c.new.as_ref())))
            .collect()
    }

    #[test]
    fn nested_objects_are_compared_field_by_field_and_lists_whole() {
        let t = |f: &str, o: &str, n: &str| (f.to_owned(), o.to_owned(), n.to_owned());
        assert_eq!(
            changed(
                json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1], "x": 0}),
                json!({"a": 1, "b": {"c": 2, "e": 4}, "l": [1, 2], "y": 0})
            ),
            [
                t("b.d", "3", "(absent)"),
                t("b.e", "(absent)", "4"),
                t("l", "[1]", "[1,2]"),
                t("x", "0", "(absent)"),
                t("y", "(absent)", "0"),
            ]
        );
        assert!(changed(json!({"a": {"b": 1}}), json!({"a": {"b": 1}})).is_empty());
        assert_eq!(fields(None, Some(&json!({"a": 1})))[0].field, "a");
    }
}
