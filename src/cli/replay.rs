//! `projector replay`: apply an event log to a state, and rebuild read
//! models from it.
//!
//! A rebuild takes two passes over the log. The first applies the events
//! the state already processed to the rebuilt models alone, in memory, and
//! swaps them in at its end, in one transaction, once the log is found to
//! hold every event it must. The second applies the events the state had
//! not processed to every model, as a plain replay does, in batches.

use super::signals::{self, Stop};
use super::state::{finish, open_engine, refused};
use super::{load_plan, log, path_word, plural, EX_IOERR};
use clap::Args;
use projector::engine::Engine;
use projector::input::source::Stoppable;
use projector::server::{self, Options, ReplayCounts, ServeError, DEFAULT_MAX_LINE_BYTES};
use projector::state::postgres::DEFAULT_SCHEMA;
use projector::state::reconcile::Request;
use projector::state::Location;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct ReplayArgs {
    /// The configuration. Default: ./projections.toml; without --state, the bundled one when that
    /// file does not exist.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// The state to apply the log to (created if absent): an SQLite file, or
    /// postgres://USER@HOST:PORT/DATABASE or "host=HOST dbname=DATABASE …". Without it, the replay
    /// runs in memory.
    #[arg(long, value_name = "PATH|URL")]
    state: Option<PathBuf>,
    /// The PostgreSQL schema of a `postgres://` state: several projectors may share a database,
    /// each in a schema of its own.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// Rebuild this read model from the log, beside the stored one, and swap it in at the end of
    /// the log: events the state already processed are applied to it alone, once per id; events
    /// it had not, to every model. Also backfills a new model. Repeat for several models.
    #[arg(long, value_name = "MODEL", requires = "state")]
    rebuild: Vec<String>,
    /// Rebuild every read model, and find the processed event ids anew: what a changed
    /// [event_id] rule takes.
    #[arg(long, requires = "state", conflicts_with = "rebuild")]
    rebuild_all: bool,
    /// Swap a rebuild in even when the log lacks events the state has processed for the rebuilt
    /// models' event types (they will lack what those events did).
    #[arg(long)]
    allow_incomplete: bool,
    /// Drop the documents of this read model, which the configuration no longer declares.
    #[arg(long, value_name = "MODEL", requires = "state")]
    drop: Vec<String>,
    /// At the end, write every read model to FILE as {"model": {"key": document}}, sorted.
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Longest log line accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// With --state: the memory, in MiB, that the state's cache of documents and recent event ids
    /// takes at most; what is not in it is read from the state when an event needs it. Default:
    /// `cache_mb` in the configuration, else 256.
    #[arg(long, value_name = "MIB", env = "PROJECTOR_CACHE_MB", value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    cache_mb: Option<u64>,
    /// The event log: JSON lines, as `run` reads them on stdin; `-` reads them from stdin.
    #[arg(value_name = "EVENTS")]
    log: PathBuf,
}

pub fn replay(args: &ReplayArgs) -> ExitCode {
    let stop = Stop::install()
        .map_err(|e| {
            log(&format!(
                "projector: warning: signals will stop the replay at once: {e}"
            ))
        })
        .ok();
    let config = match load_plan(args.config.as_deref(), args.state.is_none()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let from_stdin = args.log.as_os_str() == "-";
    let unreadable = |e: io::Error| {
        let log_name = match from_stdin {
            true => "the log on stdin".to_owned(),
            false => args.log.display().to_string(),
        };
        log(&format!("projector: cannot read {log_name}: {e}"));
        ExitCode::from(EX_IOERR)
    };
    // A log on stdin is kept in a file first: a rebuild reads it twice.
    let spooled = match from_stdin {
        false => None,
        true => match Spooled::from_stdin(stop.as_ref()) {
            Ok(Some(spooled)) => Some(spooled),
            Ok(None) => {
                let (name, number) = signals::received().unwrap_or(("a signal", 15));
                log(&format!(
                    "replay: {name} while the log was read from stdin; nothing was applied"
                ));
                return ExitCode::from(128 + number as u8);
            }
            Err(e) => return unreadable(e),
        },
    };
    let log_path = spooled
        .as_ref()
        .map_or(args.log.as_path(), |s| s.path.as_path());
    let total = match count_lines(log_path) {
        Ok(total) => total,
        Err(e) => return unreadable(e),
    };
    let request = Request {
        rebuild: args.rebuild.clone(),
        rebuild_all: args.rebuild_all,
        drop: args.drop.clone(),
    };
    let config_name = config.name.clone();
    let location = args
        .state
        .as_deref()
        .map(|s| Location::new(s, &args.schema));
    let (mut engine, rebuilding) =
        match open_engine(config, location.as_ref(), &request, args.cache_mb) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
    let state = location.as_ref();
    let failed = |e: ServeError| match e {
        ServeError::State(e) => refused(&e, &config_name, state),
        ServeError::Io(e) => unreadable(e),
        ServeError::Refused(_) => unreachable!("a replay does not stop at refusals"),
    };
    let options = Options {
        envelope: false,
        max_line_bytes: args.max_line_bytes,
        ..Options::default()
    };
    let pass = |engine: &mut Engine, only: Option<&[usize]>| -> Result<ReplayCounts, ServeError> {
        let file = File::open(log_path)?;
        match &stop {
            Some(stop) => {
                let input = Stoppable::new(file, stop.fd()?);
                server::replay(engine, input, total, io::stderr(), &options, only)
            }
            None => server::replay(engine, file, total, io::stderr(), &options, only),
        }
    };
    let started = Instant::now();
    let mut counts;
    match rebuilding {
        None => {
            counts = match pass(&mut engine, None) {
                Ok(counts) => counts,
                Err(e) => return failed(e),
            };
            if counts.lines < total {
                let what = format!("; {} committed", plural(counts.applied as u64, "event"));
                return interrupted(engine, &counts, total, &what);
            }
        }
        Some(rebuilding) => {
            let models: Vec<String> = rebuilding
                .models
                .iter()
                .map(|m| engine.plan().model_name(*m).to_owned())
                .collect();
            let them = if models.len() > 1 { "them" } else { "it" };
            let models = models.join(", ");
            log(&format!(
                "replay: rebuilding {models} from {} beside the stored version; it is swapped in at the end of the log",
                match from_stdin {
                    true => "the log on stdin".to_owned(),
                    false => path_word(&args.log),
                }
            ));
            engine.rebuild(rebuilding);
            counts = match pass(&mut engine, None) {
                Ok(counts) => counts,
                Err(e) => return failed(e),
            };
            if counts.lines < total {
                let what = format!(
                    "; {models} was not rebuilt: the state holds the read models as they were"
                );
                return interrupted(engine, &counts, total, &what);
            }
            let rebuilt = match engine.swap(args.allow_incomplete) {
                Ok(rebuilt) => rebuilt,
                Err(e) => return refused(&e, &config_name, state),
            };
            let lacking = match rebuilt.missing {
                0 => String::new(),
                n => format!(
                    " (--allow-incomplete: the log lacked {} the state had processed)",
                    plural(n as u64, "event")
                ),
            };
            log(&format!(
                "replay: swapped in {models}: {} applied to {them}{lacking}",
                plural(counts.applied as u64, "event")
            ));
            if !counts.deferred.is_empty() {
                log(&format!(
                    "replay: applying the {} left for after the swap (events the state had not processed, subscription changes)",
                    plural(counts.deferred.len() as u64, "message")
                ));
                let after = match pass(&mut engine, Some(&counts.deferred)) {
                    Ok(after) => after,
                    Err(e) => return failed(e),
                };
                counts.applied += after.applied;
                counts.skipped += after.skipped;
                counts.refused += after.refused;
                if after.lines < total {
                    let what = format!("; {models} was swapped in; the events the state had not processed were applied up to there");
                    return interrupted(engine, &after, total, &what);
                }
            }
        }
    }
    log(&format!(
        "replay: done: {}; {} applied, {} skipped, {} refused",
        server::progress(counts.lines, total, started),
        counts.applied,
        counts.skipped,
        counts.refused
    ));
    finish(engine, args.dump.as_deref())
}

/// A log read from stdin into a temporary file, removed when dropped.
struct Spooled {
    path: PathBuf,
}

impl Spooled {
    /// Copies stdin to a temporary file; `None` when a signal stopped it.
    fn from_stdin(stop: Option<&Stop>) -> io::Result<Option<Spooled>> {
        let path =
            std::env::temp_dir().join(format!("projector-log-{}.ndjson", std::process::id()));
        let spooled = Spooled { path };
        let mut file = File::create(&spooled.path)?;
        let complete = match stop {
            Some(stop) => {
                let mut input = Stoppable::new(io::stdin(), stop.fd()?);
                io::copy(&mut input, &mut file)?;
                !projector::input::source::Input::stopped(&input)
            }
            None => {
                io::copy(&mut io::stdin(), &mut file)?;
                true
            }
        };
        Ok(complete.then_some(spooled))
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lines of a log as the reader counts them: blank ones too, and a last
/// one without its line break.
fn count_lines(path: &Path) -> io::Result<usize> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0, b'\n');
    loop {
        let n = match io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count();
        last = buf[n - 1];
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// A replay stopped by a signal before the end of its log: what was
/// committed stays; the exit status is 128 + the signal.
fn interrupted(engine: Engine, counts: &ReplayCounts, total: usize, what: &str) -> ExitCode {
    let (name, number) = signals::received().unwrap_or(("a signal", 15));
    log(&format!(
        "replay: {name}: stopped at line {} of {total}{what}; run the same command again to finish",
        counts.lines
    ));
    engine.close();
    ExitCode::from(128 + number as u8)
}
