//! The stdio loop: one message per input line, one reply line per message.
//!
//! Lines arrive read and prepared by the reading thread ([`crate::input::reader`]).
//! They are answered in batches: every line already waiting on stdin (up to
//! a bound) is handled, the batch is committed (a no-op in memory, one
//! transaction with `--state`, on the writer thread while the next batch is
//! handled), and only then are its replies written and flushed. A peer that
//! sends one line and waits gets its answer at once; a piped stream pays one
//! commit and one write per batch. [`replay`] runs the same handling over an
//! event log.

use crate::engine::digest::{Digest, Digester};
use crate::engine::{Engine, Outcome};
use crate::input::reader::{Delivery, Lines, Prepared, Reader};
use crate::input::scan::EventMessage;
use crate::input::source::Input;
use crate::plan::type_name;
use crate::protocol::code::MALFORMED_REQUEST;
use crate::protocol::{json, reply};
use crate::state::{RejectionStatus, StateError};
use crate::util::prefetch::prefetch_all;
use crate::value::event::{Event, Raw};

pub mod parking;
mod refusals;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// The default bound on one input line: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The most messages answered in one batch, unless the options say less.
pub const MAX_BATCH_MESSAGES: usize = 200_000;
/// The most reply bytes held back in one batch, when the state is durable:
/// a batch is one commit.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// The same in memory, where nothing is committed: replies are written
/// while they are still in the cache.
const MAX_MEMORY_BATCH_BYTES: usize = 256 * 1024;

/// How many lines ahead of the one being handled the engine is told what
/// an event will touch (see [`prefetch`]).
const PREFETCH_AHEAD: usize = 8;

#[derive(Debug, Clone)]
pub struct Options {
    /// Wrap each reply as `{"src", "dest", "body"}` instead of printing the body alone.
    pub envelope: bool,
    pub max_line_bytes: usize,
    /// Where the input's lines stand in a source stream, when they come
    /// from one: each batch commits the sequence it goes up to, and events
    /// refused are recorded with their sequence.
    pub checkpoints: Option<std::sync::Arc<crate::input::nats::Checkpoints>>,
    /// Stop at the first event refused from a stream, committing what came
    /// before it: `--on-refused stop`.
    pub stop_on_refused: bool,
    /// Park an event refused from a stream, and every later event of its
    /// documents, where this keeps them (`--on-refused park`).
    pub park: Option<std::sync::Arc<dyn parking::ParkStore>>,
    /// Where to count what each message did, when something watches.
    pub counters: Option<&'static Counters>,
    /// The most messages in one batch (one commit).
    pub batch_messages: usize,
}

/// Messages counted by what they did, over a process.
#[derive(Debug, Default)]
pub struct Counters {
    pub applied: std::sync::atomic::AtomicU64,
    pub skipped: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    pub parked: std::sync::atomic::AtomicU64,
}

impl Counters {
    pub const fn new() -> Counters {
        use std::sync::atomic::AtomicU64;
        Counters {
            applied: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            parked: AtomicU64::new(0),
        }
    }

    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Skipped => &self.skipped,
            Outcome::Refused => &self.refused,
            Outcome::Parked => &self.parked,
            _ => return,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            envelope: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            checkpoints: None,
            stop_on_refused: false,
            park: None,
            counters: None,
            batch_messages: MAX_BATCH_MESSAGES,
        }
    }
}

/// Why serving stopped early.
#[derive(Debug)]
pub enum ServeError {
    Io(io::Error),
    /// The state could not record a batch; its replies were not written.
    State(StateError),
    /// An event from a stream was refused, and the options say to stop:
    /// what came before it is committed.
    Refused(String),
}

impl From<io::Error> for ServeError {
    fn from(e: io::Error) -> Self {
        ServeError::Io(e)
    }
}

impl From<StateError> for ServeError {
    fn from(e: StateError) -> Self {
        ServeError::State(e)
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Io(e) => write!(f, "{e}"),
            ServeError::State(e) => write!(f, "{e}"),
            ServeError::Refused(text) => write!(f, "{text}"),
        }
    }
}

/// Answers lines into a buffer of replies not yet released.
struct Session<'a, L: Write> {
    engine: &'a mut Engine,
    options: &'a Options,
    log: L,
    line_no: usize,
    body: Vec<u8>,
    /// Replies to the batch being handled.
    pending: Vec<u8>,
    /// Replies to the batch handed over to be committed.
    committing: Vec<u8>,
    pending_messages: usize,
    /// The most reply bytes held back in one batch.
    batch_bytes: usize,
    /// The event refused that stops the run (`stop_on_refused`).
    halt: Option<String>,
    /// How many refusals were logged lately.
    refusals: refusals::Logged,
    /// What a unit holds back behind parked events (`--on-refused park`).
    parking: Option<parking::Parking>,
}

impl<L: Write> Session<'_, L> {
    /// Answers one line (blank lines get no reply); returns what it did.
    /// From a stream, every line refused is recorded (see
    /// [`refusals`]).
    fn line(&mut self, line: &mut Prepared<'_>) -> Result<Option<Outcome>, StateError> {
        self.line_no += 1;
        let line_no = self.line_no;
        self.body.clear();
        let (outcome, envelope, raw) = match line {
            Prepared::Blank => return Ok(None),
            &mut Prepared::TooLong { len } => {
                let text = format!(
                    "input line {line_no} is {len} bytes long, over the limit of {} bytes (--max-line-bytes)",
                    self.options.max_line_bytes
                );
                reply::error(&mut self.body, None, MALFORMED_REQUEST, &text);
                (Outcome::Refused, None, Cow::Borrowed(""))
            }
            &mut Prepared::NotUtf8 { column, bytes } => {
                let text = format!("input line {line_no} is not valid UTF-8 at column {column}");
                reply::error(&mut self.body, None, MALFORMED_REQUEST, &text);
                (Outcome::Refused, None, String::from_utf8_lossy(bytes))
            }
            Prepared::Event(message, digest) => {
                return self.event(message, digest.as_mut()).map(Some)
            }
            &mut Prepared::Other(text) if self.park_if_held(text, None, None)? => {
                return Ok(Some(Outcome::Parked))
            }
            &mut Prepared::Other(text) => {
                let (outcome, envelope) = match parse(text, line_no) {
                    Ok(Value::Object(message)) => self.message(message)?,
                    Ok(other) => {
                        let text = format!(
                            "input line {line_no} must be a JSON object, found {}",
                            type_name(&other)
                        );
                        reply::error(&mut self.body, None, MALFORMED_REQUEST, &text);
                        (Outcome::Refused, None)
                    }
                    Err(text) => {
                        reply::error(&mut self.body, None, MALFORMED_REQUEST, &text);
                        (Outcome::Refused, None)
                    }
                };
                (outcome, envelope, Cow::Borrowed(text))
            }
        };
        if outcome == Outcome::Refused && self.options.checkpoints.is_some() {
            self.rejected(&raw, None)?;
        }
        self.warnings();
        let peers = match &envelope {
            Some(envelope) => Peers {
                src: envelope.get("src").map(Raw::from),
                dest: envelope.get("dest").map(Raw::from),
            },
            None => Peers::default(),
        };
        self.release_later(peers);
        Ok(Some(outcome))
    }

    /// Answers an event message the reader's scanner read, without JSON
    /// trees for the envelope and body: only the event is one. The event's
    /// tree is left in `message`, for the reading thread to free.
    fn event(
        &mut self,
        message: &mut EventMessage<'_>,
        digest: Option<&mut Digest<'_>>,
    ) -> Result<Outcome, StateError> {
        let mut digest = digest;
        let id = digest.as_ref().map(|d| &*d.id_text);
        if self.park_if_held(message.line, id, digest.as_deref())? {
            return Ok(Outcome::Parked);
        }
        let event = Event::new(std::mem::replace(&mut message.event, Raw::Null));
        let outcome = self.engine.handle_event(
            message.msg_id.as_ref(),
            &event,
            digest.as_deref_mut(),
            &mut self.body,
        );
        if matches!(outcome, Ok(Outcome::Refused)) && self.options.checkpoints.is_some() {
            self.rejected(message.line, digest.map(|d| d.id_text.to_string()))?;
        }
        message.event = event.into_root();
        self.warnings();
        self.release_later(Peers {
            src: message.src.map(Raw::String),
            dest: message.dest.map(Raw::String),
        });
        outcome
    }

    /// Records the message just refused, from a stream, with its sequence:
    /// a row of `rejections` in the batch's transaction, a log line, and
    /// the halt that `--on-refused stop` asks for.
    fn rejected(&mut self, line: &str, id: Option<String>) -> Result<(), StateError> {
        let position = self.position();
        let mut rejection = refusals::rejection(position, id, &self.body, line);
        if let Some(parking) = &mut self.parking {
            // An event is parked, whole, with its documents; what is no
            // event cannot be applied again, and is recorded.
            if let Some(documents) = parking::documents_of_line(self.engine.plan(), line) {
                if !parking.hold(&documents, position) {
                    self.halt = Some(parking::overflow());
                }
                rejection.status = RejectionStatus::Parked;
                rejection.text = line.trim_end().to_owned();
                rejection.documents = documents;
            }
        }
        self.refusals.log(&mut self.log, &rejection);
        if self.options.stop_on_refused {
            self.halt = Some(refusals::halt(&rejection));
        }
        self.engine.record_rejection(rejection)
    }

    /// The stream sequence of the line being handled.
    fn position(&self) -> u64 {
        let checkpoints = self.options.checkpoints.as_ref().expect("from a stream");
        checkpoints.sequence_of(self.line_no as u64).unwrap_or(0)
    }

    /// While documents are held behind parked events: parks the event of
    /// `line` when it would change one of them, and says so.
    fn park_if_held(
        &mut self,
        line: &str,
        id: Option<&str>,
        digest: Option<&Digest<'_>>,
    ) -> Result<bool, StateError> {
        let Some(parking) = self.parking.as_mut().filter(|p| p.holds_any()) else {
            return Ok(false);
        };
        if digest.is_some_and(|d| !d.mine) {
            return Ok(false);
        }
        let plan = self.engine.plan();
        let documents = digest
            .and_then(|d| parking::documents_of_digest(plan, d))
            .or_else(|| parking::documents_of_line(plan, line))
            .unwrap_or_default();
        let Some(head) = parking.held_behind(&documents) else {
            return Ok(false);
        };
        if !parking.hold(&documents, head) {
            self.halt = Some(parking::overflow());
        }
        let position = self.position();
        let row = parking::behind(position, id.map(str::to_owned), line, documents, head);
        self.engine.record_rejection(row)?;
        Ok(true)
    }

    /// Applies again, in order, the parked events asked to be retried
    /// (see [`parking::retries`]), once everything handled is committed;
    /// commits them with their new status.
    fn retry(&mut self, out: &mut impl Write) -> Result<(), ServeError> {
        let Some(parking) = self.parking.as_mut().filter(|p| p.due()) else {
            return Ok(());
        };
        let Some(rows) = parking.asked()? else {
            if !parking.reload()? {
                return Err(ServeError::Refused(parking::overflow()));
            }
            return Ok(());
        };
        let (apply, stay) = parking::retries(rows);
        for rejection in stay {
            self.engine
                .record_rejection(parking::still_parked(rejection))?;
        }
        let mut failed: std::collections::HashSet<parking::Document> = Default::default();
        let digester = self.engine.digester();
        for mut rejection in apply {
            if rejection.documents.iter().any(|d| failed.contains(d)) {
                rejection.error = format!(
                    "not retried: an earlier event of its documents was refused again ({})",
                    rejection.error
                );
            } else {
                self.body.clear();
                match self.reapply(&rejection.text, &digester)? {
                    Outcome::Refused => {
                        let again = refusals::rejection(0, None, &self.body, "");
                        (rejection.code, rejection.error) = (again.code, again.error);
                        rejection.behind = None;
                    }
                    outcome => {
                        if let Some(counters) = self.options.counters {
                            counters.count(outcome);
                        }
                        rejection.status = RejectionStatus::Retried;
                    }
                }
            }
            if rejection.status == RejectionStatus::Parked {
                failed.extend(rejection.documents.iter().cloned());
            }
            self.engine.record_rejection(rejection)?;
        }
        self.release(out)?;
        match self.parking.as_mut().expect("parking").reload()? {
            true => Ok(()),
            false => Err(ServeError::Refused(parking::overflow())),
        }
    }

    /// Handles a parked event again, as its line was (digested, its
    /// documents and id read from the state first); its reply is not
    /// written.
    fn reapply(&mut self, text: &str, digester: &Digester) -> Result<Outcome, StateError> {
        let value = parse(text, 0).unwrap_or_default();
        let body = parking::body_of(&value);
        let Some(found) = body.and_then(|b| b.get("event")) else {
            let text = "a parked message carries no event";
            reply::error(&mut self.body, None, MALFORMED_REQUEST, text);
            return Ok(Outcome::Refused);
        };
        let msg_id = body.and_then(|b| b.get("msg_id")).map(Raw::from);
        let event = Event::from(found);
        let mut digest = digester.digest(&event);
        if let Some(digest) = &digest {
            self.engine.preload(std::iter::once(digest))?;
        }
        self.engine
            .handle_event(msg_id.as_ref(), &event, digest.as_mut(), &mut self.body)
    }

    fn warnings(&mut self) {
        for warning in self.engine.take_warnings() {
            // A log that cannot be written is no reason to stop serving.
            let _ = writeln!(self.log, "projector: warning: {warning}");
        }
    }

    /// Answers a bare body or an envelope (a `body` and no `type` of its
    /// own); returns the envelope's other fields.
    fn message(
        &mut self,
        mut message: Map<String, Value>,
    ) -> Result<(Outcome, Option<Map<String, Value>>), StateError> {
        let inner = match message.contains_key("type") {
            true => None,
            false => message.remove("body"),
        };
        let from_stream = self.options.checkpoints.is_some();
        Ok(match inner {
            None if from_stream && refusals::not_an_event(&message, &mut self.body) => {
                (Outcome::Refused, None)
            }
            None => (self.engine.handle(&message, &mut self.body)?, None),
            Some(Value::Object(inner))
                if from_stream && refusals::not_an_event(&inner, &mut self.body) =>
            {
                (Outcome::Refused, Some(message))
            }
            Some(Value::Object(inner)) => {
                (self.engine.handle(&inner, &mut self.body)?, Some(message))
            }
            Some(other) => {
                let text = format!(
                    "input line {}: the envelope's \"body\" must be an object, found {}",
                    self.line_no,
                    type_name(&other)
                );
                reply::error(&mut self.body, None, MALFORMED_REQUEST, &text);
                (Outcome::Refused, Some(message))
            }
        })
    }

    /// Queues the reply in `body`, wrapped when `--envelope` asks for it.
    fn release_later(&mut self, peers: Peers<'_>) {
        let out = &mut self.pending;
        if self.options.envelope {
            out.extend_from_slice(b"{\"src\": ");
            match (self.engine.node_id(), &peers.dest) {
                (Some(node), _) => json::string(out, node),
                (None, Some(dest)) => json::raw(out, dest),
                (None, None) => out.extend_from_slice(b"\"projector\""),
            }
            out.extend_from_slice(b", \"dest\": ");
            json::raw(out, peers.src.as_ref().unwrap_or(&Raw::Null));
            out.extend_from_slice(b", \"body\": ");
            out.extend_from_slice(&self.body);
            out.extend_from_slice(b"}\n");
        } else {
            out.extend_from_slice(&self.body);
            out.push(b'\n');
        }
        self.pending_messages += 1;
    }

    fn batch_full(&self) -> bool {
        self.pending_messages >= self.options.batch_messages
            || self.pending.len() >= self.batch_bytes
            || self.engine.must_submit()
    }

    /// Hands the batch over to be committed and holds its replies until it
    /// is durable; first waits for the batch handed over before, and writes
    /// its replies to `out`. The next batch is applied while this one
    /// commits.
    fn hand_off(&mut self, out: &mut impl Write) -> Result<(), ServeError> {
        self.engine.wait()?;
        out.write_all(&self.committing)?;
        self.committing.clear();
        let through = self.options.checkpoints.as_ref();
        // A run that stops at a refused event commits up to the one before.
        let upto = self.line_no as u64 - u64::from(self.halt.is_some());
        if let Some(sequence) = through.and_then(|c| c.through(upto)) {
            self.engine.set_checkpoint(sequence);
        }
        self.engine.submit()?;
        std::mem::swap(&mut self.pending, &mut self.committing);
        self.pending_messages = 0;
        Ok(())
    }

    /// Commits everything handled so far, then writes and flushes all the
    /// replies held back.
    fn release(&mut self, out: &mut impl Write) -> Result<(), ServeError> {
        self.hand_off(out)?;
        self.engine.wait()?;
        out.write_all(&self.committing)?;
        out.flush()?;
        self.committing.clear();
        Ok(())
    }
}

/// What serving did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Events applied, every one of them committed and answered.
    pub applied: usize,
}

/// Serves messages from `input` until it ends (or is stopped: see
/// [`crate::input::source::Stoppable`]). Replies go to `output`, log lines to
/// `log`. A bad message gets an error reply and the next line is served;
/// only I/O and state errors end the loop early. Every line read is
/// answered, after its batch is committed.
pub fn serve(
    engine: &mut Engine,
    input: impl Input + Send + 'static,
    output: impl Write,
    log: impl Write,
    options: &Options,
) -> Result<Served, ServeError> {
    let digester = engine.digester();
    let reader = Reader::start(input, options.max_line_bytes, Some(digester));
    serve_lines(engine, reader, output, log, options)
}

/// [`serve`], from lines prepared elsewhere: by the reading thread, or
/// routed from a stream to one unit of work.
pub fn serve_lines(
    engine: &mut Engine,
    mut lines: impl Lines,
    mut output: impl Write,
    log: impl Write,
    options: &Options,
) -> Result<Served, ServeError> {
    let batch_bytes = match engine.is_durable() {
        true => MAX_BATCH_BYTES,
        false => MAX_MEMORY_BATCH_BYTES,
    };
    let mut session = Session {
        engine,
        options,
        log,
        line_no: 0,
        body: Vec::with_capacity(256),
        pending: Vec::with_capacity(batch_bytes + 64 * 1024),
        committing: Vec::with_capacity(batch_bytes + 64 * 1024),
        pending_messages: 0,
        batch_bytes,
        halt: None,
        refusals: refusals::Logged::default(),
        parking: match &options.park {
            Some(store) => Some(parking::Parking::open(store.clone())?),
            None => None,
        },
    };
    let mut served = Served::default();
    let mut chunks = Vec::new();
    while let Some(idle) = lines.next_chunks(&mut chunks) {
        let idle = idle?;
        let all = chunks
            .iter()
            .flat_map(|chunk| digests(chunk.borrow_dependent()));
        session.engine.preload(all)?;
        for chunk in &mut chunks {
            chunk.with_dependent_mut(|_, lines| session.chunk(lines, &mut served, &mut output))?;
        }
        lines.done(&mut chunks);
        if idle {
            session.release(&mut output)?;
            session.retry(&mut output)?;
        }
    }
    session.release(&mut output)?;
    Ok(served)
}

impl<L: Write> Session<'_, L> {
    /// Answers the lines of a chunk, counting them in `served`, handing
    /// full batches over to be committed.
    fn chunk(
        &mut self,
        lines: &mut [Prepared<'_>],
        served: &mut Served,
        output: &mut impl Write,
    ) -> Result<(), ServeError> {
        for at in 0..lines.len() {
            prefetch(self.engine, lines, at);
            let outcome = self.line(&mut lines[at])?;
            if outcome == Some(Outcome::Applied) {
                served.applied += 1;
            }
            if let (Some(counters), Some(outcome)) = (self.options.counters, outcome) {
                counters.count(outcome);
            }
            if self.halt.is_some() {
                self.release(output)?;
                let text = self.halt.take().expect("halting");
                return Err(ServeError::Refused(text));
            }
            if self.batch_full() {
                match self.parking.as_ref().is_some_and(|p| p.due()) {
                    true => {
                        self.release(output)?;
                        self.retry(output)?;
                    }
                    false => self.hand_off(output)?,
                }
            }
        }
        Ok(())
    }
}

/// The digests of the events of `lines`, for the engine to read what they
/// need of a state at once.
fn digests<'a>(lines: &'a [Prepared<'a>]) -> impl Iterator<Item = &'a Digest<'a>> + Clone {
    lines.iter().filter_map(|line| match line {
        Prepared::Event(_, Some(digest)) => Some(digest),
        _ => None,
    })
}

/// Before line `at` of a chunk is handled, asks for the memory that the
/// lines ahead will be handled with, in stages, each reading what the one
/// before it loaded:
/// - 3 × [`PREFETCH_AHEAD`] lines ahead, the line's record, written by the
///   reading thread on the other core;
/// - 2 × ahead, its event's resolved bindings, also written there;
/// - 1 × ahead, where the event's id and documents are looked up, and the
///   bindings' operations;
/// - ½ × ahead, the fields of those documents.
///
/// By the time the engine gets to an event, its memory has arrived, while
/// the engine handled the lines between.
fn prefetch(engine: &Engine, lines: &[Prepared<'_>], at: usize) {
    let ahead = |distance: usize| {
        // At the start of a chunk, every line up to that distance.
        let from = if at == 0 { 0 } else { at + distance };
        lines.iter().take(at + distance + 1).skip(from)
    };
    let digests = |distance: usize| {
        ahead(distance).filter_map(|line| match line {
            Prepared::Event(_, Some(digest)) => Some(digest),
            _ => None,
        })
    };
    ahead(3 * PREFETCH_AHEAD).for_each(prefetch_all);
    digests(2 * PREFETCH_AHEAD).for_each(Digest::prefetch);
    digests(PREFETCH_AHEAD).for_each(|d| engine.prefetch(d));
    digests(PREFETCH_AHEAD / 2).for_each(|d| engine.prefetch_fields(d));
}

/// What a replay did.
#[derive(Debug, Default, Clone)]
pub struct ReplayCounts {
    /// Lines read, blank ones too.
    pub lines: usize,
    pub messages: usize,
    pub applied: usize,
    pub skipped: usize,
    pub refused: usize,
    /// The lines (from 1) left for after a rebuild.
    pub deferred: Vec<usize>,
}

/// Applies an event log (the same lines the stdio protocol takes) to the
/// engine, committing in batches; replies are counted, not written. Reports
/// progress to `log` about once a second: messages done out of `total`.
///
/// `only`, when given, is the lines a rebuild deferred (sorted): they alone
/// are counted, the others having been counted by the rebuild's pass.
pub fn replay(
    engine: &mut Engine,
    input: impl Input + Send + 'static,
    total: usize,
    log: impl Write,
    options: &Options,
    only: Option<&[usize]>,
) -> Result<ReplayCounts, ServeError> {
    let started = Instant::now();
    let mut replay = Replay {
        session: Session {
            engine,
            options,
            log: Vec::new(),
            line_no: 0,
            body: Vec::new(),
            pending: Vec::new(),
            committing: Vec::new(),
            pending_messages: 0,
            batch_bytes: MAX_BATCH_BYTES,
            halt: None,
            refusals: refusals::Logged::default(),
            parking: None,
        },
        counts: ReplayCounts::default(),
        only: only.map(|lines| lines.iter().peekable()),
        log,
        total,
        started,
        next_report: started + Duration::from_secs(1),
    };
    let digester = replay.session.engine.digester();
    let reader = Reader::start(input, options.max_line_bytes, Some(digester));
    while let Some(delivery) = reader.next() {
        let Delivery { mut chunk, .. } = delivery?;
        chunk.with_dependent_mut(|_, lines| {
            replay.session.engine.preload(digests(lines))?;
            (0..lines.len()).try_for_each(|at| {
                prefetch(replay.session.engine, lines, at);
                replay.line(&mut lines[at])
            })
        })?;
        reader.done(chunk);
    }
    replay.session.release(&mut io::sink())?;
    replay.counts.lines = replay.session.line_no;
    Ok(replay.counts)
}

struct Replay<'a, 'o, W: Write> {
    session: Session<'a, Vec<u8>>,
    counts: ReplayCounts,
    only: Option<std::iter::Peekable<std::slice::Iter<'o, usize>>>,
    log: W,
    total: usize,
    started: Instant,
    next_report: Instant,
}

impl<W: Write> Replay<'_, '_, W> {
    /// Applies one line and counts what it did.
    fn line(&mut self, line: &mut Prepared<'_>) -> Result<(), ServeError> {
        let session = &mut self.session;
        let outcome = session.line(line)?;
        let counted = match &mut self.only {
            None => true,
            Some(only) => only.next_if_eq(&&session.line_no).is_some(),
        };
        if let Some(outcome) = outcome.filter(|_| counted) {
            let counts = &mut self.counts;
            counts.messages += 1;
            match outcome {
                Outcome::Applied => counts.applied += 1,
                Outcome::Skipped => counts.skipped += 1,
                Outcome::Deferred => counts.deferred.push(session.line_no),
                Outcome::Refused => {
                    counts.refused += 1;
                    if counts.refused <= 5 {
                        let text = String::from_utf8_lossy(&session.body);
                        let _ = writeln!(self.log, "replay: line {}: {text}", session.line_no);
                    }
                }
                Outcome::Other | Outcome::Elsewhere | Outcome::Parked => {}
            }
        }
        if outcome.is_some() && session.batch_full() {
            session.hand_off(&mut io::sink())?;
        }
        let _ = self.log.write_all(&std::mem::take(&mut session.log));
        if Instant::now() >= self.next_report {
            self.next_report += Duration::from_secs(1);
            let done = progress(session.line_no, self.total, self.started);
            let _ = writeln!(self.log, "replay: {done}");
        }
        Ok(())
    }
}

/// `done/total lines, N messages/s`.
pub fn progress(done: usize, total: usize, started: Instant) -> String {
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    format!("{done}/{total} lines, {rate:.0} messages/s")
}

/// Who sent a message and to whom, from its envelope: the reply goes back
/// the other way.
#[derive(Default)]
struct Peers<'a> {
    src: Option<Raw<'a>>,
    dest: Option<Raw<'a>>,
}

/// One message as JSON, or an error text that says what is wrong and where
/// (a message over several lines counts its lines from `line_no`).
fn parse(text: &str, line_no: usize) -> Result<Value, String> {
    serde_json::from_str(&crate::value::surrogate::prepare(text)).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => &message[..i],
            None => &message,
        };
        format!(
            "input line {} is not valid JSON: {message} at column {}",
            line_no + e.line().max(1) - 1,
            e.column()
        )
    })
}
