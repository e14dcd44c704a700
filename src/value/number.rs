//! Numbers kept exact, as Python's `json` keeps them.
//!
//! JSON numbers are read as the text they were written with and given a
//! meaning only when one is needed: an integer is an integer of any size
//! (`18446744073709551616` stays those digits, `-0` is `0`), anything with a
//! fraction or an exponent is a double (`1e400` is infinity, as Python reads
//! it). Comparisons are exact across the two kinds, as Python's are, and
//! integer arithmetic never rounds: a sum too long to hold is an error.

use std::cmp::Ordering;

/// The longest integer held, in digits: CPython's default limit for
/// converting an integer to or from text (`sys.int_info.default_max_str_digits`).
pub const MAX_DIGITS: usize = 4300;

/// A number's meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num<'a> {
    Int(i64),
    Float(f64),
    /// An integer outside the range of `i64`, as its digits (after an
    /// optional `-`, without leading zeros).
    Big(&'a str),
}

impl Num<'_> {
    pub fn owned(self) -> Owned {
        match self {
            Num::Int(i) => Owned::Int(i),
            Num::Float(f) => Owned::Float(f),
            Num::Big(digits) => Owned::Big(digits.to_owned()),
        }
    }
}

/// The meaning of `text`, a JSON number.
pub fn read(text: &str) -> Num<'_> {
    if let Some(n) = read_short(text) {
        return n;
    }
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        // A number past the range of doubles reads as infinity, as in Python.
        return Num::Float(text.parse().unwrap_or(f64::NAN));
    }
    match text.parse::<i64>() {
        Ok(i) => Num::Int(i),
        Err(_) => Num::Big(text),
    }
}

/// Powers of ten held exactly by a double.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The meaning of the numbers most events carry, read in one pass: an
/// integer of up to 18 digits, or a decimal fraction without exponent whose
/// digits make an integer of at most 2^53. Such a fraction is that integer
/// divided by a power of ten, both held exactly, so the one rounding of the
/// division gives the double nearest the text (Clinger's fast path); `None`
/// for every other number.
fn read_short(text: &str) -> Option<Num<'_>> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    match point {
        None if digits.len() <= 18 => {
            let i = mantissa as i64;
            Some(Num::Int(if negative { -i } else { i }))
        }
        None => None,
        Some(at) => {
            let scale = digits.len() - at - 1;
            if mantissa > 1 << 53 || scale >= EXACT_POWERS.len() {
                return None;
            }
            let f = mantissa as f64 / EXACT_POWERS[scale];
            Some(Num::Float(if negative { -f } else { f }))
        }
    }
}

/// Writes the number `text` as `json.dumps` writes the value `json.loads`
/// reads from it: an integer as it is (JSON allows no leading zeros), only
/// `-0` becoming `0`; anything else through its meaning.
pub fn write_text(out: &mut Vec<u8>, text: &str) {
    let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    match integer && text != "-0" {
        true => out.extend_from_slice(text.as_bytes()),
        false => write(out, read(text)),
    }
}

/// A number worked out here, owning its digits.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Int(i64),
    Float(f64),
    Big(String),
}

impl Owned {
    pub fn as_num(&self) -> Num<'_> {
        match self {
            Owned::Int(i) => Num::Int(*i),
            Owned::Float(f) => Num::Float(*f),
            Owned::Big(digits) => Num::Big(digits),
        }
    }

    /// As a JSON value.
    pub fn into_value(self) -> serde_json::Value {
        match self {
            Owned::Int(i) => i.into(),
            Owned::Float(f) => json_number(&float_text(f)),
            Owned::Big(digits) => json_number(&digits),
        }
    }
}

/// A `serde_json` number of `text`, which is one.
pub fn json_number(text: &str) -> serde_json::Value {
    serde_json::Value::Number(text.parse().expect("the text of a number"))
}

/// `f` as `json.dumps` writes it.
fn float_text(f: f64) -> String {
    let mut out = Vec::new();
    write(&mut out, Num::Float(f));
    String::from_utf8(out).expect("ASCII")
}

/// Writes `n` as `json.dumps` writes the value.
pub fn write(out: &mut Vec<u8>, n: Num<'_>) {
    match n {
        Num::Int(i) => {
            if i < 0 {
                out.push(b'-');
            }
            super::float::unsigned(out, i.unsigned_abs());
        }
        Num::Float(f) if f.is_finite() => super::float::float(out, f),
        Num::Float(f) if f.is_nan() => out.extend_from_slice(b"NaN"),
        Num::Float(f) if f < 0.0 => out.extend_from_slice(b"-Infinity"),
        Num::Float(_) => out.extend_from_slice(b"Infinity"),
        Num::Big(digits) => out.extend_from_slice(digits.as_bytes()),
    }
}

/// `n` as a key or an id: integers and integral values below 1e21 in
/// digits, so that `7`, `7.0` and `7e0` are one key; other numbers as
/// Python's `repr` writes them (`2.5`, `1e+25`).
pub fn key_text(n: Num<'_>) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Big(digits) => digits.to_owned(),
        // Matches -0.0 too.
        Num::Float(0.0) => "0".to_owned(),
        Num::Float(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        Num::Float(f) => float_text(f),
    }
}

/// The exact order of two numbers, as Python orders them (`2**64` equals
/// `1.8446744073709552e19`; `2**53 + 1` is more than `2.0**53`).
pub fn compare(a: Num<'_>, b: Num<'_>) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        // -0.0 equals 0.0; NaN, which JSON cannot hold, sorts by its bits.
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or_else(|| x.total_cmp(&y)),
        (Num::Int(i), Num::Float(f)) => int_float(i, f),
        (Num::Float(f), Num::Int(i)) => int_float(i, f).reverse(),
        (Num::Big(x), Num::Big(y)) => Big::parse(x).cmp(&Big::parse(y)),
        (Num::Big(x), Num::Int(_)) => sign_order(x),
        (Num::Int(_), Num::Big(y)) => sign_order(y).reverse(),
        (Num::Big(x), Num::Float(f)) => big_float(x, f),
        (Num::Float(f), Num::Big(y)) => big_float(y, f).reverse(),
    }
}

/// Where a big integer, outside the range of `i64`, stands to any `i64`.
fn sign_order(big: &str) -> Ordering {
    match big.starts_with('-') {
        true => Ordering::Less,
        false => Ordering::Greater,
    }
}

/// The order of an integer and a double, exactly.
fn int_float(i: i64, f: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    // |f| < 2^63: its integral part is an exact i64.
    let whole = f.trunc() as i64;
    i.cmp(&whole)
        .then_with(|| 0.0.partial_cmp(&f.fract()).expect("finite"))
}

/// The order of a big integer and a double, exactly.
fn big_float(big: &str, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f.is_infinite() {
        return match f > 0.0 {
            true => Ordering::Less,
            false => Ordering::Greater,
        };
    }
    // A big integer is at least 2^63 from zero; a double that is not is
    // nearer zero, and a double that is has no fraction.
    if f.abs() < 9_223_372_036_854_775_808.0 {
        return sign_order(big);
    }
    Big::parse(big).cmp(&Big::parse(&format!("{f:.0}")))
}

/// Why a sum cannot be held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TooLarge {
    /// An integer of more than [`MAX_DIGITS`] digits.
    Digits,
    /// A double past the largest finite one, or an integer too large to
    /// become a double when added to one.
    Float,
}

/// `a + b` as Python adds them: exact for integers, a double when either is
/// one; `b` alone when there is no `a`. Infinity is never a sum.
pub fn add(a: Option<Num<'_>>, b: Num<'_>) -> Result<Owned, TooLarge> {
    let Some(a) = a else {
        return match b {
            Num::Float(f) if !f.is_finite() => Err(TooLarge::Float),
            b => Ok(b.owned()),
        };
    };
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(match x.checked_add(y) {
            Some(sum) => Owned::Int(sum),
            None => Owned::Big((i128::from(x) + i128::from(y)).to_string()),
        }),
        (Num::Float(_), _) | (_, Num::Float(_)) => {
            let sum = to_f64(a)? + to_f64(b)?;
            match sum.is_finite() {
                true => Ok(Owned::Float(sum)),
                false => Err(TooLarge::Float),
            }
        }
        (a, b) => {
            let sum = Big::of(a).add(&Big::of(b));
            if sum.digits.len() > MAX_DIGITS {
                return Err(TooLarge::Digits);
            }
            Ok(sum.into_owned())
        }
    }
}

/// `n` as a double, as Python converts an integer (correctly rounded; an
/// integer past the largest double cannot be converted).
fn to_f64(n: Num<'_>) -> Result<f64, TooLarge> {
    let f = match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => return Ok(f),
        Num::Big(digits) => digits.parse().unwrap_or(f64::INFINITY),
    };
    match f.is_finite() {
        true => Ok(f),
        false => Err(TooLarge::Float),
    }
}

/// An integer of any size, for the rare sums and comparisons past `i64`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big {
    negative: bool,
    /// Decimal digits, least significant first, without leading zeros
    /// (zero has none).
    digits: Vec<u8>,
}

impl Big {
    /// `text`: an optional `-` and digits.
    fn parse(text: &str) -> Big {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, text),
        };
        let mut digits: Vec<u8> = magnitude.bytes().rev().map(|b| b - b'0').collect();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        Big {
            negative: negative && !digits.is_empty(),
            digits,
        }
    }

    fn of(n: Num<'_>) -> Big {
        match n {
            Num::Int(i) => Big::parse(&i.to_string()),
            Num::Big(digits) => Big::parse(digits),
            Num::Float(_) => unreachable!("sums with a double are doubles"),
        }
    }

    fn add(&self, other: &Big) -> Big {
        if self.negative == other.negative {
            return Big {
                negative: self.negative,
                digits: add_magnitudes(&self.digits, &other.digits),
            };
        }
        // Opposite signs: the larger magnitude's sign, their difference.
        let (larger, smaller) = match cmp_magnitudes(&self.digits, &other.digits) {
            Ordering::Less => (other, self),
            _ => (self, other),
        };
        let digits = sub_magnitudes(&larger.digits, &smaller.digits);
        Big {
            negative: larger.negative && !digits.is_empty(),
            digits,
        }
    }

    fn into_owned(self) -> Owned {
        let mut text = String::with_capacity(self.digits.len() + 1);
        if self.negative {
            text.push('-');
        }
        if self.digits.is_empty() {
            text.push('0');
        }
        text.extend(self.digits.iter().rev().map(|d| char::from(b'0' + d)));
        match text.parse::<i64>() {
            Ok(i) => Owned::Int(i),
            Err(_) => Owned::Big(text),
        }
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Big) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Big) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => cmp_magnitudes(&self.digits, &other.digits),
            (true, true) => cmp_magnitudes(&other.digits, &self.digits),
        }
    }
}

fn cmp_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut sum = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let d = a.get(i).unwrap_or(&0) + b.get(i).unwrap_or(&0) + carry;
        sum.push(d % 10);
        carry = d / 10;
    }
    if carry > 0 {
        sum.push(carry);
    }
    sum
}

/// `a - b`, where `a` is at least `b`.
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut diff = Vec::with_capacity(a.len());
    let mut borrow = 0;
    for (i, &d) in a.iter().enumerate() {
        let take = b.get(i).unwrap_or(&0) + borrow;
        if d >= take {
            diff.push(d - take);
            borrow = 0;
        } else {
            diff.push(d + 10 - take);
            borrow = 1;
        }
    }
    while diff.last() == Some(&0) {
        diff.pop();
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(n: Num<'_>) -> String {
        let mut out = Vec::new();
        write(&mut out, n);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_of_any_size_keep_their_digits() {
        for t in [
            "0",
            "-7",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
        ] {
            assert_eq!(text(read(t)), t);
        }
        assert_eq!(text(read("-0")), "0");
        assert_eq!(read("-0"), Num::Int(0));
    }

    #[test]
    fn floats_and_their_limits_read_as_python_reads_them() {
        assert_eq!(text(read("-0.0")), "-0.0");
        assert_eq!(text(read("1E5")), "100000.0");
        assert_eq!(text(read("1e400")), "Infinity");
        assert_eq!(text(read("-1e400")), "-Infinity");
        assert_eq!(text(read("1e-400")), "0.0");
    }

    #[test]
    fn the_short_path_reads_as_the_general_one() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut short = 0;
        for _ in 0..200_000 {
            let mut t = String::new();
            if next(4) == 0 {
                t.push('-');
            }
            let whole = 1 + next(19);
            t.push(char::from(b'0' + next(10) as u8));
            if !t.ends_with('0') {
                for _ in 1..whole {
                    t.push(char::from(b'0' + next(10) as u8));
                }
            }
            if next(2) == 0 {
                t.push('.');
                for _ in 0..=next(24) {
                    t.push(char::from(b'0' + next(10) as u8));
                }
            }
            let Some(fast) = read_short(&t) else { continue };
            short += 1;
            let general = match t.contains('.') {
                true => Num::Float(t.parse().unwrap()),
                false => Num::Int(t.parse().unwrap()),
            };
            match (fast, general) {
                (Num::Float(a), Num::Float(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{t}"),
                (a, b) => assert_eq!(a, b, "{t}"),
            }
        }
        assert!(short > 50_000, "only {short} numbers took the short path");
        assert_eq!(read_short("9007199254740993.0"), None);
        assert_eq!(read_short("1e5"), None);
        assert_eq!(read_short("-"), None);
    }

    #[test]
    fn numbers_are_written_from_their_text_as_python_writes_them() {
        for (t, want) in [
            ("7", "7"),
            ("-0", "0"),
            ("-12", "-12"),
            ("1.50", "1.5"),
            ("1E2", "100.0"),
        ] {
            let mut out = Vec::new();
            write_text(&mut out, t);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn comparisons_are_exact_across_kinds() {
        let cmp = |a: &str, b: &str| compare(read(a), read(b));
        assert_eq!(
            cmp("18446744073709551616", "1.8446744073709552e19"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("9007199254740993", "9007199254740992.0"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("18446744073709551617", "1.8446744073709552e19"),
            Ordering::Greater
        );
        assert_eq!(cmp("-18446744073709551617", "-1e19"), Ordering::Less);
        assert_eq!(cmp("-18446744073709551617", "5"), Ordering::Less);
        assert_eq!(
            cmp("100000000000000000000", "99999999999999999999"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("-100000000000000000000", "-99999999999999999999"),
            Ordering::Less
        );
        assert_eq!(cmp("1", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1", "1.5"), Ordering::Less);
        assert_eq!(cmp("-1", "-1.5"), Ordering::Greater);
        assert_eq!(cmp("0", "-0.0"), Ordering::Equal);
        assert_eq!(cmp("-0.0", "0.0"), Ordering::Equal);
        assert_eq!(cmp("1e400", "18446744073709551616"), Ordering::Greater);
    }

    #[test]
    fn integer_sums_are_exact() {
        let sum = |a: &str, b: &str| add(Some(read(a)), read(b)).map(|o| text(o.as_num()));
        assert_eq!(
            sum("18446744073709551615", "1").unwrap(),
            "18446744073709551616"
        );
        assert_eq!(
            sum("9223372036854775807", "1").unwrap(),
            "9223372036854775808"
        );
        assert_eq!(
            sum("-9223372036854775808", "-1").unwrap(),
            "-9223372036854775809"
        );
        assert_eq!(
            sum("18446744073709551616", "-18446744073709551616").unwrap(),
            "0"
        );
        assert_eq!(
            sum("-18446744073709551616", "18446744073709551617").unwrap(),
            "1"
        );
        assert_eq!(
            sum("100000000000000000000", "-1").unwrap(),
            "99999999999999999999"
        );
        assert_eq!(
            add(Some(read("9223372036854775808")), read("-1")).unwrap(),
            Owned::Int(i64::MAX)
        );
        assert_eq!(sum("2", "0.5").unwrap(), "2.5");
        assert_eq!(sum("1e308", "1e308"), Err(TooLarge::Float));
        assert_eq!(add(None, read("1e400")), Err(TooLarge::Float));
        assert_eq!(add(None, read("-0")), Ok(Owned::Int(0)));
        let huge = "9".repeat(MAX_DIGITS);
        assert_eq!(sum(&huge, "1"), Err(TooLarge::Digits));
        assert_eq!(sum(&huge, "-1").unwrap().len(), MAX_DIGITS);
        assert_eq!(sum(&huge, "0.5"), Err(TooLarge::Float));
    }

    #[test]
    fn keys_of_equal_values_are_equal() {
        assert_eq!(key_text(read("7")), "7");
        assert_eq!(key_text(read("7.0")), "7");
        assert_eq!(key_text(read("7e0")), "7");
        assert_eq!(key_text(read("-0")), "0");
        assert_eq!(key_text(read("2.5")), "2.5");
        assert_eq!(key_text(read("1e25")), "1e+25");
        assert_eq!(
            key_text(read("18446744073709551617")),
            "18446744073709551617"
        );
    }

    /// An integer's text: an optional `-` and up to `max` digits, without
    /// leading zeros.
    fn integer(max: usize) -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            1..=9u8,
            prop::collection::vec(0..=9u8, 0..max),
        )
            .prop_map(|(negative, first, rest)| {
                let sign = if negative { "-" } else { "" };
                let rest: String = rest.iter().map(|d| char::from(b'0' + d)).collect();
                format!("{sign}{first}{rest}")
            })
    }

    fn sum(a: &str, b: &str) -> String {
        let sum = add(Some(read(a)), read(b)).unwrap();
        text(sum.as_num())
    }

    fn negated(t: &str) -> String {
        match t.strip_prefix('-') {
            Some(magnitude) => magnitude.to_owned(),
            None if t == "0" => t.to_owned(),
            None => format!("-{t}"),
        }
    }

    proptest! {
        #![proptest_config(crate::util::property::config(256))]

        #[test]
        fn integers_of_any_length_keep_every_digit(t in integer(MAX_DIGITS + 100)) {
            prop_assert_eq!(text(read(&t)), t.clone());
            let mut out = Vec::new();
            write_text(&mut out, &t);
            prop_assert_eq!(String::from_utf8(out).unwrap(), t.clone());
            prop_assert_eq!(key_text(read(&t)), t);
        }

        #[test]
        fn sums_across_64_bits_are_exact(a in any::<i128>(), b in any::<i128>()) {
            let (a, b) = (a >> 1, b >> 1);
            prop_assert_eq!(sum(&a.to_string(), &b.to_string()), (a + b).to_string());
        }

        #[test]
        fn a_sum_taken_back_leaves_the_integer(a in integer(MAX_DIGITS - 1), b in integer(MAX_DIGITS - 1)) {
            let total = sum(&a, &b);
            prop_assert_eq!(sum(&b, &a), total.clone());
            prop_assert_eq!(sum(&total, &negated(&b)), a);
        }

        #[test]
        fn decimals_read_as_the_nearest_double(
            whole in integer(25),
            fraction in prop::collection::vec(0..=9u8, 1..25),
            exp in prop::option::of(-400i32..400),
        ) {
            let fraction: String = fraction.iter().map(|d| char::from(b'0' + d)).collect();
            let mut t = format!("{whole}.{fraction}");
            if let Some(exp) = exp {
                t.push_str(&format!("e{exp}"));
            }
            prop_assert_eq!(read(&t), Num::Float(t.parse().unwrap()));
        }
    }
}
