//! Diagnostics: every problem found in a configuration, as data with a place.
//!
//! Loading and compiling push [`Diagnostic`]s into one list instead of stopping
//! at the first problem; [`Diagnostic::render`] draws each one as
//! `file:line:col`, the source line and a caret, the way compilers do.

use crate::config::raw::Test;
use std::fmt::Write as _;

pub use super::span::{Span, Spanned};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// What is wrong. Each kind has a stable code and one message; the fields carry
/// the specifics so tests and tools can match on them.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The text is not valid TOML.
    Syntax { message: String },
    /// A key that this table does not take.
    UnknownKey {
        key: String,
        table: &'static str,
        expected: &'static [&'static str],
    },
    /// A binding names an operation that does not exist.
    UnknownOperation { name: String },
    /// A key holds a value of the wrong type.
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A required key is absent.
    MissingKey { key: &'static str, table: String },
    /// A string that must be one of a fixed set of words.
    UnknownWord {
        key: &'static str,
        word: String,
        expected: &'static [&'static str],
    },
    /// A JSONPath that does not parse.
    BadJsonPath { path: String, reason: String },
    /// A mapping string that is not a JSONPath.
    /// `numeric`: what the path selects must be a number.
    NotAPath { text: String, numeric: bool },
    /// A path that must select one value can select several.
    NotSingular { path: String, what: &'static str },
    /// A path that no event can ever satisfy.
    NeverMatches { path: String, reason: String },
    /// Two read models share a name.
    DuplicateModel { name: String, first_line: usize },
    /// A read model name that cannot be used.
    BadName { name: String, reason: &'static str },
    /// An entry of a model's `indexes` that names no field, or one named twice.
    BadIndex { index: String, reason: &'static str },
    /// A binding with no operation in it.
    EmptyBinding { event_type: String },
    /// `delete` together with operations that write.
    DeleteWithWrites { event_type: String },
    /// `delete = false`.
    DeleteFalse,
    /// One binding writes the same field twice.
    FieldWrittenTwice { field: String, first: &'static str },
    /// A binding without a document key, on the model or the binding.
    NoKey { model: String, event_type: String },
    /// `increment` by a literal that is not a number.
    NotANumber { field: String, found: &'static str },
    /// No sample of a bound event type in `validate --samples`.
    NoSamples { event_type: String },
    /// A path no sample of its event type carries.
    NeverInSamples {
        path: String,
        event_type: String,
        samples: usize,
        nearest: Option<String>,
    },
    /// A value in a sample that what the path is read for cannot use.
    SampleUnusable {
        path: String,
        what: &'static str,
        found: &'static str,
        line: usize,
    },
    /// A `max` or `min` literal that is neither a number nor a string.
    NotComparable {
        op: &'static str,
        field: String,
        found: &'static str,
    },
    /// A regular expression that does not compile.
    BadRegex { reason: String },
    /// A derivation template that names a capture group the pattern lacks.
    BadTemplate { group: String },
    /// A literal that has no JSON equivalent (NaN, infinity).
    BadLiteral { reason: &'static str },
    /// A field mapping with both `path` and `value`.
    PathAndValue { field: String },
    /// A field mapping with neither `path` nor `value`.
    NoSource { field: String },
    /// `missing` on a literal, which is never missing.
    MissingOnLiteral,
    /// A key or id path of `$`: the whole event, which is an object.
    WholeEvent { what: &'static str },
    /// A condition with no test, or with several.
    ConditionTests { found: usize },
    /// A string that must hold JSON and does not.
    BadJson { reason: String },
    /// An expectation with neither `document` nor `absent = true`, or both.
    ExpectationShape,
    /// A key template with an unclosed `{` or an empty `{}`.
    BadKeyTemplate { reason: &'static str },
    /// One binding writes a field and a field inside it.
    FieldOverlap { field: String, other: String },
    /// Two bindings of a model write one field as values of different types.
    TypeConflict {
        model: String,
        field: String,
        first: &'static str,
        first_line: usize,
        second: &'static str,
    },
    /// A test names a read model the configuration does not declare.
    UnknownTestModel { name: String },
    /// Warning: a test sends an event type no read model reacts to;
    /// `nearest`: the bound type it looks like a misspelling of.
    EventTypeUnused {
        event_type: String,
        nearest: Option<String>,
    },
    /// Warning: a bound event type one slip away from another that the
    /// configuration names in more places.
    EventTypeMisspelt {
        event_type: String,
        nearest: String,
        places: usize,
        nearest_places: usize,
    },
    /// Warning (`validate --samples`): a condition compares a path that the
    /// samples show as one type of value with a literal of another.
    ConditionTypes {
        test: &'static str,
        path: String,
        sampled: &'static str,
        literal: &'static str,
        /// The test with its literal written as the sampled type, when it can be.
        rewritten: Option<String>,
    },
    /// Warning: a required key that the configuration itself treats as optional elsewhere.
    KeyMayBeMissing {
        path: String,
        model: String,
        event_type: String,
    },
    /// Warning: the configuration declares no read model.
    NoModels,
    /// Warning: a read model reacts to no event type.
    ModelNeverUpdated { name: String },
}

impl Kind {
    /// The stable code of this kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            Kind::Syntax { .. } => "P0001",
            Kind::UnknownKey { .. } => "P0002",
            Kind::UnknownOperation { .. } => "P0003",
            Kind::WrongType { .. } => "P0004",
            Kind::MissingKey { .. } => "P0005",
            Kind::UnknownWord { .. } => "P0006",
            Kind::BadJsonPath { .. } => "P0007",
            Kind::NotAPath { .. } => "P0008",
            Kind::NotSingular { .. } => "P0009",
            Kind::NeverMatches { .. } => "P0010",
            Kind::DuplicateModel { .. } => "P0011",
            Kind::BadName { .. } => "P0012",
            Kind::BadIndex { .. } => "P0034",
            Kind::EmptyBinding { .. } => "P0013",
            Kind::DeleteWithWrites { .. } => "P0014",
            Kind::DeleteFalse => "P0015",
            Kind::FieldWrittenTwice { .. } => "P0016",
            Kind::NoKey { .. } => "P0017",
            Kind::NotANumber { .. } => "P0018",
            Kind::NotComparable { .. } => "P0033",
            Kind::BadRegex { .. } => "P0019",
            Kind::BadTemplate { .. } => "P0020",
            Kind::BadLiteral { .. } => "P0021",
            Kind::PathAndValue { .. } => "P0022",
            Kind::NoSource { .. } => "P0023",
            Kind::MissingOnLiteral => "P0024",
            Kind::WholeEvent { .. } => "P0025",
            Kind::ConditionTests { .. } => "P0026",
            Kind::BadJson { .. } => "P0027",
            Kind::ExpectationShape => "P0028",
            Kind::BadKeyTemplate { .. } => "P0029",
            Kind::FieldOverlap { .. } => "P0030",
            Kind::TypeConflict { .. } => "P0031",
            Kind::UnknownTestModel { .. } => "P0032",
            Kind::NoModels => "P0100",
            Kind::ModelNeverUpdated { .. } => "P0101",
            Kind::EventTypeUnused { .. } => "P0102",
            Kind::KeyMayBeMissing { .. } => "P0103",
            Kind::NoSamples { .. } => "P0104",
            Kind::NeverInSamples { .. } => "P0105",
            Kind::SampleUnusable { .. } => "P0106",
            Kind::EventTypeMisspelt { .. } => "P0107",
            Kind::ConditionTypes { .. } => "P0108",
        }
    }

    /// The one-line message: fixed text from [`FIXED_MESSAGES`], or the
    /// specifics of the kind written into a sentence.
    pub fn message(&self) -> String {
        if let Some(text) = by_code(FIXED_MESSAGES, self.code()) {
            return text.to_owned();
        }
        self.value_message()
            .or_else(|| self.binding_message())
            .or_else(|| self.check_message())
            .unwrap_or_else(|| unreachable!("no message for {}", self.code()))
    }

    /// Messages about keys, values and paths as the TOML writes them.
    fn value_message(&self) -> Option<String> {
        Some(match self {
            Kind::Syntax { message } => format!("invalid TOML: {message}"),
            Kind::UnknownKey { key, table, .. } => format!("unknown key `{key}` in {table}"),
            Kind::UnknownOperation { name } => format!("unknown operation `{name}`"),
            Kind::WrongType {
                key,
                expected,
                found,
            } => format!("`{key}` must be {expected}, found {found}"),
            Kind::MissingKey { key, table } => format!("{table} has no `{key}`"),
            Kind::UnknownWord { key, word, .. } => format!("unknown `{key}` value \"{word}\""),
            Kind::BadJsonPath { path, reason } => format!("invalid JSONPath `{path}`: {reason}"),
            Kind::NotAPath { text, .. } => format!("\"{text}\" is not a JSONPath"),
            Kind::NotSingular { path, what } => {
                format!("{what} path `{path}` can select more than one value")
            }
            Kind::NeverMatches { path, reason } => {
                format!("JSONPath `{path}` can never match: {reason}")
            }
            Kind::DuplicateModel { name, .. } => format!("read model `{name}` is declared twice"),
            Kind::BadName { name, reason } => format!("read model name \"{name}\" {reason}"),
            Kind::BadIndex { index, reason } => format!("index \"{index}\" {reason}"),
            Kind::BadRegex { reason } => format!("invalid regular expression: {reason}"),
            Kind::BadLiteral { reason } => format!("invalid literal: {reason}"),
            Kind::BadJson { reason } => format!("invalid JSON: {reason}"),
            Kind::BadKeyTemplate { reason } => format!("invalid key template: {reason}"),
            Kind::WholeEvent { what } => format!(
                "{what} path `$` selects the whole event, an object, never a string or number"
            ),
            _ => return None,
        })
    }

    /// Messages about what one binding or one model does.
    fn binding_message(&self) -> Option<String> {
        Some(match self {
            Kind::EmptyBinding { event_type } => {
                format!("the binding for `{event_type}` has no operation")
            }
            Kind::DeleteWithWrites { event_type } => {
                format!("the binding for `{event_type}` both deletes and writes the document")
            }
            Kind::FieldWrittenTwice { field, first } => {
                format!("field `{field}` is written twice in one binding (first by `{first}`)")
            }
            Kind::NoKey { model, event_type } => {
                format!("read model `{model}` has no document key for `{event_type}`")
            }
            Kind::NotANumber { field, found } => {
                format!("`increment` of `{field}` needs a number or a JSONPath, found {found}")
            }
            Kind::NotComparable { op, field, found } => format!(
                "`{op}` of `{field}` needs a number, a string or a JSONPath, found {found}"
            ),
            Kind::BadTemplate { group } => {
                format!(
                    "template refers to capture group `{group}`, which the pattern does not have"
                )
            }
            Kind::PathAndValue { field } => {
                format!("the mapping of `{field}` has more than one of `path`, `value` and `meta`")
            }
            Kind::NoSource { field } => {
                format!("the mapping of `{field}` has none of `path`, `value` and `meta`")
            }
            Kind::ConditionTests { found: 0 } => "the condition has no test".to_owned(),
            Kind::ConditionTests { found } => {
                format!("the condition has {found} tests; write one condition per test")
            }
            Kind::FieldOverlap { field, other } => {
                format!("field `{field}` is written together with `{other}`, which contains it")
            }
            Kind::TypeConflict {
                model,
                field,
                first,
                first_line,
                second,
            } => format!(
                "field `{field}` of read model `{model}` is written as {second} here and as {first} on line {first_line}"
            ),
            Kind::ModelNeverUpdated { name } => {
                format!("read model `{name}` reacts to no event type")
            }
            _ => return None,
        })
    }

    /// Messages from checking the configuration against its tests and samples.
    fn check_message(&self) -> Option<String> {
        Some(match self {
            Kind::UnknownTestModel { name } => {
                format!("the configuration declares no read model `{name}`")
            }
            Kind::EventTypeUnused { event_type, .. } => {
                format!("no read model reacts to `{event_type}`")
            }
            Kind::EventTypeMisspelt {
                event_type,
                nearest,
                ..
            } => format!("event type `{event_type}` looks like a misspelling of `{nearest}`"),
            Kind::ConditionTypes {
                test,
                path,
                sampled,
                literal,
                ..
            } => format!("`{test}` compares `{path}`, {sampled} in the samples, with {literal}"),
            Kind::KeyMayBeMissing {
                path,
                model,
                event_type,
            } => format!(
                "the key of `{model}` on `{event_type}`, {path}, may be missing: this configuration reads it as optional elsewhere, and an event without it will be refused"
            ),
            Kind::NoSamples { event_type } => {
                format!("the samples hold no `{event_type}` event: its bindings were not checked")
            }
            Kind::NeverInSamples {
                path,
                event_type,
                samples,
                ..
            } => format!(
                "`{path}` is in none of the {samples} `{event_type}` sample{}",
                if *samples == 1 { "" } else { "s" }
            ),
            Kind::SampleUnusable {
                path,
                what,
                found,
                line,
            } => format!("`{path}` holds {found} in the sample on line {line}, which {what} cannot use"),
            _ => return None,
        })
    }

    /// A hint printed under the caret, when there is one: fixed text from
    /// [`FIXED_HELP`], or one built from the specifics of the kind.
    pub fn help(&self) -> Option<String> {
        match self {
            Kind::UnknownKey { key, expected, .. } => Some(expected_one_of(key, expected)),
            Kind::WrongType { key, found, .. } if key == "remove" && *found == "a boolean" => Some(
                "`remove` takes elements out of lists; to remove the document, write `delete = true`"
                    .to_owned(),
            ),
            Kind::UnknownOperation { name } => Some(expected_one_of(name, OPERATIONS)),
            Kind::NeverInSamples {
                nearest: Some(nearest),
                ..
            } => Some(format!("did you mean `{nearest}`? the samples carry it")),
            Kind::NeverInSamples { nearest: None, .. } => Some(
                "no event would give this a value: the field stays as it is (or, for a key, the event is refused)".to_owned(),
            ),
            Kind::UnknownWord { word, expected, .. } => Some(expected_one_of(word, expected)),
            Kind::NotAPath { text, numeric } => Some(not_a_path_help(text, *numeric)),
            Kind::DuplicateModel { first_line, .. } => {
                Some(format!("first declared on line {first_line}"))
            }
            Kind::EmptyBinding { .. } => Some(expected_one_of("", OPERATIONS)),
            Kind::NoSource { field } => Some(format!(
                "write `{{ path = \"$.payload.x\" }}`, `{{ value = ... }}` or `{{ meta = \"event_id\" }}`; to write a field inside `{field}`, quote its dotted name: \"{field}.x\" = ..."
            )),
            Kind::ConditionTests { .. } => Some(format!(
                "a condition is {{ path = \"$.payload.x\", <test> = ... }} with one test of {}; give `when` an array for several",
                Test::WORDS.join(", ")
            )),
            Kind::EventTypeUnused { nearest, .. } => Some(format!(
                "{}its events will be acknowledged and change nothing",
                nearest
                    .as_ref()
                    .map_or(String::new(), |n| format!("did you mean `{n}`? "))
            )),
            Kind::EventTypeMisspelt {
                event_type,
                nearest,
                places,
                nearest_places,
            } => Some(format!(
                "did you mean `{nearest}`? the configuration names it in {}, and `{event_type}` in {}",
                places_text(*nearest_places),
                places_text(*places)
            )),
            Kind::ConditionTypes {
                test,
                sampled,
                literal,
                rewritten,
                ..
            } => Some(condition_types_help(test, sampled, literal, rewritten.as_deref())),
            _ => by_code(FIXED_HELP, self.code()).map(str::to_owned),
        }
    }
}

/// The text for a code in a table of fixed texts.
fn by_code(table: &[(&str, &'static str)], code: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, text)| *text)
}

/// Messages that carry no specifics, by code.
const FIXED_MESSAGES: &[(&str, &str)] = &[
    ("P0015", "`delete = false` does nothing"),
    ("P0024", "`missing` applies to a `path`, not to a `value`"),
    (
        "P0028",
        "an expectation needs either `document` or `absent = true`",
    ),
    ("P0100", "no read model is declared"),
];

/// Hints that carry no specifics, by code.
const FIXED_HELP: &[(&str, &str)] = &[
    ("P0009", "use a path of names and indexes only, e.g. \"$.payload.id\" or \"$.items[0]\""),
    ("P0014", "a binding either deletes the document or writes to it"),
    ("P0015", "write `delete = true`, or remove the line"),
    ("P0017", "set `key = \"$.payload.id\"` (or another JSONPath) on the model or on this binding"),
    ("P0020", "refer to groups as $1 or ${name}; write a literal dollar as $$"),
    (
        "P0022",
        "write `{ path = \"$.payload.x\" }` to copy from the event, `{ value = ... }` for a literal, or `{ meta = \"event_id\" }`",
    ),
    (
        "P0028",
        "{ model = \"m\", key = \"k\", document = { ... } }, or { model = \"m\", key = \"k\", absent = true }",
    ),
    ("P0029", "a template writes each path in braces: \"{$.payload.tenant}/{$.payload.id}\""),
    ("P0030", "write the inner field, or the whole object, not both"),
    ("P0031", "every binding of a model should write a field as the same type of value"),
    (
        "P0103",
        "add `optional = true` to skip this model for such events, or `missing = \"fail\"` where it is read",
    ),
    ("P0101", "add a binding such as [model.on.SomethingHappened]"),
];

/// The hint for a mapping string that is not a JSONPath: the path it was
/// probably meant to be, and how to write a literal instead.
fn not_a_path_help(text: &str, numeric: bool) -> String {
    let bare = text.trim_start_matches(['.', '@']);
    let rooted = ["payload", "type", "id"].iter().any(|f| {
        bare == *f || bare.starts_with(&format!("{f}.")) || bare.starts_with(&format!("{f}["))
    });
    let path = if rooted {
        format!("$.{bare}")
    } else {
        format!("$.payload.{bare}")
    };
    let literal = match numeric {
        true => "`increment` adds a number (as in n = 1) or the number a path selects, never text"
            .to_owned(),
        false => format!("write a literal string as {{ value = \"{text}\" }}"),
    };
    format!("a JSONPath starts with `$`, as in \"{path}\"; {literal}")
}

/// The hint for a condition whose literal has another type than the samples
/// show: how to fix it, and what the condition does as written.
fn condition_types_help(
    test: &str,
    sampled: &str,
    literal: &str,
    rewritten: Option<&str>,
) -> String {
    let fix = match rewritten {
        Some(test) => format!("write `{test}`"),
        None => format!("compare with {sampled}"),
    };
    let why = match test {
        "eq" | "in" => format!("never equals {sampled}, so the condition never holds"),
        "ne" => format!("never equals {sampled}, so the condition always holds"),
        _ => format!("has no order with {sampled}, so the condition never holds"),
    };
    format!("{fix}: {literal} {why}")
}

/// The keys a binding takes: three settings, then the operations.
pub const BINDING_KEYS: &[&str] = &[
    "key",
    "optional",
    "when",
    "delete",
    "put",
    "merge",
    "set_if_absent",
    "increment",
    "max",
    "min",
    "append",
    "add_to_set",
    "remove",
    "unset",
];

/// The operations a binding can hold, in the order they are applied.
pub const OPERATIONS: &[&str] = BINDING_KEYS.split_at(3).1;

/// Words from other tools that mean one of our operations.
fn synonym(word: &str) -> Option<&'static str> {
    Some(match word {
        "upsert" | "set" | "update" | "patch" => "merge",
        "insert" | "replace" | "create" => "put",
        "drop" | "destroy" => "delete",
        "inc" | "incr" | "add" | "sum" => "increment",
        "push" => "append",
        "pull" => "remove",
        "addToSet" | "add_unique" => "add_to_set",
        "setOnInsert" | "set_default" | "default" => "set_if_absent",
        "maximum" => "max",
        "minimum" => "min",
        "unset_fields" | "remove_fields" => "unset",
        // Condition tests.
        "neq" | "not_eq" | "not_equal" | "not" => "ne",
        "equals" | "equal" | "is" => "eq",
        "gte" => "ge",
        "lte" => "le",
        "greater" | "above" => "gt",
        "less" | "below" => "lt",
        "one_of" | "any_of" => "in",
        _ => return None,
    })
}

fn expected_one_of(found: &str, expected: &[&str]) -> String {
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    // A word other tools use for one of ours first, then a typo's nearest.
    let alias = synonym(found).filter(|word| expected.contains(word));
    match alias.or_else(|| did_you_mean(found, expected)) {
        Some(best) => format!("did you mean `{best}`? expected one of {list}"),
        None => format!("expected one of {list}"),
    }
}

fn places_text(n: usize) -> String {
    match n {
        1 => "1 place".to_owned(),
        n => format!("{n} places"),
    }
}

/// The closest candidate by edit distance, when it is close enough to be a typo.
pub fn did_you_mean<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if found.is_empty() {
        return None;
    }
    candidates
        .iter()
        .map(|c| (edit_distance(found, c), *c))
        .filter(|(d, c)| *d <= c.len().max(found.len()).div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The number of edits between two texts, in characters: insertions,
/// deletions, substitutions, and swaps of two neighbours (`Craeted`), which
/// count once, as a slip of the fingers does (Damerau–Levenshtein, each
/// character edited at most once).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: two rows back, the last one, this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let substitution = last[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            row[j] = substitution.min(last[j] + 1).min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    last[b.len()]
}

/// One problem, at one place.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub kind: Kind,
    /// Found in the configuration's `[[tests]]`: it concerns `validate` and
    /// `test`, and does not keep the read models from being served.
    pub in_tests: bool,
}

impl Diagnostic {
    pub fn error(span: Span, kind: Kind) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            kind,
            in_tests: false,
        }
    }

    pub fn warning(span: Span, kind: Kind) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            kind,
            in_tests: false,
        }
    }

    /// Marks diagnostics as found in `[[tests]]`.
    pub fn mark_in_tests(diags: &mut [Diagnostic]) {
        diags.iter_mut().for_each(|d| d.in_tests = true);
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Draws the diagnostic against the text it was found in:
    ///
    /// ```text
    /// projections.toml:12:1: error[P0003]: unknown operation `upsert`
    ///    |
    /// 12 | upsert = { name = "$.payload.name" }
    ///    | ^^^^^^ to upsert, use `merge`; expected one of `delete`, `put`, ...
    /// ```
    pub fn render(&self, file: &str, source: &SourceMap<'_>) -> String {
        self.render_styled(file, source, false)
    }

    /// [`Diagnostic::render`], in colour when `colour` is set (for a
    /// terminal): the severity and caret red or yellow, the gutter blue, the
    /// message bold.
    pub fn render_styled(&self, file: &str, source: &SourceMap<'_>, colour: bool) -> String {
        let paint = |code: &'static str| if colour { code } else { "" };
        let (severity, accent) = match self.severity {
            Severity::Error => ("error", paint("\x1b[1;31m")),
            Severity::Warning => ("warning", paint("\x1b[1;33m")),
        };
        let (bold, blue, reset) = (paint("\x1b[1m"), paint("\x1b[1;34m"), paint("\x1b[0m"));
        let text = source.text;
        let place = source.place(self.span.start);
        let mut out = format!(
            "{file}:{}:{}: {accent}{severity}[{}]{reset}{bold}: {}{reset}\n",
            place.line,
            place.column,
            self.kind.code(),
            self.kind.message()
        );
        // The caret stays on the shown line, even for a span at its line break.
        let caret_start =
            floor_char_boundary(text, self.span.start.min(place.line_end)).max(place.line_start);
        let caret_end = ceil_char_boundary(text, self.span.end.clamp(caret_start, place.line_end));
        let indent: String = text[place.line_start..caret_start]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let width = text[caret_start..caret_end].chars().count().max(1);
        let number = place.line.to_string();
        let gutter = " ".repeat(number.len());
        let _ = writeln!(out, "{blue}{gutter} |{reset}");
        let _ = writeln!(
            out,
            "{blue}{number} |{reset} {}",
            &text[place.line_start..place.line_end]
        );
        let _ = write!(
            out,
            "{blue}{gutter} |{reset} {indent}{accent}{}{reset}",
            "^".repeat(width)
        );
        if let Some(help) = self.kind.help() {
            let _ = write!(out, " {help}");
        }
        out.push('\n');
        out
    }
}

impl Diagnostic {
    /// The diagnostic as a JSON object, for editors and CI: code, severity,
    /// message, help, and the place (1-based line and column, byte span).
    pub fn to_json(&self, file: &str, source: &SourceMap<'_>) -> serde_json::Value {
        let start = source.place(self.span.start);
        let end = source.place(self.span.end.max(self.span.start));
        serde_json::json!({
            "file": file,
            "code": self.kind.code(),
            "severity": match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            "message": self.kind.message(),
            "help": self.kind.help(),
            "line": start.line,
            "column": start.column,
            "end_line": end.line,
            "end_column": end.column,
            "span": [self.span.start, self.span.end],
        })
    }
}

/// A text with the offsets of its lines, to turn byte offsets into places.
pub struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceMap { text, line_starts }
    }

    /// The line and column of a byte offset, and the bounds of its line
    /// (without the line break).
    pub fn place(&self, offset: usize) -> Place {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let index = self.line_starts.partition_point(|start| *start <= offset) - 1;
        let line_start = self.line_starts[index];
        let line_end = match self.line_starts.get(index + 1) {
            Some(next) => next - 1,
            None => self.text.len(),
        };
        let line_end = if self.text[line_start..line_end].ends_with('\r') {
            line_end - 1
        } else {
            line_end
        };
        Place {
            line: index + 1,
            column: self.text[line_start..offset].chars().count() + 1,
            line_start,
            line_end,
        }
    }
}

/// A line and column (both from 1, the column in characters) of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub line: usize,
    pub column: usize,
    pub line_start: usize,
    pub line_end: usize,
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_texts_name_each_code_once() {
        for table in [FIXED_MESSAGES, FIXED_HELP] {
            let mut codes: Vec<_> = table.iter().map(|(code, _)| *code).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), table.len());
        }
    }

    #[test]
    fn fixed_and_built_texts_come_from_their_kind() {
        assert_eq!(Kind::DeleteFalse.message(), "`delete = false` does nothing");
        assert_eq!(Kind::NoModels.message(), "no read model is declared");
        assert_eq!(
            Kind::ConditionTests { found: 0 }.message(),
            "the condition has no test"
        );
        let delete = Kind::DeleteFalse.help();
        assert_eq!(
            delete.as_deref(),
            Some("write `delete = true`, or remove the line")
        );
        assert_eq!(Kind::BadRegex { reason: "x".into() }.help(), None);
        let model = Kind::ModelNeverUpdated { name: "m".into() };
        assert_eq!(model.message(), "read model `m` reacts to no event type");
    }

    #[test]
    fn not_a_path_help_roots_a_bare_name_in_the_payload() {
        let help = not_a_path_help(".payload.n", true);
        assert!(help.starts_with("a JSONPath starts with `$`, as in \"$.payload.n\"; `increment`"));
        let help = not_a_path_help("name", false);
        assert!(help.contains("\"$.payload.name\"; write a literal string as { value = \"name\" }"));
    }

    #[test]
    fn condition_types_help_says_what_the_condition_does() {
        let help = condition_types_help("ne", "a number", "a string", Some("ne = 1"));
        assert_eq!(
            help,
            "write `ne = 1`: a string never equals a number, so the condition always holds"
        );
        let help = condition_types_help("gt", "a string", "a number", None);
        assert_eq!(help, "compare with a string: a number has no order with a string, so the condition never holds");
    }

    #[test]
    fn places_count_lines_and_characters_from_one() {
        let src = "a = 1\nbé = \"x\"\n";
        let map = SourceMap::new(src);
        assert_eq!(map.place(0).line, 1);
        let p = map.place(src.rfind('=').unwrap());
        assert_eq!((p.line, p.column), (2, 4));
        assert_eq!(map.place(src.len()).line, 3);
    }

    #[test]
    fn render_survives_spans_at_line_breaks_and_inside_characters() {
        let kind = || Kind::Syntax {
            message: "x".into(),
        };
        for (src, span) in [
            ("\r", 0..1),
            ("a\r", 1..2),
            ("a = \"x\r\nb=1\r\n", 7..8),
            ("k = \"$é\"", 7..8),
            ("", 0..0),
        ] {
            let map = SourceMap::new(src);
            let out = Diagnostic::error(span, kind()).render("f", &map);
            assert!(out.starts_with("f:"), "{out}");
        }
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("mrege", OPERATIONS), Some("merge"));
        assert_eq!(did_you_mean("incremnt", OPERATIONS), Some("increment"));
        assert_eq!(did_you_mean("replace", OPERATIONS), None);
        assert_eq!(did_you_mean("mreg", OPERATIONS), Some("merge"));
        assert_eq!(synonym("upsert"), Some("merge"));
    }

    #[test]
    fn a_swap_of_neighbours_is_one_edit() {
        let d = edit_distance;
        assert_eq!([d("", ""), d("abc", ""), d("", "ab")], [0, 3, 2]);
        assert_eq!([d("Created", "Craeted"), d("ab", "ba")], [1, 1]);
        assert_eq!([d("Created", "Creatd"), d("Created", "Updated")], [1, 3]);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ca", "abc"), 3);
    }

    #[test]
    fn render_draws_a_caret_under_the_span() {
        let src = "[[model]]\nnme = \"x\"\n";
        let d = Diagnostic::error(
            10..13,
            Kind::UnknownKey {
                key: "nme".into(),
                table: "[[model]]",
                expected: &["name", "key", "on"],
            },
        );
        assert_eq!(
            d.render("p.toml", &SourceMap::new(src)),
            "p.toml:2:1: error[P0002]: unknown key `nme` in [[model]]\n  |\n2 | nme = \"x\"\n  | ^^^ did you mean `name`? expected one of `name`, `key`, `on`\n"
        );
    }
}
