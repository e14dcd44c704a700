//! The `projector` command: one file per subcommand, and what they share:
//! reading the configuration, printing diagnostics, opening the state.
//! Only this module prints and chooses exit codes.

/// `println!` for the command's output: a reader that went away
/// (`projector status | head -1`) ends the output quietly instead of
/// panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` as [`outln`] does it.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod changes;
mod check;
mod diff;
mod explain;
mod explain_code;
mod gc;
mod plan;
mod publish;
mod rejections;
mod replay;
mod run;
mod signals;
mod state;
mod status;
mod status_cluster;
mod status_stdin;
mod test;
mod validate;

use clap::{Parser, Subcommand};
use projector::config::diag::{Diagnostic, SourceMap};
use projector::plan::Plan;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The configuration bundled with the binary, used in memory when no
/// `--config` is given and there is no `./projections.toml`.
const BUNDLED_CONFIG: &str = include_str!("../../projections.toml");
const DEFAULT_CONFIG: &str = "projections.toml";

/// sysexits.h EX_USAGE: the command line is wrong.
const EX_USAGE: u8 = 64;
/// Bad input data (sysexits.h EX_DATAERR).
const EX_DATAERR: u8 = 65;
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
        subscriptions persist in an SQLite file or in PostgreSQL (--state postgres://...), and \
        a reply is written only once what it reports is committed. SIGTERM or SIGINT stops reading, answers what was read, \
        commits and exits 0.",
    args_conflicts_with_subcommands = true,
    after_help = "Exit status: 0 on success; 78 when a configuration is invalid or unreadable, \
        or differs from what a state was built by; 65 when a state file is not a projector \
        state or is damaged; 75 when it is in use by another projector; 74 when input, output \
        or the state fails (a full disk too); 64 for a wrong command line."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::RunArgs,
    /// How log lines are written on stderr: human (`projector: …`) or json (one object per
    /// line, for log shippers). PROJECTOR_LOG (else RUST_LOG) chooses which are written, in
    /// RUST_LOG's syntax (default: warn,projector=info,replay=info,publish=info).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "human",
        env = "PROJECTOR_LOG_FORMAT"
    )]
    log_format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the stdio protocol (the default).
    Run(run::RunArgs),
    /// Check configurations without running: report every problem with file:line:col.
    Validate(validate::ValidateArgs),
    /// Apply an event log (the lines `run` takes on stdin) to a state, e.g. to rebuild read models.
    Replay(replay::ReplayArgs),
    /// Show what starting with a configuration would do to a state: models to rebuild, backfill or drop.
    Plan(plan::PlanArgs),
    /// Run the [[tests]] declared in a configuration: events in, documents expected out.
    Test(test::TestArgs),
    /// Show the history of one document, replayed from a log: each event that changed it, and how.
    Explain(explain::ExplainArgs),
    /// Print what a diagnostic code (P0102, say) means.
    ExplainCode(explain_code::ExplainCodeArgs),
    /// Publish the events on stdin to a NATS JetStream stream, each with its id as Nats-Msg-Id.
    Publish(publish::PublishArgs),
    /// Read every row of a state and check it (checksums, documents, row counts): a run checks
    /// only the rows it reads.
    Check(check::CheckArgs),
    /// Show what a state is and who applies it: a cluster's units, owners and lag behind its
    /// JetStream source, or a stdin-mode state's holder and contents.
    Status(status::StatusArgs),
    /// List, retry or drop the events a cluster's units did not project (its table rejections).
    Rejections(rejections::RejectionsArgs),
    /// Drop the schemas of a cluster's retired versions that no version served or built uses.
    Gc(gc::GcArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
}

#[derive(clap::Args)]
struct CompletionsArgs {
    /// The shell, as in `projector completions bash > /etc/bash_completion.d/projector`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// How a subcommand prints what it reports.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return match usage {
                true => ExitCode::from(EX_USAGE),
                false => ExitCode::SUCCESS,
            };
        }
    };
    projector::util::log::init(match cli.log_format {
        Format::Human => projector::util::log::Format::Human,
        Format::Json => projector::util::log::Format::Json,
    });
    match cli.command {
        Some(Command::Validate(args)) => validate::validate(&args),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Replay(args)) => replay::replay(&args),
        Some(Command::Plan(args)) => plan::plan(&args),
        Some(Command::Test(args)) => test::test(&args),
        Some(Command::Explain(args)) => explain::explain(&args),
        Some(Command::ExplainCode(args)) => explain_code::explain_code(&args),
        Some(Command::Publish(args)) => publish::publish(&args),
        Some(Command::Status(args)) => status::status(&args),
        Some(Command::Rejections(args)) => rejections::rejections(&args),
        Some(Command::Check(args)) => check::check(&args),
        Some(Command::Gc(args)) => gc::gc(&args),
        Some(Command::Completions(args)) => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "projector", &mut script);
            let _ = io::stdout().write_all(&script);
            ExitCode::SUCCESS
        }
        None => run::run(&cli.run),
    }
}

/// The configuration named by `PROJECTOR_CONFIG`, else `./projections.toml`:
/// what `validate` and `test` check when given no path.
fn configured_or_default() -> PathBuf {
    std::env::var_os("PROJECTOR_CONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from)
}

/// Logs a line, `projector: ` (or the command's name) first.
fn log(line: &str) {
    projector::util::log::line(line);
}

/// A configuration's name (for messages) and text. Without a path,
/// `./projections.toml`, or the bundled configuration where there is none
/// and `bundled` allows it.
fn read_config(path: Option<&Path>, bundled: bool) -> Result<(String, String), String> {
    let (name, bytes) = match path {
        Some(path) => (path.display().to_string(), std::fs::read(path)),
        None => match std::fs::read(DEFAULT_CONFIG) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && bundled => {
                log(&format!(
                    "projector: no ./{DEFAULT_CONFIG}; using the bundled configuration"
                ));
                return Ok((
                    format!("<bundled {DEFAULT_CONFIG}>"),
                    BUNDLED_CONFIG.to_owned(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "no --config given, and there is no ./{DEFAULT_CONFIG}; a state is only ever opened with a configuration named for it (the bundled one is for runs in memory)"
                ))
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

/// Prints diagnostics on stderr: in colour on a terminal, unless `NO_COLOR`
/// is set (or the terminal is `dumb`); plain otherwise.
fn print_diagnostics(name: &str, text: &str, diags: &[Diagnostic]) {
    let map = SourceMap::new(text);
    let colour = {
        use std::io::IsTerminal;
        let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        io::stderr().is_terminal()
            && !set("NO_COLOR")
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
    };
    let mut err = io::BufWriter::new(io::stderr().lock());
    for d in diags {
        let _ = write!(err, "{}", d.render_styled(name, &map, colour));
    }
    let _ = err.flush();
}

/// A configuration, read and compiled.
struct Loaded {
    plan: Plan,
    /// How to name it in a command line: as given, or the default file.
    name: String,
    /// Its text.
    text: String,
}

/// Reads and compiles the configuration to serve its read models, printing
/// its diagnostics; the bundled one stands in for a missing
/// `./projections.toml` only when `bundled` allows it. Errors in its
/// `[[tests]]` are counted, not shown: they concern `validate` and `test`.
fn load_plan(path: Option<&Path>, bundled: bool) -> Result<Loaded, ExitCode> {
    let (name, text) = read_config(path, bundled).map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(EX_CONFIG)
    })?;
    match projector::load_to_serve(&text) {
        Ok((plan, warnings, test_errors)) => {
            print_diagnostics(&name, &text, &warnings);
            if test_errors > 0 {
                log(&format!(
                    "projector: warning: {name}: [[tests]] with {} (`projector validate {}` shows them); tests do not stop the read models from being served",
                    plural(test_errors as u64, "error"),
                    shell_word(&name)
                ));
            }
            Ok(Loaded { plan, name, text })
        }
        Err(diags) => invalid(&name, &text, &diags),
    }
}

/// Reads and compiles the configuration, its `[[tests]]` too, printing its
/// diagnostics.
fn load_checked(path: &Path) -> Result<Plan, ExitCode> {
    let (name, text) = read_config(Some(path), false).map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(EX_CONFIG)
    })?;
    match projector::load(&text) {
        Ok((plan, warnings)) => {
            print_diagnostics(&name, &text, &warnings);
            Ok(plan)
        }
        Err(diags) => invalid(&name, &text, &diags),
    }
}

fn invalid<T>(name: &str, text: &str, diags: &[Diagnostic]) -> Result<T, ExitCode> {
    print_diagnostics(name, text, diags);
    log(&format!("projector: {name} is invalid; not starting"));
    Err(ExitCode::from(EX_CONFIG))
}

/// A word of a command line, quoted for a POSIX shell where it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:@%+=,".contains(&b));
    match plain {
        true => word.to_owned(),
        false => format!("'{}'", word.replace('\'', r"'\''")),
    }
}

fn path_word(path: &Path) -> String {
    shell_word(&path.display().to_string())
}

fn plural(n: impl Into<u64>, word: &str) -> String {
    let n = n.into();
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
