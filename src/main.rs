//! The `projector` command: `run` (the default) serves the stdio protocol,
//! `validate` checks configurations, `replay` applies an event log to a state.
//! Only this file prints diagnostics and chooses exit codes.

use clap::{Args, Parser, Subcommand};
use projector::diag::{Diagnostic, SourceMap};
use projector::engine::Engine;
use projector::plan::Plan;
use projector::server::{self, Options, ServeError, DEFAULT_MAX_LINE_BYTES};
use projector::state::background::Background;
use projector::state::sqlite::SqliteState;
use projector::state::StateError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The configuration bundled with the binary, used when no `--config` is given
/// and there is no `./projections.toml`.
const BUNDLED_CONFIG: &str = include_str!("../projections.toml");
const DEFAULT_CONFIG: &str = "projections.toml";

/// sysexits.h EX_CONFIG: the configuration is invalid or unreadable.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_IOERR: reading input or writing replies failed.
const EX_IOERR: u8 = 74;

#[derive(Parser)]
#[command(
    name = "projector",
    version,
    about = "A configuration-driven CQRS projector",
    long_about = "A configuration-driven CQRS projector.\n\n\
        Reads event-bus messages as JSON lines on stdin, applies each event to the read \
        models declared in projections.toml, skips events whose id was already processed, \
        and writes one JSON reply line per message on stdout. Logs go to stderr.\n\n\
        Messages: init, subscribe, unsubscribe, event, query. Without a subcommand, \
        `projector` is `projector run`. With --state, read models, processed event ids and \
        subscriptions persist in an SQLite file, and a reply is written only once what it \
        reports is committed.",
    args_conflicts_with_subcommands = true,
    after_help = "Exit status: 0 on success; 78 when a configuration is invalid or unreadable, \
        or a state holds stale read models; 65 when a state file is not a projector state or is \
        damaged; 75 when it is in use by another projector; 74 when input, output or the state \
        fails."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the stdio protocol (the default).
    Run(RunArgs),
    /// Check configurations without running: report every problem with file:line:col.
    Validate(ValidateArgs),
    /// Apply an event log (the lines `run` takes on stdin) to a state, e.g. to rebuild read models.
    Replay(ReplayArgs),
    /// Run the [[tests]] declared in a configuration: events in, documents expected out.
    Test(TestArgs),
}

#[derive(Args)]
struct TestArgs {
    /// The configuration whose tests to run.
    #[arg(value_name = "CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    /// The configuration. Default: ./projections.toml, or the bundled one when that file does not exist.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Wrap each reply Maelstrom-style: {"src": <this node>, "dest": <sender>, "body": {...}}.
    #[arg(long)]
    envelope: bool,
    /// Longest input line accepted, in bytes; a longer line gets an error reply and is skipped.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Keep read models, processed event ids and subscriptions in this SQLite file (created if absent).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// At the end of input, write every read model to FILE as {"model": {"key": document}}, sorted.
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// The configuration. Default: ./projections.toml, or the bundled one when that file does not exist.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The SQLite state to apply the log to (created if absent). Without it, the replay runs in memory.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Drop this read model's documents and rebuild it from the log; the other models keep theirs.
    /// Events the state already processed are applied to it alone. Repeat for several models.
    #[arg(long, value_name = "MODEL")]
    rebuild: Vec<String>,
    /// At the end, write every read model to FILE as {"model": {"key": document}}, sorted.
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Longest log line accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// The event log: JSON lines, as `run` reads them on stdin.
    #[arg(value_name = "EVENTS")]
    log: PathBuf,
}

#[derive(Args)]
struct ValidateArgs {
    /// Configurations to check.
    #[arg(value_name = "CONFIG", default_value = DEFAULT_CONFIG)]
    configs: Vec<PathBuf>,
    /// Fail on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// How to print diagnostics: `human` (file:line:col, source line and caret, on stderr) or
    /// `json` (one JSON object per file on stdout: {"file", "valid", "diagnostics": [...]}).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    // The allocator asks for transparent huge pages. Where the kernel
    // compacts memory to find them on the spot (its `defrag = madvise`
    // default), a growing store stalls in page faults; small pages cost
    // more faults but no stalls. Failure (an older kernel) changes nothing.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate(args)) => validate(&args),
        Some(Command::Run(args)) => run(&args),
        Some(Command::Replay(args)) => replay(&args),
        Some(Command::Test(args)) => test(&args),
        None => run(&cli.run),
    }
}

/// Writes a line to stderr. A log that cannot be written is no reason to stop.
fn log(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// A configuration's name (for messages) and text.
fn read_config(path: Option<&Path>) -> Result<(String, String), String> {
    let (name, bytes) = match path {
        Some(path) => (path.display().to_string(), std::fs::read(path)),
        None => match std::fs::read(DEFAULT_CONFIG) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log(&format!(
                    "projector: no ./{DEFAULT_CONFIG}; using the bundled configuration"
                ));
                return Ok((
                    format!("<bundled {DEFAULT_CONFIG}>"),
                    BUNDLED_CONFIG.to_owned(),
                ));
            }
            read => (DEFAULT_CONFIG.to_owned(), read),
        },
    };
    let bytes = bytes.map_err(|e| format!("cannot read {name}: {e}"))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok((name, text)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes());
            let place = SourceMap::new(&text).place(at);
            Err(format!(
                "{name}:{}:{}: the file is not valid UTF-8 (byte {at})",
                place.line, place.column
            ))
        }
    }
}

fn print_diagnostics(name: &str, text: &str, diags: &[Diagnostic]) {
    let map = SourceMap::new(text);
    let mut err = io::BufWriter::new(io::stderr().lock());
    for d in diags {
        let _ = write!(err, "{}", d.render(name, &map));
    }
    let _ = err.flush();
}

/// Reads and compiles the configuration, printing its diagnostics.
fn load_plan(path: Option<&Path>) -> Result<Plan, ExitCode> {
    let (name, text) = read_config(path).map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(EX_CONFIG)
    })?;
    match projector::load(&text) {
        Ok((plan, warnings)) => {
            print_diagnostics(&name, &text, &warnings);
            Ok(plan)
        }
        Err(diags) => {
            print_diagnostics(&name, &text, &diags);
            log(&format!("projector: {name} is invalid; not starting"));
            Err(ExitCode::from(EX_CONFIG))
        }
    }
}

/// An engine over the state at `state`, or in memory, rebuilding `rebuild`.
fn open_engine(plan: Plan, state: Option<&Path>, rebuild: &[String]) -> Result<Engine, ExitCode> {
    let mut ids = Vec::new();
    for name in rebuild {
        match plan.model_by_name(name) {
            Some(id) => ids.push(id),
            None => {
                return Err(state_failed(&StateError::UnknownModel {
                    name: name.clone(),
                }))
            }
        }
    }
    let mut engine = match state {
        None => Engine::in_memory(plan),
        Some(path) => {
            let (journal, restored, notes) =
                SqliteState::open(path, &plan, rebuild).map_err(|e| state_failed(&e))?;
            for note in notes {
                log(&format!("projector: {note}"));
            }
            Engine::new(plan, restored, Box::new(Background::start(journal)))
        }
    };
    if !ids.is_empty() {
        engine.rebuild(&ids);
    }
    Ok(engine)
}

fn state_failed(e: &StateError) -> ExitCode {
    log(&format!("projector: {e}"));
    ExitCode::from(e.exit_code())
}

fn write_dump(engine: &Engine, path: &Path) -> ExitCode {
    let mut out = Vec::new();
    engine.dump(&mut out);
    match std::fs::write(path, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&format!(
                "projector: cannot write the dump to {}: {e}",
                path.display()
            ));
            ExitCode::from(EX_IOERR)
        }
    }
}

/// Writes the dump, if one is asked for, and closes the engine.
fn finish(engine: Engine, dump: Option<&Path>) -> ExitCode {
    let code = match dump {
        Some(path) => write_dump(&engine, path),
        None => ExitCode::SUCCESS,
    };
    engine.close();
    code
}

fn run(args: &RunArgs) -> ExitCode {
    let plan = match load_plan(args.config.as_deref()) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let mut engine = match open_engine(plan, args.state.as_deref(), &[]) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let options = Options {
        envelope: args.envelope,
        max_line_bytes: args.max_line_bytes,
    };
    match server::serve(
        &mut engine,
        io::stdin(),
        io::stdout().lock(),
        io::stderr(),
        &options,
    ) {
        Ok(()) => {}
        // The reader of our replies went away: nothing left to answer.
        Err(ServeError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(ServeError::Io(e)) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(EX_IOERR);
        }
        Err(ServeError::State(e)) => return state_failed(&e),
    }
    finish(engine, args.dump.as_deref())
}

fn replay(args: &ReplayArgs) -> ExitCode {
    let plan = match load_plan(args.config.as_deref()) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let unreadable = |e: io::Error| {
        log(&format!(
            "projector: cannot read {}: {e}",
            args.log.display()
        ));
        ExitCode::from(EX_IOERR)
    };
    let total = match std::fs::read(&args.log) {
        Ok(bytes) => bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .count(),
        Err(e) => return unreadable(e),
    };
    let file = match std::fs::File::open(&args.log) {
        Ok(file) => file,
        Err(e) => return unreadable(e),
    };
    let mut engine = match open_engine(plan, args.state.as_deref(), &args.rebuild) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let options = Options {
        envelope: false,
        max_line_bytes: args.max_line_bytes,
    };
    let started = std::time::Instant::now();
    let counts = match server::replay(&mut engine, file, total, io::stderr(), &options) {
        Ok(counts) => counts,
        Err(ServeError::State(e)) => return state_failed(&e),
        Err(ServeError::Io(e)) => return unreadable(e),
    };
    log(&format!(
        "replay: done: {}; {} applied, {} skipped, {} refused",
        server::progress(counts.messages, total, started),
        counts.applied,
        counts.skipped,
        counts.refused
    ));
    finish(engine, args.dump.as_deref())
}

fn test(args: &TestArgs) -> ExitCode {
    let plan = match load_plan(Some(&args.config)) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let mut out = io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for test in &plan.tests {
        let failures = projector::testing::run(&plan, test);
        if failures.is_empty() {
            passed += 1;
            let _ = writeln!(out, "test {} ... ok", test.name);
        } else {
            failed += 1;
            let _ = writeln!(out, "test {} ... FAILED", test.name);
            for failure in failures {
                let _ = writeln!(out, "  {failure}");
            }
        }
    }
    if plan.tests.is_empty() {
        log(&format!(
            "projector: {} declares no [[tests]]",
            args.config.display()
        ));
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let mut failed = false;
    for path in &args.configs {
        let (name, text) = match read_config(Some(path)) {
            Ok(config) => config,
            Err(e) => {
                match args.format {
                    Format::Human => log(&format!("projector: {e}")),
                    Format::Json => {
                        let report = serde_json::json!({"file": path.display().to_string(), "valid": false, "error": e});
                        let _ = writeln!(io::stdout(), "{report}");
                    }
                }
                failed = true;
                continue;
            }
        };
        let (diags, summary) = match projector::load(&text) {
            Ok((plan, warnings)) => {
                let summary = format!(
                    "{name}: ok: {}, {}",
                    plural(plan.model_count(), "read model"),
                    plural(plan.type_count(), "event type")
                );
                (warnings, Some(summary))
            }
            Err(diags) => (diags, None),
        };
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        let valid = summary.is_some() && !(args.deny_warnings && warnings > 0);
        failed |= !valid;
        if args.format == Format::Json {
            let map = SourceMap::new(&text);
            let list: Vec<_> = diags.iter().map(|d| d.to_json(&name, &map)).collect();
            let report = serde_json::json!({"file": name, "valid": valid, "diagnostics": list});
            let _ = writeln!(io::stdout(), "{report}");
            continue;
        }
        print_diagnostics(&name, &text, &diags);
        match summary {
            // A closed stdout does not change the verdict, which the exit code carries.
            Some(summary) if valid => {
                let _ = writeln!(io::stdout(), "{summary}");
            }
            _ => log(&format!("{name}: invalid: {}", counts(errors, warnings))),
        }
    }
    if failed {
        ExitCode::from(EX_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn counts(errors: usize, warnings: usize) -> String {
    match warnings {
        0 => plural(errors, "error"),
        _ => format!(
            "{}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
