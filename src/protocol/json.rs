//! JSON text in the style of Python's `json.dumps` with its defaults: `", "`
//! and `": "` separators, `ensure_ascii` escapes, and floats as `repr` prints them.

use crate::store::{Document, FieldValue};
use crate::value::event::Raw;
use crate::value::number;
use serde_json::{Number, Value};

pub fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => object(out, map),
    }
}

pub fn object<'v>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'v String, &'v Value)>) {
    document(
        out,
        fields
            .into_iter()
            .map(|(k, v)| (k.as_str(), FieldValue::Json(v))),
    );
}

/// A document field's value.
pub fn field(out: &mut Vec<u8>, v: FieldValue<'_>) {
    match v {
        FieldValue::Text(s) => string(out, s),
        FieldValue::Int(i) => crate::value::number::write(out, crate::value::number::Num::Int(i)),
        FieldValue::Float(f) => {
            crate::value::number::write(out, crate::value::number::Num::Float(f))
        }
        FieldValue::Json(v) => value(out, v),
    }
}

/// An object from its fields, in the order given.
pub fn document<'v>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'v str, FieldValue<'v>)>,
) {
    entries(out, fields, field);
}

/// `{"key": document, ...}`, in the order given.
pub fn documents<'d>(out: &mut Vec<u8>, docs: impl IntoIterator<Item = (&'d str, &'d Document)>) {
    entries(out, docs, |out, doc| document(out, doc.iter()));
}

/// `{"key": value, ...}`, each value written by `write`.
fn entries<'k, V>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = (&'k str, V)>,
    mut write: impl FnMut(&mut Vec<u8>, V),
) {
    out.push(b'{');
    for (i, (key, v)) in items.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        string(out, key);
        out.extend_from_slice(b": ");
        write(out, v);
    }
    out.push(b'}');
}

/// A value read from the input: strings written straight from their text.
pub fn raw(out: &mut Vec<u8>, v: &Raw<'_>) {
    match v {
        Raw::String(s) => string(out, s),
        Raw::Number(n) => crate::value::number::write_text(out, n),
        other => value(out, &other.to_value()),
    }
}

/// A JSON string, with everything outside printable ASCII escaped.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escapes: one pass without early exits tells.
    if bytes.iter().fold(true, |all, b| all & verbatim(*b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        if verbatim(bytes[i]) {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[plain..i]);
        let c = s[i..].chars().next().expect("i is at a character boundary");
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            crate::value::surrogate::MARK => {
                // A lone surrogate, or a real U+D7FF held as two marks (or
                // as one, in a name that no input held).
                let next = s[i + c.len_utf8()..].chars().next();
                let unit = match next.map(|n| (n, crate::value::surrogate::held(n))) {
                    Some((n, Some(unit))) => {
                        i += n.len_utf8();
                        unit
                    }
                    Some((crate::value::surrogate::MARK, None)) => {
                        i += c.len_utf8();
                        0xD7FF
                    }
                    _ => 0xD7FF,
                };
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
        i += c.len_utf8();
        plain = i;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// Printable ASCII other than the quote and the backslash goes as it is.
fn verbatim(b: u8) -> bool {
    (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
}

pub fn number(out: &mut Vec<u8>, n: &Number) {
    number::write(out, number::read(n.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::float::float;
    use serde_json::json;

    /// A JSON string read as any input is (lone surrogates held).
    fn read(text: &str) -> String {
        serde_json::from_str(&crate::value::surrogate::prepare(text)).unwrap()
    }

    /// A string as the protocol writes it.
    fn written(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
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
            r#""\ud7ff""#,
            r#""\ud7ff\ud800\ud7fe""#,
            r#""\\ud7ff""#,
        ] {
            assert_eq!(written(&read(text)), text.to_lowercase(), "{text}");
        }
        assert_eq!(written(&read("\"\u{10FFFF}\"")), r#""\udbff\udfff""#);
        assert_eq!(written(&read("\"\u{D7FF}\u{D7FF}\"")), r#""\ud7ff\ud7ff""#);
        assert_eq!(written(&read(r#""\uD800\uD7FF""#)), r#""\ud800\ud7ff""#);
        // A mark that no input made (a name from a configuration).
        assert_eq!(written("\u{D7FF}x"), r#""\ud7ffx""#);
        assert_eq!(written("\u{D7FF}"), r#""\ud7ff""#);
    }

    fn text(v: Value) -> String {
        let mut out = Vec::new();
        value(&mut out, &v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_print_in_full() {
        for n in [
            json!(0),
            json!(7),
            json!(-7),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1000),
        ] {
            assert_eq!(text(n.clone()), n.to_string());
        }
    }

    #[test]
    fn separators_and_nesting_follow_python() {
        assert_eq!(
            text(json!({"a": [1, "x", null, true], "b": {}})),
            r#"{"a": [1, "x", null, true], "b": {}}"#
        );
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        assert_eq!(
            text(json!("é \"q\" \\ \n\t\u{1}\u{7f}")),
            r#""\u00e9 \"q\" \\ \n\t\u0001\u007f""#
        );
        assert_eq!(text(json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(text(json!("plain / text")), r#""plain / text""#);
    }

    #[test]
    fn object_keys_sort_by_code_point_as_sort_keys_sorts_them() {
        // As `json.dumps(json.loads(text), sort_keys=True)` writes it.
        let text = r#"{"\ud83d\ude00": 1, "\uffff": 2, "\udfff": 3, "\ue000": 4, "\ud800x": 5,
            "\ud7ff": 6, "\ud800": 7, "\udbff\udfff": 8, "z": {"\ud801": 9, "\ud7ff\ud800": 10}}"#;
        let sorted = r#"{"z": {"\ud7ff\ud800": 10, "\ud801": 9}, "\ud7ff": 6, "\ud800": 7, "\ud800x": 5, "\udfff": 3, "\ue000": 4, "\uffff": 2, "\ud83d\ude00": 1, "\udbff\udfff": 8}"#;
        let value: Value = serde_json::from_str(&crate::value::surrogate::prepare(text)).unwrap();
        assert_eq!(self::text(value.clone()), sorted);
        let doc = crate::store::Document::from(value.as_object().unwrap().clone());
        let mut out = Vec::new();
        document(&mut out, doc.iter());
        assert_eq!(String::from_utf8(out).unwrap(), sorted);
    }

    #[test]
    fn floats_print_as_python_repr() {
        let f = |x: f64| {
            let mut out = Vec::new();
            float(&mut out, x);
            String::from_utf8(out).unwrap()
        };
        for (x, want) in [
            (1.0, "1.0"),
            (12.5, "12.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            // Halfway between two shortest forms: the even one, as Python.
            (1860080658555479.2, "1860080658555479.2"),
            (-1860080658555479.2, "-1860080658555479.2"),
            (9007199254740993.0, "9007199254740992.0"),
            (1e23, "1e+23"),
            (123e-20, "1.23e-18"),
        ] {
            assert_eq!(f(x), want, "{x:?}");
        }
    }
}
