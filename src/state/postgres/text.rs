//! Text as PostgreSQL holds it. A `text` column cannot hold NUL, and
//! `jsonb` cannot hold a NUL character, a lone surrogate or a number that
//! is not finite, all of which a document may: keys, ids and types are
//! stored reversibly, and each document keeps its exact JSON text in
//! `body` beside a `jsonb` form for applications to query.

use crate::value::surrogate::{held, MARK};
use std::borrow::Cow;

/// What a NUL character is held as in a column, after a [`MARK`]: a
/// private-use character the held form of strings never puts there.
const NUL: char = '\u{F0800}';

/// `text` as a `text` column holds it: a NUL as [`MARK`] and [`NUL`].
pub fn to_column(text: &str) -> Cow<'_, str> {
    match text.contains('\0') {
        false => Cow::Borrowed(text),
        true => Cow::Owned(text.replace('\0', &format!("{MARK}{NUL}"))),
    }
}

/// The text a column holds, as it was before [`to_column`].
pub fn from_column(text: &str) -> Cow<'_, str> {
    let pair = format!("{MARK}{NUL}");
    match text.contains(&pair) {
        false => Cow::Borrowed(text),
        true => Cow::Owned(text.replace(&pair, "\0")),
    }
}

/// A document's JSON text as `jsonb` can read it, or `None` when it can
/// as it is (nearly always): NUL characters and lone surrogates become
/// U+FFFD, and `Infinity`, `-Infinity` and `NaN` become strings.
pub fn jsonb_text(text: &str) -> Option<String> {
    match jsonb_reads(text.as_bytes()) {
        true => None,
        false => Some(rewrite(text)),
    }
}

/// Whether `jsonb` reads the JSON text as it is: outside strings there is
/// no `Infinity` or `NaN`, inside them no `\u0000` and no character of
/// plane 16 (where [`MARK`] is).
fn jsonb_reads(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        match memchr::memchr3(b'"', b'I', b'N', &bytes[at..]) {
            None => return true,
            Some(i) if bytes[at + i] == b'"' => at += i + 1,
            Some(_) => return false,
        }
        loop {
            let Some(i) = memchr::memchr3(b'"', b'\\', 0xF4, &bytes[at..]) else {
                return true;
            };
            at += i;
            match bytes[at] {
                b'"' => {
                    at += 1;
                    break;
                }
                b'\\' if bytes[at + 1..].starts_with(b"u0000") => return false,
                b'\\' => at += 2,
                _ => return false,
            }
        }
    }
}

fn rewrite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        match (in_string, c) {
            (false, '"') | (true, '"') => {
                in_string = !in_string;
                out.push(c);
            }
            (false, 'I') => {
                let negative = out.ends_with('-');
                if negative {
                    out.pop();
                }
                out.push_str(if negative {
                    "\"-Infinity\""
                } else {
                    "\"Infinity\""
                });
                len = "Infinity".len();
            }
            (false, 'N') => {
                out.push_str("\"NaN\"");
                len = "NaN".len();
            }
            (true, '\\') if rest[1..].starts_with("u0000") => {
                out.push_str("\\ufffd");
                len = 6;
            }
            (true, '\\') => {
                let escaped = rest[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&rest[..1 + escaped]);
                len = 1 + escaped;
            }
            (true, MARK) => match rest[len..].chars().next() {
                Some(MARK) => {
                    out.push(MARK);
                    len *= 2;
                }
                Some(next) if held(next).is_some() => {
                    out.push('\u{FFFD}');
                    len += next.len_utf8();
                }
                _ => out.push(MARK),
            },
            (_, c) => out.push(c),
        }
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_hold_nul_reversibly() {
        for text in ["plain", "a\0b", "\0", "\u{10FFFF}\u{F0000}", ""] {
            assert_eq!(from_column(&to_column(text)), text);
            assert!(!to_column(text).contains('\0'));
        }
    }

    #[test]
    fn jsonb_gets_what_it_can_hold() {
        assert_eq!(
            jsonb_text(r#"{"a":"Name","n":1.5,"s":"x\"y\\u0000"}"#),
            None
        );
        assert_eq!(jsonb_text(r#"{"NaN":"Infinity"}"#), None);
        assert_eq!(
            jsonb_text(r#"{"a":Infinity,"b":-Infinity,"c":[NaN]}"#).as_deref(),
            Some(r#"{"a":"Infinity","b":"-Infinity","c":["NaN"]}"#)
        );
        assert_eq!(
            jsonb_text(r#"{"a":"x\u0000y"}"#).as_deref(),
            Some(r#"{"a":"x\ufffdy"}"#)
        );
        let held = format!("{{\"a\":\"{MARK}\u{F0000}|{MARK}{MARK}|\u{100000}\"}}");
        assert_eq!(
            jsonb_text(&held).as_deref(),
            Some("{\"a\":\"\u{FFFD}|\u{10FFFF}|\u{100000}\"}")
        );
    }
}
