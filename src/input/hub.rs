//! An instance's one reader of a JetStream stream, shared by its units of
//! work.
//!
//! One ordered consumer reads the stream from the earliest checkpoint of
//! the units attached. Each message is read once, into a chunk of one
//! prepared line ([`reader::one_line`]), and goes to the unit whose
//! partition takes it ([`Plan::takes`]), digested by that unit's
//! digester; a message of a unit this instance does not own costs that
//! decision and nothing more. A line that is no event the scanner reads
//! (malformed, a control message, an event for the general path) goes to
//! every unit, which answers it as it always did. Each unit is told how far
//! the stream went past its last line ([`Checkpoints::passed`]), so that
//! its checkpoint follows the stream, not only its own events.
//!
//! A unit that attaches behind the consumer's position has the consumer
//! made again from its checkpoint; the units ahead skip what they have had.
//! The consumer is made again, too, when its connection is lost, from the
//! sequence after the last one read.

use super::broker::BrokerError;
use super::connection::Lost;
use super::handoff;
use super::nats::{Checkpoints, Consumer, StreamAddress, ASK_TIMEOUT, RETRY_CAP};
use super::reader::{self, Chunk, Lines, Prepared};
use crate::engine::digest::Digester;
use crate::plan::Plan;
use crate::util::log::log;
use crate::util::retry::Backoff;
use crate::util::runtime::{runtime, wait};
use crate::value::event::{Event, Raw};
use async_nats::jetstream::consumer::pull::OrderedError as MessagesError;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Batches of messages waiting for a unit, at most: a unit slower than
/// the stream holds the reader back beyond them.
const WAITING: usize = 32;

/// The most messages the reader gathers for a unit before it hands them
/// over; it hands over what it has whenever the stream has nothing more
/// ready.
const BATCH: usize = 512;

/// How many chunks a unit takes in one go, at most.
const TAKEN: usize = 4096;

/// How long a unit that handled everything it was given waits for more
/// while the reader is behind the stream: a unit catching up commits large
/// batches, one whose events are sparse does not wait long.
const LINGER: Duration = Duration::from_millis(5);

/// How many messages the broker must have waiting for the reader to count
/// as behind the stream (catching up) rather than following it: following
/// it, every unit commits as soon as it handled what it was given, so that
/// an event is visible at once.
const BEHIND: u64 = BATCH as u64;

/// How long a quiet stream waits before it tells a unit so (an idle
/// delivery with no lines): the unit commits, which renews its claim, and
/// retries what is parked.
const TICK: Duration = Duration::from_secs(1);

/// How many messages are read, at most, between two times the stream's
/// last sequence is told to the coordinator ([`Heard`]); it is also told
/// whenever what was gathered is handed over.
const TELL_EVERY: u32 = 256;

/// How long the consumer may deliver nothing, while it is waited for and
/// the last message said more were pending, before it counts as stuck
/// (the broker holds no request of its for more) and is made again.
const STUCK: Duration = Duration::from_secs(2);

/// The process's reader of one stream, a task on the process's runtime.
pub struct Hub {
    /// Dropped to end the reading task.
    commands: Option<UnboundedSender<Attach>>,
    reading: Option<tokio::task::JoinHandle<()>>,
    heard: Arc<Heard>,
}

/// The stream's last sequence as a message read told it (its sequence and
/// how many came after it), and when it was told: at most [`TELL_EVERY`]
/// messages back.
#[derive(Default)]
struct Heard(std::sync::Mutex<Option<(u64, Instant)>>);

impl Drop for Hub {
    /// Ends the reading task, which deletes its consumer if the broker
    /// answers soon, rather than leave it to lapse.
    fn drop(&mut self) {
        self.commands = None;
        if let Some(reading) = self.reading.take() {
            wait(async { tokio::time::timeout(Duration::from_secs(1), reading).await }).ok();
        }
    }
}

/// A unit that wants the stream's messages from `from` on.
struct Attach {
    plan: Plan,
    digester: Digester,
    from: u64,
    sender: SyncSender<Routed>,
    checkpoints: Arc<Checkpoints>,
    closed: Arc<AtomicBool>,
}

/// Messages routed to a unit, one chunk each, and whether the reader was
/// behind the stream when it read the last ([`BEHIND`]).
type Routed = (Vec<Chunk>, bool);

impl Hub {
    /// Starts reading `address` for the units that attach; a message over
    /// `max_line_bytes` is passed on unread.
    pub fn start(address: &StreamAddress, max_line_bytes: usize) -> Hub {
        let (commands, attached) = unbounded_channel();
        let heard = Arc::new(Heard::default());
        let reading = Reading {
            heard: heard.clone(),
            address: address.clone(),
            max_line_bytes,
            units: Vec::new(),
            attached,
            targets: Vec::new(),
            more: false,
            last: 0,
            untold: 0,
            families: 0,
        };
        let reading = runtime().spawn(reading.run());
        Hub {
            commands: Some(commands),
            reading: Some(reading),
            heard,
        }
    }

    /// The stream's last sequence, if a message read within `within`
    /// told it: while messages come, what the broker would answer is known
    /// without asking it (a question on the connection the messages fill
    /// waits behind them).
    pub fn last_heard(&self, within: Duration) -> Option<u64> {
        let heard = *self.heard.0.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .filter(|(_, at)| at.elapsed() < within)
            .map(|(last, _)| last)
    }

    /// Attaches a unit whose engine runs `plan` (the unit's own) and digests
    /// with `digester`: it is given the messages it takes from sequence
    /// `from` on, until `stop` becomes readable or its feed is dropped.
    pub fn attach(
        &self,
        plan: Plan,
        digester: Digester,
        from: u64,
        stop: OwnedFd,
    ) -> (Feed, Arc<Checkpoints>) {
        let (sender, chunks) = mpsc::sync_channel(WAITING);
        let checkpoints = Arc::new(Checkpoints::default());
        let closed = Arc::new(AtomicBool::new(false));
        let attach = Attach {
            plan,
            digester,
            from: from.max(1),
            sender,
            checkpoints: checkpoints.clone(),
            closed: closed.clone(),
        };
        // Sent to a reader that is gone, the feed ends at once.
        if let Some(commands) = &self.commands {
            let _ = commands.send(attach);
        }
        let feed = Feed {
            chunks,
            stop,
            closed,
            quiet: Instant::now(),
            more: false,
        };
        (feed, checkpoints)
    }
}

/// A unit's end: the chunks routed to it, as [`Lines`] for the server.
pub struct Feed {
    chunks: Receiver<Routed>,
    stop: OwnedFd,
    closed: Arc<AtomicBool>,
    /// Since when nothing came.
    quiet: Instant,
    /// The reader was behind the stream when it read the last message
    /// taken.
    more: bool,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Lines for Feed {
    fn next_chunks(&mut self, into: &mut Vec<Chunk>) -> Option<io::Result<bool>> {
        if super::source::readable(&self.stop, Duration::ZERO) {
            return None;
        }
        loop {
            match self.chunks.recv_timeout(Duration::from_millis(100)) {
                Ok((chunks, more)) => {
                    into.extend(chunks);
                    self.more = more;
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if super::source::readable(&self.stop, Duration::ZERO) {
                        return None;
                    }
                    if self.quiet.elapsed() >= TICK {
                        self.quiet = Instant::now();
                        return Some(Ok(true));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        let lingered = Instant::now() + LINGER;
        while into.len() < TAKEN {
            let wait = match self.more {
                true => lingered.saturating_duration_since(Instant::now()),
                false => Duration::ZERO,
            };
            match self.chunks.recv_timeout(wait) {
                Ok((chunks, more)) => {
                    into.extend(chunks);
                    self.more = more;
                }
                Err(_) => break,
            }
        }
        self.quiet = Instant::now();
        // Nothing more waits: what was handled is committed now, so that a
        // lone event is visible at once. While the reader is behind the
        // batch goes on (the server commits it when it is full).
        Some(Ok(into.len() < TAKEN && !self.more))
    }

    fn done(&mut self, chunks: &mut Vec<Chunk>) {
        chunks.clear();
    }
}

/// A unit as the reader serves it.
struct Unit {
    plan: Plan,
    /// Units whose plans read events alike ([`Plan::reads_like`]) are of
    /// one family.
    family: usize,
    digester: Digester,
    /// The next sequence it is to be given.
    next: u64,
    /// Lines routed to it so far.
    lines: u64,
    /// Messages routed to it and not handed over yet, and where each
    /// ends in the stream.
    gathered: Vec<Chunk>,
    ends: Vec<(u64, u64)>,
    /// The last sequence the reader passed it by.
    passed: u64,
    sender: SyncSender<Routed>,
    checkpoints: Arc<Checkpoints>,
    closed: Arc<AtomicBool>,
}

impl From<Attach> for Unit {
    fn from(a: Attach) -> Unit {
        Unit {
            plan: a.plan,
            family: usize::MAX,
            digester: a.digester,
            next: a.from,
            lines: 0,
            gathered: Vec::new(),
            ends: Vec::new(),
            passed: 0,
            sender: a.sender,
            checkpoints: a.checkpoints,
            closed: a.closed,
        }
    }
}

/// The reading task.
struct Reading {
    address: StreamAddress,
    heard: Arc<Heard>,
    max_line_bytes: usize,
    units: Vec<Unit>,
    attached: UnboundedReceiver<Attach>,
    /// The units a message goes to (reused).
    targets: Vec<usize>,
    /// The reader was behind the stream at the last message read.
    more: bool,
    /// The stream's last sequence, as the last message read said (its
    /// sequence and how many came after it).
    last: u64,
    /// Messages read since `last` was last told to the coordinator.
    untold: u32,
    /// Families of units numbered so far.
    families: usize,
}

/// Why a consumer stopped being read.
enum Ended {
    /// Made again: a unit attached behind it, or it failed.
    Again,
    /// Every unit left.
    Idle,
    /// The hub is gone.
    Gone,
}

impl Reading {
    /// Adds a unit, in the family of the first that reads events alike.
    fn add(&mut self, attach: Attach) {
        let mut unit = Unit::from(attach);
        unit.family = self
            .units
            .iter()
            .find(|u| u.plan.reads_like(&unit.plan))
            .map(|u| u.family)
            .unwrap_or_else(|| {
                self.families += 1;
                self.families
            });
        self.units.push(unit);
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), RETRY_CAP);
        loop {
            self.units.retain(|u| !u.closed.load(Ordering::SeqCst));
            while self.units.is_empty() {
                match self.attached.recv().await {
                    Some(attach) => self.add(attach),
                    None => return,
                }
            }
            while let Ok(attach) = self.attached.try_recv() {
                self.add(attach);
            }
            let from = self.units.iter().map(|u| u.next).min().unwrap_or(1);
            let asked = tokio::time::timeout(
                ASK_TIMEOUT,
                super::nats::subscribe_named(&self.address, from),
            );
            let subscribed = asked
                .await
                .unwrap_or_else(|_| Err(BrokerError::silent(&self.address)));
            let (mut messages, lost, made) = match subscribed {
                Ok(subscribed) => subscribed,
                Err(e) => {
                    if backoff.is_fresh() {
                        log(&format!("{e}; trying again"));
                    }
                    let pause = backoff.pause().expect("no deadline");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            if !backoff.is_fresh() {
                log(&format!(
                    "{}: consuming again from sequence {from}",
                    self.address
                ));
            }
            backoff.reset();
            let ended = self.read(&mut messages, &lost, from).await;
            drop(messages);
            if let Ended::Gone = ended {
                if !lost.is_raised() {
                    let _ = tokio::time::timeout(Duration::from_millis(500), made.delete()).await;
                }
                return;
            }
            // Off the reading path: a broker that does not answer (the
            // reason, often, to make the consumer again) holds nothing up.
            tokio::spawn(made.delete());
            match ended {
                Ended::Gone => return,
                Ended::Idle => {}
                Ended::Again => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Passes the consumer's messages on from sequence `from`.
    async fn read(&mut self, messages: &mut Consumer, lost: &Lost, from: u64) -> Ended {
        use futures_core::Stream;
        let mut next = from;
        // How long the consumer was waited for since it last delivered.
        let mut waited = Duration::ZERO;
        self.last = 0;
        loop {
            if lost.is_raised() {
                log(&format!(
                    "{}: the connection to the broker was lost; consuming again from sequence {next} once it answers",
                    self.address
                ));
                return Ended::Again;
            }
            while let Ok(attach) = self.attached.try_recv() {
                let behind = attach.from < next;
                self.add(attach);
                if behind {
                    return Ended::Again;
                }
            }
            let mut poll =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut *messages).poll_next(cx));
            let ready = match self.units.iter().any(|u| !u.gathered.is_empty()) {
                true => tokio::time::timeout(Duration::ZERO, &mut poll).await.ok(),
                false => None,
            };
            let item = match ready {
                Some(item) => item,
                None => {
                    // What was gathered goes out as soon as the stream has
                    // nothing more ready.
                    self.hand_over().await;
                    tokio::select! {
                        attach = self.attached.recv() => {
                            let Some(attach) = attach else { return Ended::Gone };
                            let behind = attach.from < next;
                            self.add(attach);
                            match behind {
                                true => return Ended::Again,
                                false => continue,
                            }
                        }
                        item = tokio::time::timeout(Duration::from_millis(250), poll) => match item {
                            Ok(item) => item,
                            Err(_) => {
                                self.units.retain(|u| !u.closed.load(Ordering::SeqCst));
                                if self.units.is_empty() {
                                    return Ended::Idle;
                                }
                                waited += Duration::from_millis(250);
                                if self.last >= next && waited >= STUCK {
                                    log(&format!(
                                        "{}: the stream's consumer delivered nothing for {} s with {} messages pending; consuming again from sequence {next}",
                                        self.address,
                                        waited.as_secs(),
                                        self.last + 1 - next
                                    ));
                                    return Ended::Again;
                                }
                                continue;
                            }
                        }
                    }
                }
            };
            waited = Duration::ZERO;
            if let Some(ended) = self.take(item, &mut next).await {
                return ended;
            }
        }
    }

    /// Takes what the consumer gave: a message at `next` or later is passed
    /// on. `Some` when the consumer is to be made again or left.
    async fn take(
        &mut self,
        item: Option<Result<async_nats::jetstream::Message, MessagesError>>,
        next: &mut u64,
    ) -> Option<Ended> {
        let message = match item {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                log(&format!("{}: reading the stream failed: {e}", self.address));
                return Some(Ended::Again);
            }
            None => {
                log(&format!("{}: the stream's consumer ended", self.address));
                return Some(Ended::Again);
            }
        };
        let (sequence, more) = match message.info() {
            Ok(info) => {
                self.last = info.stream_sequence + info.pending;
                self.untold += 1;
                if self.untold >= TELL_EVERY {
                    self.tell();
                }
                (info.stream_sequence, info.pending >= BEHIND)
            }
            Err(e) => {
                log(&format!(
                    "{}: a message without its sequence: {e}",
                    self.address
                ));
                return Some(Ended::Again);
            }
        };
        // Redelivered by a consumer made again: already passed on.
        if sequence < *next {
            return None;
        }
        *next = sequence + 1;
        self.more = more;
        self.pass_on(&message.payload, sequence).await;
        self.units.is_empty().then_some(Ended::Idle)
    }

    /// Routes the message at `sequence` to the units that take it, and
    /// passes the others by.
    async fn pass_on(&mut self, payload: &[u8], sequence: u64) {
        let mut chunk = reader::one_line(payload.to_vec(), self.max_line_bytes);
        self.targets.clear();
        let units = &self.units;
        let targets = &mut self.targets;
        chunk.with_dependent_mut(|_, lines| {
            let waiting = units.iter().enumerate().filter(|(_, u)| u.next <= sequence);
            match &mut lines[0] {
                Prepared::Event(message, None) => {
                    let event = Event::new(std::mem::replace(&mut message.event, Raw::Null));
                    // Read once for every unit of one configuration (of the
                    // first few: a family past them reads it for each unit).
                    let mut seen = [None; 4];
                    for (i, unit) in waiting {
                        let known = seen.iter().flatten().find(|(f, _)| *f == unit.family);
                        let read = match known {
                            Some(&(_, read)) => read,
                            None => {
                                let read = unit.plan.see(&event);
                                if let Some(free) = seen.iter_mut().find(|s| s.is_none()) {
                                    *free = Some((unit.family, read));
                                }
                                read
                            }
                        };
                        if unit.plan.takes(&read, &event) {
                            targets.push(i);
                        }
                    }
                    message.event = event.into_root();
                }
                _ => targets.extend(waiting.map(|(i, _)| i)),
            }
        });
        let targets = std::mem::take(&mut self.targets);
        let mut chunk = Some(chunk);
        for (n, &at) in targets.iter().enumerate() {
            let mut own = match n + 1 == targets.len() {
                true => chunk.take().expect("the last target's"),
                // A message that goes to several units (a version built beside
                // the one served, or a line every unit answers) is read again
                // for each: their engines mark up their own copies.
                false => reader::one_line(payload.to_vec(), self.max_line_bytes),
            };
            let unit = &mut self.units[at];
            reader::digest_lines(&mut own, &unit.digester);
            unit.lines += 1;
            unit.gathered.push(own);
            unit.ends.push((unit.lines, sequence));
        }
        self.targets = targets;
        for unit in self.units.iter_mut().filter(|u| u.next <= sequence) {
            unit.next = sequence + 1;
            unit.passed = sequence;
        }
        let more = self.more;
        for unit in self.units.iter_mut().filter(|u| u.gathered.len() >= BATCH) {
            hand_over(unit, more).await;
        }
    }

    /// Hands every unit what was gathered for it, and tells it how far the
    /// stream went.
    async fn hand_over(&mut self) {
        self.tell();
        let more = self.more;
        for unit in &mut self.units {
            hand_over(unit, more).await;
        }
        self.units.retain(|u| !u.closed.load(Ordering::SeqCst));
    }

    /// Tells the coordinator the stream's last sequence as read so far.
    fn tell(&mut self) {
        if self.untold > 0 {
            self.untold = 0;
            *self.heard.0.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((self.last, Instant::now()));
        }
    }
}

/// Hands `unit` what was gathered for it, waiting while it has too much to
/// do; `more`: the reader is behind the stream.
async fn hand_over(unit: &mut Unit, more: bool) {
    unit.checkpoints
        .add(unit.ends.drain(..), (unit.lines, unit.passed));
    if unit.gathered.is_empty() {
        return;
    }
    let gathered = std::mem::take(&mut unit.gathered);
    send(unit, (gathered, more)).await;
}

/// Sends `chunk` to `unit`, waiting while the unit has too much to do; a
/// unit gone is marked closed.
async fn send(unit: &Unit, chunk: Routed) {
    if !handoff::hand(&unit.sender, chunk, &unit.closed).await {
        unit.closed.store(true, Ordering::SeqCst);
    }
}
