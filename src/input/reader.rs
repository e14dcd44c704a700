//! The reading thread: it splits the input into lines and prepares each one
//! (the UTF-8 check and the event scan) while the engine applies the lines
//! before them, on the other core.
//!
//! With a [`Digester`], it also works out each event's id hash and type.
//!
//! Lines travel in [`Chunk`]s: the bytes of a run of lines, read together,
//! and each line prepared, borrowing from those bytes. A chunk is sent when
//! it is full, at the end of the input, and whenever no more input is
//! waiting; the last one says so ([`Delivery::idle`]), because that is when
//! the replies so far must go out: the peer may be waiting for them.

use crate::engine::digest::{Digest, Digester};
use crate::input::lines::{Line, LineReader};
use crate::input::multiline::{self, Prefix, Status};
use crate::input::scan::{self, EventMessage};
use crate::input::source::Input;
use crate::value::event::{Event, Raw};
use self_cell::self_cell;
use std::io;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

/// Lines are sent in chunks of about this many bytes...
const CHUNK_BYTES: usize = 256 * 1024;
/// ...or this many lines, whichever comes first.
const CHUNK_LINES: usize = 2048;
/// Chunks read ahead of the engine, at most.
const READ_AHEAD: usize = 8;

/// One input line, prepared.
// Nearly every line of a stream is an event: boxing the large variant would
// add an allocation per line and save nothing.
#[allow(clippy::large_enum_variant)]
pub enum Prepared<'a> {
    /// Empty or white space only: it gets no reply.
    Blank,
    /// Longer than the limit; it was skipped without being held.
    TooLong { len: usize },
    /// Not UTF-8: the column (from 1) of the first bad byte, and the line.
    NotUtf8 { column: usize, bytes: &'a [u8] },
    /// An event message, read by the scanner, and its digest when the
    /// reader has a digester and the event is well-formed. When the engine
    /// will not need the event's tree (see [`Digester::needs_tree`]), the
    /// message holds null in its place.
    Event(EventMessage<'a>, Option<Digest<'a>>),
    /// Anything else, for the general path.
    Other(&'a str),
}

type Prepareds<'a> = Vec<Prepared<'a>>;

self_cell!(
    /// A run of lines: their bytes, and each line prepared from them.
    pub struct Chunk {
        owner: Vec<u8>,
        #[covariant]
        dependent: Prepareds,
    }
);

/// What the reading thread sends.
pub struct Delivery {
    pub chunk: Chunk,
    /// No more input was waiting after this chunk was read.
    pub idle: bool,
}

/// The engine's end of the reading thread.
pub struct Reader {
    deliveries: Receiver<io::Result<Delivery>>,
    used: Sender<Chunk>,
}

impl Reader {
    /// Starts reading `input` on a thread of its own; events are digested
    /// with `digester`, if given.
    pub fn start<R>(input: R, max_line_bytes: usize, digester: Option<Digester>) -> Reader
    where
        R: Input + Send + 'static,
    {
        let (sender, deliveries) = mpsc::sync_channel(READ_AHEAD);
        let (used, returned) = mpsc::channel();
        thread::Builder::new()
            .name("reader".to_owned())
            .spawn(move || {
                let mut gather = Gather {
                    bytes: Vec::with_capacity(CHUNK_BYTES + 4096),
                    spans: Vec::with_capacity(CHUNK_LINES),
                    pending: None,
                    sender,
                    returned,
                    digester,
                    framed: false,
                };
                if let Err(e) = gather.read(input, max_line_bytes) {
                    // The engine may be gone already: then nobody is listening.
                    let _ = gather.sender.send(Err(e));
                }
            })
            .expect("the reader thread starts");
        Reader { deliveries, used }
    }

    /// The next chunk, in input order; `None` at the end of the input.
    pub fn next(&self) -> Option<io::Result<Delivery>> {
        self.deliveries.recv().ok()
    }

    /// Hands a chunk whose lines are answered back to the reading thread,
    /// which frees it: its trees were allocated there, and memory is
    /// cheapest to free on the thread that allocated it.
    pub fn done(&self, chunk: Chunk) {
        // A reader that has stopped frees nothing more; dropping it here
        // is as good.
        let _ = self.used.send(chunk);
    }
}

/// Where the engine's prepared lines come from: the reading thread, or a
/// stream's messages routed to one unit of work ([`crate::input::hub`]).
pub trait Lines {
    /// Adds the next chunks, in input order, to `into`; returns whether no
    /// more input was waiting after them (the replies so far must go out),
    /// or `None` at the end of the input.
    fn next_chunks(&mut self, into: &mut Vec<Chunk>) -> Option<io::Result<bool>>;

    /// Takes back chunks whose lines are answered.
    fn done(&mut self, chunks: &mut Vec<Chunk>);
}

impl Lines for Reader {
    fn next_chunks(&mut self, into: &mut Vec<Chunk>) -> Option<io::Result<bool>> {
        Some(self.next()?.map(|Delivery { chunk, idle }| {
            into.push(chunk);
            idle
        }))
    }

    fn done(&mut self, chunks: &mut Vec<Chunk>) {
        chunks.drain(..).for_each(|chunk| Reader::done(self, chunk));
    }
}

/// One message of a stream as a chunk of one line (its line breaks made
/// spaces), prepared without a digest: [`digest_line`] adds it once the
/// unit the message goes to is known. A message over `max_line_bytes` is
/// not held.
pub fn one_line(mut bytes: Vec<u8>, max_line_bytes: usize) -> Chunk {
    bytes
        .iter_mut()
        .filter(|b| **b == b'\n')
        .for_each(|b| *b = b' ');
    let content = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
    let span = match content.len() > max_line_bytes {
        true => Span::TooLong {
            len: content.len(),
            blank: content.iter().all(u8::is_ascii_whitespace),
        },
        false => Span::Text(0..bytes.len()),
    };
    if let Span::TooLong { .. } = span {
        bytes = Vec::new();
    }
    Chunk::new(bytes, |bytes| vec![prepare(bytes, span, None)])
}

/// Digests the events of `chunk` that have no digest yet, as the reading
/// thread does.
pub fn digest_lines(chunk: &mut Chunk, digester: &Digester) {
    chunk.with_dependent_mut(|_, lines| {
        for line in lines.iter_mut() {
            if let Prepared::Event(message, digest @ None) = line {
                *digest = digest_event(message, digester);
            }
        }
    });
}

/// The digest of an event message's event; the event's tree is freed when
/// the engine will not read it.
fn digest_event<'a>(message: &mut EventMessage<'a>, digester: &Digester) -> Option<Digest<'a>> {
    let event = Event::new(std::mem::replace(&mut message.event, Raw::Null));
    let digest = digester.digest(&event);
    // A tree no longer needed is freed now, while it is in the cache, and
    // its memory is reused for the next one.
    if digest
        .as_ref()
        .is_none_or(|digest| digester.needs_tree(digest))
    {
        message.event = event.into_root();
    }
    digest
}

/// Where a line of the chunk being gathered is.
enum Span {
    Text(Range<usize>),
    TooLong {
        len: usize,
        blank: bool,
    },
    /// A line a message over several lines took: it gets no reply of its own.
    Taken,
}

/// A message begun on a line that goes on in the next ones.
struct Pending {
    /// Where its text starts in `bytes`.
    start: usize,
    /// The lines it takes so far.
    lines: usize,
    prefix: Prefix,
    /// It proved not to be JSON: it goes on to where its brackets close.
    broken: bool,
    /// The white space its first line begins with.
    indent: usize,
}

struct Gather {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    pending: Option<Pending>,
    sender: SyncSender<io::Result<Delivery>>,
    /// Chunks the engine is done with: their byte buffers are reused.
    returned: Receiver<Chunk>,
    digester: Option<Digester>,
    /// Each line is one message, never joined with the next
    /// ([`Input::framed`]).
    framed: bool,
}

impl Gather {
    fn read(&mut self, input: impl Input, max_line_bytes: usize) -> io::Result<()> {
        self.framed = input.framed();
        let mut lines = LineReader::new(input, max_line_bytes);
        while let Some(line) = lines.next_line(|| self.send(true))? {
            match line {
                Line::Text(text) => self.line(text, max_line_bytes),
                Line::TooLong { len, blank } => {
                    self.end_pending();
                    self.spans.push(Span::TooLong { len, blank });
                }
            }
            if self.bytes.len() >= CHUNK_BYTES || self.spans.len() >= CHUNK_LINES {
                self.send(false)?;
            }
        }
        // A message cut short by a stop is dropped, as a cut line is; at the
        // end of the input it is answered, as malformed.
        match lines.stopped() {
            true => self.pending = None,
            false => self.end_pending(),
        }
        self.send(true)
    }

    /// Gathers a line: a message of its own, or part of one that goes on
    /// over several lines (see [`crate::input::multiline`]).
    fn line(&mut self, text: &[u8], max_line_bytes: usize) {
        let content = text.strip_suffix(b"\r").unwrap_or(text);
        let indent = content
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if let Some(mut pending) = self.pending.take() {
            // A whole object no more indented than the message under way
            // is a message of its own: that one ended before it, malformed.
            if indent <= pending.indent && multiline::whole_object(content) {
                self.end(pending.start, pending.lines);
                return self.line(text, max_line_bytes);
            }
            let joined = self.bytes.len();
            self.bytes.push(b'\n');
            self.bytes.extend_from_slice(content);
            pending.lines += 1;
            let status = match pending.broken {
                true => pending.prefix.skim(&self.bytes[joined..]),
                false => pending.prefix.feed(&self.bytes[joined..]),
            };
            match status {
                Status::Incomplete if self.bytes.len() - pending.start > max_line_bytes => {
                    let len = self.bytes.len() - pending.start;
                    self.bytes.truncate(pending.start);
                    self.spans.push(Span::TooLong { len, blank: false });
                    self.taken(pending.lines - 1);
                }
                // A line break inside a string, a key or a literal: the
                // message ends with this line, malformed.
                Status::Incomplete if pending.prefix.mid_token() => {
                    self.end(pending.start, pending.lines)
                }
                Status::Incomplete => self.pending = Some(pending),
                // Nothing goes on with what this line starts: the message
                // ended before it, malformed, and this line is one of its own.
                Status::Invalid(at) if at == 1 + indent => {
                    self.bytes.truncate(joined);
                    self.end(pending.start, pending.lines - 1);
                    self.line(text, max_line_bytes);
                }
                Status::Invalid(at) => {
                    // Malformed within its lines: it ends where its
                    // brackets close, as one message.
                    let rest = &self.bytes[joined + at..];
                    match pending.prefix.skim(rest) {
                        Status::Complete => self.end(pending.start, pending.lines),
                        _ => {
                            pending.broken = true;
                            self.pending = Some(pending);
                        }
                    }
                }
                Status::Complete => self.end(pending.start, pending.lines),
            }
            return;
        }
        let start = self.bytes.len();
        if !self.framed && multiline::may_continue(content) {
            let mut prefix = Prefix::default();
            if prefix.feed(content) == Status::Incomplete && !prefix.mid_token() {
                self.bytes.extend_from_slice(content);
                self.pending = Some(Pending {
                    start,
                    lines: 1,
                    prefix,
                    broken: false,
                    indent,
                });
                return;
            }
        }
        self.bytes.extend_from_slice(text);
        self.spans.push(Span::Text(start..self.bytes.len()));
    }

    /// A message over `lines` lines, from `start` to the end of `bytes`.
    fn end(&mut self, start: usize, lines: usize) {
        self.spans.push(Span::Text(start..self.bytes.len()));
        self.taken(lines - 1);
    }

    fn taken(&mut self, lines: usize) {
        self.spans.extend((0..lines).map(|_| Span::Taken));
    }

    /// Ends the message under way, if any, where it stands.
    fn end_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.end(pending.start, pending.lines);
        }
    }

    /// Sends the lines gathered so far, prepared, if any (or if `idle`).
    fn send(&mut self, idle: bool) -> io::Result<()> {
        if self.spans.is_empty() && !idle {
            return Ok(());
        }
        let mut spare = None;
        while let Ok(chunk) = self.returned.try_recv() {
            let mut bytes = chunk.into_owner();
            bytes.clear();
            spare = Some(bytes);
        }
        let mut spare = spare.unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + 4096));
        // A message under way moves on to the next chunk's bytes.
        if let Some(pending) = &mut self.pending {
            spare.extend_from_slice(&self.bytes[pending.start..]);
            self.bytes.truncate(pending.start);
            pending.start = 0;
        }
        let bytes = std::mem::replace(&mut self.bytes, spare);
        let spans = std::mem::take(&mut self.spans);
        let digester = self.digester.as_ref();
        let chunk = Chunk::new(bytes, |bytes| {
            spans
                .into_iter()
                .map(|span| prepare(bytes, span, digester))
                .collect()
        });
        self.sender
            .send(Ok(Delivery { chunk, idle }))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

fn prepare<'a>(bytes: &'a [u8], span: Span, digester: Option<&Digester>) -> Prepared<'a> {
    let range = match span {
        Span::TooLong { blank: true, .. } | Span::Taken => return Prepared::Blank,
        Span::TooLong { len, .. } => return Prepared::TooLong { len },
        Span::Text(range) => range,
    };
    let line = &bytes[range];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Prepared::Blank;
    }
    match std::str::from_utf8(line) {
        Err(e) => Prepared::NotUtf8 {
            column: e.valid_up_to() + 1,
            bytes: line,
        },
        Ok(text) => match scan::event_message(text) {
            Some(mut message) => {
                let digest = digester.and_then(|d| digest_event(&mut message, d));
                Prepared::Event(message, digest)
            }
            None => Prepared::Other(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::source::Trickle;

    fn kind(line: &Prepared<'_>) -> String {
        match line {
            Prepared::Blank => "blank".to_owned(),
            Prepared::TooLong { len } => format!("too long {len}"),
            Prepared::NotUtf8 { column, .. } => format!("not UTF-8 at {column}"),
            Prepared::Event(m, _) => format!("event {:?}", m.msg_id),
            Prepared::Other(text) => format!("other {text}"),
        }
    }

    /// What each line of `input` reads as, one entry per reply.
    fn kinds(input: &'static [u8]) -> Vec<String> {
        let reader = Reader::start(input, 1 << 20, None);
        let mut seen = Vec::new();
        while let Some(delivery) = reader.next() {
            let chunk = delivery.unwrap().chunk;
            seen.extend(chunk.borrow_dependent().iter().map(kind));
            reader.done(chunk);
        }
        seen.retain(|k| k != "blank");
        seen
    }

    const MESSAGES: [&str; 3] = [
        r#"{"type":"event","msg_id":9,"event":{"type":"UserCreated","payload":{"id":"u","name":"Jo","ok":[true,false,null,-1.5e3,"\"}"]}}}"#,
        r#"{"src":"bus","dest":"p","body":{"type":"subscribe","msg_id":2,"event_types":["A"]}}"#,
        r#"[1, {"a": "b"}]"#,
    ];

    #[test]
    fn a_line_cut_anywhere_never_takes_the_messages_after_it() {
        let after = [
            r#"{"type":"event","msg_id":10,"event":{"type":"T","id":"e"}}"#,
            r#"{"type":"init","msg_id":11,"node_id":"n"}"#,
            r#"{"type":"event","msg_id":12,"event":{"type":"T","id":"f"}}"#,
        ];
        let whole = kinds(Box::leak(format!("{}\n", after.join("\n")).into_boxed_str()).as_bytes());
        for message in MESSAGES {
            for cut in 1..message.len() {
                let input = format!("{}\n{}\n", &message[..cut], after.join("\n"));
                let seen = kinds(Box::leak(input.into_boxed_str()).as_bytes());
                assert_eq!(seen.len(), 4, "cut at {cut}: {}: {seen:?}", &message[..cut]);
                assert_eq!(seen[1..], whole[..], "cut at {cut}: {}", &message[..cut]);
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A well-formed event message on one line.
        fn line() -> impl Strategy<Value = String> {
            crate::input::scan::tests::message_text()
                .prop_map(|t| t.replace('\n', " "))
                .prop_filter("well-formed JSON", |t| {
                    serde_json::from_str::<serde_json::Value>(t).is_ok()
                })
        }

        proptest! {
            #![proptest_config(crate::util::property::config(256))]

            /// For every cut point of a message line, the complete messages
            /// after the cut line are read as they are without it: the cut
            /// line is one message of its own.
            #[test]
            fn a_cut_line_never_takes_the_messages_after_it(
                cut in line(),
                at in any::<prop::sample::Index>(),
                after in prop::collection::vec(line(), 1..4),
            ) {
                let mut end = at.index(cut.len().max(1));
                while !cut.is_char_boundary(end) {
                    end -= 1;
                }
                let cut = &cut[..end];
                let whole = kinds(Box::leak(format!("{}\n", after.join("\n")).into_boxed_str()).as_bytes());
                let input = format!("{cut}\n{}\n", after.join("\n"));
                let seen = kinds(Box::leak(input.into_boxed_str()).as_bytes());
                let skip = usize::from(!cut.trim().is_empty());
                prop_assert_eq!(seen.len(), whole.len() + skip, "{:?}", seen);
                prop_assert_eq!(&seen[skip..], &whole[..]);
            }
        }
    }

    #[test]
    fn a_message_over_several_lines_is_one_and_ends_where_it_must() {
        let pretty =
            "{\n  \"type\": \"init\",\n  \"a\": [\n    {\"b\": 1},\n    {\"c\": 2}\n  ]\n}\n";
        assert_eq!(kinds(pretty.as_bytes()).len(), 1);
        // The task's own form: keys at the start of the lines.
        let task = "{ \"type\": \"subscribe\", \"msg_id\": 1,\n\"event_types\": [\"A\", \"B\"] }\n";
        assert_eq!(
            kinds(task.as_bytes()),
            [format!("other {}", task.trim_end())]
        );
        // Cut inside a string on a line of its own: it ends there.
        assert_eq!(
            kinds(b"{\n  \"name\": \"Jo\n  \"a\": 1\n}\n"),
            ["other {\n  \"name\": \"Jo", "other   \"a\": 1", "other }"]
        );
    }

    #[test]
    fn lines_of_a_stream_are_never_joined() {
        struct Framed(&'static [u8]);
        impl io::Read for Framed {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Input for Framed {
            fn ready(&self) -> bool {
                true
            }
            fn framed(&self) -> bool {
                true
            }
        }
        let reader = Reader::start(Framed(b"{\"a\":\n{\"b\": [1,\n2]}\n"), 1 << 20, None);
        let mut seen = Vec::new();
        while let Some(delivery) = reader.next() {
            let chunk = delivery.unwrap().chunk;
            seen.extend(chunk.borrow_dependent().iter().map(kind));
            reader.done(chunk);
        }
        assert_eq!(seen, ["other {\"a\":", "other {\"b\": [1,", "other 2]}"]);
    }

    #[test]
    fn lines_arrive_prepared_in_order_and_a_chunk_before_a_wait_is_idle() {
        let event = br#"{"type":"event","msg_id":1,"event":{"type":"T","id":"e"}}"#;
        let first: &'static [u8] = Box::leak(
            [&event[..], b"\n  \r\n", b"{\"type\":\"init\"}\n", b"\xff\n"]
                .concat()
                .into_boxed_slice(),
        );
        let second: &'static [u8] = Box::leak(
            [&[b'7'; 70][..], b"\n0123456789\n"]
                .concat()
                .into_boxed_slice(),
        );
        let input = Trickle::new(vec![first, second, b"[1]"], 1);
        let reader = Reader::start(input, 60, None);
        let mut seen = Vec::new();
        while let Some(delivery) = reader.next() {
            let Delivery { chunk, idle } = delivery.unwrap();
            seen.extend(chunk.borrow_dependent().iter().map(kind));
            seen.push(format!("idle {idle}"));
            reader.done(chunk);
        }
        // After the first chunk of input nothing more is waiting: the lines
        // so far are sent as idle, and so on before each later read.
        assert_eq!(
            seen,
            [
                r#"event Some(Number("1"))"#,
                "blank",
                r#"other {"type":"init"}"#,
                "not UTF-8 at 1",
                "idle true",
                "too long 70",
                "other 0123456789",
                "idle true",
                "other [1]",
                "idle true",
            ]
        );
    }
}
