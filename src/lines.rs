//! Lines from a byte stream, with a bound on their length and a hook that
//! runs before the reader would wait for more input.

use std::io::{self, ErrorKind, Read};

const CHUNK: usize = 64 * 1024;

pub enum Line<'a> {
    /// A line's bytes, without its `\n`.
    Text(&'a [u8]),
    /// A line over the limit, skipped without being held in memory; its length.
    TooLong(usize),
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    eof: bool,
}

impl<R: Read> LineReader<R> {
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

    /// The next line, or `None` at the end of input. `before_wait` runs
    /// whenever no complete line is buffered and the reader must read again
    /// (where a reply flush belongs: the peer may be waiting for it).
    pub fn next_line(
        &mut self,
        mut before_wait: impl FnMut() -> io::Result<()>,
    ) -> io::Result<Option<Line<'_>>> {
        let mut scanned = self.start;
        loop {
            if let Some(i) = self.buf[scanned..self.end].iter().position(|b| *b == b'\n') {
                let (start, end) = (self.start, scanned + i);
                self.start = end + 1;
                if end - start > self.max {
                    return Ok(Some(Line::TooLong(end - start)));
                }
                return Ok(Some(Line::Text(&self.buf[start..end])));
            }
            scanned = self.end;
            if self.end - self.start > self.max {
                let len = self.skip_rest_of_line(&mut before_wait)?;
                return Ok(Some(Line::TooLong(len)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let start = std::mem::replace(&mut self.start, self.end);
                return Ok(Some(Line::Text(&self.buf[start..self.end])));
            }
            before_wait()?;
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
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the buffered part of an overlong line and reads past its end;
    /// returns the line's whole length.
    fn skip_rest_of_line(&mut self, before_wait: &mut impl FnMut() -> io::Result<()>) -> io::Result<usize> {
        let mut len = self.end - self.start;
        self.start = 0;
        self.end = 0;
        self.buf.truncate(CHUNK);
        self.buf.shrink_to_fit();
        loop {
            before_wait()?;
            let n = match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(len);
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(i) = self.buf[..n].iter().position(|b| *b == b'\n') {
                self.start = i + 1;
                self.end = n;
                return Ok(len + i);
            }
            len += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = r.next_line(|| Ok(())).unwrap() {
            out.push(match line {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong(n) => format!("<{n}>"),
            });
        }
        out
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
        assert_eq!(lines(input.as_bytes(), 1000), ["ok", "<200000>", "after", "<200000>"]);
        assert_eq!(lines(b"12345\n123456\n", 5), ["12345", "<6>"]);
    }
}
