//! Lines from a byte stream, with a bound on their length and a hook that
//! runs before the reader would wait for more input.

use crate::input::source::Input;
use std::io::{self, ErrorKind};

const CHUNK: usize = 64 * 1024;

pub enum Line<'a> {
    /// A line's bytes, without its `\n`.
    Text(&'a [u8]),
    /// A line over the limit, skipped without being held in memory: its
    /// length, and whether it held only white space.
    TooLong { len: usize, blank: bool },
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    eof: bool,
}

impl<R: Input> LineReader<R> {
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        LineReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            max: max_line_bytes,
            eof: false,
        }
    }

    /// Whether the input ended because it was stopped (see
    /// [`Input::stopped`]).
    pub fn stopped(&self) -> bool {
        self.inner.stopped()
    }

    /// The next line, or `None` at the end of input. `before_wait` runs
    /// whenever no complete line is buffered and no more input is waiting,
    /// so the read that follows may block (where a reply flush belongs: the
    /// peer may be waiting for it).
    pub fn next_line<E: From<io::Error>>(
        &mut self,
        mut before_wait: impl FnMut() -> Result<(), E>,
    ) -> Result<Option<Line<'_>>, E> {
        let mut scanned = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[scanned..self.end]) {
                let (start, end) = (self.start, scanned + i);
                self.start = end + 1;
                let line = &self.buf[start..end];
                let content = line.strip_suffix(b"\r").unwrap_or(line);
                if content.len() > self.max {
                    let blank = content.iter().all(u8::is_ascii_whitespace);
                    return Ok(Some(Line::TooLong {
                        len: content.len(),
                        blank,
                    }));
                }
                return Ok(Some(Line::Text(line)));
            }
            scanned = self.end;
            // One more byte than the limit may be the `\r` of a `\r\n`.
            if self.end - self.start > self.max.saturating_add(1) {
                return self.skip_rest_of_line(&mut before_wait);
            }
            if self.eof {
                // A stopped stream's last line was cut short: it is dropped.
                if self.start == self.end || self.inner.stopped() {
                    return Ok(None);
                }
                let start = std::mem::replace(&mut self.start, self.end);
                return Ok(Some(Line::Text(&self.buf[start..self.end])));
            }
            if !self.inner.ready() {
                before_wait()?;
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                scanned -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(self.max.saturating_add(CHUNK));
                self.buf.resize(grown.max(self.buf.len() + CHUNK), 0);
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Drops the buffered part of an overlong line and reads past its end;
    /// `None` when the stream was stopped before it.
    fn skip_rest_of_line<E: From<io::Error>>(
        &mut self,
        before_wait: &mut impl FnMut() -> Result<(), E>,
    ) -> Result<Option<Line<'static>>, E> {
        let seen = &self.buf[self.start..self.end];
        let mut len = seen.len();
        let mut blank = seen.iter().all(u8::is_ascii_whitespace);
        let mut last = seen.last().copied();
        self.start = 0;
        self.end = 0;
        self.buf.truncate(CHUNK);
        self.buf.shrink_to_fit();
        let tail = loop {
            if !self.inner.ready() {
                before_wait()?;
            }
            let n = match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    break &self.buf[..0];
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(i) = memchr::memchr(b'\n', &self.buf[..n]) {
                self.start = i + 1;
                self.end = n;
                break &self.buf[..i];
            }
            len += n;
            blank &= self.buf[..n].iter().all(u8::is_ascii_whitespace);
            last = self.buf[..n].last().copied().or(last);
        };
        len += tail.len();
        blank &= tail.iter().all(u8::is_ascii_whitespace);
        let last = tail.last().copied().or(last);
        if last == Some(b'\r') {
            len -= 1;
        }
        if self.eof && self.inner.stopped() {
            return Ok(None);
        }
        Ok(Some(Line::TooLong { len, blank }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::Trickle;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = r.next_line(|| Ok::<(), io::Error>(())).unwrap() {
            out.push(match line {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong { len, blank } => {
                    format!("<{len}{}>", if blank { " blank" } else { "" })
                }
            });
        }
        out
    }

    #[test]
    fn the_hook_runs_only_before_a_read_that_may_wait() {
        let chunks = vec![&b"a\nb"[..], b"\nc\n", b"d\n", b"e\n"];
        // The first two chunks are already waiting; the others arrive later.
        let mut r = LineReader::new(Trickle::new(chunks, 2), 100);
        let mut seen = Vec::new();
        let mut waits = 0;
        loop {
            let line = r.next_line(|| {
                waits += 1;
                seen.push(format!("wait{waits}"));
                Ok::<(), io::Error>(())
            });
            match line.unwrap() {
                Some(Line::Text(t)) => seen.push(String::from_utf8_lossy(t).into_owned()),
                Some(Line::TooLong { .. }) => unreachable!(),
                None => break,
            }
        }
        // Reading the first chunks waits for nothing; after "c" nothing is
        // waiting, so the hook runs before each later read.
        assert_eq!(seen, ["a", "b", "c", "wait1", "d", "wait2", "e"]);
    }

    #[test]
    fn splits_on_newlines_and_keeps_a_last_unterminated_line() {
        assert_eq!(lines(b"a\n\nbc\nd", 10), ["a", "", "bc", "d"]);
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn overlong_lines_are_reported_and_skipped() {
        let long = "x".repeat(200_000);
        let input = format!("ok\n{long}\nafter\n{long}");
        assert_eq!(
            lines(input.as_bytes(), 1000),
            ["ok", "<200000>", "after", "<200000>"]
        );
        assert_eq!(lines(b"12345\n123456\n", 5), ["12345", "<6>"]);
    }

    #[test]
    fn the_limit_counts_content_not_the_line_break() {
        assert_eq!(lines(b"12345\r\n123456\r\n", 5), ["12345\r", "<6>"]);
        let long = format!("{}\r\nok\n{}\n", "y".repeat(300_000), " ".repeat(300_000));
        assert_eq!(
            lines(long.as_bytes(), 1000),
            ["<300000>", "ok", "<300000 blank>"]
        );
    }
}
