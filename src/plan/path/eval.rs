//! The evaluator: the nodes a query selects in a document, in the order
//! RFC 9535 gives them. A descendant segment visits the node and then its
//! descendants, each before its own children, and applies its selectors in
//! turn to each node it visits.

use super::element;
use super::iregexp;
use super::syntax::{Comparable, Logical, MatchCall, Op, Pattern, Query, Selector, ValueCall};
use crate::value::number::{self, Num};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// What `query` selects, `current` being the node `@` stands for.
pub fn select<'v>(query: &Query, current: &'v Value, root: &'v Value) -> Vec<&'v Value> {
    let mut nodes = vec![if query.relative { current } else { root }];
    for segment in &query.segments {
        let mut next = Vec::new();
        for node in nodes {
            match segment.descendant {
                false => apply(&segment.selectors, node, root, &mut next),
                true => descend(node, |d| apply(&segment.selectors, d, root, &mut next)),
            }
        }
        if next.is_empty() {
            return next;
        }
        nodes = next;
    }
    nodes
}

/// Visits `node` and its descendants, each before its children, without
/// recursion.
fn descend<'v>(node: &'v Value, mut visit: impl FnMut(&'v Value)) {
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        visit(node);
        match node {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(members) => stack.extend(members.values().rev()),
            _ => {}
        }
    }
}

fn apply<'v>(selectors: &[Selector], node: &'v Value, root: &'v Value, out: &mut Vec<&'v Value>) {
    for selector in selectors {
        match (selector, node) {
            (Selector::Name(name), Value::Object(members)) => out.extend(members.get(name)),
            (Selector::Wildcard, Value::Array(items)) => out.extend(items),
            (Selector::Wildcard, Value::Object(members)) => out.extend(members.values()),
            (Selector::Index(i), Value::Array(items)) => out.extend(element(items, *i)),
            (Selector::Slice { start, end, step }, Value::Array(items)) => {
                slice(items, *start, *end, step.unwrap_or(1), out);
            }
            (Selector::Filter(test), Value::Array(items)) => {
                out.extend(items.iter().filter(|item| holds(test, item, root)));
            }
            (Selector::Filter(test), Value::Object(members)) => {
                out.extend(members.values().filter(|member| holds(test, member, root)));
            }
            _ => {}
        }
    }
}

/// The elements `start:end:step` selects (RFC 9535, section 2.3.4.2.2).
fn slice<'v>(
    items: &'v [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: i64,
    out: &mut Vec<&'v Value>,
) {
    let len = items.len() as i64;
    let from_end = |i: i64| if i >= 0 { i } else { len + i };
    let mut push = |i: i64| out.extend(usize::try_from(i).ok().and_then(|i| items.get(i)));
    if step > 0 {
        let lower = from_end(start.unwrap_or(0)).clamp(0, len);
        let upper = from_end(end.unwrap_or(len)).clamp(0, len);
        let mut i = lower;
        while i < upper {
            push(i);
            i += step;
        }
    } else if step < 0 {
        let upper = from_end(start.unwrap_or(len - 1)).clamp(-1, len - 1);
        let lower = from_end(end.unwrap_or(-len - 1)).clamp(-1, len - 1);
        let mut i = upper;
        while lower < i {
            push(i);
            i += step;
        }
    }
}

/// Whether `test` holds for `current`.
fn holds(test: &Logical, current: &Value, root: &Value) -> bool {
    match test {
        Logical::Or(tests) => tests.iter().any(|t| holds(t, current, root)),
        Logical::And(tests) => tests.iter().all(|t| holds(t, current, root)),
        Logical::Not(test) => !holds(test, current, root),
        Logical::Compare(left, op, right) => {
            let left = value(left, current, root);
            let right = value(right, current, root);
            compare(left.as_deref(), *op, right.as_deref())
        }
        Logical::Exists(query) => !select(query, current, root).is_empty(),
        Logical::Match(call) => matches(call, current, root),
    }
}

/// The value `c` yields, if any.
fn value<'a>(c: &'a Comparable, current: &'a Value, root: &'a Value) -> Option<Cow<'a, Value>> {
    match c {
        Comparable::Literal(literal) => Some(Cow::Borrowed(literal)),
        Comparable::Query(query) => select(query, current, root)
            .first()
            .map(|&v| Cow::Borrowed(v)),
        Comparable::Call(call) => match call.as_ref() {
            ValueCall::Length(arg) => {
                let length = match value(arg, current, root)?.as_ref() {
                    Value::String(s) => s.chars().count(),
                    Value::Array(items) => items.len(),
                    Value::Object(members) => members.len(),
                    _ => return None,
                };
                Some(Cow::Owned(length.into()))
            }
            ValueCall::Count(query) => Some(Cow::Owned(select(query, current, root).len().into())),
            ValueCall::Value(query) => match select(query, current, root)[..] {
                [one] => Some(Cow::Borrowed(one)),
                _ => None,
            },
        },
    }
}

/// `match` or `search`: false unless both the text and the pattern are
/// strings, and the pattern an I-Regexp.
fn matches(call: &MatchCall, current: &Value, root: &Value) -> bool {
    let text = value(&call.text, current, root);
    let Some(Value::String(text)) = text.as_deref() else {
        return false;
    };
    match &call.pattern {
        Pattern::Fixed(regex) => regex.as_ref().is_some_and(|re| re.is_match(text)),
        Pattern::Read(pattern) => match value(pattern, current, root).as_deref() {
            Some(Value::String(pattern)) => {
                iregexp::compile(pattern, call.whole).is_some_and(|re| re.is_match(text))
            }
            _ => false,
        },
    }
}

/// A comparison, where `None` is the nothing a query that selects no node
/// yields: it equals only itself, and is neither less nor more than anything.
fn compare(left: Option<&Value>, op: Op, right: Option<&Value>) -> bool {
    match op {
        Op::Eq => equal(left, right),
        Op::Ne => !equal(left, right),
        Op::Lt => less(left, right),
        Op::Gt => less(right, left),
        Op::Le => less(left, right) || equal(left, right),
        Op::Ge => less(right, left) || equal(left, right),
    }
}

fn equal(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    }
}

/// Numbers are ordered by their value, strings by their characters; nothing
/// else is ordered.
fn less(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => number::compare(num(a), num(b)).is_lt(),
        (Some(Value::String(a)), Some(Value::String(b))) => a < b,
        _ => false,
    }
}

/// Equality of JSON values, numbers compared by value (`1 == 1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => number::compare(num(a), num(b)).is_eq(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, a)| b.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

fn num(n: &Number) -> Num<'_> {
    number::read(n.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use serde_json::json;

    /// What `path` selects in `doc`.
    fn selects(path: &str, doc: &Value) -> Value {
        let (query, _) = parse(path).unwrap();
        Value::Array(select(&query, doc, doc).into_iter().cloned().collect())
    }

    #[test]
    fn a_descendant_segment_applies_its_selectors_to_each_node_in_turn() {
        let doc = json!({"o": [{"a": 1, "d": 2}, {"a": 3, "d": 4}]});
        assert_eq!(selects("$..['a','d']", &doc), json!([1, 2, 3, 4]));
        assert_eq!(
            selects("$..[1,0]", &json!([[1, 2], [3, 4]])),
            json!([[3, 4], [1, 2], 2, 1, 4, 3])
        );
        assert_eq!(selects("$..*", &json!([[1], 2])), json!([[1], 2, 1]));
    }

    #[test]
    fn filters_nest_and_compare_numbers_by_value() {
        let doc = json!([[0, 1], [0, 2], 3, {"a": 1.0}, {"a": 1e0}, {"a": "1"}]);
        assert_eq!(selects("$[?@[?@>1]]", &doc), json!([[0, 2]]));
        assert_eq!(selects("$[?@.a==1]", &doc), json!([{"a": 1.0}, {"a": 1e0}]));
        assert_eq!(
            selects("$[?@.b==$.c]", &json!([{"a": 1}, {"b": null}])),
            json!([{"a": 1}])
        );
        let big: Value =
            serde_json::from_str(r#"[{"n": 18446744073709551617}, {"n": 1e19}]"#).unwrap();
        assert_eq!(
            selects("$[?@.n>18446744073709551616]", &big),
            json!([big[0]])
        );
    }

    #[test]
    fn slices_step_both_ways_and_stay_inside_the_array() {
        let doc = json!([0, 1, 2, 3, 4]);
        assert_eq!(selects("$[1:4:2]", &doc), json!([1, 3]));
        assert_eq!(selects("$[::-2]", &doc), json!([4, 2, 0]));
        assert_eq!(
            selects(
                "$[-9007199254740991:9007199254740991:9007199254740991]",
                &doc
            ),
            json!([0])
        );
        assert_eq!(
            selects("$[9007199254740991::-9007199254740991]", &doc),
            json!([4])
        );
        assert_eq!(selects("$[::0]", &doc), json!([]));
    }

    #[test]
    fn functions_yield_what_the_rfc_says() {
        let doc = json!([{"s": "é😀"}, {"s": [1, 2]}, {"s": 2}, {"s": "ab", "p": "a."}]);
        assert_eq!(
            selects("$[?length(@.s)==2]", &doc),
            json!([{"s": "é😀"}, {"s": [1, 2]}, {"s": "ab", "p": "a."}])
        );
        assert_eq!(
            selects("$[?count(@.*)==2]", &doc),
            json!([{"s": "ab", "p": "a."}])
        );
        assert_eq!(
            selects("$[?match(@.s, @.p)]", &doc),
            json!([{"s": "ab", "p": "a."}])
        );
        assert_eq!(selects("$[?search(@.s, '[')]", &doc), json!([]));
        assert_eq!(selects("$[?value(@..s)==2]", &doc), json!([{"s": 2}]));
    }

    #[test]
    fn the_deepest_filters_on_the_deepest_events_run_without_overflow() {
        let path = format!("${}{}", "[?@".repeat(64), "]".repeat(64));
        let mut doc = json!(1);
        for _ in 0..100 {
            doc = json!([doc]);
        }
        assert_eq!(selects(&path, &doc).as_array().unwrap().len(), 1);
    }
}
