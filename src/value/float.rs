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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn repr(f: f64) -> String {
        let mut out = Vec::new();
        float(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    /// `f` (finite) as Python's `repr` writes it, by the rule Python
    /// documents, worked out from the exact value of `f` and without the
    /// shortest-digits search that [`float`] uses: the fewest significant
    /// digits that read back as `f`; of two such, the nearer to `f`, and at
    /// a tie the one ending in an even digit. Positional when the first
    /// digit's power of ten is from -4 to 15 (`0.0001`, `1000000000000000.0`),
    /// else `1e-05`, `1.5e+16`: at least two digits of exponent, with a sign.
    fn python_repr(f: f64) -> String {
        let sign = if f.is_sign_negative() { "-" } else { "" };
        if f == 0.0 {
            return format!("{sign}0.0");
        }
        let (digits, exp) = fewest_digits(f.abs());
        let body = if (-4..16).contains(&exp) {
            let point = exp + 1;
            if point <= 0 {
                format!("0.{}{digits}", "0".repeat((-point) as usize))
            } else if point as usize >= digits.len() {
                format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
            } else {
                let (whole, fraction) = digits.split_at(point as usize);
                format!("{whole}.{fraction}")
            }
        } else {
            let (first, rest) = digits.split_at(1);
            let point = if rest.is_empty() { "" } else { "." };
            let exp_sign = if exp < 0 { '-' } else { '+' };
            format!("{first}{point}{rest}e{exp_sign}{:02}", exp.abs())
        };
        format!("{sign}{body}")
    }

    /// The fewest digits that read back as `f` (positive, finite), and the
    /// power of ten of the first.
    fn fewest_digits(f: f64) -> (String, i32) {
        // The exact value: no double has more than 767 significant digits.
        let exact = format!("{f:.800e}");
        let (mantissa, exp) = exact.split_once('e').unwrap();
        let exact_digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let exp: i32 = exp.parse().unwrap();
        let reads_back = |digits: &str, exp: i32| {
            format!("{digits}e{}", exp - digits.len() as i32 + 1).parse::<f64>() == Ok(f)
        };
        for len in 1..=17 {
            let (head, rest) = exact_digits.split_at(len);
            let below = head.to_owned();
            let mut above = (head.parse::<u64>().unwrap() + 1).to_string();
            let mut above_exp = exp;
            if above.len() > len {
                above.truncate(len);
                above_exp += 1;
            }
            let exact_here = rest.bytes().all(|b| b == b'0');
            let below_ok = reads_back(&below, exp);
            let above_ok = !exact_here && reads_back(&above, above_exp);
            let half = format!("5{}", "0".repeat(rest.len() - 1));
            let pick = match (below_ok, above_ok) {
                (false, false) => continue,
                (true, false) => (below, exp),
                (false, true) => (above, above_exp),
                (true, true) => match rest.cmp(&half) {
                    std::cmp::Ordering::Less => (below, exp),
                    std::cmp::Ordering::Greater => (above, above_exp),
                    std::cmp::Ordering::Equal if below.ends_with(['0', '2', '4', '6', '8']) => {
                        (below, exp)
                    }
                    std::cmp::Ordering::Equal => (above, above_exp),
                },
            };
            return (pick.0.trim_end_matches('0').to_owned(), pick.1);
        }
        unreachable!("17 digits read back as any double")
    }

    /// 2^k, for k from -1074 (the least subnormal) to 1023.
    fn power_of_two(k: i32) -> f64 {
        match k {
            -1022.. => f64::from_bits(((k + 1023) as u64) << 52),
            _ => f64::from_bits(1 << (k + 1074)),
        }
    }

    /// Finite doubles of every kind: any bits, powers of two (where the
    /// digits below are nearer than those above), whole numbers about 2^53,
    /// and decimals of up to 17 digits at every scale, among them the ties
    /// between two shortest forms.
    fn doubles() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            any::<f64>(),
            (-1074i32..1024).prop_map(power_of_two),
            (-1i64 << 20..1 << 20).prop_map(|d| ((1i64 << 53) + d) as f64),
            (1u64..100_000_000_000_000_000, -330i32..310)
                .prop_map(|(m, e)| format!("{m}e{e}").parse().unwrap()),
            (1u64..100_000, -8i32..20).prop_map(|(m, e)| format!("{m}e{e}").parse().unwrap()),
        ]
        .prop_filter("finite", |f: &f64| f.is_finite())
        .prop_flat_map(|f| prop_oneof![Just(f), Just(-f)])
    }

    proptest! {
        #![proptest_config(crate::util::property::config(256))]

        #[test]
        fn doubles_print_as_python_repr_prints_them(f in doubles()) {
            prop_assert_eq!(repr(f), python_repr(f));
        }
    }

    #[test]
    fn the_rule_is_python_s() {
        // Values CPython prints so; the rule above must give them too.
        for (f, want) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (5e-324, "5e-324"),
            (power_of_two(-1074) * 3.0, "1.5e-323"),
            (1860080658555479.2, "1860080658555479.2"),
            (9007199254740993.0, "9007199254740992.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (power_of_two(1023), "8.98846567431158e+307"),
            (power_of_two(-1022), "2.2250738585072014e-308"),
            (123e-20, "1.23e-18"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(python_repr(f), want, "{f:?}");
            assert_eq!(repr(f), want, "{f:?}");
        }
    }
}
