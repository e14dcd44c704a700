//! Strings with lone surrogates, held in Rust strings.
//!
//! JSON text may escape half of a UTF-16 surrogate pair on its own
//! (`"\ud800"`); Python reads it into a string and `json.dumps` writes it
//! back the same. A Rust string cannot hold one, so each is held as two
//! characters: [`MARK`] (U+10FFFF, a noncharacter) and a private-use
//! character for the surrogate's value, U+F0000 + (surrogate − 0xD800). A
//! real U+10FFFF is held as the mark twice, so every string reads back as
//! it was written. Strings compare and hash as held; only text in and out
//! ([`prepare`], [`crate::protocol::json::string`]) knows of the mark.

use std::borrow::Cow;

/// The first of the two characters that hold a lone surrogate, and both of
/// the two that hold itself.
pub const MARK: char = '\u{10FFFF}';

/// Where the private-use characters that stand for surrogates start.
const BASE: u32 = 0xF0000;

/// The surrogate that the character after a [`MARK`] stands for: `Some` for
/// a surrogate, `None` for a second mark (a real U+10FFFF).
pub fn held(after_mark: char) -> Option<u16> {
    let c = u32::from(after_mark);
    (BASE..BASE + 0x800)
        .contains(&c)
        .then(|| (c - BASE + 0xD800) as u16)
}

/// The JSON text `text` with each lone surrogate escape and each U+10FFFF
/// rewritten into the form held here, so that serde_json reads it; `text`
/// itself when it has neither.
pub fn prepare(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let needed = memchr::memchr2_iter(b'\\', 0xF4, bytes).any(|i| {
        bytes[i] == 0xF4 || (bytes.get(i + 1) == Some(&b'u') && escapes_surrogate(&bytes[i..]))
    });
    if !needed {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == MARK {
            out.push(MARK);
            out.push(MARK);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c != '\\' {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let Some(unit) = escape(rest) else {
            // Any other escape, copied whole so that `\\` is not read as
            // the start of another.
            let end = rest[1..].chars().next().map_or(1, |n| 1 + n.len_utf8());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        };
        let low = escape(&rest[6..]).filter(|low| (0xDC00..0xE000).contains(low));
        match (unit, low) {
            (0xD800..=0xDBFF, Some(low)) => {
                let c = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                if c == u32::from(MARK) {
                    out.push(MARK);
                    out.push(MARK);
                } else {
                    out.push_str(&rest[..12]);
                }
                rest = &rest[12..];
            }
            (0xD800..=0xDFFF, _) => {
                out.push(MARK);
                out.push(char::from_u32(BASE + u32::from(unit) - 0xD800).expect("private use"));
                rest = &rest[6..];
            }
            _ => {
                out.push_str(&rest[..6]);
                rest = &rest[6..];
            }
        }
    }
    Cow::Owned(out)
}

/// Whether `bytes` starts with `\u` and a surrogate's four hex digits.
fn escapes_surrogate(bytes: &[u8]) -> bool {
    matches!(bytes.get(2), Some(b'd' | b'D'))
        && matches!(bytes.get(3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
}

/// The code unit of a `\uXXXX` escape at the start of `text`.
fn escape(text: &str) -> Option<u16> {
    let hex = text.strip_prefix("\\u")?.get(..4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> String {
        serde_json::from_str(&prepare(text)).unwrap()
    }

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        crate::protocol::json::string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lone_surrogates_read_and_write_back() {
        for text in [
            r#""\ud800""#,
            r#""a\udfffb""#,
            r#""\udc00\ud800""#,
            r#""\ud83d\ude00\ud83d""#,
            r#""\udbff\udfff""#,
            r#""\\ud800""#,
            r#""x\\\ud800""#,
        ] {
            assert_eq!(written(&read(text)), text.to_lowercase(), "{text}");
        }
        assert_eq!(written(&read("\"\u{10FFFF}\"")), r#""\udbff\udfff""#);
        assert_eq!(written(&read(r#""\uD800""#)), r#""\ud800""#);
    }

    #[test]
    fn text_without_them_is_read_as_it_is() {
        assert!(matches!(prepare(r#"{"a": "\u00e9\n"}"#), Cow::Borrowed(_)));
        assert!(matches!(prepare(r#"{"a": "\ud83d\ude00"}"#), Cow::Owned(_)));
        assert_eq!(read(r#""\ud83d\ude00""#), "😀");
        assert_eq!(read(r#""\ud800""#).chars().count(), 2);
        assert_ne!(read(r#""\ud800""#), read(r#""\ud801""#));
        assert_ne!(read(r#""\ud800""#), read("\"\u{10FFFF}\u{F0000}\""));
    }
}
