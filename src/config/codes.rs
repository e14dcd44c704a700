//! What each diagnostic code means, at more length than a message can:
//! `projector explain-code P0102` (or `validate --explain P0102`) prints it.

/// Every code: its title, then what it means and what to do.
pub const CODES: &[(&str, &str, &str)] = &[
    ("P0001", "invalid TOML",
     "The file is not valid TOML: a quote, bracket or `=` is missing or extra. Nothing else in the file is checked until it parses. The caret marks where the TOML reader stopped."),
    ("P0002", "unknown key",
     "A table holds a key the projector does not know, often a misspelling (`nme` for `name`). The hint lists the keys that table takes, and the closest one when there is one."),
    ("P0003", "unknown operation",
     "A binding (`[model.on.EventType]`) holds a key that is not an operation. The operations are put, merge, set_if_absent, increment, max, min, append, add_to_set, remove, unset and delete; words other tools use (`upsert`, `push`, `maximum`) are pointed to the projector's own."),
    ("P0004", "wrong type",
     "A key holds a TOML value of the wrong type, such as a string where a table is needed (`put = \"x\"` instead of `put = { field = \"$.payload.x\" }`)."),
    ("P0005", "missing key",
     "A table lacks a key it needs: every [[model]] has a `name`, every binding a document key (its own `key` or the model's), every [[tests]] entry a `name`."),
    ("P0006", "unknown word",
     "A key takes one of a few words and holds another: `missing` is skip, null or fail; `meta` is event_id, event_type or position."),
    ("P0007", "invalid JSONPath",
     "A string starting with `$` is not a valid JSONPath (RFC 9535); the caret marks where it goes wrong. Paths are rooted at the event: `$.payload.name`, `$.type`, `$.payload.items[0].sku`. Filters are typed: a comparison compares values (literals, singular queries, `length`, `count`, `value`), a test takes a query or `match`/`search`, so `[?length(@.name)]` and `[?length(@.*) > 1]` are refused. A path may search descendants (`..`) once: each search multiplies the work an event takes by its size, so `$..a..a` is refused."),
    ("P0008", "not a JSONPath",
     "A mapping's string does not start with `$`. Strings in mappings are JSONPaths into the event; a literal string is written as { value = \"text\" }, and a number or boolean may be written bare."),
    ("P0009", "path can select several values",
     "A document key, or the event id, must be one value, and this path has a wildcard, slice, filter or descendant. Use names and indexes only, e.g. \"$.payload.id\"."),
    ("P0010", "path can never match",
     "The path goes through something the event can never hold there, such as a field of `$.type`, which is a string. Every event with that binding would find nothing."),
    ("P0011", "read model declared twice",
     "Two [[model]] tables have the same name. Each read model is one store of documents; rename one, or merge their bindings."),
    ("P0012", "bad read model name",
     "A read model's name is empty or holds a control character. It is used in replies, in the state and on command lines."),
    ("P0013", "binding without an operation",
     "A binding names an event type and does nothing with it. Give it an operation, or remove it."),
    ("P0014", "delete with writes",
     "A binding both deletes the document and writes fields to it. Deleting stands alone: write the fields in another model, or drop `delete`."),
    ("P0015", "delete = false",
     "`delete = false` does nothing; remove it."),
    ("P0016", "field written twice",
     "One binding writes the same field with two operations (or twice in one). Which write wins would depend on the order of operations; write it once."),
    ("P0017", "no document key",
     "A binding has no `key` and its model has none: the projector cannot tell which document an event changes. Give the model a `key`, or the binding its own."),
    ("P0018", "increment needs a number",
     "`increment` adds a number to a field: its value is a number (n = 1) or a path to a number in the event. A string or other literal cannot be added."),
    ("P0019", "invalid regular expression",
     "The `pattern` of [event_id.derive] is not a valid regular expression; the message says why."),
    ("P0020", "template refers to a missing group",
     "The derive `template` uses a capture group ($1, ${name}) that the `pattern` does not have."),
    ("P0021", "invalid literal",
     "A literal cannot be used as written: an integer outside the 64-bit range TOML allows, or a float that JSON has no form for (nan, inf)."),
    ("P0022", "path and value together",
     "A mapping table has more than one of `path`, `value` and `meta`: it must take its value from exactly one."),
    ("P0023", "mapping without a source",
     "A mapping table has none of `path`, `value` and `meta`."),
    ("P0024", "missing on a literal",
     "`missing` says what to do when a path finds nothing; a literal `value` is never missing."),
    ("P0025", "the whole event as a key",
     "The path `$` selects the whole event, an object, where a string or number is needed (a document key, the event id)."),
    ("P0026", "condition with no test or several",
     "A condition is { path = \"$.payload.x\", <test> = ... } with exactly one test: exists, eq, ne, lt, le, gt, ge or in. For several, give `when` an array of conditions, which must all hold."),
    ("P0027", "invalid JSON",
     "A [[tests]] entry gives an event or document as JSON text, and the text is not valid JSON."),
    ("P0028", "expectation shape",
     "An `expect` entry of [[tests]] needs either `document = {...}` or `absent = true`."),
    ("P0029", "invalid key template",
     "A key template (\"{$.payload.tenant}/{$.payload.id}\") has an unclosed brace, an empty part, or a part that is not a singular path."),
    ("P0030", "overlapping fields",
     "One binding writes a field and a field inside it (`address` and `address.city`): the second write would land in the first's value."),
    ("P0031", "field type conflict",
     "Two bindings of one read model write the same field as different types (a number here, a list there). An operation on the field would then fail for some documents."),
    ("P0032", "test names an unknown read model",
     "A [[tests]] expectation names a read model the configuration does not declare, often after a rename. Tests do not stop the read models from being served; `validate` and `test` report them."),
    ("P0033", "max or min needs a number or a string",
     "`max` and `min` compare numbers by value and strings by their order: a literal of any other type (a list, a boolean, a table) cannot be compared."),
    ("P0034", "bad index",
     "An entry of a model's `indexes` names a document field to index in a PostgreSQL state: a field name, or a dotted path to a nested one (\"email\", \"address.city\"). It may not be empty, have an empty part (\"a..b\", \".a\") or be listed twice. In a SQLite state or in memory, indexes are not used."),
    ("P0100", "no read model",
     "The configuration declares no [[model]]: every event will be acknowledged and change nothing."),
    ("P0101", "read model never updated",
     "A read model has no binding: no event type changes it, and it stays empty."),
    ("P0102", "no read model reacts to an event type",
     "A [[tests]] event has a type that no binding names: it will be acknowledged and change nothing. Often a misspelt type: the hint names the bound type it is a slip away from, when there is one."),
    ("P0103", "key may be missing",
     "A binding's key path is read as optional elsewhere in the configuration (a `missing` policy or an `exists` test), so some events may lack it; those events will be refused by this binding unless it is `optional = true`."),
    ("P0104", "no sample of an event type",
     "`validate --samples LOG`: the log holds no event of a type a binding reacts to, so that binding's paths were not checked against real events. Add such an event to the samples, or check the type's spelling against the events the bus sends."),
    ("P0105", "a path no sample carries",
     "`validate --samples LOG`: a path a binding reads is in none of the sample events of its type, often a misspelt field (`$.payload.ammount`). The hint names the nearest path the samples do carry. Until it matches, the field is never written (or, for a key, every such event is refused)."),
    ("P0106", "a sample value the operation cannot use",
     "`validate --samples LOG`: a sample event gives a path a value that what it is read for cannot use, such as text where `increment` needs a number or an object as a document key. Events like it would be refused with error 22 or 12."),
    ("P0107", "an event type that looks misspelt",
     "A bound event type differs from another type the configuration names by a slip within one word (`UserCreatd` beside `UserCreated`: one edit in a short word, a few in a long one), and the other is named in more places (bindings and [[tests]] events counted), so it is taken as the one meant: its events never reach this binding. Taken as distinct types: names that differ by a whole word (`OrderCreated`, `OrderUpdated`), by two letters of a short word (`CartCreated`, `CartCleared`), in a word's first letter (`Flagged`, `Tagged`), by a plural (`ItemAdded`, `ItemsAdded`) or only in digits (`OrderPaid`, `OrderPaid2`), and near names written in as many places. The hint names the type meant."),
    ("P0108", "a condition compares values of different types",
     "`validate --samples LOG`: a condition compares a path that the samples show as one type of value (a number, say) with a literal of another (`ge = \"500\"`). Values of two types are never equal and have no order, so the condition never holds (or, for `ne`, always holds). The hint writes the literal as the type the samples hold (`ge = 500`) when it reads as one."),
];

/// The title and explanation of a code (case-insensitive), if it is one.
pub fn explain(code: &str) -> Option<(&'static str, &'static str)> {
    CODES
        .iter()
        .find(|(c, ..)| c.eq_ignore_ascii_case(code))
        .map(|(_, title, text)| (*title, *text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_a_diagnostic_can_have_is_explained() {
        let source = include_str!("diag.rs");
        let mut used: Vec<&str> = source
            .match_indices("=> \"P0")
            .map(|(at, _)| &source[at + 4..at + 9])
            .collect();
        used.sort_unstable();
        used.dedup();
        assert!(used.len() > 30, "{used:?}");
        for code in used {
            assert!(super::explain(code).is_some(), "{code} is not explained");
        }
        assert_eq!(
            super::explain("p0102").unwrap().0,
            "no read model reacts to an event type"
        );
        assert!(super::explain("P9999").is_none());
    }
}
