//! Text as PostgreSQL holds it. A `text` column cannot hold NUL, and
//! `jsonb` cannot hold a NUL character, a lone surrogate or a number that
//! is not finite, all of which a document may: keys, ids and types are
//! stored reversibly, and each document keeps its exact JSON text in
//! `body` beside a `jsonb` form for applications to query.

use crate::value::surrogate::{held, MARK, MARK_UTF8};
use std::borrow::Cow;

/// What a NUL character and U+0001 are held as in a column: U+0001 then
/// [`NUL`] or [`ONE`]. Columns sort (byte for byte, `COLLATE "C"`) as the
/// text they hold: a NUL before U+0001, both before anything else.
const ESCAPE: char = '\u{1}';
const NUL: char = '\u{1}';
const ONE: char = '\u{2}';

/// `text` as a `text` column holds it: a NUL and U+0001 after an
/// [`ESCAPE`].
pub fn to_column(text: &str) -> Cow<'_, str> {
    if !text.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '\0' => out.extend([ESCAPE, NUL]),
            ESCAPE => out.extend([ESCAPE, ONE]),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text a column holds, as it was before [`to_column`].
pub fn from_column(text: &str) -> Cow<'_, str> {
    if !text.contains(ESCAPE) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(NUL) => out.push('\0'),
            Some(ONE) | None => out.push(ESCAPE),
            Some(other) => out.extend([ESCAPE, other]),
        }
    }
    Cow::Owned(out)
}

/// The text a column of a state of format 2 or earlier holds, as it was
/// before it was written: a NUL was held as U+10FFFF U+F0800 (and the
/// text's lone surrogates are in their earlier form, see
/// [`crate::value::surrogate::from_earlier`]).
pub fn from_earlier_column(text: &str) -> Cow<'_, str> {
    let pair = "\u{10FFFF}\u{F0800}";
    match text.contains(pair) {
        false => Cow::Borrowed(text),
        true => Cow::Owned(text.replace(pair, "\0")),
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
/// no `Infinity` or `NaN`, inside them no `\u0000` and no [`MARK`].
fn jsonb_reads(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        match memchr::memchr3(b'"', b'I', b'N', &bytes[at..]) {
            None => return true,
            Some(i) if bytes[at + i] == b'"' => at += i + 1,
            Some(_) => return false,
        }
        loop {
            let Some(i) = memchr::memchr3(b'"', b'\\', MARK_UTF8[0], &bytes[at..]) else {
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
                _ if bytes[at..].starts_with(MARK_UTF8) => return false,
                _ => at += 1,
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
    fn columns_hold_nul_reversibly_and_sort_as_the_text() {
        let sorted = [
            "",
            "\0",
            "\0\0",
            "\0\u{1}",
            "\0\u{2}",
            "\u{1}",
            "\u{1}\0",
            "\u{1}\u{1}",
            "\u{2}",
            "a",
            "a\0",
            "a\u{1}",
            "ab",
            "\u{10FFFF}\u{F0800}",
        ];
        for (i, text) in sorted.iter().enumerate() {
            assert_eq!(from_column(&to_column(text)), *text);
            assert!(!to_column(text).contains('\0'));
            for (j, other) in sorted.iter().enumerate() {
                assert_eq!(to_column(text).cmp(&to_column(other)), i.cmp(&j));
            }
        }
        assert!(matches!(to_column("plain \u{10FFFF}"), Cow::Borrowed(_)));
    }

    #[test]
    fn columns_of_the_earlier_form_read_back() {
        for (earlier, text) in [
            ("plain", "plain"),
            ("nul\u{10FFFF}\u{F0800}key\u{10FFFF}\u{F0800}", "nul\0key\0"),
            ("\u{10FFFF}\u{F0001}\u{1}", "\u{10FFFF}\u{F0001}\u{1}"),
        ] {
            assert_eq!(from_earlier_column(earlier), text, "{earlier:?}");
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
            Some("{\"a\":\"\u{FFFD}|\u{D7FF}|\u{100000}\"}")
        );
        assert_eq!(jsonb_text("{\"a\":\"\u{10FFFF}\u{D7FE}한\"}"), None);
    }
}
