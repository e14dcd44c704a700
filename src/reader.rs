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

use crate::digest::{Digest, Digester};
use crate::event::{Event, Raw};
use crate::input::Input;
use crate::lines::{Line, LineReader};
use crate::scan::{self, EventMessage};
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
    /// Not UTF-8: the column (from 1) of the first bad byte.
    NotUtf8 { column: usize },
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
                    sender,
                    returned,
                    digester,
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

/// Where a line of the chunk being gathered is.
enum Span {
    Text(Range<usize>),
    TooLong { len: usize, blank: bool },
}

struct Gather {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    sender: SyncSender<io::Result<Delivery>>,
    /// Chunks the engine is done with: their byte buffers are reused.
    returned: Receiver<Chunk>,
    digester: Option<Digester>,
}

impl Gather {
    fn read(&mut self, input: impl Input, max_line_bytes: usize) -> io::Result<()> {
        let mut lines = LineReader::new(input, max_line_bytes);
        while let Some(line) = lines.next_line(|| self.send(true))? {
            match line {
                Line::Text(text) => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(text);
                    self.spans.push(Span::Text(start..self.bytes.len()));
                }
                Line::TooLong { len, blank } => self.spans.push(Span::TooLong { len, blank }),
            }
            if self.bytes.len() >= CHUNK_BYTES || self.spans.len() >= CHUNK_LINES {
                self.send(false)?;
            }
        }
        self.send(true)
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
        let spare = spare.unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + 4096));
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
        Span::TooLong { blank: true, .. } => return Prepared::Blank,
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
        },
        Ok(text) => match scan::event_message(text) {
            Some(mut message) => {
                let digest = digester.and_then(|d| {
                    let event = Event::new(std::mem::replace(&mut message.event, Raw::Null));
                    let digest = d.digest(&event);
                    // A tree no longer needed is freed now, while it is in
                    // the cache, and its memory is reused for the next one.
                    if digest.as_ref().is_none_or(|digest| d.needs_tree(digest)) {
                        message.event = event.into_root();
                    }
                    digest
                });
                Prepared::Event(message, digest)
            }
            None => Prepared::Other(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Trickle;

    fn kind(line: &Prepared<'_>) -> String {
        match line {
            Prepared::Blank => "blank".to_owned(),
            Prepared::TooLong { len } => format!("too long {len}"),
            Prepared::NotUtf8 { column } => format!("not UTF-8 at {column}"),
            Prepared::Event(m, _) => format!("event {:?}", m.msg_id),
            Prepared::Other(text) => format!("other {text}"),
        }
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
                "event Some(Number(1))",
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
