//! Events to and from NATS JetStream: a stream as the command line names
//! it (`nats://HOST:PORT/STREAM`), and input lines as `publish` sends them.

use super::broker::BrokerError;
use super::connection::Lost;
use crate::plan::event_id::EventIdRule;
use crate::util::retry::Backoff;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAddress {
    /// `HOST:PORT`, as the client connects to it.
    pub server: String,
    pub stream: String,
}

/// Why a text is not a stream's address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0:?} is not a nats://HOST:PORT/STREAM address")]
    NotNats(String),
    #[error("{0:?} names no stream: nats://HOST:PORT/STREAM")]
    NoStream(String),
    #[error("{0:?} names no server: nats://HOST:PORT/STREAM")]
    NoServer(String),
    #[error("{0:?} cannot name a JetStream stream: a name is not empty and has no spaces, '.', '*', '>', '/' or '\\'")]
    StreamName(String),
}

impl StreamAddress {
    /// Reads `nats://HOST:PORT/STREAM`; says what is wrong otherwise.
    pub fn parse(text: &str) -> Result<StreamAddress, AddressError> {
        let rest = text
            .strip_prefix("nats://")
            .ok_or_else(|| AddressError::NotNats(text.to_owned()))?;
        let (server, stream) = rest
            .split_once('/')
            .ok_or_else(|| AddressError::NoStream(text.to_owned()))?;
        if server.is_empty() {
            return Err(AddressError::NoServer(text.to_owned()));
        }
        // JetStream's rule for stream names.
        let bad = |c: char| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c);
        if stream.is_empty() || stream.chars().any(bad) {
            return Err(AddressError::StreamName(stream.to_owned()));
        }
        let server = match server.contains(':') {
            true => server.to_owned(),
            false => format!("{server}:4222"),
        };
        Ok(StreamAddress {
            server,
            stream: stream.to_owned(),
        })
    }

    /// The subject the projector publishes a stream's events on, when it
    /// creates the stream.
    pub fn subject(&self) -> String {
        format!("{}.events", self.stream)
    }
}

impl fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nats://{}/{}", self.server, self.stream)
    }
}

/// How long at most between two attempts to reach a broker that does not
/// answer: once it answers again, it is found within about that long.
pub const RETRY_CAP: Duration = Duration::from_secs(1);

/// How long a question to the broker (the stream's state, a consumer made)
/// may take before it counts as unanswered.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the stream's state may take to come, when the cluster's
/// coordinator asks for it every turn.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A JetStream context on the process's connection to the server of
/// `address` ([`super::connection`]).
pub async fn connect(
    address: &StreamAddress,
) -> Result<async_nats::jetstream::Context, BrokerError> {
    Ok(super::connection::connect(address).await?.0)
}

/// What the broker says of the stream `address` names.
pub async fn stream_info(
    js: &async_nats::jetstream::Context,
    address: &StreamAddress,
) -> Result<async_nats::jetstream::stream::Info, BrokerError> {
    let mut stream = js
        .get_stream(&address.stream)
        .await
        .map_err(|e| BrokerError::new(address, "cannot find the stream", e))?;
    stream
        .info()
        .await
        .map_err(|e| BrokerError::new(address, "cannot read the stream", e))
        .cloned()
}

/// The last sequence of a stream, asked of the broker.
pub struct Tail {
    address: StreamAddress,
}

impl Tail {
    pub fn new(address: &StreamAddress) -> Tail {
        Tail {
            address: address.clone(),
        }
    }

    /// The sequence of the stream's last message (0 when it has none),
    /// asked on the process's one connection to the broker.
    pub fn last(&self) -> Result<u64, BrokerError> {
        let address = &self.address;
        let asked = async {
            let js = connect(address).await?;
            Ok(stream_info(&js, address).await?.state.last_sequence)
        };
        let timed = async {
            tokio::time::timeout(PROBE_TIMEOUT, asked)
                .await
                .unwrap_or_else(|_| Err(BrokerError::silent(address)))
        };
        crate::util::runtime::wait(timed)
    }
}

/// A line of input, as `publish` takes it.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// An event: the message to publish (an event message as `run` reads
    /// it, exactly as written; a bare event wrapped in one), and its id
    /// when the event-id rule finds one.
    Event {
        message: String,
        id: Option<String>,
    },
    /// Another message (`init`, `subscribe`, `query`, ...): its type.
    Other(String),
    Blank,
    /// Not JSON, or neither a message nor an event: why.
    Bad(String),
}

impl Line {
    pub fn read(line: &str, rule: &EventIdRule) -> Line {
        if line.trim().is_empty() {
            return Line::Blank;
        }
        let value: Value = match serde_json::from_str(&crate::value::surrogate::prepare(line)) {
            Ok(value) => value,
            Err(e) => return Line::Bad(format!("not valid JSON: {e}")),
        };
        let envelope = value.get("body").filter(|b| b.is_object());
        let body = envelope.unwrap_or(&value);
        let (message, event) = match (body.get("type"), body.get("event")) {
            (Some(Value::String(t)), Some(event)) if t == "event" => {
                (line.trim().to_owned(), event)
            }
            (Some(Value::String(t)), _) if envelope.is_some() || body.get("msg_id").is_some() => {
                return Line::Other(t.clone())
            }
            (Some(Value::String(_)), _) => (
                format!("{{\"type\":\"event\",\"event\":{}}}", line.trim()),
                &value,
            ),
            _ => {
                return Line::Bad(
                    "neither a message nor an event (an object with a \"type\")".to_owned(),
                )
            }
        };
        if !event.is_object() {
            return Line::Bad("its event is not a JSON object".to_owned());
        }
        let id = rule.resolve(event).ok().map(|id| id.into_owned());
        Line::Event { message, id }
    }
}

/// Which line of input ends each message taken from the stream, and the
/// message's sequence: the server asks, when it hands a batch over, up to
/// which sequence the batch goes. A unit of work that is given only its own
/// messages is also told how far the stream went past its last line
/// ([`Checkpoints::passed`]): its checkpoint moves on over the messages
/// that were not its own.
#[derive(Debug, Default)]
pub struct Checkpoints {
    ends: Mutex<Ends>,
}

#[derive(Debug, Default)]
struct Ends {
    lines: VecDeque<(u64, u64)>,
    /// After this line, the stream went on to this sequence.
    passed: (u64, u64),
    /// The sequence [`Checkpoints::through`] last answered.
    answered: u64,
}

impl Checkpoints {
    pub(crate) fn push(&self, line: u64, sequence: u64) {
        self.lock().lines.push_back((line, sequence));
    }

    /// Where lines end in the stream (`ends`), and that every message
    /// after line `passed.0` up to sequence `passed.1` was someone else's.
    pub(crate) fn add(&self, ends: impl Iterator<Item = (u64, u64)>, passed: (u64, u64)) {
        let mut held = self.lock();
        held.lines.extend(ends);
        held.passed = passed;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sequence of the message whose line is `line`, while no batch
    /// has gone past it.
    pub fn sequence_of(&self, line: u64) -> Option<u64> {
        let ends = self.lock();
        ends.lines
            .iter()
            .find(|(end, _)| *end == line)
            .map(|(_, s)| *s)
    }

    /// The sequence the stream is applied through once the lines up to
    /// `line` (counting from 1) are, once: `None` when it did not move
    /// since the last call.
    pub fn through(&self, line: u64) -> Option<u64> {
        let mut ends = self.lock();
        let mut last = 0;
        while ends.lines.front().is_some_and(|(end, _)| *end <= line) {
            last = ends
                .lines
                .pop_front()
                .map_or(last, |(_, sequence)| sequence);
        }
        if ends.passed.0 <= line {
            last = last.max(ends.passed.1);
        }
        (last > ends.answered).then(|| {
            ends.answered = last;
            last
        })
    }
}

/// A message from the source thread: its line and sequence.
type Message = Result<(Vec<u8>, u64), String>;

/// The messages of a JetStream stream from a sequence on, as input lines:
/// an ordered consumer (no acknowledgements: the position is the state's
/// checkpoint) on a thread of its own feeds them to `read`, one line each.
pub struct NatsInput {
    messages: Receiver<Message>,
    /// A message taken while [`Input::ready`] waited for one.
    early: Mutex<Option<Message>>,
    shared: Arc<Shared>,
    buffer: Vec<u8>,
    at: usize,
    lines: u64,
    checkpoints: Arc<Checkpoints>,
    stop: Option<OwnedFd>,
    stopped: bool,
    /// Since when no message came.
    quiet: std::time::Instant,
}

/// How long a quiet stream waits before it gives the reader a blank line.
const TICK: Duration = Duration::from_secs(1);

impl NatsInput {
    /// Starts consuming `address` at `from` (a sequence, 1 for the start);
    /// fails when the broker or the stream cannot be reached. A readable
    /// `stop` ends the input, as at the end of a file.
    pub fn start(
        address: &StreamAddress,
        from: u64,
        stop: Option<OwnedFd>,
    ) -> Result<(NatsInput, Arc<Checkpoints>), String> {
        let (sender, messages) = mpsc::sync_channel(4096);
        let (ready, started) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let counter = shared.clone();
        let address = address.clone();
        crate::util::runtime::runtime().spawn(consume(address, from, sender, ready, counter));
        started
            .recv()
            .unwrap_or_else(|_| Err("the source thread ended".to_owned()))?;
        let checkpoints = Arc::new(Checkpoints::default());
        let input = NatsInput {
            messages,
            early: Mutex::new(None),
            shared,
            buffer: Vec::new(),
            at: 0,
            lines: 0,
            checkpoints: checkpoints.clone(),
            stop,
            stopped: false,
            quiet: std::time::Instant::now(),
        };
        Ok((input, checkpoints))
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| super::source::readable(stop, Duration::ZERO))
    }
}

async fn consume(
    address: StreamAddress,
    from: u64,
    sender: SyncSender<Message>,
    ready: mpsc::Sender<Result<(), String>>,
    shared: Arc<Shared>,
) {
    let mut next = from;
    let mut ready = Some(ready);
    let mut backoff = Backoff::new(Duration::from_millis(200), RETRY_CAP);
    loop {
        let asked = tokio::time::timeout(ASK_TIMEOUT, subscribe(&address, next));
        let subscribed = asked
            .await
            .unwrap_or_else(|_| Err(BrokerError::silent(&address)));
        let (mut messages, lost) = match subscribed {
            Ok(subscribed) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                } else {
                    crate::util::log::log(&format!(
                        "{address}: consuming again from sequence {next}"
                    ));
                }
                backoff.reset();
                subscribed
            }
            // The first time, the caller reports it; later, the broker is
            // waited for.
            Err(e) => match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
                None => {
                    if backoff.is_fresh() {
                        crate::util::log::log(&format!("{e}; trying again"));
                    }
                    if !wait(&shared, backoff.pause().expect("no deadline")).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let passed = pass_on(
            &address,
            (&mut messages, &lost),
            &mut next,
            &sender,
            &shared,
        );
        if !passed.await {
            return;
        }
        if !wait(&shared, Duration::from_millis(200)).await {
            return;
        }
    }
}

/// Passes the consumer's messages on from sequence `next`, which it
/// advances, until the consumer fails or its connection is lost (true:
/// a consumer is to be made again) or the input is gone (false).
async fn pass_on(
    address: &StreamAddress,
    (messages, lost): (&mut Consumer, &Lost),
    next: &mut u64,
    sender: &SyncSender<Message>,
    shared: &Shared,
) -> bool {
    use futures_core::Stream;
    loop {
        if lost.is_raised() {
            crate::util::log::log(&format!(
                "{address}: the connection to the broker was lost; consuming again from sequence {next} once it answers"
            ));
            return true;
        }
        let poll = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *messages).poll_next(cx));
        let next_message = match tokio::time::timeout(Duration::from_millis(250), poll).await {
            Ok(item) => item,
            Err(_) if shared.closed.load(Ordering::SeqCst) => return false,
            Err(_) => continue,
        };
        let (line, sequence) = match next_message {
            Some(Ok(message)) => match message.info() {
                Ok(info) => {
                    let mut line: Vec<u8> = message
                        .payload
                        .iter()
                        .map(|&b| if b == b'\n' { b' ' } else { b })
                        .collect();
                    line.push(b'\n');
                    (line, info.stream_sequence)
                }
                Err(e) => {
                    crate::util::log::log(&format!(
                        "{address}: a message without its sequence: {e}"
                    ));
                    return true;
                }
            },
            Some(Err(e)) => {
                crate::util::log::log(&format!("{address}: reading the stream failed: {e}"));
                return true;
            }
            None => {
                crate::util::log::log(&format!("{address}: the stream's consumer ended"));
                return true;
            }
        };
        // Redelivered by a consumer made again: already passed on.
        if sequence < *next {
            continue;
        }
        *next = sequence + 1;
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        if !super::handoff::hand(sender, Ok((line, sequence)), &shared.closed).await {
            return false;
        }
    }
}

pub(crate) type Consumer = async_nats::jetstream::consumer::pull::Ordered;

/// An ordered consumer of the stream from sequence `from`, on the
/// process's connection, and the flag raised when that connection is lost.
pub(crate) async fn subscribe(
    address: &StreamAddress,
    from: u64,
) -> Result<(Consumer, Lost), BrokerError> {
    let (messages, lost, _) = subscribe_named(address, from).await?;
    Ok((messages, lost))
}

/// A consumer the broker keeps (for a while) after its reader left: the
/// stream it reads and its name, to delete it by.
pub(crate) struct Made {
    stream: async_nats::jetstream::stream::Stream,
    name: String,
}

impl Made {
    /// Deletes the consumer, if the broker answers soon: one made again
    /// does not linger beside its successor.
    pub(crate) async fn delete(self) {
        let deleted = self.stream.delete_consumer(&self.name);
        let _ = tokio::time::timeout(Duration::from_secs(2), deleted).await;
    }
}

/// [`subscribe`], and the consumer made.
pub(crate) async fn subscribe_named(
    address: &StreamAddress,
    from: u64,
) -> Result<(Consumer, Lost, Made), BrokerError> {
    use async_nats::jetstream::consumer::{pull, DeliverPolicy};
    let (context, lost) = super::connection::connect(address).await?;
    let stream = context
        .get_stream(&address.stream)
        .await
        .map_err(|e| BrokerError::new(address, "cannot find the stream", e))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| BrokerError::new(address, "cannot consume the stream", e))?;
    let made = Made {
        name: consumer.cached_info().name.clone(),
        stream,
    };
    let messages = consumer
        .messages()
        .await
        .map_err(|e| BrokerError::new(address, "cannot consume the stream", e))?;
    Ok((messages, lost, made))
}

/// Waits `pause`; false when the input was dropped meanwhile.
async fn wait(shared: &Shared, pause: Duration) -> bool {
    tokio::time::sleep(pause).await;
    !shared.closed.load(Ordering::SeqCst)
}

/// What the source thread and the input share.
#[derive(Debug, Default)]
struct Shared {
    /// Messages sent and not yet taken.
    waiting: AtomicUsize,
    /// The input is gone: the thread ends.
    closed: AtomicBool,
}

impl Drop for NatsInput {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}

impl Read for NatsInput {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buffer.len() {
            if self.stopped {
                return Ok(0);
            }
            let early = self
                .early
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let next = match early {
                Some(item) => Ok(item),
                None => self
                    .messages
                    .recv_timeout(Duration::from_millis(100))
                    .inspect(|_| {
                        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
                    }),
            };
            match next {
                Ok(item) => {
                    let (line, sequence) = item.map_err(io::Error::other)?;
                    self.quiet = std::time::Instant::now();
                    self.buffer = line;
                    self.at = 0;
                    self.lines += 1;
                    self.checkpoints.push(self.lines, sequence);
                }
                Err(RecvTimeoutError::Timeout) if self.quiet.elapsed() >= TICK => {
                    // A blank line, which gets no reply: what waits for a
                    // batch boundary (retries of parked events) gets one.
                    self.buffer = b"\n".to_vec();
                    self.at = 0;
                    self.lines += 1;
                    self.quiet = std::time::Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => self.stopped = self.stop_requested(),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = out.len().min(self.buffer.len() - self.at);
        out[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// How long a pause in the stream must last before the input counts as
/// idle (and the batch so far is committed): the stream's messages arrive
/// one by one, and a consumer that caught up with them would otherwise
/// commit every few of them.
const LINGER: Duration = Duration::from_millis(25);

impl super::source::Input for NatsInput {
    fn ready(&self) -> bool {
        if self.at < self.buffer.len() || self.shared.waiting.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let mut early = self.early.lock().unwrap_or_else(|e| e.into_inner());
        if early.is_some() {
            return true;
        }
        match self.messages.recv_timeout(LINGER) {
            Ok(item) => {
                self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
                *early = Some(item);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // Ended: a read returns at once.
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn framed(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_s_checkpoint_follows_its_lines_and_the_stream_it_was_passed_by() {
        let c = Checkpoints::default();
        // Lines 1 and 2 are messages 3 and 7; the stream went on to 9.
        c.add([(1, 3), (2, 7)].into_iter(), (2, 9));
        assert_eq!(c.sequence_of(2), Some(7));
        assert_eq!(c.through(1), Some(3), "line 2 is not handled yet");
        assert_eq!(c.through(1), None, "once");
        assert_eq!(c.through(2), Some(9), "messages 8 and 9 were not its own");
        // Passed by, with no line of its own since.
        c.add(std::iter::empty(), (2, 12));
        assert_eq!(c.through(2), Some(12));
        assert_eq!(c.through(2), None);
        c.add([(3, 13)].into_iter(), (3, 13));
        assert_eq!(c.through(3), Some(13));
    }

    #[test]
    fn addresses_name_a_server_and_a_stream() {
        let a = StreamAddress::parse("nats://127.0.0.1:4222/ORDERS").unwrap();
        assert_eq!(
            (a.server.as_str(), a.stream.as_str()),
            ("127.0.0.1:4222", "ORDERS")
        );
        assert_eq!(a.to_string(), "nats://127.0.0.1:4222/ORDERS");
        assert_eq!(a.subject(), "ORDERS.events");
        assert_eq!(
            StreamAddress::parse("nats://db/S").unwrap().server,
            "db:4222"
        );
        for bad in [
            "http://x/S",
            "nats://x",
            "nats:///S",
            "nats://x/",
            "nats://x/a.b",
            "nats://x/a b",
        ] {
            assert!(StreamAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_events_other_messages_or_refused() {
        let rule = EventIdRule::from_definition(r#"{"derive":null,"path":"$.id"}"#).unwrap();
        let read = |line: &str| Line::read(line, &rule);
        let event = |message: &str, id: Option<&str>| Line::Event {
            message: message.to_owned(),
            id: id.map(str::to_owned),
        };
        let message = r#"{"type":"event","msg_id":1,"event":{"type":"T","id":"e1","n":1.50}}"#;
        assert_eq!(read(message), event(message, Some("e1")));
        let envelope = format!(r#"{{"src":"bus","dest":"p","body":{message}}}"#);
        assert_eq!(read(&envelope), event(&envelope, Some("e1")));
        // A bare event is wrapped as written, lone surrogate escapes and all.
        assert_eq!(
            read(r#"{"type":"T","id":7,"s":"\ud800"}"#),
            event(
                r#"{"type":"event","event":{"type":"T","id":7,"s":"\ud800"}}"#,
                Some("7")
            )
        );
        assert_eq!(
            read(r#"{"type":"T"}"#),
            event(r#"{"type":"event","event":{"type":"T"}}"#, None)
        );
        assert_eq!(
            read(r#"{"type":"subscribe","msg_id":2,"event_types":["T"]}"#),
            Line::Other("subscribe".to_owned())
        );
        assert_eq!(read("  "), Line::Blank);
        assert!(matches!(read("{"), Line::Bad(_)));
        assert!(matches!(read("[1]"), Line::Bad(_)));
        assert!(matches!(
            read(r#"{"type":"event","msg_id":1,"event":3}"#),
            Line::Bad(_)
        ));
    }
}
