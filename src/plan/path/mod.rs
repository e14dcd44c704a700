//! JSONPaths (RFC 9535), parsed once at load time.
//!
//! A path made of names and indexes only (`$.payload.id`, `$.items[0]`) is
//! compiled into a direct walk over the event; anything else (wildcards,
//! slices, filters, descendants) is kept as its syntax tree, which [`eval`]
//! interprets. The RFC's compliance test suite runs in `tests/jsonpath_cts.rs`.

mod eval;
mod filter;
mod iregexp;
mod literal;
mod parse;
mod syntax;

use super::{scalar_text, type_name};
use crate::value::event::{Event, Raw, Val};
use serde_json::Value;
use std::borrow::Cow;
use std::ops::Range;
use syntax::{Query, Selector};

#[derive(Debug, Clone)]
pub struct JsonPath {
    text: String,
    kind: PathKind,
}

#[derive(Debug, Clone)]
enum PathKind {
    Walk(Vec<Step>),
    Query(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
}

/// What a path selects in one event.
#[derive(Debug, PartialEq)]
pub enum Found<'a> {
    Nothing,
    One(&'a Value),
    /// A non-singular path that selected several values.
    Many(Vec<&'a Value>),
}

impl<'a> Found<'a> {
    /// What a path that can select several values yields: the list of what
    /// it selected (one value too), or `None` when it selected nothing.
    pub fn into_list(self) -> Option<Cow<'a, Value>> {
        let values = match self {
            Found::Nothing => return None,
            Found::One(v) => vec![v.clone()],
            Found::Many(vs) => vs.into_iter().cloned().collect(),
        };
        Some(Cow::Owned(Value::Array(values)))
    }
}

impl JsonPath {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        if !text.starts_with('$') {
            return Err(PathError {
                reason: "a JSONPath starts with `$`".to_owned(),
                at: 0..0,
            });
        }
        let (query, descents) = parse::parse(text)?;
        if let Some(&at) = descents.get(1) {
            return Err(PathError {
                reason: "a path may search descendants (`..`) once: each search multiplies the work an event takes by its size".to_owned(),
                at: at..at + 2,
            });
        }
        let steps: Option<Vec<Step>> = query
            .segments
            .iter()
            .map(
                |segment| match (segment.descendant, &segment.selectors[..]) {
                    (false, [Selector::Name(name)]) => Some(Step::Key(name.clone())),
                    (false, [Selector::Index(i)]) => Some(Step::Index(*i)),
                    _ => None,
                },
            )
            .collect();
        let kind = match steps {
            Some(steps) => PathKind::Walk(steps),
            None => PathKind::Query(Box::new(query)),
        };
        Ok(JsonPath {
            text: text.to_owned(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for `$`, the whole document.
    pub fn is_root(&self) -> bool {
        matches!(&self.kind, PathKind::Walk(steps) if steps.is_empty())
    }

    /// True when the path selects at most one value in any document.
    pub fn is_singular(&self) -> bool {
        matches!(self.kind, PathKind::Walk(_))
    }

    /// Why this path can select nothing in any event, if that is so. An event is
    /// an object whose `type` is a string and whose `id`, when present, is a
    /// string or a number: nothing lies below either.
    pub fn never_matches(&self) -> Option<String> {
        let first_two: Vec<Option<&str>> = match &self.kind {
            PathKind::Walk(steps) => steps
                .iter()
                .take(2)
                .map(|s| match s {
                    Step::Key(k) => Some(k.as_str()),
                    Step::Index(_) => None,
                })
                .collect(),
            PathKind::Query(q) => q
                .segments
                .iter()
                .take(2)
                .map(|s| match (s.descendant, &s.selectors[..]) {
                    (false, [Selector::Name(k)]) => Some(k.as_str()),
                    _ => None,
                })
                .collect(),
        };
        if let PathKind::Walk(steps) = &self.kind {
            if let Some(Step::Index(_)) = steps.first() {
                return Some("the event is an object, not an array".to_owned());
            }
        }
        match first_two.as_slice() {
            [Some(field @ ("type" | "id")), _] => Some(format!(
                "`$.{field}` is a string or number, which has no fields or elements"
            )),
            _ => None,
        }
    }

    /// Everything the path selects in `root`.
    pub fn find<'a>(&self, root: &'a Value) -> Found<'a> {
        match &self.kind {
            PathKind::Walk(steps) => match walk(steps, root) {
                Some(v) => Found::One(v),
                None => Found::Nothing,
            },
            PathKind::Query(q) => match eval::select(q, root, root) {
                nodes if nodes.len() > 1 => Found::Many(nodes),
                nodes => nodes.first().map_or(Found::Nothing, |&v| Found::One(v)),
            },
        }
    }

    /// What the path selects in `event`, as JSON: a path that can select
    /// several values always yields their list (see [`Found::into_list`]).
    pub fn select<'e>(&self, event: &'e Event<'_>) -> Option<Cow<'e, Value>> {
        match &self.kind {
            PathKind::Walk(steps) => {
                walk_raw(steps, event.root()).map(|v| Cow::Owned(v.to_value()))
            }
            PathKind::Query(_) => self.find(event.tree()).into_list(),
        }
    }

    /// What the path selects in `event`, as a value for a document: a node
    /// of the event's tree when the path is a walk, the list of what it
    /// selected when it can select several.
    pub fn select_val<'e>(&self, event: &'e Event<'_>) -> Option<Val<'e>> {
        match &self.kind {
            PathKind::Walk(steps) => walk_raw(steps, event.root()).map(Val::Node),
            PathKind::Query(_) => self.find(event.tree()).into_list().map(Val::Json),
        }
    }

    /// The string or number this path selects in `event`, as text (see
    /// [`scalar_text`]): `None` when it selects nothing, or null, or more
    /// than one value; what it found when that is neither.
    pub fn text<'a>(&self, event: &Event<'a>) -> Result<Option<Cow<'a, str>>, &'static str> {
        match &self.kind {
            PathKind::Walk(steps) => match walk_raw(steps, event.root()) {
                None | Some(Raw::Null) => Ok(None),
                Some(v) => v.scalar_text().map(Some).ok_or(v.type_name()),
            },
            PathKind::Query(_) => match self.find_one(event.tree()) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => scalar_text(v)
                    .map(|t| Some(Cow::Owned(t.into_owned())))
                    .ok_or(type_name(v)),
            },
        }
    }

    /// The one value a singular path selects.
    pub fn find_one<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match self.find(root) {
            Found::One(v) => Some(v),
            _ => None,
        }
    }
}

fn walk<'a>(steps: &[Step], mut at: &'a Value) -> Option<&'a Value> {
    for step in steps {
        at = match (step, at) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => element(a, *i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// An array's element at `i`, counting from the end when negative.
fn element<T>(items: &[T], i: i64) -> Option<&T> {
    let i = if i < 0 { items.len() as i64 + i } else { i };
    items.get(usize::try_from(i).ok()?)
}

fn walk_raw<'r, 'a>(steps: &[Step], mut at: &'r Raw<'a>) -> Option<&'r Raw<'a>> {
    for step in steps {
        at = match (step, at) {
            (Step::Key(k), Raw::Object(_)) => at.get(k)?,
            (Step::Index(i), Raw::Array(a)) => element(a, *i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Why a JSONPath is refused, and where: a range of bytes in its text (empty
/// at its end).
#[derive(Debug, Clone, PartialEq)]
pub struct PathError {
    pub reason: String,
    pub at: Range<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `path` yields in `doc`: the one value a singular path selects,
    /// the list a path that can select several does.
    fn found(path: &str, doc: &Value) -> Option<Value> {
        let path = JsonPath::parse(path).unwrap();
        match path.is_singular() {
            true => path.find_one(doc).cloned(),
            false => path.find(doc).into_list().map(Cow::into_owned),
        }
    }

    #[test]
    fn walks_names_and_indexes() {
        let doc = json!({"payload": {"id": "u1", "tags": ["a", "b"], "odd key": 1}});
        assert_eq!(found("$.payload.id", &doc), Some(json!("u1")));
        assert_eq!(found("$.payload.tags[1]", &doc), Some(json!("b")));
        assert_eq!(found("$.payload.tags[-1]", &doc), Some(json!("b")));
        assert_eq!(found("$['payload']['odd key']", &doc), Some(json!(1)));
        assert_eq!(found("$.payload.nope", &doc), None);
        assert_eq!(found("$.payload.id.deeper", &doc), None);
        assert!(JsonPath::parse("$.payload.tags[0]").unwrap().is_singular());
    }

    #[test]
    fn a_path_that_can_select_several_values_yields_their_list() {
        let doc = json!({"payload": {"items": [{"sku": "a"}, {"sku": "b"}]}});
        assert_eq!(
            found("$.payload.items[*].sku", &doc),
            Some(json!(["a", "b"]))
        );
        assert_eq!(found("$..sku", &doc), Some(json!(["a", "b"])));
        // One match is a list of one; none is nothing (the path is missing).
        assert_eq!(
            found("$.payload.items[?@.sku == 'b'].sku", &doc),
            Some(json!(["b"]))
        );
        assert_eq!(found("$.payload.items[*].price", &doc), None);
        assert!(!JsonPath::parse("$..sku").unwrap().is_singular());
    }

    #[test]
    fn rejects_what_is_not_a_path() {
        assert!(JsonPath::parse("payload.id").is_err());
        assert!(JsonPath::parse("$.payload.").is_err());
        assert!(JsonPath::parse("$[").is_err());
    }

    #[test]
    fn a_path_searches_descendants_once_at_most() {
        assert!(JsonPath::parse("$..a").is_ok());
        assert!(JsonPath::parse("$.items[?@.name == '..x..']..price").is_ok());
        let err = JsonPath::parse("$..a..a..a..a").err().unwrap();
        assert_eq!(err.at, 4..6);
        assert!(err.reason.contains("once"));
        assert!(JsonPath::parse("$.payload[?@..a]..b").is_err());
    }

    #[test]
    fn knows_paths_that_never_match() {
        let never = |p: &str| JsonPath::parse(p).unwrap().never_matches().is_some();
        assert!(never("$.type.name"));
        assert!(never("$.id[0]"));
        assert!(never("$[0]"));
        assert!(!never("$.type"));
        assert!(!never("$.payload.type.name"));
    }
}
