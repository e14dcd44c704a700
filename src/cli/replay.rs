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
use projector::state::{Location, Rebuilding};
use projector::util::log::Stderr;
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
    let spooled = match spool(args, stop.as_ref()) {
        Ok(spooled) => spooled,
        Err(code) => return code,
    };
    let log_path = spooled
        .as_ref()
        .map_or(args.log.as_path(), |s| s.path.as_path());
    let total = match count_lines(log_path) {
        Ok(total) => total,
        Err(e) => return unreadable(args, e),
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
    let passes = Passes {
        args,
        log_path,
        total,
        stop: stop.as_ref(),
        options: Options {
            envelope: false,
            max_line_bytes: args.max_line_bytes,
            ..Options::default()
        },
        config_name: &config_name,
        state: location.as_ref(),
    };
    let started = Instant::now();
    let replayed = match rebuilding {
        None => passes.plain(&mut engine),
        Some(rebuilding) => passes.rebuild(&mut engine, rebuilding),
    };
    let counts = match replayed {
        Ok(counts) => counts,
        Err(Ended::Failed(code)) => return code,
        Err(Ended::Interrupted { lines, what }) => return interrupted(engine, lines, total, &what),
    };
    log(&format!(
        "replay: done: {}; {} applied, {} skipped, {} refused",
        server::progress(counts.lines, total, started),
        counts.applied,
        counts.skipped,
        counts.refused
    ));
    finish(engine, args.dump.as_deref())
}

/// The log as the messages name it when it cannot be read.
fn log_name(args: &ReplayArgs) -> String {
    match args.log.as_os_str() == "-" {
        true => "the log on stdin".to_owned(),
        false => args.log.display().to_string(),
    }
}

/// Says the log cannot be read; returns the exit status.
fn unreadable(args: &ReplayArgs, e: io::Error) -> ExitCode {
    log(&format!("projector: cannot read {}: {e}", log_name(args)));
    ExitCode::from(EX_IOERR)
}

/// A log on stdin, kept in a file first: a rebuild reads it twice. `None`
/// for a log in a file; the exit status when stdin could not be read whole.
fn spool(args: &ReplayArgs, stop: Option<&Stop>) -> Result<Option<Spooled>, ExitCode> {
    if args.log.as_os_str() != "-" {
        return Ok(None);
    }
    match Spooled::from_stdin(stop) {
        Ok(Some(spooled)) => Ok(Some(spooled)),
        Ok(None) => {
            let (name, number) = signals::received().unwrap_or(("a signal", 15));
            log(&format!(
                "replay: {name} while the log was read from stdin; nothing was applied"
            ));
            Err(ExitCode::from(128 + number as u8))
        }
        Err(e) => Err(unreadable(args, e)),
    }
}

/// Why a replay ended before its summary.
enum Ended {
    /// A failure, already reported, with its exit status.
    Failed(ExitCode),
    /// A signal stopped a pass at `lines`; `what` completes the message.
    Interrupted { lines: usize, what: String },
}

/// What every pass over the log reads, and where its failures are told.
struct Passes<'a> {
    args: &'a ReplayArgs,
    log_path: &'a Path,
    total: usize,
    stop: Option<&'a Stop>,
    options: Options,
    config_name: &'a str,
    state: Option<&'a Location>,
}

impl Passes<'_> {
    /// One pass over the log: every line, or only the `only` ones.
    fn pass(&self, engine: &mut Engine, only: Option<&[usize]>) -> Result<ReplayCounts, Ended> {
        self.read(engine, only)
            .map_err(|e| Ended::Failed(self.failed(e)))
    }

    /// Applies the log's lines to the engine, stopping at a signal.
    fn read(
        &self,
        engine: &mut Engine,
        only: Option<&[usize]>,
    ) -> Result<ReplayCounts, ServeError> {
        let file = File::open(self.log_path)?;
        let (total, options) = (self.total, &self.options);
        match self.stop {
            Some(stop) => {
                let input = Stoppable::new(file, stop.fd()?);
                server::replay(engine, input, total, Stderr::default(), options, only)
            }
            None => server::replay(engine, file, total, Stderr::default(), options, only),
        }
    }

    /// Reports a failed pass; returns the exit status.
    fn failed(&self, e: ServeError) -> ExitCode {
        match e {
            ServeError::State(e) => refused(&e, self.config_name, self.state),
            ServeError::Io(e) => unreadable(self.args, e),
            ServeError::Refused(_) => unreachable!("a replay does not stop at refusals"),
        }
    }

    /// A plain replay: one pass, committed in batches.
    fn plain(&self, engine: &mut Engine) -> Result<ReplayCounts, Ended> {
        let counts = self.pass(engine, None)?;
        if counts.lines < self.total {
            let what = format!("; {} committed", plural(counts.applied as u64, "event"));
            return Err(Ended::Interrupted {
                lines: counts.lines,
                what,
            });
        }
        Ok(counts)
    }

    /// A rebuild: one pass that rebuilds, the swap, then the lines left for
    /// after it.
    fn rebuild(&self, engine: &mut Engine, rebuilding: Rebuilding) -> Result<ReplayCounts, Ended> {
        let names: Vec<String> = rebuilding
            .models
            .iter()
            .map(|m| engine.plan().model_name(*m).to_owned())
            .collect();
        let models = names.join(", ");
        log(&format!(
            "replay: rebuilding {models} from {} beside the stored version; it is swapped in at the end of the log",
            match self.args.log.as_os_str() == "-" {
                true => "the log on stdin".to_owned(),
                false => path_word(&self.args.log),
            }
        ));
        engine.rebuild(rebuilding);
        let mut counts = self.pass(engine, None)?;
        if counts.lines < self.total {
            let what =
                format!("; {models} was not rebuilt: the state holds the read models as they were");
            return Err(Ended::Interrupted {
                lines: counts.lines,
                what,
            });
        }
        let rebuilt = engine
            .swap(self.args.allow_incomplete)
            .map_err(|e| Ended::Failed(refused(&e, self.config_name, self.state)))?;
        log(&swapped(&names, counts.applied, rebuilt.missing));
        if !counts.deferred.is_empty() {
            self.after_swap(engine, &models, &mut counts)?;
        }
        Ok(counts)
    }

    /// Applies the lines a rebuild left for after its swap, adding what they
    /// did to `counts`.
    fn after_swap(
        &self,
        engine: &mut Engine,
        models: &str,
        counts: &mut ReplayCounts,
    ) -> Result<(), Ended> {
        log(&format!(
            "replay: applying the {} left for after the swap (events the state had not processed, subscription changes)",
            plural(counts.deferred.len() as u64, "message")
        ));
        let after = self.pass(engine, Some(&counts.deferred))?;
        counts.applied += after.applied;
        counts.skipped += after.skipped;
        counts.refused += after.refused;
        if after.lines < self.total {
            let what = format!("; {models} was swapped in; the events the state had not processed were applied up to there");
            return Err(Ended::Interrupted {
                lines: after.lines,
                what,
            });
        }
        Ok(())
    }
}

/// The line that says a rebuild of `models` was swapped in, after
/// `applied` events, lacking `missing` the state had processed.
fn swapped(models: &[String], applied: usize, missing: usize) -> String {
    let them = if models.len() > 1 { "them" } else { "it" };
    let lacking = match missing {
        0 => String::new(),
        n => format!(
            " (--allow-incomplete: the log lacked {} the state had processed)",
            plural(n as u64, "event")
        ),
    };
    format!(
        "replay: swapped in {}: {} applied to {them}{lacking}",
        models.join(", "),
        plural(applied as u64, "event")
    )
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
fn interrupted(engine: Engine, lines: usize, total: usize, what: &str) -> ExitCode {
    let (name, number) = signals::received().unwrap_or(("a signal", 15));
    log(&format!(
        "replay: {name}: stopped at line {lines} of {total}{what}; run the same command again to finish"
    ));
    engine.close();
    ExitCode::from(128 + number as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapped_names_the_models_and_what_the_log_lacked() {
        let models = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            swapped(&models(&["totals"]), 1, 0),
            "replay: swapped in totals: 1 event applied to it"
        );
        assert_eq!(
            swapped(&models(&["a", "b"]), 3, 2),
            "replay: swapped in a, b: 3 events applied to them \
             (--allow-incomplete: the log lacked 2 events the state had processed)"
        );
    }
}
