//! The regular expressions of `match` and `search`: I-Regexp (RFC 9485),
//! translated to the syntax of the `regex` crate.
//!
//! The two agree but for `.`, which in I-Regexp matches any character but
//! `\n` and `\r`, and for what the crate accepts beyond I-Regexp: escapes
//! such as `\d` or `\b`, and groups with flags, `(?i)`. Those make a pattern
//! that is not an I-Regexp, which matches nothing.

use regex::{Regex, RegexBuilder};

/// The most memory one compiled expression may take: a pattern read from an
/// event must not exhaust the machine.
const SIZE_LIMIT: usize = 1 << 20;

/// `pattern` compiled to match a whole string (`whole`) or any part of one;
/// `None` when it is not an I-Regexp.
pub fn compile(pattern: &str, whole: bool) -> Option<Regex> {
    let mut out = String::with_capacity(pattern.len() + 12);
    out.push_str(if whole { r"\A(?:" } else { "(?:" });
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next()?;
                if !"()*+-.?[\\]^{|}nrtpP".contains(escaped) {
                    return None;
                }
                out.push('\\');
                out.push(escaped);
            }
            '(' if chars.peek() == Some(&'?') => return None,
            '[' if in_class => return None,
            '[' => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            // Set operations in the crate's classes; plain characters here.
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '.' if !in_class => out.push_str(r"[^\n\r]"),
            _ => out.push(c),
        }
    }
    out.push_str(if whole { r")\z" } else { ")" });
    RegexBuilder::new(&out).size_limit(SIZE_LIMIT).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, whole: bool, text: &str) -> Option<bool> {
        compile(pattern, whole).map(|re| re.is_match(text))
    }

    #[test]
    fn a_dot_matches_any_character_but_line_ends() {
        assert_eq!(matches(".", true, "\u{2028}"), Some(true));
        assert_eq!(matches(".", true, "\r"), Some(false));
        assert_eq!(matches(".", true, "\n"), Some(false));
        assert_eq!(matches("a[.]c", true, "abc"), Some(false));
        assert_eq!(matches(r"a\.c", true, "a.c"), Some(true));
    }

    #[test]
    fn match_takes_the_whole_string_and_search_any_part() {
        assert_eq!(matches("a.*", true, "ab"), Some(true));
        assert_eq!(matches("a.*", true, "ba"), Some(false));
        assert_eq!(matches("a.*", false, "ba"), Some(true));
        assert_eq!(matches("b|c", true, "bc"), Some(false));
    }

    #[test]
    fn what_is_not_an_i_regexp_compiles_to_nothing() {
        assert_eq!(matches(r"\d", false, "1"), None);
        assert_eq!(matches("(?i)a", false, "A"), None);
        assert_eq!(matches("[a[b]]", false, "a"), None);
        assert_eq!(matches("a\\", false, "a"), None);
        assert_eq!(matches("(", false, "("), None);
        assert_eq!(matches(r"\p{Lu}", true, "Ж"), Some(true));
        assert_eq!(matches("[a&&b]", true, "&"), Some(true));
    }
}
