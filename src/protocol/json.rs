//! JSON text in the style of Python's `json.dumps` with its defaults: `", "`
//! and `": "` separators, `ensure_ascii` escapes, and floats as `repr` prints them.

use crate::event::Raw;
use crate::store::{Document, FieldValue};
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
        FieldValue::Int(i) => crate::number::write(out, crate::number::Num::Int(i)),
        FieldValue::Float(f) => crate::number::write(out, crate::number::Num::Float(f)),
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
        Raw::Number(n) => crate::number::write_text(out, n),
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
            crate::surrogate::MARK => {
                // A lone surrogate, or a real U+10FFFF held as two marks.
                let next = s[i + c.len_utf8()..].chars().next();
                match next.map(|n| (n, crate::surrogate::held(n))) {
                    Some((n, Some(unit))) => {
                        out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                        i += n.len_utf8();
                    }
                    Some((crate::surrogate::MARK, None)) => {
                        out.extend_from_slice(b"\\udbff\\udfff");
                        i += c.len_utf8();
                    }
                    _ => out.extend_from_slice(b"\\udbff\\udfff"),
                }
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
    crate::number::write(out, crate::number::read(n.as_str()));
}

/// An unsigned integer in decimal digits.
pub fn unsigned(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A finite float as Python's `repr`: the shortest digits that read back the
/// same, in positional form for exponents from -4 to 15, else as `1.5e+16`.
/// Where two shortest forms are equally near the value, the one ending in
/// an even digit, as Python picks.
pub fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_sign_negative() {
        out.push(b'-');
    }
    let (digits, len, exp) = shortest(f.abs());
    let digits = &digits[..len];
    let exp = exp as usize;
    // `exp` is the power of ten of the first digit, offset by 400.
    if !(396..416).contains(&exp) {
        out.push(digits[0]);
        if len > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 400 { b'-' } else { b'+' });
        let power = exp.abs_diff(400);
        if power < 10 {
            out.push(b'0');
        }
        unsigned(out, power as u64);
    } else if exp >= 400 {
        let whole = exp - 400 + 1;
        if len > whole {
            out.extend_from_slice(&digits[..whole]);
            out.push(b'.');
            out.extend_from_slice(&digits[whole..]);
        } else {
            out.extend_from_slice(digits);
            out.resize(out.len() + whole - len, b'0');
            out.extend_from_slice(b".0");
        }
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (400 - exp - 1), b'0');
        out.extend_from_slice(digits);
    }
}

/// The shortest decimal digits of `f` (positive, finite) that read back as
/// `f`, their count, and the power of ten of the first, plus 400.
fn shortest(f: f64) -> ([u8; 17], usize, u32) {
    let (mut digits, len, exp) = scientific(format_args!("{f:e}"));
    // At a tie the shortest form may end in an odd digit where Python's
    // ends in the even one below it; the correctly rounded form of the same
    // length (ties to even) is Python's when it reads back as `f`.
    if len > 0 && digits[len - 1] % 2 == 1 && below_reads_back(&digits[..len], exp, f) {
        let (even, even_len, even_exp) = scientific(format_args!("{f:.*e}", len - 1));
        if even_len == len && reads_back(&even[..len], even_exp, f) {
            digits = even;
            return (digits, len, even_exp);
        }
    }
    (digits, len, exp)
}

/// Whether `digits` with its last digit one less read back as `f`.
fn below_reads_back(digits: &[u8], exp: u32, f: f64) -> bool {
    let mut below = [0u8; 17];
    below[..digits.len()].copy_from_slice(digits);
    below[digits.len() - 1] -= 1;
    reads_back(&below[..digits.len()], exp, f)
}

/// Whether the number of `digits` (first at power `exp` - 400) is `f`.
fn reads_back(digits: &[u8], exp: u32, f: f64) -> bool {
    let mut text = Vec::with_capacity(digits.len() + 8);
    text.push(digits[0]);
    text.push(b'.');
    text.extend_from_slice(&digits[1..]);
    text.push(b'0');
    text.push(b'e');
    if exp < 400 {
        text.push(b'-');
    }
    unsigned(&mut text, u64::from(exp.abs_diff(400)));
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        == Some(f)
}

/// The digits and exponent of `{:e}` output (`1.25e-7`): the digits without
/// the point, their count, and the exponent plus 400.
fn scientific(args: std::fmt::Arguments<'_>) -> ([u8; 17], usize, u32) {
    use std::io::Write;
    let mut buf = [0u8; 32];
    let written = {
        let mut w = &mut buf[..];
        w.write_fmt(args).expect("a double's digits fit");
        32 - w.len()
    };
    let text = &buf[..written];
    let e = text.iter().position(|b| *b == b'e').expect("an exponent");
    let mut digits = [0u8; 17];
    let mut len = 0;
    for &b in text[..e].iter().filter(|b| b.is_ascii_digit()) {
        digits[len] = b;
        len += 1;
    }
    let exp: i32 = std::str::from_utf8(&text[e + 1..])
        .expect("ASCII")
        .parse()
        .expect("an integer exponent");
    (digits, len, (exp + 400) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
