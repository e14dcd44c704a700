//! Strings with lone surrogates, held in Rust strings.
//!
//! JSON text may escape half of a UTF-16 surrogate pair on its own
//! (`"\ud800"`); Python reads it into a string and `json.dumps` writes it
//! back the same. A Rust string cannot hold one, so each is held as two
//! characters: [`MARK`] (U+D7FF, unassigned, the last character before the
//! surrogates) and a private-use character for the surrogate's value,
//! U+F0000 + (surrogate − 0xD800). A real U+D7FF is held as the mark twice,
//! so every string reads back as it was written. Only text in and out
//! ([`prepare`], and the protocol's JSON writer) knows of the mark.
//!
//! Held strings compare as Python compares the strings they hold, by code
//! point, byte for byte: a character below U+D7FF sorts before the mark,
//! one from U+E000 on after it, and after a mark the second mark of a real
//! U+D7FF sorts before the private-use characters, which rise with the
//! surrogate. So `str`'s order, a `BTreeMap`'s, SQLite's and PostgreSQL's
//! byte order all sort keys as `sorted()` and `json.dumps(sort_keys=True)`
//! do, lone surrogates between U+D7FF and U+E000.
//!
//! States written before this form held a surrogate after U+10FFFF, which
//! sorted it after every character; [`from_earlier`] rewrites that form when
//! such a state is opened, and [`earlier`] gives it back where a hash of it
//! must not change.

use std::borrow::Cow;

/// The first of the two characters that hold a lone surrogate, and both of
/// the two that hold itself.
pub const MARK: char = '\u{D7FF}';

/// [`MARK`] in UTF-8, for a look at raw text.
pub const MARK_UTF8: &[u8] = "\u{D7FF}".as_bytes();

/// Where the private-use characters that stand for surrogates start.
const BASE: u32 = 0xF0000;

/// The mark of the earlier form: U+10FFFF, itself held as two of it.
const EARLIER_MARK: char = '\u{10FFFF}';

/// The surrogate that the character after a [`MARK`] stands for: `Some` for
/// a surrogate, `None` for a second mark (a real U+D7FF).
pub fn held(after_mark: char) -> Option<u16> {
    let c = u32::from(after_mark);
    (BASE..BASE + 0x800)
        .contains(&c)
        .then(|| (c - BASE + 0xD800) as u16)
}

/// The character after a [`MARK`] that stands for the surrogate `unit`.
fn standing_for(unit: u16) -> char {
    char::from_u32(BASE + u32::from(unit) - 0xD800).expect("a private-use character")
}

/// The JSON text `text` with each lone surrogate escape and each U+D7FF
/// rewritten into the form held here, so that serde_json reads it; `text`
/// itself when it has neither.
pub fn prepare(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let needed = memchr::memchr2_iter(b'\\', 0xED, bytes).any(|i| match bytes[i] {
        b'\\' => bytes.get(i + 1) == Some(&b'u') && escapes_held(&bytes[i..]),
        _ => bytes[i..].starts_with(MARK_UTF8),
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
            // A pair, which serde_json reads.
            (0xD800..=0xDBFF, Some(_)) => {
                out.push_str(&rest[..12]);
                rest = &rest[12..];
                continue;
            }
            (0xD800..=0xDFFF, _) => {
                out.push(MARK);
                out.push(standing_for(unit));
            }
            (0xD7FF, _) => {
                out.push(MARK);
                out.push(MARK);
            }
            _ => out.push_str(&rest[..6]),
        }
        rest = &rest[6..];
    }
    Cow::Owned(out)
}

/// Whether `bytes` starts with `\u` and the four hex digits of a surrogate
/// or of U+D7FF.
fn escapes_held(bytes: &[u8]) -> bool {
    matches!(bytes.get(2), Some(b'd' | b'D'))
        && match bytes.get(3) {
            Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => true,
            Some(b'7') => bytes
                .get(4..6)
                .is_some_and(|ff| ff.eq_ignore_ascii_case(b"ff")),
            _ => false,
        }
}

/// The code unit of a `\uXXXX` escape at the start of `text`.
fn escape(text: &str) -> Option<u16> {
    let hex = text.strip_prefix("\\u")?.get(..4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// Text held in the earlier form (a surrogate after U+10FFFF, a real
/// U+10FFFF as two of it, U+D7FF as itself) in the form held now; `text`
/// itself when it holds neither U+10FFFF nor U+D7FF. A U+10FFFF followed by
/// anything else (text that never went through [`prepare`], such as a
/// name from a configuration) stays as it is.
pub fn from_earlier(text: &str) -> Cow<'_, str> {
    if !text.contains([EARLIER_MARK, MARK]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            MARK => {
                out.push(MARK);
                out.push(MARK);
            }
            EARLIER_MARK => match chars.peek().copied() {
                Some(EARLIER_MARK) => {
                    chars.next();
                    out.push(EARLIER_MARK);
                }
                Some(next) if held(next).is_some() => {
                    chars.next();
                    out.push(MARK);
                    out.push(next);
                }
                _ => out.push(EARLIER_MARK),
            },
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Held text in the earlier form (see [`from_earlier`], which this undoes);
/// `text` itself when it holds neither U+10FFFF nor U+D7FF.
pub fn earlier(text: &str) -> Cow<'_, str> {
    if !text.contains([EARLIER_MARK, MARK]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            EARLIER_MARK => {
                out.push(EARLIER_MARK);
                out.push(EARLIER_MARK);
            }
            MARK => match chars.peek().copied() {
                Some(MARK) => {
                    chars.next();
                    out.push(MARK);
                }
                Some(next) if held(next).is_some() => {
                    chars.next();
                    out.push(EARLIER_MARK);
                    out.push(next);
                }
                _ => out.push(MARK),
            },
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The code points a held string stands for, surrogates included: what
/// Python's `str` holds.
pub fn code_points(text: &str) -> impl Iterator<Item = u32> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        let c = chars.next()?;
        if c != MARK {
            return Some(u32::from(c));
        }
        match chars.peek().copied() {
            Some(MARK) => {
                chars.next();
                Some(u32::from(MARK))
            }
            Some(next) => match held(next) {
                Some(unit) => {
                    chars.next();
                    Some(u32::from(unit))
                }
                None => Some(u32::from(MARK)),
            },
            None => Some(u32::from(MARK)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(text: &str) -> String {
        serde_json::from_str(&prepare(text)).unwrap()
    }

    /// The held form of the string of these code points, read from its
    /// JSON text as any input is.
    fn hold(points: &[u32]) -> String {
        let mut text = String::from("\"");
        for &p in points {
            match char::from_u32(p) {
                Some(c) if c != '"' && c != '\\' && p >= 0x20 => text.push(c),
                _ => text.push_str(&format!("\\u{p:04x}")),
            }
        }
        text.push('"');
        read(&text)
    }

    #[test]
    fn text_without_them_is_read_as_it_is() {
        assert!(matches!(prepare(r#"{"a": "\u00e9\n"}"#), Cow::Borrowed(_)));
        assert!(matches!(
            prepare("\"\u{10FFFF}\u{D7FE}한\""),
            Cow::Borrowed(_)
        ));
        assert!(matches!(prepare(r#"{"a": "\ud83d\ude00"}"#), Cow::Owned(_)));
        assert!(matches!(prepare(r#""\uD7Ff""#), Cow::Owned(_)));
        assert_eq!(read(r#""\ud83d\ude00""#), "😀");
        assert_eq!(read(r#""\udbff\udfff""#), "\u{10FFFF}");
        assert_eq!(read(r#""\ud800""#).chars().count(), 2);
        assert_ne!(read(r#""\ud800""#), read(r#""\ud801""#));
        assert_ne!(read(r#""\ud800""#), read("\"\u{D7FF}\u{F0000}\""));
        assert_eq!(read("\"\u{D7FF}\""), read(r#""\ud7ff""#));
    }

    #[test]
    fn held_strings_sort_by_code_point_as_python_sorts_them() {
        // Each below the next, as Python's `sorted` puts them.
        let sorted: &[&[u32]] = &[
            &[],
            &[0],
            &[0x41],
            &[0x41, 0xD800],
            &[0x41, 0xE000],
            &[0xD7FE],
            &[0xD7FF],
            &[0xD7FF, 0],
            &[0xD7FF, 0xD7FF],
            &[0xD7FF, 0xD800],
            &[0xD7FF, 0x10FFFF],
            &[0xD800],
            &[0xD800, 0],
            &[0xD800, 0xD7FF],
            &[0xD800, 0xD800],
            &[0xD800, 0xD801],
            &[0xD800, 0xE000],
            &[0xDBFF],
            &[0xDC00],
            &[0xDFFF],
            &[0xDFFF, 0x10FFFF],
            &[0xE000],
            &[0xFEFF],
            &[0xFFFF],
            &[0x10000],
            &[0x1F600],
            &[0xF0000],
            &[0x10FFFF],
            &[0x10FFFF, 0xD800],
            &[0x10FFFF, 0x10FFFF],
        ];
        let held: Vec<String> = sorted.iter().map(|p| hold(p)).collect();
        for (i, a) in held.iter().enumerate() {
            assert_eq!(code_points(a).collect::<Vec<_>>(), sorted[i]);
            for (j, b) in held.iter().enumerate() {
                assert_eq!(
                    a.cmp(b),
                    i.cmp(&j),
                    "{:x?} against {:x?}",
                    sorted[i],
                    sorted[j]
                );
                assert_eq!(a.as_bytes().cmp(b.as_bytes()), i.cmp(&j));
            }
        }
    }

    #[test]
    fn the_earlier_form_converts_both_ways() {
        for (held, earlier_form) in [
            ("plain", "plain"),
            ("\u{D7FF}\u{F0000}", "\u{10FFFF}\u{F0000}"),
            ("a\u{D7FF}\u{F07FF}b", "a\u{10FFFF}\u{F07FF}b"),
            ("\u{D7FF}\u{D7FF}", "\u{D7FF}"),
            ("\u{10FFFF}", "\u{10FFFF}\u{10FFFF}"),
            (
                "\u{D7FF}\u{D7FF}\u{D7FF}\u{F0001}\u{10FFFF}",
                "\u{D7FF}\u{10FFFF}\u{F0001}\u{10FFFF}\u{10FFFF}",
            ),
        ] {
            assert_eq!(earlier(held), earlier_form);
            assert_eq!(from_earlier(earlier_form), held);
        }
        assert!(matches!(from_earlier("\u{10FFFE}é"), Cow::Borrowed(_)));
        // U+10FFFF that no input held (from a configuration) stays.
        assert_eq!(from_earlier("\u{10FFFF}x"), "\u{10FFFF}x");
    }

    /// Strings as Python holds them, as code points: mostly those about the
    /// surrogates, where the held form differs from the text.
    fn python_strings() -> impl Strategy<Value = Vec<u32>> {
        let point = prop_oneof![
            Just(0xD7FF),
            Just(0x10FFFF),
            0xD800..0xE000u32,
            0xD7F0..0xD800u32,
            0xE000..0x1_0000u32,
            0x1_0000..0x11_0000u32,
            0..0x80u32,
        ];
        prop::collection::vec(point, 0..6).prop_map(|mut points| {
            // A high surrogate before a low one reads as one character.
            points.dedup_by(|b, a| (0xD800..0xDC00).contains(a) && (0xDC00..0xE000).contains(b));
            points
        })
    }

    proptest! {
        #![proptest_config(crate::util::property::config(256))]

        #[test]
        fn held_strings_compare_as_their_code_points(a in python_strings(), b in python_strings()) {
            let (x, y) = (hold(&a), hold(&b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(code_points(&x).collect::<Vec<_>>(), a);
            let earlier_form = earlier(&x);
            prop_assert_eq!(from_earlier(&earlier_form), x.as_str());
        }
    }
}
