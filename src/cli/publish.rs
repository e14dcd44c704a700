//! `projector publish --to nats://HOST:PORT/STREAM`: the events on stdin
//! into a JetStream stream, each with its id in `Nats-Msg-Id` so that the
//! broker drops a redelivery within its window; done when every one is
//! acknowledged as stored. However it ends (done, interrupted, failed), it
//! says how many events were stored, up to which sequence, and from which
//! line to publish again.

use super::signals::{self, Stop};
use super::{load_plan, log, plural, EX_IOERR, EX_USAGE};
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use clap::Args;
use projector::input::nats::{Line, StreamAddress};
use projector::plan::event_id::EventIdRule;
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Unacknowledged publications at most: a window that keeps the link busy.
const IN_FLIGHT: usize = 1024;

/// How long the acknowledgements of what was sent are waited for once
/// publishing stopped.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

/// Exit status when some lines were neither events nor messages (sysexits' EX_DATAERR).
const EX_DATAERR: u8 = 65;

#[derive(Args)]
pub struct PublishArgs {
    /// The stream: nats://HOST:PORT/STREAM. Created if it does not exist, taking the subject
    /// STREAM.events.
    #[arg(long, value_name = "URL")]
    to: String,
    /// The configuration whose [event_id] rule finds each event's id. Default:
    /// ./projections.toml, else the bundled one.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
}

/// What was published.
#[derive(Default)]
struct Counts {
    lines: usize,
    stored: u64,
    duplicates: u64,
    without_id: u64,
    other: u64,
    bad: u64,
    first: Option<u64>,
    last: u64,
    /// Lines published (or skipped, not being events) up to this one.
    handled: usize,
    /// The first line not known to be stored, when publishing stopped
    /// before the end of its input.
    again_from: Option<usize>,
}

impl Counts {
    /// Line `line` and those after it are not known to be stored.
    fn not_stored_from(&mut self, line: usize) {
        self.again_from = Some(self.again_from.map_or(line, |l| l.min(line)));
    }
}

/// How publishing ended.
enum End {
    /// Every line read, every event acknowledged.
    Done,
    /// Stopped by a signal (its name and number).
    Interrupted(&'static str, i32),
    /// Stopped by an error.
    Failed(String),
}

pub fn publish(args: &PublishArgs) -> ExitCode {
    let address = match StreamAddress::parse(&args.to) {
        Ok(address) => address,
        Err(e) => {
            log(&format!("projector: --to: {e}"));
            return ExitCode::from(EX_USAGE);
        }
    };
    let config = match load_plan(args.config.as_deref(), true) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut counts = Counts::default();
    let end = projector::util::runtime::wait(send(&address, &config.plan.event_id, &mut counts));
    if let End::Failed(e) = &end {
        log(&format!("projector: {e}"));
    }
    log(&summary(&address, &counts, &end));
    // The reading thread may be blocked on stdin: nothing waits for it
    // (the process ends when this returns).
    match end {
        End::Done if counts.bad == 0 => ExitCode::SUCCESS,
        End::Done => ExitCode::from(EX_DATAERR),
        End::Interrupted(_, number) => ExitCode::from(128 + number as u8),
        End::Failed(_) => ExitCode::from(EX_IOERR),
    }
}

fn summary(address: &StreamAddress, c: &Counts, end: &End) -> String {
    let mut text = match end {
        End::Done => "publish: ".to_owned(),
        End::Interrupted(signal, _) => format!("publish: interrupted by {signal}: "),
        End::Failed(_) => "publish: stopped by that error: ".to_owned(),
    };
    text.push_str(&format!(
        "{} from {} stored in {}",
        plural(c.stored, "event"),
        plural(c.lines as u64, "line"),
        address
    ));
    if let Some(first) = c.first {
        text.push_str(&format!(" (sequences {first}..{})", c.last));
    }
    text.push_str(&match c.duplicates {
        1 => "; 1 redelivery dropped by JetStream as already stored".to_owned(),
        n => format!("; {n} redeliveries dropped by JetStream as already stored"),
    });
    let counted = [
        (
            c.without_id,
            "event",
            " without an id (published without Nats-Msg-Id)",
        ),
        (c.other, "other message", " (not events) skipped"),
        (c.bad, "line", " refused"),
    ];
    for (n, what, said) in counted {
        if n > 0 {
            text.push_str(&format!("; {}{said}", plural(n, what)));
        }
    }
    if let Some(line) = c.again_from {
        text.push_str(&format!(
            "; line {line} on not stored: publish them again (a line stored already is dropped \
             by JetStream as a redelivery within the stream's duplicate window)"
        ));
    }
    text
}

/// Publishes stdin's events until its end, a signal or an error, then
/// waits for what was sent to be acknowledged.
async fn send(address: &StreamAddress, rule: &EventIdRule, counts: &mut Counts) -> End {
    let stop = match stop_signals() {
        Ok(stop) => stop,
        Err(e) => return End::Failed(format!("cannot handle signals: {e}")),
    };
    let (js, subject) = tokio::select! {
        biased;
        _ = signalled(&stop) => return interrupted(counts),
        opened = open(address) => match opened {
            Ok(opened) => opened,
            Err(e) => return End::Failed(e),
        },
    };
    let mut publisher = Publisher {
        js,
        subject,
        rule,
        in_flight: VecDeque::new(),
    };
    let mut incoming = read_stdin();
    let progress = Progress::new();
    let end = loop {
        tokio::select! {
            biased;
            _ = signalled(&stop) => break interrupted(counts),
            step = publisher.next(&mut incoming, counts) => match step {
                Ok(true) => progress.show(counts),
                Ok(false) => break End::Done,
                Err(e) => break End::Failed(format!("{address}: {e}")),
            },
        }
    };
    let drained = tokio::select! {
        biased;
        _ = signalled(&stop) => Err("interrupted again".to_owned()),
        drained = tokio::time::timeout(DRAIN_WITHIN, publisher.drain(counts)) => drained
            .unwrap_or_else(|_| Err(format!("no acknowledgement within {} s", DRAIN_WITHIN.as_secs()))),
    };
    progress.done();
    if let Some((line, _)) = publisher.in_flight.front() {
        counts.not_stored_from(*line);
    }
    match (end, drained) {
        (End::Done, Err(e)) => End::Failed(format!("{address}: {e}")),
        (end, _) => end,
    }
}

/// The pipe SIGINT and SIGTERM make readable, as a tokio stream.
fn stop_signals() -> io::Result<tokio::net::UnixStream> {
    let fd = Stop::install_without_exit()?.fd()?;
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

/// The next signal.
async fn signalled(stop: &tokio::net::UnixStream) {
    let mut bytes = [0u8; 16];
    loop {
        if stop.readable().await.is_err() {
            return std::future::pending().await;
        }
        match stop.try_read(&mut bytes) {
            Ok(n) if n > 0 => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            _ => return std::future::pending().await,
        }
    }
}

/// Publishing stopped by a signal: the lines from the next one on were
/// not published.
fn interrupted(counts: &mut Counts) -> End {
    counts.not_stored_from(counts.handled + 1);
    let (name, number) = signals::received().unwrap_or(("a signal", 15));
    End::Interrupted(name, number)
}

/// A JetStream context on the stream (created if need be) and the subject
/// to publish on.
async fn open(address: &StreamAddress) -> Result<(jetstream::Context, String), String> {
    let js = projector::input::nats::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: address.stream.clone(),
            subjects: vec![address.subject()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("{address}: cannot find or create the stream: {e}"))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("{address}: cannot read the stream: {e}"))?;
    let subjects = &info.config.subjects;
    match subjects.iter().find(|s| !s.contains(['*', '>'])) {
        Some(subject) => Ok((js, subject.clone())),
        None => Err(format!(
            "{address}: the stream takes only wildcard subjects ({}): none to publish on",
            subjects.join(", ")
        )),
    }
}

/// Stdin's lines, read by a thread of their own.
fn read_stdin() -> tokio::sync::mpsc::Receiver<io::Result<String>> {
    let (lines, incoming) = tokio::sync::mpsc::channel::<io::Result<String>>(4096);
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let failed = line.is_err();
            if lines.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    incoming
}

/// Where the events go, and those sent but not acknowledged yet (with
/// their line).
struct Publisher<'a> {
    js: jetstream::Context,
    subject: String,
    rule: &'a EventIdRule,
    in_flight: VecDeque<(usize, Ack)>,
}

/// A publication's acknowledgement, awaited.
type Ack = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

impl Publisher<'_> {
    /// Publishes the next line; false at the end of the input.
    async fn next(
        &mut self,
        incoming: &mut tokio::sync::mpsc::Receiver<io::Result<String>>,
        counts: &mut Counts,
    ) -> Result<bool, String> {
        let Some(line) = incoming.recv().await else {
            return Ok(false);
        };
        let line = line.map_err(|e| {
            counts.not_stored_from(counts.lines + 1);
            format!("cannot read stdin: {e}")
        })?;
        counts.lines += 1;
        let Some((message, id)) = event(&line, self.rule, counts) else {
            counts.handled = counts.lines;
            return Ok(true);
        };
        let mut headers = async_nats::HeaderMap::new();
        match &id {
            Some(id) => headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str()),
            None => counts.without_id += 1,
        }
        let sent = self
            .js
            .publish_with_headers(self.subject.clone(), headers, message.into())
            .await;
        let ack = sent.map_err(|e| {
            counts.not_stored_from(counts.lines);
            format!("line {}: cannot publish: {e}", counts.lines)
        })?;
        self.in_flight.push_back((counts.lines, ack.into_future()));
        counts.handled = counts.lines;
        if self.in_flight.len() >= IN_FLIGHT {
            self.acknowledged(counts).await?;
        }
        Ok(true)
    }

    /// Waits for the oldest publication's acknowledgement (it stays in
    /// flight while waited for: cancelled, it is waited for again later).
    async fn acknowledged(&mut self, counts: &mut Counts) -> Result<(), String> {
        let Some((line, ack)) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let line = *line;
        let acknowledged = ack.as_mut().await;
        self.in_flight.pop_front();
        stored(counts, line, acknowledged).inspect_err(|_| counts.not_stored_from(line))
    }

    /// Waits for every acknowledgement, in order, up to the first failure.
    async fn drain(&mut self, counts: &mut Counts) -> Result<(), String> {
        while !self.in_flight.is_empty() {
            self.acknowledged(counts).await?;
        }
        Ok(())
    }
}

/// The message and id of the event on `line`; `None` for a blank line,
/// another message or a bad line (counted and said).
fn event(line: &str, rule: &EventIdRule, counts: &mut Counts) -> Option<(String, Option<String>)> {
    match Line::read(line, rule) {
        Line::Event { message, id } => Some((message, id)),
        Line::Blank => None,
        Line::Other(ty) => {
            counts.other += 1;
            log(&format!(
                "publish: line {}: a {ty} message, not an event: not published",
                counts.lines
            ));
            None
        }
        Line::Bad(why) => {
            counts.bad += 1;
            log(&format!(
                "publish: line {}: {why}: not published",
                counts.lines
            ));
            None
        }
    }
}

fn stored(
    counts: &mut Counts,
    line: usize,
    ack: Result<PublishAck, PublishError>,
) -> Result<(), String> {
    let ack = ack.map_err(|e| format!("line {line}: not stored: {e}"))?;
    match ack.duplicate {
        true => counts.duplicates += 1,
        false => {
            counts.stored += 1;
            counts.first.get_or_insert(ack.sequence);
            counts.last = ack.sequence;
        }
    }
    Ok(())
}

/// The count of stored events on a terminal's stderr, four times a second.
struct Progress {
    terminal: bool,
    next: std::cell::Cell<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            terminal: io::stderr().is_terminal(),
            next: std::cell::Cell::new(Instant::now()),
        }
    }

    fn show(&self, counts: &Counts) {
        if self.terminal && Instant::now() >= self.next.get() {
            self.next.set(self.next.get() + Duration::from_millis(250));
            let _ = write!(io::stderr(), "\rpublish: {} stored", counts.stored);
        }
    }

    fn done(&self) {
        if self.terminal {
            let _ = write!(io::stderr(), "\r");
        }
    }
}
