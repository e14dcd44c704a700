//! `projector publish --to nats://HOST:PORT/STREAM`: the events on stdin
//! into a JetStream stream, each with its id in `Nats-Msg-Id` so that the
//! broker drops a redelivery within its window; done when every one is
//! acknowledged as stored.

use super::{load_plan, log, plural, EX_IOERR, EX_USAGE};
use async_nats::jetstream::{self, stream};
use clap::Args;
use projector::input::nats::{Line, StreamAddress};
use projector::plan::event_id::EventIdRule;
use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Unacknowledged publications at most: a window that keeps the link busy.
const IN_FLIGHT: usize = 1024;

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the runtime starts");
    match runtime.block_on(send(&address, &config.plan.event_id)) {
        Ok(counts) => {
            log(&summary(&address, &counts));
            match counts.bad {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(EX_DATAERR),
            }
        }
        Err(e) => {
            log(&format!("projector: {e}"));
            ExitCode::from(EX_IOERR)
        }
    }
}

fn summary(address: &StreamAddress, c: &Counts) -> String {
    let mut text = format!(
        "publish: {} from {} stored in {}",
        plural(c.stored, "event"),
        plural(c.lines as u64, "line"),
        address
    );
    if let Some(first) = c.first {
        text.push_str(&format!(" (sequences {first}..{})", c.last));
    }
    text.push_str(&match c.duplicates {
        1 => "; 1 redelivery dropped by JetStream as already stored".to_owned(),
        n => format!("; {n} redeliveries dropped by JetStream as already stored"),
    });
    if c.without_id > 0 {
        text.push_str(&format!(
            "; {} without an id (published without Nats-Msg-Id)",
            plural(c.without_id, "event")
        ));
    }
    if c.other > 0 {
        text.push_str(&format!(
            "; {} (not events) skipped",
            plural(c.other, "other message")
        ));
    }
    if c.bad > 0 {
        text.push_str(&format!("; {} refused", plural(c.bad, "line")));
    }
    text
}

async fn send(address: &StreamAddress, rule: &EventIdRule) -> Result<Counts, String> {
    let js = projector::input::nats::connect(address).await?;
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
    let subject = match subjects.iter().find(|s| !s.contains(['*', '>'])) {
        Some(subject) => subject.clone(),
        None => {
            return Err(format!(
                "{address}: the stream takes only wildcard subjects ({}): none to publish on",
                subjects.join(", ")
            ))
        }
    };

    let (lines, mut incoming) = tokio::sync::mpsc::channel::<io::Result<String>>(4096);
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let failed = line.is_err();
            if lines.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    let terminal = io::stderr().is_terminal();
    let mut next_report = Instant::now();
    let mut counts = Counts::default();
    let mut in_flight = VecDeque::new();
    while let Some(line) = incoming.recv().await {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        counts.lines += 1;
        let (message, id) = match Line::read(&line, rule) {
            Line::Event { message, id } => (message, id),
            Line::Blank => continue,
            Line::Other(ty) => {
                counts.other += 1;
                log(&format!(
                    "publish: line {}: a {ty} message, not an event: not published",
                    counts.lines
                ));
                continue;
            }
            Line::Bad(why) => {
                counts.bad += 1;
                log(&format!(
                    "publish: line {}: {why}: not published",
                    counts.lines
                ));
                continue;
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        match &id {
            Some(id) => headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str()),
            None => counts.without_id += 1,
        }
        let ack = js
            .publish_with_headers(subject.clone(), headers, message.into())
            .await
            .map_err(|e| format!("{address}: line {}: cannot publish: {e}", counts.lines))?;
        in_flight.push_back((counts.lines, ack));
        if in_flight.len() >= IN_FLIGHT {
            let (line, ack) = in_flight.pop_front().expect("not empty");
            stored(&mut counts, line, ack.await)?;
        }
        if terminal && Instant::now() >= next_report {
            next_report += Duration::from_millis(250);
            let _ = write!(io::stderr(), "\rpublish: {} stored", counts.stored);
        }
    }
    for (line, ack) in in_flight {
        stored(&mut counts, line, ack.await)?;
    }
    if terminal {
        let _ = write!(io::stderr(), "\r");
    }
    Ok(counts)
}

fn stored(
    counts: &mut Counts,
    line: usize,
    ack: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
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
