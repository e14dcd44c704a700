//! Document keys, held inside the hash table's slot when short.
//!
//! Most keys are short ids (`order-123456`). Stored inline, a lookup compares
//! the key in the slot it already loaded instead of following a pointer to a
//! separate allocation, which in a large store is a cache miss per probe.

use std::fmt;

/// The longest key held inline, in bytes.
pub const INLINE: usize = 22;

#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    /// `len` bytes of text, the rest zero.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Key {
    pub fn new(text: &str) -> Key {
        match text.len() {
            len if len <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..len].copy_from_slice(text.as_bytes());
                Key::Inline {
                    len: len as u8,
                    bytes,
                }
            }
            _ => Key::Heap(text.into()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(text) => text.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Key::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("made from text"),
            Key::Heap(text) => text,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_inline_and_long_ones_are_not() {
        let short = "x".repeat(INLINE);
        let long = "x".repeat(INLINE + 1);
        assert!(matches!(Key::new(&short), Key::Inline { .. }));
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        for text in ["", "order-1", "ключ", short.as_str(), long.as_str()] {
            assert_eq!(Key::new(text).as_str(), text);
        }
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }
}
