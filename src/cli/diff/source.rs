//! Where `plan --diff` reads events from: a JetStream stream, from its first
//! message to its last one as it was when the reading started, or a file of
//! messages as `replay` reads them. Either way the lines go through the
//! reading thread `run` uses, which parses each event and resolves its
//! bindings ahead.

use projector::engine::digest::Digester;
use projector::input::nats::{NatsInput, StreamAddress, Tail};
use projector::input::reader::{Delivery, Prepared, Reader};
use projector::input::source::Input;
use projector::server::DEFAULT_MAX_LINE_BYTES;
use std::fmt;
use std::path::PathBuf;

/// How many quiet seconds in a row end the reading of a stream short of
/// its last sequence (a message deleted from it, say).
const QUIET_SECONDS: u32 = 10;

pub enum Source {
    Stream(StreamAddress),
    File(PathBuf),
}

/// How far a source was read.
pub struct Read {
    /// Messages read (lines that held one).
    pub messages: u64,
    /// For a stream: the sequence it was read up to.
    pub to_sequence: Option<u64>,
}

impl Source {
    /// `nats://HOST:PORT/STREAM`, or the path of a file.
    pub fn parse(text: &str) -> Result<Source, String> {
        match text.starts_with("nats://") {
            true => StreamAddress::parse(text)
                .map(Source::Stream)
                .map_err(|e| e.to_string()),
            false => Ok(Source::File(PathBuf::from(text))),
        }
    }

    /// Hands each line of the source to `each`, in order, prepared with
    /// the digests of `digester`; a stream up to the sequence `to`, else up
    /// to its last one now.
    pub fn read(
        &self,
        to: Option<u64>,
        digester: Digester,
        each: impl FnMut(&mut Prepared<'_>),
    ) -> Result<Read, String> {
        match self {
            Source::File(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let messages = lines(file, digester, each, |_, _| Flow::Go)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Read {
                    messages,
                    to_sequence: None,
                })
            }
            Source::Stream(address) => {
                let last = match to {
                    Some(last) => last,
                    None => Tail::new(address).last().map_err(|e| e.to_string())?,
                };
                stream(address, last, digester, each)
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stream(address) => write!(f, "{address}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What to do with a line, and whether to go on after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// Handle this line, then stop.
    Last,
    /// Stop before this line.
    Stop,
}

/// The stream's messages from its first sequence to `last`.
fn stream(
    address: &StreamAddress,
    last: u64,
    digester: Digester,
    each: impl FnMut(&mut Prepared<'_>),
) -> Result<Read, String> {
    if last == 0 {
        return Ok(Read {
            messages: 0,
            to_sequence: Some(0),
        });
    }
    let (input, checkpoints) = NatsInput::start(address, 1, None)?;
    let mut reached = 0;
    let mut quiet = 0;
    let flow = |line_no: u64, line: &Prepared<'_>| match checkpoints.through(line_no) {
        Some(sequence) if sequence > last => Flow::Stop,
        Some(sequence) => {
            reached = sequence;
            quiet = 0;
            match sequence == last {
                true => Flow::Last,
                false => Flow::Go,
            }
        }
        // A quiet second: the input's blank line.
        None if matches!(line, Prepared::Blank) => {
            quiet += 1;
            match quiet < QUIET_SECONDS {
                true => Flow::Go,
                false => Flow::Stop,
            }
        }
        None => Flow::Go,
    };
    let messages = lines(input, digester, each, flow).map_err(|e| format!("{address}: {e}"))?;
    if reached < last {
        super::super::log(&format!(
            "projector: {address}: no message came for {QUIET_SECONDS} s after sequence {reached}; the documents after are computed from the messages up to it (the stream's last was {last})"
        ));
    }
    Ok(Read {
        messages,
        to_sequence: Some(reached),
    })
}

/// Each line of `input`, prepared, to `each`, while `flow` (given the
/// line's number, from 1) says to go on; returns how many held a message.
fn lines(
    input: impl Input + Send + 'static,
    digester: Digester,
    mut each: impl FnMut(&mut Prepared<'_>),
    mut flow: impl FnMut(u64, &Prepared<'_>) -> Flow,
) -> std::io::Result<u64> {
    let reader = Reader::start(input, DEFAULT_MAX_LINE_BYTES, Some(digester));
    let mut line_no = 0;
    let mut messages = 0;
    while let Some(delivery) = reader.next() {
        let Delivery { mut chunk, .. } = delivery?;
        let stop = chunk.with_dependent_mut(|_, lines| {
            for line in lines.iter_mut() {
                line_no += 1;
                let next = flow(line_no, line);
                if next == Flow::Stop {
                    return true;
                }
                if !matches!(line, Prepared::Blank) {
                    messages += 1;
                }
                each(line);
                if next == Flow::Last {
                    return true;
                }
            }
            false
        });
        reader.done(chunk);
        if stop {
            break;
        }
    }
    Ok(messages)
}
