//! The parser: a JSONPath's text into its syntax tree, refusing what RFC 9535
//! refuses, each refusal with the place it concerns. Here are queries,
//! segments and selectors; filter expressions are in [`super::filter`],
//! literals in [`super::literal`].

use super::syntax::{Query, Segment, Selector};
use super::PathError;
use std::ops::Range;

/// A query rooted at `$` that makes up the whole of `text`, and where each of
/// its descendant segments (`..`) starts.
pub fn parse(text: &str) -> Result<(Query, Vec<usize>), PathError> {
    let mut parser = Parser {
        text,
        at: 0,
        depth: 0,
        descents: Vec::new(),
    };
    if !parser.eat('$') {
        return Err(parser.unexpected("expected `$`"));
    }
    let segments = parser.segments()?;
    if parser.at < text.len() {
        if text[parser.at..].trim_start_matches(is_blank).is_empty() {
            let reason = "a JSONPath does not end in whitespace";
            return Err(parser.error(parser.at..text.len(), reason));
        }
        return Err(parser.unexpected("expected `.`, `..` or `[`"));
    }
    let query = Query {
        relative: false,
        segments,
    };
    Ok((query, parser.descents))
}

pub(super) struct Parser<'t> {
    pub(super) text: &'t str,
    /// Where the parser is, in bytes.
    pub(super) at: usize,
    /// How many filter expressions are open.
    pub(super) depth: usize,
    descents: Vec<usize>,
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl Parser<'_> {
    pub(super) fn segments(&mut self) -> Result<Vec<Segment>, PathError> {
        let mut segments = Vec::new();
        loop {
            let before = self.at;
            self.skip_blanks();
            let start = self.at;
            let segment = if self.eat_str("..") {
                self.descents.push(start);
                match self.peek() {
                    Some('[') => self.bracketed(true)?,
                    _ => self.shorthand(true, "expected a name, `*` or `[` after `..`")?,
                }
            } else if self.eat('.') {
                self.shorthand(false, "expected a name or `*` after `.`")?
            } else if self.peek() == Some('[') {
                self.bracketed(false)?
            } else {
                self.at = before;
                return Ok(segments);
            };
            segments.push(segment);
        }
    }

    /// `*` or a member name, after `.` or `..`.
    fn shorthand(&mut self, descendant: bool, expected: &str) -> Result<Segment, PathError> {
        let selector = match self.peek() {
            Some('*') => {
                self.at += 1;
                Selector::Wildcard
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' || !c.is_ascii() => {
                let start = self.at;
                while let Some(c) = self.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
                        break;
                    }
                    self.at += c.len_utf8();
                }
                Selector::Name(self.text[start..self.at].to_owned())
            }
            _ => return Err(self.unexpected(expected)),
        };
        Ok(Segment {
            descendant,
            selectors: vec![selector],
        })
    }

    /// `[` selectors separated by commas `]`.
    fn bracketed(&mut self, descendant: bool) -> Result<Segment, PathError> {
        self.at += 1;
        let mut selectors = Vec::new();
        loop {
            self.skip_blanks();
            selectors.push(self.selector()?);
            self.skip_blanks();
            if self.eat(']') {
                break;
            }
            if !self.eat(',') {
                return Err(self.unexpected("expected `,` or `]`"));
            }
        }
        Ok(Segment {
            descendant,
            selectors,
        })
    }

    fn selector(&mut self) -> Result<Selector, PathError> {
        Ok(match self.peek() {
            Some('\'' | '"') => Selector::Name(self.string()?),
            Some('*') => {
                self.at += 1;
                Selector::Wildcard
            }
            Some('?') => {
                self.at += 1;
                self.skip_blanks();
                Selector::Filter(Box::new(self.filter()?))
            }
            Some('-' | '0'..='9' | ':') => self.index_or_slice()?,
            _ => {
                let expected =
                    "expected a selector: a quoted name, `*`, an index, a slice or a filter (`?`)";
                return Err(self.unexpected(expected));
            }
        })
    }

    /// `i`, or `start:end:step` with each part optional.
    fn index_or_slice(&mut self) -> Result<Selector, PathError> {
        let start = self.int_if_any()?;
        let before = self.at;
        self.skip_blanks();
        if !self.eat(':') {
            self.at = before;
            return start
                .map(Selector::Index)
                .ok_or_else(|| self.unexpected("expected an index"));
        }
        self.skip_blanks();
        let end = self.int_if_any()?;
        let before = self.at;
        self.skip_blanks();
        let step = match self.eat(':') {
            true => {
                self.skip_blanks();
                self.int_if_any()?
            }
            false => {
                self.at = before;
                None
            }
        };
        Ok(Selector::Slice { start, end, step })
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    pub(super) fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += c.len_utf8();
        }
        found
    }

    pub(super) fn eat_str(&mut self, s: &str) -> bool {
        let found = self.text[self.at..].starts_with(s);
        if found {
            self.at += s.len();
        }
        found
    }

    pub(super) fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.at += 1;
        }
    }

    pub(super) fn error(&self, at: Range<usize>, reason: impl Into<String>) -> PathError {
        PathError {
            reason: reason.into(),
            at,
        }
    }

    /// What the parser found where it expected something else.
    pub(super) fn unexpected(&self, expected: &str) -> PathError {
        let Some(c) = self.peek() else {
            return self.error(
                self.at..self.at,
                format!("{expected}, found the end of the path"),
            );
        };
        let found = match c {
            ' ' => "a space".to_owned(),
            '\t' => "a tab".to_owned(),
            '\n' => "a line feed".to_owned(),
            '\r' => "a carriage return".to_owned(),
            c if c.is_control() => format!("U+{:04X}", c as u32),
            c => format!("`{c}`"),
        };
        let at = self.at..self.at + c.len_utf8();
        self.error(at, format!("{expected}, found {found}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why `path` is refused, and the part of it the error points at.
    fn refused(path: &str) -> (String, &str) {
        let e = parse(path).expect_err("refused");
        (e.reason, &path[e.at])
    }

    #[test]
    fn refuses_whitespace_around_a_path_and_inside_a_segment() {
        let end = "a JSONPath does not end in whitespace";
        assert_eq!(refused("$.a \n"), (end.to_owned(), " \n"));
        assert_eq!(refused(" $").1, " ");
        assert_eq!(
            refused("$. a"),
            (
                "expected a name or `*` after `.`, found a space".to_owned(),
                " "
            )
        );
        assert_eq!(
            refused("$..\ta").0,
            "expected a name, `*` or `[` after `..`, found a tab"
        );
        assert!(parse("$ .a [ 'b' , 0 ]").is_ok());
    }

    #[test]
    fn refuses_malformed_selectors_where_they_go_wrong() {
        let selector =
            "expected a selector: a quoted name, `*`, an index, a slice or a filter (`?`)";
        assert_eq!(refused("$[]"), (format!("{selector}, found `]`"), "]"));
        assert_eq!(
            refused("$["),
            (format!("{selector}, found the end of the path"), "")
        );
        assert_eq!(
            refused("$[0 2]"),
            ("expected `,` or `]`, found `2`".to_owned(), "2")
        );
        assert_eq!(refused("$[1:2:3:4]").1, ":");
        assert_eq!(
            refused("$.a[?@.b]x").0,
            "expected `.`, `..` or `[`, found `x`"
        );
    }

    #[test]
    fn refuses_integers_outside_the_rules() {
        let range = "out of range: an index or slice bound lies within ±(2^53 − 1)";
        assert_eq!(
            refused("$[9007199254740992]"),
            (range.to_owned(), "9007199254740992")
        );
        assert!(parse("$[-9007199254740991]").is_ok());
        assert_eq!(
            refused("$[::-0]"),
            ("`-0` is not an integer here; write 0".to_owned(), "-0")
        );
        assert_eq!(
            refused("$[01:]"),
            ("an integer does not start with 0".to_owned(), "01")
        );
        assert_eq!(refused("$[- 1]").0, "expected a digit, found a space");
    }

    #[test]
    fn refuses_strings_outside_the_rules() {
        assert_eq!(
            refused("$['a"),
            ("this string is not closed".to_owned(), "'a")
        );
        assert_eq!(refused("$['\\q']").1, "\\q");
        assert_eq!(refused("$[\"\\'\"]").1, "\\'");
        assert_eq!(refused("$['\u{1}']").1, "\u{1}");
        assert_eq!(refused("$['\\uD800']").1, "\\uD800");
        assert_eq!(refused("$['\\uDC00\\uD800']").1, "\\uDC00");
        assert_eq!(refused("$['\\u12']").1, "\\u12");
    }

    #[test]
    fn reads_names_with_their_escapes() {
        let names = |path: &str| match parse(path).unwrap().0.segments[..] {
            [Segment { ref selectors, .. }] => match &selectors[..] {
                [Selector::Name(name)] => name.clone(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        assert_eq!(names("$['a\\'b']"), "a'b");
        assert_eq!(names("$[\"\\u00e9\\uD834\\uDD1E\\n\"]"), "é𝄞\n");
        assert_eq!(names("$.é_1"), "é_1");
    }
}
