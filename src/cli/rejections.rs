//! `projector rejections list | retry | drop`: the events a cluster's units
//! did not project (the main schema's table `rejections`), listed, asked to
//! be applied again, or dropped on purpose.

use super::{log, plural, EX_USAGE};
use clap::{Args, Subcommand, ValueEnum};
use projector::cluster::rejections::{self, Dropped, Filter, Retry, Row, UnitPositions};
use projector::state::postgres::client as pg;
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use projector::state::StateError;
use serde::Serialize;
use std::io::{self, Write};
use std::process::ExitCode;

/// The columns a table aims to fit in.
const WIDTH: usize = 100;
/// The fewest columns an error is given, however wide the rest.
const ERROR_WIDTH: usize = 24;
/// The most columns the documents are given.
const DOCUMENTS_WIDTH: usize = 40;
/// The most positions a report names per unit.
const POSITIONS_SHOWN: usize = 10;

#[derive(Args)]
pub struct RejectionsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List the events that match, in stream order: those parked or to retry, unless --status
    /// says otherwise.
    List(ListArgs),
    /// Ask that the parked events that match be applied again, each with every later parked event
    /// of its documents, in order; the instances owning their units apply them at their next batch.
    Retry(Selection),
    /// Drop the events that match (parked, to retry or recorded) on purpose: they are not applied.
    Drop(DropArgs),
}

/// The cluster, and the filters every action takes.
#[derive(Args)]
struct Selection {
    /// The PostgreSQL state of the cluster: postgres://USER@HOST:PORT/DATABASE or "host=HOST
    /// dbname=DATABASE …" (libpq's settings; PGHOST, PGPASSWORD, ~/.pgpass… fill in the rest).
    #[arg(long, value_name = "URL")]
    state: String,
    /// The cluster's main schema, which holds the table rejections.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// Only the events of this unit, as `projector status` names it ("user_listing 1/4").
    #[arg(long, value_name = "UNIT", help_heading = "Filters")]
    unit: Option<String>,
    /// Only the events that change a document of this read model.
    #[arg(long, value_name = "MODEL", help_heading = "Filters")]
    model: Option<String>,
    /// Only the events that change a document with this key (of --model, when given).
    #[arg(long, value_name = "KEY", help_heading = "Filters")]
    key: Option<String>,
    /// Only the events refused with this error code (12, 22, ...).
    #[arg(long, value_name = "CODE", help_heading = "Filters")]
    code: Option<i32>,
    /// Only the event at this stream sequence.
    #[arg(long, value_name = "N", help_heading = "Filters")]
    position: Option<u64>,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    selection: Selection,
    /// Only the events with these statuses (comma-separated), or `all`.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "parked,retry",
        help_heading = "Filters"
    )]
    status: Vec<Status>,
    /// `human` (a table, the error cut to fit) or `json` (one object per event and line, with
    /// every column, the message whole).
    #[arg(long, value_enum, default_value_t = super::Format::Human)]
    format: super::Format,
}

#[derive(Args)]
struct DropArgs {
    #[command(flatten)]
    selection: Selection,
    /// Drop every event parked, to retry or recorded when no filter is given.
    #[arg(long)]
    all: bool,
}

/// A row's status, as `list --status` names it.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Status {
    /// Refused and passed by.
    Recorded,
    /// Held, with every later event of its documents.
    Parked,
    /// Asked to be applied again.
    Retry,
    /// Applied again.
    Retried,
    /// Dropped on purpose.
    Dropped,
    /// Every status.
    All,
}

/// The statuses, in the order a summary counts them.
const STATUSES: [&str; 5] = ["parked", "retry", "recorded", "retried", "dropped"];

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Recorded => "recorded",
            Status::Parked => "parked",
            Status::Retry => "retry",
            Status::Retried => "retried",
            Status::Dropped => "dropped",
            Status::All => "all",
        }
    }
}

impl Selection {
    fn filter(&self) -> Filter {
        Filter {
            unit: self.unit.clone(),
            model: self.model.clone(),
            key: self.key.clone(),
            code: self.code,
            position: self.position,
        }
    }

    /// The cluster's main schema, connected to.
    fn connect(&self) -> Result<(Target, pg::Client), ExitCode> {
        if !Target::is_url(&self.state) {
            log("projector: --state: rejections are kept by a cluster's PostgreSQL state: postgres://USER@HOST:PORT/DATABASE or \"host=HOST dbname=DATABASE …\"");
            return Err(ExitCode::from(EX_USAGE));
        }
        let target = Target::new(&self.state, &self.schema);
        match rejections::connect(&target) {
            Ok(client) => Ok((target, client)),
            Err(e) => Err(failed(&e)),
        }
    }
}

pub fn rejections(args: &RejectionsArgs) -> ExitCode {
    let done = match &args.action {
        Action::List(args) => list(args),
        Action::Retry(args) => retry(args),
        Action::Drop(args) => drop_events(args),
    };
    done.unwrap_or_else(|code| code)
}

fn list(args: &ListArgs) -> Result<ExitCode, ExitCode> {
    let statuses: Vec<&str> = match args.status.contains(&Status::All) {
        true => STATUSES.to_vec(),
        false => args.status.iter().map(|s| s.word()).collect(),
    };
    let (target, mut client) = args.selection.connect()?;
    let filter = args.selection.filter();
    let rows =
        rejections::list(&mut client, &target, &filter, &statuses).map_err(|e| failed(&e))?;
    let text = match args.format == super::Format::Json {
        true => rows.iter().map(json_line).collect(),
        false if rows.is_empty() => {
            let which = match args.status.contains(&Status::All) {
                true => String::new(),
                false => format!(" (status {})", statuses.join(" or ")),
            };
            format!("no rejections match{which}\n")
        }
        false => table(&rows),
    };
    print(&text);
    Ok(ExitCode::SUCCESS)
}

fn retry(args: &Selection) -> Result<ExitCode, ExitCode> {
    let (target, mut client) = args.connect()?;
    let report = rejections::retry(&mut client, &target, &args.filter()).map_err(|e| failed(&e))?;
    print(&retried(&report));
    Ok(ExitCode::SUCCESS)
}

fn drop_events(args: &DropArgs) -> Result<ExitCode, ExitCode> {
    let filter = args.selection.filter();
    if filter.is_empty() && !args.all {
        log("projector: rejections drop: give a filter (--unit, --model, --key, --code, --position), or --all to drop every event parked, to retry or recorded");
        return Err(ExitCode::from(EX_USAGE));
    }
    let (target, mut client) = args.selection.connect()?;
    let report = rejections::drop(&mut client, &target, &filter).map_err(|e| failed(&e))?;
    print(&dropped(&report));
    Ok(ExitCode::SUCCESS)
}

/// Logs `e` and gives its exit status.
fn failed(e: &StateError) -> ExitCode {
    log(&format!("projector: {e}"));
    ExitCode::from(e.exit_code())
}

/// Writes `text` on stdout; a closed stdout is no reason to fail what was
/// done.
fn print(text: &str) {
    let _ = io::stdout().lock().write_all(text.as_bytes());
}

/// A row as `list --format json` prints it, every column in the table's order.
#[derive(Serialize)]
struct JsonRow<'a> {
    unit: &'a str,
    position: u64,
    id: Option<&'a str>,
    code: i32,
    error: &'a str,
    text: &'a str,
    at: &'a str,
    status: &'a str,
    documents: Vec<[&'a str; 2]>,
    behind: Option<u64>,
}

fn json_line(row: &Row) -> String {
    let line = JsonRow {
        unit: &row.unit,
        position: row.position,
        id: row.id.as_deref(),
        code: row.code,
        error: &row.error,
        text: &row.text,
        at: &row.at,
        status: &row.status,
        documents: row
            .documents
            .iter()
            .map(|(model, key)| [model.as_str(), key.as_str()])
            .collect(),
        behind: row.behind,
    };
    let mut text = serde_json::to_string(&line).expect("strings and numbers");
    text.push('\n');
    text
}

/// The rows as aligned columns under a header, the error cut to fit
/// [`WIDTH`], then a count by status.
fn table(rows: &[Row]) -> String {
    let header = [
        "POSITION",
        "UNIT",
        "STATUS",
        "CODE",
        "ID",
        "DOCUMENTS",
        "ERROR",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let documents: Vec<String> = row
                .documents
                .iter()
                .map(|(model, key)| format!("{}/{}", cell(model), cell(key)))
                .collect();
            [
                row.position.to_string(),
                cell(&row.unit),
                row.status.clone(),
                row.code.to_string(),
                row.id.as_deref().map_or("-".to_owned(), cell),
                shorten(&documents.join(", "), DOCUMENTS_WIDTH),
                cell(&row.error),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let before_error: usize = widths[..6].iter().map(|w| w + 2).sum();
    widths[6] = WIDTH.saturating_sub(before_error).max(ERROR_WIDTH);
    let mut text = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let cell = match i {
                6 => shorten(cell, width),
                _ => cell.to_string(),
            };
            let pad = width.saturating_sub(cell.chars().count());
            match i {
                0 | 3 => out.push_str(&format!("{}{cell}  ", " ".repeat(pad))),
                6 => out.push_str(&cell),
                _ => out.push_str(&format!("{cell}{}  ", " ".repeat(pad))),
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header);
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    let counts: Vec<String> = STATUSES
        .iter()
        .filter_map(|status| {
            let n = rows.iter().filter(|r| r.status == *status).count();
            (n > 0).then(|| format!("{n} {status}"))
        })
        .collect();
    text.push_str(&format!(
        "{}: {}\n",
        plural(rows.len() as u64, "event"),
        counts.join(", ")
    ));
    text
}

/// `text` on one line: control characters escaped.
fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// `text` cut to `width` characters, an ellipsis last when it was cut.
fn shorten(text: &str, width: usize) -> String {
    match text.chars().count() > width {
        true => {
            let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        false => text.to_owned(),
    }
}

/// Each unit and the positions of its events, some of them when many:
/// `orders at 3, 4, 9; user_listing 2/4 at 10`.
fn places(units: &[UnitPositions]) -> String {
    let unit = |u: &UnitPositions| {
        let mut shown: Vec<String> = u
            .positions
            .iter()
            .take(POSITIONS_SHOWN)
            .map(u64::to_string)
            .collect();
        if u.positions.len() > POSITIONS_SHOWN {
            shown.push(format!("… ({} in all)", u.positions.len()));
        }
        format!("{} at {}", u.unit, shown.join(", "))
    };
    units.iter().map(unit).collect::<Vec<_>>().join("; ")
}

fn count(units: &[UnitPositions]) -> u64 {
    units.iter().map(|u| u.positions.len() as u64).sum()
}

fn retried(report: &Retry) -> String {
    let mut text = String::new();
    if !report.marked.is_empty() {
        text.push_str(&format!(
            "asked to retry {}: {}\nthe instances owning these units apply them, in position order, at their next batch\n",
            plural(count(&report.marked), "event"),
            places(&report.marked)
        ));
    }
    if !report.waiting.is_empty() {
        text.push_str(&format!(
            "left parked, {}: {}: they wait behind earlier parked events of their documents, which are not retried (retry those, and these come with them)\n",
            plural(count(&report.waiting), "event"),
            places(&report.waiting)
        ));
    }
    if text.is_empty() {
        text.push_str("no parked event matches: nothing to retry\n");
    }
    text
}

fn dropped(report: &Dropped) -> String {
    if report.dropped.is_empty() {
        return "no event parked, to retry or recorded matches: nothing dropped\n".to_owned();
    }
    let mut text = format!(
        "dropped {} (not to be applied): {}\n",
        plural(count(&report.dropped), "event"),
        places(&report.dropped)
    );
    let behind = match count(&report.dropped) {
        1 => "it",
        _ => "them",
    };
    match report.still_parked {
        0 => {}
        1 => text.push_str(&format!(
            "1 parked event waited behind {behind} and stays parked: retry or drop it too\n"
        )),
        n => text.push_str(&format!(
            "{n} parked events waited behind {behind} and stay parked: retry or drop them too\n"
        )),
    }
    text
}
