//! The literals of a JSONPath: quoted strings, integers (indexes and slice
//! bounds) and numbers, read as RFC 9535 writes them.

use super::parse::Parser;
use super::PathError;
use serde_json::Value;

/// The largest index or slice bound, 2^53 − 1: the integers a double holds
/// exactly (I-JSON).
const MAX_INT: i64 = (1 << 53) - 1;

impl<'t> Parser<'t> {
    /// A string in single or double quotes, its escapes resolved.
    pub(super) fn string(&mut self) -> Result<String, PathError> {
        let start = self.at;
        let Some(quote) = self.next_char() else {
            return Err(self.unexpected("expected a string"));
        };
        let mut out = String::new();
        loop {
            let at = self.at;
            match self.next_char() {
                None => {
                    return Err(self.error(start..self.at, "this string is not closed"));
                }
                Some(c) if c == quote => return Ok(out),
                Some('\\') => out.push(self.escape(quote, at)?),
                Some(c) if c < ' ' => {
                    let reason = format!(
                        "a string may not hold U+{:04X}, a control character; write it as an escape",
                        c as u32
                    );
                    return Err(self.error(at..self.at, reason));
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// The character an escape in a string stands for; `at` is its `\`.
    fn escape(&mut self, quote: char, at: usize) -> Result<char, PathError> {
        Ok(match self.next_char() {
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some(c @ ('/' | '\\')) => c,
            Some(c) if c == quote => c,
            Some('u') => return self.unicode_escape(at),
            _ => {
                let reason = format!(
                    "invalid escape: a string takes \\b, \\f, \\n, \\r, \\t, \\/, \\\\, \\{quote} and \\uXXXX"
                );
                return Err(self.error(at..self.at, reason));
            }
        })
    }

    /// `\uXXXX` after its `\u`, or a surrogate pair written as two of them.
    fn unicode_escape(&mut self, at: usize) -> Result<char, PathError> {
        let first = self.hex4(at)?;
        let code = match first {
            0xD800..=0xDBFF => {
                let low = match self.eat('\\') && self.eat('u') {
                    true => self.hex4(at)?,
                    false => 0,
                };
                if !(0xDC00..=0xDFFF).contains(&low) {
                    let reason =
                        "a high surrogate must be followed by a low one, as in \\uD834\\uDD1E";
                    return Err(self.error(at..self.at, reason));
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                let reason = "a low surrogate must follow a high one, as in \\uD834\\uDD1E";
                return Err(self.error(at..self.at, reason));
            }
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error(at..self.at, "not a character"))
    }

    /// Four hexadecimal digits; `at` is the escape's `\`.
    fn hex4(&mut self, at: usize) -> Result<u32, PathError> {
        let mut code = 0;
        for _ in 0..4 {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(digit) => {
                    code = code * 16 + digit;
                    self.at += 1;
                }
                None => {
                    let reason = "\\u takes four hexadecimal digits, as in \\u00e9";
                    return Err(self.error(at..self.at, reason));
                }
            }
        }
        Ok(code)
    }

    /// An integer when one starts here (a digit or `-`).
    pub(super) fn int_if_any(&mut self) -> Result<Option<i64>, PathError> {
        match self.peek() {
            Some('-' | '0'..='9') => self.int().map(Some),
            _ => Ok(None),
        }
    }

    /// An index or slice bound: no leading zero, no `-0`, within ±(2^53 − 1).
    fn int(&mut self) -> Result<i64, PathError> {
        let start = self.at;
        let _ = self.eat('-');
        let digits = self.digits()?;
        let text = &self.text[start..self.at];
        if text == "-0" {
            return Err(self.error(start..self.at, "`-0` is not an integer here; write 0"));
        }
        self.no_leading_zero(digits, start, "an integer")?;
        match text.parse::<i64>() {
            Ok(n) if (-MAX_INT..=MAX_INT).contains(&n) => Ok(n),
            _ => {
                let reason = "out of range: an index or slice bound lies within ±(2^53 − 1)";
                Err(self.error(start..self.at, reason))
            }
        }
    }

    /// A number literal: an integer part, a fraction, an exponent.
    pub(super) fn number(&mut self) -> Result<Value, PathError> {
        let start = self.at;
        let _ = self.eat('-');
        let digits = self.digits()?;
        self.no_leading_zero(digits, start, "a number")?;
        if self.eat('.') {
            self.digits()?;
        }
        if self.eat('e') || self.eat('E') {
            let _ = self.eat('+') || self.eat('-');
            self.digits()?;
        }
        let text = &self.text[start..self.at];
        serde_json::from_str(text).map_err(|_| self.error(start..self.at, "not a number"))
    }

    /// At least one digit.
    fn digits(&mut self) -> Result<&'t str, PathError> {
        let (text, first) = (self.text, self.at);
        while matches!(self.peek(), Some('0'..='9')) {
            self.at += 1;
        }
        match self.at > first {
            true => Ok(&text[first..self.at]),
            false => Err(self.unexpected("expected a digit")),
        }
    }

    fn no_leading_zero(&self, digits: &str, start: usize, what: &str) -> Result<(), PathError> {
        match digits.len() > 1 && digits.starts_with('0') {
            true => Err(self.error(start..self.at, format!("{what} does not start with 0"))),
            false => Ok(()),
        }
    }
}
