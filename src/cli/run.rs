//! `projector run`: serve the stdio protocol until the input ends or a
//! signal stops it.

use super::signals::{self, Stop};
use super::state::{finish, open_engine, refused};
use super::{load_plan, log, plural, EX_CONFIG, EX_DATAERR, EX_IOERR, EX_USAGE};
use clap::Args;
use projector::cluster;
use projector::cluster::deploy::NotDeployed;
use projector::input::nats::StreamAddress;
use projector::input::source::Stoppable;
use projector::server::{self, Options, ServeError, DEFAULT_MAX_LINE_BYTES};
use projector::state::postgres::DEFAULT_SCHEMA;
use projector::state::reconcile::Request;
use projector::state::Location;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// The configuration. Default: ./projections.toml; without --state, the bundled one when that
    /// file does not exist.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// Wrap each reply Maelstrom-style: {"src": <this node>, "dest": <sender>, "body": {...}}.
    #[arg(long)]
    envelope: bool,
    /// Longest input line accepted, in bytes; a longer line gets an error reply and is skipped.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Keep read models, processed event ids and subscriptions in this SQLite file (created if
    /// absent), or in PostgreSQL: postgres://USER@HOST:PORT/DATABASE or "host=HOST dbname=DATABASE
    /// …" (libpq's settings; PGHOST, PGPASSWORD, ~/.pgpass… fill in the rest).
    #[arg(long, value_name = "PATH|URL")]
    state: Option<PathBuf>,
    /// The PostgreSQL schema of a `postgres://` state: several projectors may share a database,
    /// each in a schema of its own.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// Drop the documents of this read model, which the configuration no longer declares
    /// (nothing is dropped otherwise). Repeat for several models.
    #[arg(long, value_name = "MODEL", requires = "state")]
    drop: Vec<String>,
    /// With --state: the memory, in MiB, that the state's cache of documents and recent event ids
    /// takes at most; what is not in it is read from the state when an event needs it. Default:
    /// `cache_mb` in the configuration, else 256.
    #[arg(long, value_name = "MIB", env = "PROJECTOR_CACHE_MB", value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    cache_mb: Option<u64>,
    /// At the end of input, write every read model to FILE as {"model": {"key": document}}, sorted.
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Consume the events of a JetStream stream (nats://HOST:PORT/STREAM) instead of stdin, from
    /// the state's checkpoint on, until SIGTERM or SIGINT; needs a PostgreSQL --state, which
    /// commits the stream position with the documents it produced. Replies are not written.
    #[arg(long, value_name = "URL", requires = "state", conflicts_with_all = ["dump", "drop"])]
    source: Option<String>,
    /// With --source: split each read-model group whose bindings all key documents the same way
    /// into N units of work, which instances share (fixed when the schema is first used).
    /// Default: 4.
    #[arg(long, value_name = "N", requires = "source", value_parser = clap::value_parser!(u32).range(1..=1024))]
    units: Option<u32>,
    /// With --source, what an event the engine refuses does: `park` it in the table
    /// "rejections" with every later event of its documents, while other documents go on (see
    /// `projector rejections`); `record` it there and go on; or `stop` there (what came before it
    /// is committed). Messages that are no event are recorded.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnRefused::Park, requires = "source")]
    on_refused: OnRefused,
    /// With --source, serve Prometheus metrics at http://ADDR/metrics (events applied, skipped
    /// and refused, batch commit latency, lag per unit, units owned). ADDR: HOST:PORT.
    #[arg(long, value_name = "ADDR", requires = "source")]
    metrics: Option<String>,
    /// With --source: when this configuration differs from the live one recorded in the state,
    /// build it beside the live one (unchanged units are shared) and switch the read models' views
    /// to it once it has caught up. Without it such an instance is refused; `projector plan`
    /// shows what a deploy changes.
    #[arg(long, requires = "source")]
    deploy: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnRefused {
    Park,
    Record,
    Stop,
}

pub fn run(args: &RunArgs) -> ExitCode {
    let stop = match Stop::install() {
        Ok(stop) => Some(stop),
        Err(e) => {
            log(&format!(
                "projector: warning: signals will stop the run at once: {e}"
            ));
            None
        }
    };
    let config = match load_plan(args.config.as_deref(), args.state.is_none()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(source) = &args.source {
        return run_source(args, source, config, stop);
    }
    let request = Request {
        drop: args.drop.clone(),
        ..Request::default()
    };
    let config_name = config.name.clone();
    let location = args
        .state
        .as_deref()
        .map(|s| Location::new(s, &args.schema));
    let (mut engine, _) = match open_engine(config, location.as_ref(), &request, args.cache_mb) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let options = Options {
        envelope: args.envelope,
        max_line_bytes: args.max_line_bytes,
        ..Options::default()
    };
    let input = stop.as_ref().map(Stop::fd).transpose();
    let served = match input {
        Ok(Some(fd)) => server::serve(
            &mut engine,
            Stoppable::new(io::stdin(), fd),
            io::stdout().lock(),
            projector::util::log::Stderr::default(),
            &options,
        ),
        Ok(None) => server::serve(
            &mut engine,
            io::stdin(),
            io::stdout().lock(),
            projector::util::log::Stderr::default(),
            &options,
        ),
        Err(e) => Err(ServeError::Io(e)),
    };
    match served {
        Ok(served) => {
            if let Some((signal, _)) = signals::received() {
                let kept = match args.state {
                    Some(_) => "committed",
                    None => "applied in memory",
                };
                log(&format!(
                    "projector: {signal}: stopped reading input; {} {kept} and answered in this run; exiting",
                    plural(served.applied as u64, "event"),
                ));
            }
        }
        // The reader of our replies went away: nothing left to answer.
        Err(ServeError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(ServeError::Io(e)) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(EX_IOERR);
        }
        Err(ServeError::State(e)) => {
            return refused(&e, &config_name, location.as_ref());
        }
        Err(ServeError::Refused(_)) => unreachable!("stdin runs do not stop at refusals"),
    }
    finish(engine, args.dump.as_deref())
}

/// How long an instance may take to stop after SIGTERM or SIGINT before it
/// exits whatever it waits for (its units wait 5 s at most to commit; this
/// bounds what starts up or leaves while the database or the broker does
/// not answer).
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

/// `run --source`: one instance of a cluster (see [`projector::cluster`]).
fn run_source(args: &RunArgs, source: &str, config: super::Loaded, stop: Option<Stop>) -> ExitCode {
    let location = args
        .state
        .as_deref()
        .map(|s| Location::new(s, &args.schema));
    let address = match source_address(source, location.as_ref()) {
        Ok(address) => address,
        Err(code) => return code,
    };
    let Some(Location::Postgres(target)) = location else {
        unreachable!("source_address checked it")
    };
    let stop = match stop.as_ref().map(Stop::fd).transpose() {
        Ok(stop) => stop,
        Err(e) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(EX_IOERR);
        }
    };
    signals::exit_within(STOP_DEADLINE);
    if let Some(addr) = &args.metrics {
        match cluster::metrics::serve(addr) {
            Ok(bound) => log(&format!("projector: metrics at http://{bound}/metrics")),
            Err(e) => {
                log(&format!("projector: --metrics {addr}: {e}"));
                return ExitCode::from(EX_USAGE);
            }
        }
    }
    log(&format!(
        "projector: consuming {address} into {}",
        target.display()
    ));
    let cache_mb = super::state::cache_size(args.cache_mb, &config.plan);
    let settings = cluster::Settings {
        cache_mb,
        plan: config.plan,
        config: config.text,
        target,
        address,
        parts: args.units,
        stop,
        stop_on_refused: args.on_refused == OnRefused::Stop,
        max_line_bytes: args.max_line_bytes,
        park: args.on_refused == OnRefused::Park,
        deploy: args.deploy,
    };
    let ran = cluster::run(settings);
    ended(args, source, &config.name, ran)
}

/// Says how an instance of a cluster consuming `source` ended; returns the
/// exit status.
fn ended(
    args: &RunArgs,
    source: &str,
    config_name: &str,
    ran: Result<cluster::Ran, cluster::Stopped>,
) -> ExitCode {
    match ran {
        Ok(ran) => {
            if let Some(line) = released(signals::received().map(|(name, _)| name), &ran) {
                log(&line);
            }
            ExitCode::SUCCESS
        }
        Err(cluster::Stopped::State(e)) => refused(&e, config_name, None),
        Err(cluster::Stopped::OtherStream { recorded, given }) => {
            log(&format!(
                "projector: {state} follows {recorded}, and {source} is {given}: its checkpoints are positions in the stream it follows, so it cannot take another. Give --source that stream, or start on another --schema or database to build from this one{again}",
                state = location_text(args),
                again = if recorded.name == given.name {
                    " (a stream deleted and made again under its name is another stream)"
                } else {
                    ""
                }
            ));
            ExitCode::from(EX_CONFIG)
        }
        Err(cluster::Stopped::NotDeployed(not)) => {
            log(&not_deployed(
                &not,
                config_name,
                &location_text(args),
                &plan_command(args, config_name),
            ));
            ExitCode::from(EX_CONFIG)
        }
        Err(cluster::Stopped::Refused { unit, why }) if args.on_refused == OnRefused::Park => {
            log(&format!(
                "projector: unit {unit}: {why}; stopped. The parked events are in the table {}.rejections",
                args.schema
            ));
            ExitCode::from(EX_DATAERR)
        }
        Err(cluster::Stopped::Refused { unit, why }) => {
            log(&format!(
                "projector: unit {unit}: {why}; stopped (--on-refused stop). It is in the table {}.rejections; fix the configuration or the event, and start again: the unit resumes at that event",
                args.schema
            ));
            ExitCode::from(EX_DATAERR)
        }
    }
}

/// The line an instance stopped by `signal` ends with: whether every unit
/// it owned committed and was released; `None` when no signal stopped it.
fn released(signal: Option<&str>, ran: &cluster::Ran) -> Option<String> {
    let signal = signal?;
    Some(match ran.abandoned.is_empty() {
        true => format!(
            "projector: {signal}: every unit owned committed what it applied and was released ({} claimed in this run); exiting",
            ran.claimed
        ),
        false => format!(
            "projector: {signal}: units {} could not commit their last batch in time (the database does not answer): what they committed is kept, the rest is applied again by their next owner once their claims lapse; the other units committed and were released ({} claimed in this run); exiting",
            ran.abandoned.join(", "),
            ran.claimed
        ),
    })
}

/// The command that shows what starting this configuration on this state
/// would do.
fn plan_command(args: &RunArgs, config_name: &str) -> String {
    format!(
        "projector plan --config {} --state {}{}",
        super::shell_word(config_name),
        super::shell_word(&projector::state::postgres::secret::redacted(
            &args
                .state
                .as_deref()
                .expect("--source requires --state")
                .display()
                .to_string()
        )),
        match args.schema.as_str() {
            DEFAULT_SCHEMA => String::new(),
            schema => format!(" --schema {}", super::shell_word(schema)),
        }
    )
}

/// The state `--state` and `--schema` name, as messages say it.
fn location_text(args: &RunArgs) -> String {
    let state = args.state.as_deref().expect("--source requires --state");
    projector::state::postgres::Target::new(&state.display().to_string(), &args.schema).display()
}

/// Why an instance whose configuration is not the live one was refused, and
/// what to do.
fn not_deployed(not: &NotDeployed, config: &str, state: &str, plan: &str) -> String {
    let what = match &not.retired {
        Some((version, at)) => format!(
            "{config} is version {version}, retired at {at}: an instance of a retired configuration never brings it back by itself"
        ),
        None => format!("{config} differs from it"),
    };
    let building = not.building.map_or_else(String::new, |b| {
        format!(" (version {b} is being built beside it, and would be given up)")
    });
    format!(
        "projector: {state} serves version {live} of the configuration, live since {since}, and {what}; nothing was claimed. See what deploying it changes with `{plan}`, then start this instance with --deploy to build it beside the live version and switch the read models to it once it has caught up{building}; or start it with the live configuration",
        live = not.live,
        since = not.since,
    )
}

/// The stream `--source` names, which needs a PostgreSQL state to keep its
/// position in.
fn source_address(source: &str, state: Option<&Location>) -> Result<StreamAddress, ExitCode> {
    if !matches!(state, Some(Location::Postgres(_))) {
        log("projector: --source needs a PostgreSQL --state (postgres://…), which keeps the stream's position with the read models");
        return Err(ExitCode::from(EX_USAGE));
    }
    StreamAddress::parse(source).map_err(|e| {
        log(&format!("projector: --source: {e}"));
        ExitCode::from(EX_USAGE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_instance_says_whether_every_unit_was_released() {
        let ran = |abandoned: &[&str]| cluster::Ran {
            claimed: 3,
            abandoned: abandoned.iter().map(|u| u.to_string()).collect(),
        };
        assert_eq!(released(None, &ran(&["a/1"])), None);
        assert_eq!(
            released(Some("SIGTERM"), &ran(&[])).unwrap(),
            "projector: SIGTERM: every unit owned committed what it applied and was released \
             (3 claimed in this run); exiting"
        );
        assert!(released(Some("SIGINT"), &ran(&["a/1", "b/2"]))
            .unwrap()
            .starts_with("projector: SIGINT: units a/1, b/2 could not commit their last batch"));
    }
}
