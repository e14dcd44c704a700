//! Numbers written as Python writes them: integers in digits, doubles
//! as `repr` prints them.

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
