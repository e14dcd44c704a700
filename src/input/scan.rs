//! A parser for the common line: an event message, as an envelope or a bare
//! body, whose strings need no unescaping.
//!
//! It reads bytes straight into an [`event::Raw`](crate::value::event::Raw) tree
//! with strings borrowed from the line. Whatever it does not handle here it
//! declines (`None`), and the line goes to the general path, which parses it
//! with serde_json and says what is wrong, if anything. It declines more
//! than serde_json rejects (escapes, `-0`, integers of 19 digits or more,
//! deep nesting, repeated envelope fields, bodies that are not objects) and
//! accepts nothing serde_json rejects, so where it answers the two agree.

use crate::value::event::Raw;

/// Nesting deeper than this is left to serde_json (whose limit is 128).
const MAX_DEPTH: u32 = 100;

/// The fields of an event message, from an envelope or a bare body.
#[derive(Default)]
struct Message<'a> {
    src: Option<&'a str>,
    dest: Option<&'a str>,
    /// `type`, when the line is a bare body.
    ty: Option<&'a str>,
    msg_id: Option<Raw<'a>>,
    event: Option<Raw<'a>>,
    body: Option<Body<'a>>,
}

/// An envelope's body.
struct Body<'a> {
    ty: &'a str,
    msg_id: Option<Raw<'a>>,
    event: Option<Raw<'a>>,
}

/// An event message, read: what the engine needs to apply and answer it.
pub struct EventMessage<'a> {
    pub msg_id: Option<Raw<'a>>,
    pub event: Raw<'a>,
    /// The envelope's `src` and `dest`, when the line is an envelope.
    pub src: Option<&'a str>,
    pub dest: Option<&'a str>,
    /// The whole line, as received.
    pub line: &'a str,
}

/// The line as an event message, or `None` when it is another message, or
/// one the general path must read.
pub fn event_message(text: &str) -> Option<EventMessage<'_>> {
    match message(text)? {
        Message {
            ty: Some("event"),
            event: Some(event),
            msg_id,
            ..
        } => Some(EventMessage {
            msg_id,
            event,
            src: None,
            dest: None,
            line: text,
        }),
        Message {
            ty: None,
            body:
                Some(Body {
                    ty: "event",
                    event: Some(event),
                    msg_id,
                }),
            src,
            dest,
            ..
        } => Some(EventMessage {
            msg_id,
            event,
            src,
            dest,
            line: text,
        }),
        _ => None,
    }
}

/// The line's fields, or `None` when the general path must read it. The
/// envelope and body are read field by field, not built as trees; only the
/// values kept are.
fn message(text: &str) -> Option<Message<'_>> {
    // The general path reads U+D7FF specially (see `crate::value::surrogate`):
    // one look at the whole line is cheaper than one in every string.
    let bytes = text.as_bytes();
    let mark = crate::value::surrogate::MARK_UTF8;
    if memchr::memchr_iter(mark[0], bytes).any(|i| bytes[i..].starts_with(mark)) {
        return None;
    }
    let mut parser = Parser::new(text);
    let mut message = Message::default();
    if parser.next()? != b'{' {
        return None;
    }
    let names = ["src", "dest", "type", "msg_id", "event", "body"];
    parser.named_fields(names, |parser, field| {
        match field {
            0 => message.src = parser.optional_str()?,
            1 => message.dest = parser.optional_str()?,
            2 => message.ty = parser.optional_str()?,
            3 => message.msg_id = parser.msg_id()?,
            4 => parser.optional(&mut message.event)?,
            _ => message.body = parser.body()?,
        }
        Some(())
    })?;
    parser.end()?;
    Some(message)
}

/// The whole text as one JSON value, or `None`.
#[cfg(test)]
fn document(text: &str) -> Option<Raw<'_>> {
    let mut parser = Parser::new(text);
    let value = parser.raw()?;
    parser.end()?;
    Some(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            bytes: text.as_bytes(),
            at: 0,
            depth: 0,
        }
    }

    /// Nothing but white space is left.
    fn end(&mut self) -> Option<()> {
        self.space();
        (self.at == self.text.len()).then_some(())
    }

    /// The next value, built.
    fn raw(&mut self) -> Option<Raw<'a>> {
        let mut value = Raw::Null;
        self.value(&mut value)?;
        Some(value)
    }

    /// The next value, read and dropped.
    fn skip(&mut self) -> Option<()> {
        self.raw().map(drop)
    }

    /// A field that may be null: `Some(None)` for null, `None` when it is
    /// neither null nor a string. Read without building a value: one built
    /// and returned is read back in wider loads than it was written with,
    /// which stalls.
    fn optional_str(&mut self) -> Option<Option<&'a str>> {
        match self.next()? {
            b'"' => Some(Some(self.string()?)),
            b'n' => {
                self.literal(b"ull", ())?;
                Some(None)
            }
            _ => None,
        }
    }

    /// A message's `msg_id` (`None` for null), read without building a
    /// JSON value: a number or a string borrows its text from the line.
    fn msg_id(&mut self) -> Option<Option<Raw<'a>>> {
        self.space();
        match self.bytes.get(self.at)? {
            b'0'..=b'9' | b'-' => {
                self.at += 1;
                return Some(Some(Raw::Number(self.number()?)));
            }
            b'"' => {
                self.at += 1;
                return Some(Some(Raw::String(self.string()?)));
            }
            _ => {}
        }
        match self.raw()? {
            Raw::Null => Some(None),
            value => Some(Some(value)),
        }
    }

    /// The next value into `out`, or `None` there when it is null.
    fn optional(&mut self, out: &mut Option<Raw<'a>>) -> Option<()> {
        let value = out.insert(Raw::Null);
        self.value(value)?;
        if let Raw::Null = value {
            *out = None;
        }
        Some(())
    }

    /// An envelope's body: null or an object.
    fn body(&mut self) -> Option<Option<Body<'a>>> {
        self.space();
        if self.bytes.get(self.at) != Some(&b'{') {
            return match self.raw()? {
                Raw::Null => Some(None),
                _ => None,
            };
        }
        self.at += 1;
        let (mut ty, mut msg_id, mut event) = (None, None, None);
        self.named_fields(["type", "msg_id", "event"], |parser, field| {
            match field {
                0 => ty = Some(parser.optional_str()??),
                1 => msg_id = parser.msg_id()?,
                _ => parser.optional(&mut event)?,
            }
            Some(())
        })?;
        Some(Some(Body {
            ty: ty?,
            msg_id,
            event,
        }))
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after white space, consumed.
    fn next(&mut self) -> Option<u8> {
        self.space();
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// Reads a value into `out`, which it is written straight into (an
    /// entry of the object or array being read): a value returned and then
    /// moved costs a copy, and a stall when the copy reads what was just
    /// written in other widths.
    fn value(&mut self, out: &mut Raw<'a>) -> Option<()> {
        *out = match self.next()? {
            b'"' => Raw::String(self.string()?),
            b'{' => return self.object(out),
            b'[' => return self.nested(|parser| parser.array(out)),
            b't' => self.literal(b"rue", Raw::Bool(true))?,
            b'f' => self.literal(b"alse", Raw::Bool(false))?,
            b'n' => self.literal(b"ull", Raw::Null)?,
            b'-' | b'0'..=b'9' => Raw::Number(self.number()?),
            _ => return None,
        };
        Some(())
    }

    /// `parse` one level deeper, within the nesting limit.
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let parsed = parse(self)?;
        self.depth -= 1;
        Some(parsed)
    }

    /// The rest of an object, after its `{`, built as one.
    fn object(&mut self, out: &mut Raw<'a>) -> Option<()> {
        *out = Raw::Object(Vec::with_capacity(4));
        let Raw::Object(entries) = out else {
            unreachable!("an object was just written")
        };
        self.fields(|parser, key| {
            // Not `push`, which builds the entry on the stack and copies it.
            entries.resize_with(entries.len() + 1, || (key, Raw::Null));
            let (_, value) = entries.last_mut().expect("just added");
            parser.value(value)
        })
    }

    /// The rest of an object, after its `{`: each field is handed to
    /// `field` after its key, to read the value that follows.
    fn fields(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.nested(|parser| {
            let mut b = parser.next()?;
            if b == b'}' {
                return Some(());
            }
            loop {
                if b != b'"' {
                    return None;
                }
                let key = parser.string()?;
                if parser.next()? != b':' {
                    return None;
                }
                field(parser, key)?;
                match parser.next()? {
                    b',' => b = parser.next()?,
                    b'}' => return Some(()),
                    _ => return None,
                }
            }
        })
    }

    /// The rest of an object, after its `{`, of which only the fields
    /// `names` are read: by `field`, given the name's place in `names`.
    /// Other fields are skipped; a repeated one declines the line.
    fn named_fields<const N: usize>(
        &mut self,
        names: [&str; N],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        let mut seen = [false; N];
        self.fields(|parser, key| {
            let Some(at) = names.iter().position(|name| *name == key) else {
                return parser.skip();
            };
            if std::mem::replace(&mut seen[at], true) {
                return None;
            }
            field(parser, at)
        })
    }

    /// The rest of an array, after its `[`.
    fn array(&mut self, out: &mut Raw<'a>) -> Option<()> {
        *out = Raw::Array(Vec::new());
        let Raw::Array(items) = out else {
            unreachable!("an array was just written")
        };
        self.space();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(());
        }
        loop {
            items.resize_with(items.len() + 1, || Raw::Null);
            self.value(items.last_mut().expect("just pushed"))?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The rest of a string, after its `"`: one without escapes or control
    /// characters, which JSON forbids unescaped.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = start + special(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so these are character boundaries.
        Some(&self.text[start..end])
    }

    fn literal<T>(&mut self, rest: &[u8], value: T) -> Option<T> {
        if !self.bytes[self.at..].starts_with(rest) {
            return None;
        }
        self.at += rest.len();
        Some(value)
    }

    /// The rest of a number, after its first character: its text, read
    /// for its meaning only where one is needed ([`crate::value::number`]).
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at - 1;
        let first = match self.bytes[start] {
            b'-' => self.digit()?,
            first => first,
        };
        if first != b'0' {
            self.digits();
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digit()?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.digit()?;
            self.digits();
        }
        Some(&self.text[start..self.at])
    }

    fn digit(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        b.is_ascii_digit().then_some(b)
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }
}

/// Where the first `"`, `\\` or control character of `bytes` is, looking
/// at eight bytes at a time.
fn special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it is zero (or below 0x20), and
        // possibly in higher bytes after one that is: the lowest is exact.
        let found = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | x.wrapping_sub(ONES * 0x20) & !x)
            & HIGH;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    let at = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(offset + at)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The value serde_json's path reads from `text`, when it parses.
    fn general(text: &str) -> Option<Value> {
        serde_json::from_str(text).ok()
    }

    /// The value the scanner reads from `text`, as a `Value`.
    fn scanned(text: &str) -> Option<Value> {
        document(text).map(|raw| raw.to_value())
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a": [1, -2, 2.5, true, false, null, {}, []], "b": {"c": "plain"}, "a": "last"}"#,
            " { \"n\" :\t0 , \"m\":[ ] }\r\n",
            "[0, 10, -10, 1e3, 1E-3, 2.50, -0.0, 0.1e+2, 123456789012345678]",
            "[18446744073709551615, -9223372036854775808, 1e308, 5e-324, 4.9e-325]",
            r#""h\u00e9llo" "#,
            "\"é and 日本\"",
            "-0",
        ] {
            let ours = scanned(text);
            if ours.is_some() {
                assert_eq!(ours, general(text), "{text}");
            }
        }
        assert!(scanned("[1, 2.5, {\"k\": \"é\"}]").is_some());
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        // Numbers of every shape, from a fixed pseudo-random sequence.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..20_000 {
            let mut text = String::new();
            if next(3) == 0 {
                text.push('-');
            }
            for _ in 0..=next(22) {
                text.push(char::from(b'0' + next(10) as u8));
            }
            if next(2) == 0 {
                text.push('.');
                for _ in 0..=next(20) {
                    text.push(char::from(b'0' + next(10) as u8));
                }
            }
            if next(3) == 0 {
                text.push_str(["e", "E", "e-", "e+"][next(4) as usize]);
                text.push_str(&next(400).to_string());
            }
            let ours = scanned(&text);
            let theirs = general(&text);
            assert!(
                ours.is_none() || ours == theirs,
                "{text}: {ours:?} {theirs:?}"
            );
            assert!(theirs.is_some() || ours.is_none(), "{text}");
        }
    }

    #[test]
    fn declines_all_that_serde_json_rejects() {
        for text in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[1e+]",
            "[-]",
            "[+1]",
            "[--1]",
            "[tru]",
            "[nul]",
            "[truex]",
            "\"unterminated",
            "\"tab\there\"",
            "[1] 2",
            "{\"a\":1}}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "[\"\\x\"]",
        ] {
            assert!(general(text).is_none(), "serde_json reads {text:?}");
            assert!(scanned(text).is_none(), "scanned {text:?}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(scanned(&deep).is_none());
        // Left to the general path, which reads it specially.
        assert!(message("{\"type\":\"event\",\"event\":{\"a\":\"\u{D7FF}\"}}").is_none());
        assert!(message("{\"type\":\"event\",\"event\":{\"a\":\"\u{D7FE}\u{10FFFF}\"}}").is_some());
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        for (text, at) in [
            ("abc\"", Some(3)),
            ("0123456789abcdef\"", Some(16)),
            ("01234567\\\"", Some(8)),
            ("ab\tc\"", Some(2)),
            ("éé日本語 é\"x", Some(16)),
            ("\u{7f}\u{80}\u{ff}é!#[]~\"", Some(12)),
            ("no end at all, really", None),
            ("a\u{10FFFF}b\"", Some(6)),
            ("abcdefgh\u{100000}\"", Some(12)),
        ] {
            assert_eq!(special(text.as_bytes()), at, "{text:?}");
        }
        for len in 0..40 {
            for b in [b'"', b'\\', 0, 0x1f] {
                let mut bytes = vec![b'x'; len];
                bytes.push(b);
                bytes.extend_from_slice(b"\"\\");
                assert_eq!(special(&bytes), Some(len));
            }
        }
    }

    #[test]
    fn picks_the_event_fields_of_a_bare_body_or_an_envelope() {
        let bare =
            message(r#"{"type":"event","msg_id":3,"event":{"id":"e1"},"extra":[1]}"#).unwrap();
        assert_eq!(
            (bare.ty, bare.msg_id),
            (Some("event"), Some(Raw::Number("3")))
        );
        assert!(bare.event.is_some() && bare.body.is_none());
        let wrapped =
            message(r#"{"src":"c1","dest":"n1","body":{"type":"event","msg_id":null,"event":{}}}"#)
                .unwrap();
        assert_eq!((wrapped.src, wrapped.dest), (Some("c1"), Some("n1")));
        let body = wrapped.body.unwrap();
        assert_eq!((body.ty, body.msg_id), ("event", None));
    }

    #[test]
    fn leaves_odd_messages_to_the_general_path() {
        for text in [
            r#"["event", 1]"#,
            r#"{"type":"event","type":"event"}"#,
            r#"{"src":1,"body":{"type":"event"}}"#,
            r#"{"body":["event", 1, {}]}"#,
            r#"{"body":{"msg_id":1}}"#,
            r#"{"body":{"type":null}}"#,
            r#"{"ty\u0070e":"event"}"#,
            r#"{"type":"event","event":{"id":"a\"b"}}"#,
        ] {
            assert!(message(text).is_none(), "{text}");
        }
    }

    /// White space as JSON allows it between tokens, mostly none.
    fn space() -> impl Strategy<Value = &'static str> {
        prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\t\r\n ")]
    }

    /// A number's text: what the scanner reads, what it leaves to
    /// serde_json (`-0`, 19 digits or more), and now and then what JSON
    /// does not allow.
    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => json_number_text(),
            1 => prop_oneof![
                Just("01"), Just("-01.5"), Just("00"), Just("1."), Just(".5"), Just("+1"),
                Just("1e"), Just("1e+"), Just("--1"), Just("-"), Just("0x1"), Just("1.e5"),
            ]
            .prop_map(str::to_owned),
        ]
    }

    fn json_number_text() -> impl Strategy<Value = String> {
        let digits = |n| prop::collection::vec(0..=9u8, n);
        let text = |d: Vec<u8>| d.iter().map(|d| char::from(b'0' + d)).collect::<String>();
        (
            any::<bool>(),
            (0..=9u8, digits(0..22)),
            prop::option::of(digits(1..20)),
            prop::option::of((prop_oneof!["e", "E", "e+", "e-", "E-"], 0u32..400)),
        )
            .prop_map(move |(negative, (first, rest), fraction, exp)| {
                let mut t = String::from(if negative { "-" } else { "" });
                t.push(char::from(b'0' + first));
                if first != 0 {
                    t.push_str(&text(rest));
                }
                if let Some(f) = fraction {
                    t.push('.');
                    t.push_str(&text(f));
                }
                if let Some((e, n)) = exp {
                    t.push_str(&format!("{e}{n}"));
                }
                t
            })
    }

    /// A string's text: plain, with escapes (which the scanner leaves to
    /// serde_json), raw characters of every plane, U+D7FF among them.
    fn string_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            20 => (0x20u8..0x7f)
                .prop_filter("no quote or backslash", |b| *b != b'"' && *b != b'\\')
                .prop_map(|b| char::from(b).to_string()),
            1 => prop_oneof![
                Just("\\n"), Just("\\\""), Just("\\\\"), Just("\\u00e9"), Just("\\ud83d\\ude00"),
                Just("é"), Just("日本"), Just("😀"), Just("\u{D7FF}"), Just("\u{10FFFF}"),
            ]
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|p| format!("\"{}\"", p.concat()))
    }

    /// A JSON value's text, nested.
    fn value_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            number_text(),
            string_text(),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..5), space())
                    .prop_map(|(items, s)| format!("[{s}{}{s}]", items.join(&format!("{s},")))),
                (prop::collection::vec((string_text(), inner), 0..5), space()).prop_map(
                    |(fields, s)| {
                        let fields: Vec<String> =
                            fields.iter().map(|(k, v)| format!("{k}{s}:{v}")).collect();
                        format!("{{{s}{}}}", fields.join(&format!(",{s}")))
                    }
                ),
            ]
        })
    }

    /// An object's text from its fields, in an order of their own.
    fn object(fields: Vec<(String, String)>) -> impl Strategy<Value = String> {
        (Just(fields).prop_shuffle(), space()).prop_map(|(fields, s)| {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\"{s}:{s}{v}"))
                .collect();
            format!("{{{s}{}{s}}}", fields.join(","))
        })
    }

    /// An event message, as a bare body or in an envelope, with fields in
    /// any order and now and then one more.
    pub(crate) fn message_text() -> impl Strategy<Value = String> {
        let event = (
            string_text(),
            prop_oneof![string_text(), number_text()],
            value_text(),
        )
            .prop_flat_map(|(ty, id, payload)| {
                object(vec![
                    ("type".into(), ty),
                    ("id".into(), id),
                    ("payload".into(), payload),
                ])
            });
        let msg_id = prop_oneof![number_text(), string_text(), Just("null".to_owned())];
        (event, msg_id, prop::option::of(value_text()), any::<bool>()).prop_flat_map(
            |(event, msg_id, extra, envelope)| {
                let mut body = vec![
                    ("type".to_owned(), "\"event\"".to_owned()),
                    ("msg_id".to_owned(), msg_id),
                    ("event".to_owned(), event),
                ];
                if let Some(extra) = extra {
                    body.push(("extra".to_owned(), extra));
                }
                object(body).prop_flat_map(move |body| match envelope {
                    false => Just(body).boxed(),
                    true => (string_text(), string_text())
                        .prop_flat_map(move |(src, dest)| {
                            object(vec![
                                ("src".into(), src),
                                ("dest".into(), dest),
                                ("body".into(), body.clone()),
                            ])
                        })
                        .boxed(),
                })
            },
        )
    }

    /// One change to a line: a few characters taken out, put in, or
    /// replaced, at a place given as a fraction of its length.
    #[derive(Debug, Clone)]
    enum Edit {
        Remove(prop::sample::Index, usize),
        Insert(prop::sample::Index, String),
        Replace(prop::sample::Index, String),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let text = prop_oneof![
            prop_oneof![
                Just("\""),
                Just(","),
                Just(":"),
                Just("{"),
                Just("}"),
                Just("["),
                Just("]"),
                Just("\\"),
                Just("-"),
                Just("0"),
                Just("e"),
                Just("."),
                Just(" "),
                Just("null"),
                Just("\"event\""),
                Just("\"type\":"),
                Just("\u{D7FF}"),
                Just("\u{1}"),
            ]
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        prop_oneof![
            (any::<prop::sample::Index>(), 1..4usize).prop_map(|(at, n)| Edit::Remove(at, n)),
            (any::<prop::sample::Index>(), text.clone()).prop_map(|(at, t)| Edit::Insert(at, t)),
            (any::<prop::sample::Index>(), text).prop_map(|(at, t)| Edit::Replace(at, t)),
        ]
    }

    fn edited(line: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = line.chars().collect();
        for edit in edits {
            let at = |i: &prop::sample::Index| i.index(chars.len() + 1);
            match edit {
                Edit::Remove(i, n) => {
                    let at = at(i).min(chars.len());
                    let end = (at + n).min(chars.len());
                    chars.drain(at..end);
                }
                Edit::Insert(i, t) => {
                    let at = at(i);
                    chars.splice(at..at, t.chars());
                }
                Edit::Replace(i, t) => {
                    let at = at(i).min(chars.len().saturating_sub(1));
                    let end = (at + 1).min(chars.len());
                    chars.splice(at..end, t.chars());
                }
            }
        }
        chars.into_iter().collect()
    }

    /// What the scanner reads from `line`, if anything, is what serde_json
    /// reads: the line parses, and the message's event, `msg_id`, `src`
    /// and `dest` are its fields (of the body in an envelope).
    fn agrees(line: &str) -> Result<(), TestCaseError> {
        if let Some(value) = scanned(line) {
            prop_assert_eq!(Some(value), general(line));
        }
        let Some(message) = event_message(line) else {
            return Ok(());
        };
        let value = general(line);
        prop_assert!(value.is_some(), "serde_json does not read {:?}", line);
        let value = value.unwrap();
        let field = |v: &Value, name: &str| v.get(name).filter(|f| !f.is_null()).cloned();
        let bare =
            value.get("type") == Some(&Value::from("event")) && field(&value, "event").is_some();
        let body = if bare { &value } else { &value["body"] };
        prop_assert_eq!(Some(message.event.to_value()), field(body, "event"));
        prop_assert_eq!(message.msg_id.map(|m| m.to_value()), field(body, "msg_id"));
        let (src, dest) = match bare {
            true => (None, None),
            false => (field(&value, "src"), field(&value, "dest")),
        };
        prop_assert_eq!(message.src.map(Value::from), src);
        prop_assert_eq!(message.dest.map(Value::from), dest);
        prop_assert_eq!(message.line, line);
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::util::property::config(256))]

        #[test]
        fn any_text_is_read_as_serde_json_reads_it_or_declined(line in any::<String>()) {
            agrees(&line)?;
        }

        #[test]
        fn any_bytes_are_read_as_serde_json_reads_them_or_declined(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            agrees(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn event_messages_are_read_as_serde_json_reads_them(line in message_text()) {
            agrees(&line)?;
        }

    }

    proptest! {
        // Most changed lines are declined: more cases, for enough read.
        #![proptest_config(crate::util::property::config(1024))]

        #[test]
        fn event_messages_changed_here_and_there_are_read_as_serde_json_reads_them_or_declined(
            line in message_text(),
            edits in prop::collection::vec(edit(), 1..4),
        ) {
            agrees(&edited(&line, &edits))?;
        }
    }
}
