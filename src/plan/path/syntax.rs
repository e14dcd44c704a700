//! The syntax tree of a JSONPath query (RFC 9535), well-typed by construction:
//! the parser builds a comparison only from values, a test only from logical
//! expressions, and each function call with the arguments its parameters take.

use regex::Regex;
use serde_json::Value;

/// `$` (absolute) or `@` (relative) followed by segments.
#[derive(Debug, Clone)]
pub struct Query {
    pub relative: bool,
    pub segments: Vec<Segment>,
}

impl Query {
    /// True when every segment is one name or one index, so that the query
    /// selects at most one node (RFC 9535, section 2.3.5.1).
    pub fn is_singular(&self) -> bool {
        self.segments.iter().all(|s| {
            !s.descendant && matches!(s.selectors[..], [Selector::Name(_) | Selector::Index(_)])
        })
    }
}

/// `[...]`, `.name` or `.*`, applied to a node's children; with `..`, to the
/// node and each of its descendants.
#[derive(Debug, Clone)]
pub struct Segment {
    pub descendant: bool,
    pub selectors: Vec<Selector>,
}

#[derive(Debug, Clone)]
pub enum Selector {
    Name(String),
    Wildcard,
    Index(i64),
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: Option<i64>,
    },
    Filter(Box<Logical>),
}

/// A filter's expression: what holds or not for the node `@` stands for.
#[derive(Debug, Clone)]
pub enum Logical {
    Or(Vec<Logical>),
    And(Vec<Logical>),
    Not(Box<Logical>),
    Compare(Box<Comparable>, Op, Box<Comparable>),
    /// A query used as a test: true when it selects any node.
    Exists(Query),
    /// `match` or `search`, the functions that yield a logical value.
    Match(Box<MatchCall>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Something that yields one value or none: what a comparison compares and
/// what a function's value parameter takes.
#[derive(Debug, Clone)]
pub enum Comparable {
    Literal(Value),
    /// A singular query.
    Query(Query),
    /// A function call that yields a value.
    Call(Box<ValueCall>),
}

/// A call of a function that yields a value (or nothing).
#[derive(Debug, Clone)]
pub enum ValueCall {
    /// The length of a string, array or object.
    Length(Comparable),
    /// How many nodes a query selects.
    Count(Query),
    /// The value of the one node a query selects.
    Value(Query),
}

impl ValueCall {
    pub fn name(&self) -> &'static str {
        match self {
            ValueCall::Length(_) => "length",
            ValueCall::Count(_) => "count",
            ValueCall::Value(_) => "value",
        }
    }
}

/// `match` (`whole`) or `search`: whether a string matches a regular
/// expression in full, or somewhere.
#[derive(Debug, Clone)]
pub struct MatchCall {
    pub whole: bool,
    pub text: Comparable,
    pub pattern: Pattern,
}

impl MatchCall {
    pub fn name(&self) -> &'static str {
        match self.whole {
            true => "match",
            false => "search",
        }
    }
}

/// The regular expression of `match` or `search`.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Written as a literal, and compiled once: `None` when it is not a
    /// string or not an I-Regexp, which matches nothing.
    Fixed(Option<Regex>),
    /// Read from the event each time.
    Read(Comparable),
}
