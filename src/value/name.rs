//! Interned field names: each distinct name is stored once for the life of
//! the process, and documents hold a pointer to it instead of a copy.
//!
//! Field names come from configurations (and from documents a state file
//! restores, which those configurations wrote), so the set stays small.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A field name. Two names are equal exactly when they are the same text,
/// which, interned, is a pointer comparison.
/// One pointer wide: a document holds one per field.
#[derive(Clone, Copy)]
pub struct Name(&'static String);

fn names() -> &'static Mutex<HashMap<&'static str, &'static String>> {
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static String>>> = OnceLock::new();
    NAMES.get_or_init(Mutex::default)
}

impl Name {
    /// The interned copy of `text`.
    pub fn new(text: &str) -> Name {
        let mut names = names().lock().unwrap_or_else(|e| e.into_inner());
        match names.get(text) {
            Some(name) => Name(name),
            None => {
                let name: &'static String = Box::leak(Box::new(text.to_owned()));
                names.insert(name.as_str(), name);
                Name(name)
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// A number that orders names the same way for the life of the process
    /// (not alphabetically): an integer comparison, for sorted lists of names.
    pub fn rank(self) -> usize {
        std::ptr::from_ref::<String>(self.0) as usize
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Name {}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_intern_to_one_name() {
        let a = Name::new("total");
        let b = Name::new(&String::from("total"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Name::new("totals"));
        assert_eq!(std::mem::size_of::<Name>(), 8);
    }
}
