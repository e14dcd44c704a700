//! Whether a JSON value goes on past the end of a line: messages written
//! over several lines (pretty-printed, as the protocol's examples are) are
//! read as one, as jq reads them.
//!
//! [`Prefix`] follows JSON's syntax one byte at a time, across lines, and
//! says whether what it was fed is a whole value, the start of one, or no
//! JSON at all (and where that shows). It checks structure, not every
//! detail: the message is parsed properly once it is whole.
//!
//! A message goes on to the next line only where JSON allows white space:
//! a line that ends inside a string, a key or a literal ends its message
//! there ([`Prefix::mid_token`]), malformed, and a line that is a whole
//! object by itself ([`whole_object`]) is a message of its own. So a
//! producer's half-written line costs one error reply, never the messages
//! after it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A value began and has not ended yet.
    Incomplete,
    /// The value ended (whatever follows it on its line).
    Complete,
    /// Not JSON: the offset, in the bytes last fed, where that showed.
    Invalid(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must come (the first, or after `:` or `,`).
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `{ ... ,`: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value in a container: `,` or its closer.
    CommaOrEnd,
    /// Inside a string (`key` when it is an object's key).
    Str { key: bool, escape: bool },
    /// Inside a number.
    Number,
    /// Inside `true`, `false` or `null`: the bytes still to come.
    Literal(&'static [u8]),
    /// The value ended.
    Done,
}

/// What one byte did to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The byte was read: go on with the next.
    Next,
    /// The byte belongs to what follows: read it again in the new state.
    Again,
    /// The value had ended before the byte.
    Ended,
    /// The byte cannot stand here.
    Invalid,
}

/// The state of a JSON value read so far.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// Open containers: `true` for an object.
    stack: Vec<bool>,
    state: State,
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix {
            stack: Vec::new(),
            state: State::Value,
        }
    }
}

impl Prefix {
    /// Reads `bytes` on from where the value stands.
    pub fn feed(&mut self, bytes: &[u8]) -> Status {
        let mut i = 0;
        while i < bytes.len() {
            match self.step(bytes[i]) {
                Step::Next => i += 1,
                Step::Again => {}
                Step::Ended => return Status::Complete,
                Step::Invalid => return Status::Invalid(i),
            }
        }
        match self.state {
            State::Done => Status::Complete,
            // A number at the very end may go on in the next bytes, but a
            // top-level one has ended with its line.
            State::Number if self.stack.is_empty() => Status::Complete,
            _ => Status::Incomplete,
        }
    }

    /// Reads one byte inside a token (string, number, literal), or passes
    /// it to [`Prefix::punctuation`] between tokens.
    #[inline]
    fn step(&mut self, b: u8) -> Step {
        match self.state {
            State::Done => return Step::Ended,
            State::Str { key, escape } => {
                self.state = match (escape, b) {
                    (true, _) => State::Str { key, escape: false },
                    (false, b'\\') => State::Str { key, escape: true },
                    (false, b'"') if key => State::Colon,
                    (false, b'"') => self.after_value(),
                    (false, _) => State::Str { key, escape: false },
                };
            }
            State::Number => {
                if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                    return Step::Next;
                }
                // The number ended: this byte belongs to what follows it.
                self.state = self.after_value();
                return Step::Again;
            }
            State::Literal(rest) => match rest.split_first() {
                Some((expected, rest)) if *expected == b => {
                    self.state = match rest.is_empty() {
                        true => self.after_value(),
                        false => State::Literal(rest),
                    };
                }
                _ => return Step::Invalid,
            },
            _ if b.is_ascii_whitespace() => {}
            _ => return self.punctuation(b),
        }
        Step::Next
    }

    /// Reads one byte between tokens: the start of a value, a key, or the
    /// punctuation of a container.
    #[inline]
    fn punctuation(&mut self, b: u8) -> Step {
        match self.state {
            State::Value => return self.start_value(b),
            State::ValueOrEnd => {
                if b != b']' {
                    // Not the end: this byte starts the first value.
                    self.state = State::Value;
                    return Step::Again;
                }
                self.stack.pop();
                self.state = self.after_value();
            }
            State::KeyOrEnd | State::Key => match b {
                b'"' => {
                    self.state = State::Str {
                        key: true,
                        escape: false,
                    }
                }
                b'}' if self.state == State::KeyOrEnd => {
                    self.stack.pop();
                    self.state = self.after_value();
                }
                _ => return Step::Invalid,
            },
            State::Colon => match b {
                b':' => self.state = State::Value,
                _ => return Step::Invalid,
            },
            State::CommaOrEnd => match (b, self.stack.last()) {
                (b',', Some(true)) => self.state = State::Key,
                (b',', Some(false)) => self.state = State::Value,
                (b'}', Some(true)) | (b']', Some(false)) => {
                    self.stack.pop();
                    self.state = self.after_value();
                }
                _ => return Step::Invalid,
            },
            State::Done | State::Str { .. } | State::Number | State::Literal(_) => {
                unreachable!("tokens are read by step")
            }
        }
        Step::Next
    }

    /// Reads the first byte of a value.
    #[inline]
    fn start_value(&mut self, b: u8) -> Step {
        match b {
            b'{' => {
                self.stack.push(true);
                self.state = State::KeyOrEnd;
            }
            b'[' => {
                self.stack.push(false);
                self.state = State::ValueOrEnd;
            }
            b'"' => {
                self.state = State::Str {
                    key: false,
                    escape: false,
                }
            }
            b'-' | b'0'..=b'9' => self.state = State::Number,
            b't' => self.state = State::Literal(b"rue"),
            b'f' => self.state = State::Literal(b"alse"),
            b'n' => self.state = State::Literal(b"ull"),
            _ => return Step::Invalid,
        }
        Step::Next
    }

    /// Reads `bytes` on after the value proved not to be JSON, following
    /// only its brackets (outside strings): `Complete` once those it opened
    /// are closed, so that a malformed message ends where its shape does
    /// and gets one error, not one per line.
    pub fn skim(&mut self, bytes: &[u8]) -> Status {
        for &b in bytes {
            match self.state {
                State::Str { key, escape } => {
                    self.state = match (escape, b) {
                        (true, _) => State::Str { key, escape: false },
                        (false, b'\\') => State::Str { key, escape: true },
                        (false, b'"') => State::Value,
                        _ => State::Str { key, escape: false },
                    };
                }
                _ => match b {
                    b'"' => {
                        self.state = State::Str {
                            key: false,
                            escape: false,
                        }
                    }
                    b'{' => self.stack.push(true),
                    b'[' => self.stack.push(false),
                    b'}' | b']' => {
                        self.stack.pop();
                        if self.stack.is_empty() {
                            self.state = State::Done;
                            return Status::Complete;
                        }
                    }
                    _ => {}
                },
            }
        }
        Status::Incomplete
    }

    /// True when what was fed ends inside a string, a key or a literal,
    /// where JSON allows no line break: the value cannot go on in the next
    /// line.
    pub fn mid_token(&self) -> bool {
        matches!(self.state, State::Str { .. } | State::Literal(_))
    }

    /// Where a value ends: the top level is done, a container wants more.
    fn after_value(&self) -> State {
        match self.stack.is_empty() {
            true => State::Done,
            false => State::CommaOrEnd,
        }
    }
}

/// Whether a line may begin a message that goes on in the next ones: it
/// opens an object or array and does not close one at its end. Every other
/// line is a message of its own, checked no further here.
pub fn may_continue(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    matches!(line.first(), Some(b'{' | b'[')) && !matches!(line.last(), Some(b'}' | b']'))
}

/// Whether `line`, white space aside, is one whole JSON object and nothing
/// more: such a line is a message of its own, never the rest of another.
pub fn whole_object(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    let Some((b'}', body)) = line.split_last() else {
        return false;
    };
    if line.first() != Some(&b'{') {
        return false;
    }
    let mut prefix = Prefix::default();
    // Open up to its last byte, closed by it.
    prefix.feed(body) == Status::Incomplete && prefix.feed(b"}") == Status::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(lines: &[&str]) -> Vec<Status> {
        let mut prefix = Prefix::default();
        lines.iter().map(|l| prefix.feed(l.as_bytes())).collect()
    }

    #[test]
    fn a_value_over_several_lines_is_incomplete_until_it_closes() {
        use Status::*;
        assert_eq!(
            fed(&[
                "{",
                "  \"type\": \"event\",",
                "  \"event\": {\"a\": [1, 2.5e3, true, null, \"}\\\"]\"]}",
                "}"
            ]),
            [Incomplete, Incomplete, Incomplete, Complete]
        );
        assert_eq!(fed(&["[", "]"]), [Incomplete, Complete]);
        assert_eq!(fed(&["[]"]), [Complete]);
        assert_eq!(fed(&["{}"]), [Complete]);
        assert_eq!(
            fed(&["{\"a\":", "{}", "}"]),
            [Incomplete, Incomplete, Complete]
        );
    }

    #[test]
    fn what_cannot_go_on_says_where() {
        use Status::*;
        // The truncated line and the next: no JSON goes on with `[`.
        assert_eq!(
            fed(&["{\"type\": \"init\", \"msg_id\": 1", "[1, 2]"]),
            [Incomplete, Invalid(0)]
        );
        assert_eq!(fed(&["{\"a\" 1}"]), [Invalid(5)]);
        assert_eq!(fed(&["{", "  nope"]), [Incomplete, Invalid(2)]);
        assert_eq!(
            fed(&["[tru", "e, fals", "x]"]),
            [Incomplete, Incomplete, Invalid(0)]
        );
    }

    #[test]
    fn a_malformed_value_is_skimmed_to_where_its_brackets_close() {
        let mut prefix = Prefix::default();
        assert_eq!(prefix.feed(b"{\"a\": {\"b\": 1 2"), Status::Invalid(14));
        assert_eq!(prefix.skim(b" \"}\" }"), Status::Incomplete);
        assert_eq!(prefix.skim(b"}"), Status::Complete);
    }

    #[test]
    fn a_line_may_end_only_where_white_space_may_go() {
        let ends = |line: &str| {
            let mut prefix = Prefix::default();
            assert_eq!(prefix.feed(line.as_bytes()), Status::Incomplete, "{line}");
            prefix.mid_token()
        };
        assert!(ends(r#"{"a": "Jo"#));
        assert!(ends(r#"{"pay"#));
        assert!(ends(r#"[ false, nul"#));
        assert!(ends(r#"{"a": "\"#));
        assert!(!ends(r#"{"a": 12"#));
        assert!(!ends(r#"{"a":"#));
        assert!(!ends(r#"{"a": [1,"#));
        assert!(!ends(r#"{"a": "b""#));
    }

    #[test]
    fn a_whole_object_is_one_value_and_nothing_after_it() {
        assert!(whole_object(br#"{"type": "init", "a": {"b": "}"}}"#));
        assert!(whole_object(b"  {}\r"));
        assert!(!whole_object(br#"{"a": 1}, "#));
        assert!(!whole_object(br#"{"a": 1} {"b": 2}"#));
        assert!(!whole_object(br#"{"a": 1}}"#));
        assert!(!whole_object(br#"{"a" 1}"#));
        assert!(!whole_object(b"[1]"));
        assert!(!whole_object(b"{"));
    }

    #[test]
    fn only_a_line_that_opens_and_does_not_close_may_go_on() {
        assert!(may_continue(b"{"));
        assert!(may_continue(b"  [ 1,\r"));
        assert!(!may_continue(b"{\"type\": \"init\"}"));
        assert!(!may_continue(b"hello"));
        assert!(!may_continue(b""));
    }
}
