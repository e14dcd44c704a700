//! Text a state wrote before lone surrogates took their present held form
//! ([`crate::value::surrogate`]), rewritten when the state is opened: the
//! keys and JSON text of documents, event ids, event type names, and the
//! row counts and subscriptions that name types. Only text that holds
//! U+10FFFF or U+D7FF changes; each backend finds those rows, rewrites them
//! with these functions, and logs the new hashes of the ids and keys that
//! changed in the kept filter, which holds the old ones.

use super::filter;
use super::rows::Rows;
use crate::util::bloom;
use crate::value::surrogate::from_earlier;
use std::collections::HashMap;

/// The characters a text that changes holds: U+10FFFF, U+D7FF.
pub const MARKS: [char; 2] = ['\u{10FFFF}', '\u{D7FF}'];

/// The row counts (`rows` in the metadata), their type names rewritten;
/// `None` when nothing changes (or the text is not row counts, which
/// reading the state refuses).
pub fn rows(text: &str) -> Option<String> {
    let mut rows = Rows::from_json(text)?;
    let types = rows.types.as_mut()?;
    if !types.keys().any(|t| t.contains(MARKS)) {
        return None;
    }
    *types = std::mem::take(types)
        .into_iter()
        .map(|(name, n)| (from_earlier(&name).into_owned(), n))
        .collect();
    Some(rows.to_json())
}

/// The subscriptions (a list of type names, in the metadata), rewritten;
/// `None` when nothing changes.
pub fn subscriptions(text: &str) -> Option<String> {
    let names: Vec<String> = serde_json::from_str(text).ok()?;
    if !names.iter().any(|t| t.contains(MARKS)) {
        return None;
    }
    let names: Vec<String> = names
        .iter()
        .map(|name| from_earlier(name).into_owned())
        .collect();
    Some(serde_json::to_string(&names).expect("strings serialize"))
}

/// The filter hashes of the ids and keys whose text changed.
#[derive(Default)]
pub struct Hashes {
    hashes: Vec<u64>,
    domains: HashMap<String, Vec<u8>>,
}

impl Hashes {
    pub fn id(&mut self, id: &str) {
        self.hashes.push(filter::id_hash(id));
    }

    pub fn key(&mut self, model: &str, key: &str) {
        let domain = self
            .domains
            .entry(model.to_owned())
            .or_insert_with(|| filter::domain(model));
        self.hashes.push(filter::key_hash(domain, key));
    }

    /// What to append to the kept filter's log; `None` when nothing changed.
    pub fn log(&self) -> Option<Vec<u8>> {
        (!self.hashes.is_empty()).then(|| bloom::hashes_to_bytes(&self.hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_in_counts_and_subscriptions_are_rewritten() {
        let counts = r#"{"documents":{"m":2},"processed_events":3,"processed_types":{"A":1,"B\udbff\udfff\udb80\udc01":2}}"#;
        let rewritten = Rows::from_json(&rows(counts).unwrap()).unwrap();
        let types: Vec<&String> = rewritten.types.as_ref().unwrap().keys().collect();
        assert_eq!(types, ["A", "B\u{D7FF}\u{F0001}"]);
        assert_eq!(rewritten.documents["m"], 2);
        assert_eq!(rows(r#"{"documents":{},"processed_events":0}"#), None);
        assert_eq!(
            rows(r#"{"documents":{},"processed_events":1,"processed_types":{"A":1}}"#),
            None
        );
        assert_eq!(
            subscriptions(r#"["A","\udbff\udfff\udbff\udfff","\ud7ff"]"#).as_deref(),
            Some("[\"A\",\"\u{10FFFF}\",\"\u{D7FF}\u{D7FF}\"]")
        );
        assert_eq!(subscriptions(r#"["A"]"#), None);
    }

    #[test]
    fn the_hashes_are_the_filters() {
        let mut hashes = Hashes::default();
        assert_eq!(hashes.log(), None);
        hashes.id("e\u{D7FF}\u{F0000}");
        hashes.key("m", "k");
        let logged: Vec<u64> = bloom::hashes_from_bytes(&hashes.log().unwrap()).collect();
        assert_eq!(
            logged,
            [
                filter::id_hash("e\u{D7FF}\u{F0000}"),
                filter::key_hash(&filter::domain("m"), "k")
            ]
        );
    }
}
