//! `projector plan`: what starting with a configuration would do to a
//! state, like a migration plan. Per read model: unchanged, changed (needs a
//! rebuild), new (needs a backfill when events of its types were already
//! processed), removed (its documents would be dropped); and whether the
//! event-id rule changed. Each difference comes with the command that
//! resolves it. The same lines explain why `run` and `replay` refuse a
//! state.
//!
//! With `--diff N --source ADDR`, the plan is followed by N documents of
//! each read model the change touches, before and after it (see
//! [`super::diff`]).
//!
//! Exit status: 0 when nothing needs doing, 2 when something does, 78 for
//! an invalid configuration, and a state's own (65, 74) when it cannot be
//! read.

use super::diff::{self, Live, Touched};
use super::{load_plan, log, path_word, plural, shell_word, Format, EX_USAGE};
use clap::Args;
use projector::cluster;
use projector::cluster::gc::{self, Retired};
use projector::cluster::registry::{self, Version};
use projector::cluster::tally::Tally;
use projector::state::postgres::{Target, DEFAULT_SCHEMA};
use projector::state::reconcile::{ModelPlan, Need, Reconciliation, Request, RulePlan, Status};
use projector::state::Location;
use projector::state::StateError;
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when something needs doing.
const NEEDS_ACTION: u8 = 2;

#[derive(Args)]
pub struct PlanArgs {
    /// The configuration. Default: ./projections.toml.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// The state to compare it with: an SQLite file, or postgres://USER@HOST:PORT/DATABASE or
    /// "host=HOST dbname=DATABASE …". It is only read, and may be in use by a running projector.
    #[arg(long, value_name = "PATH|URL")]
    state: PathBuf,
    /// The PostgreSQL schema of a `postgres://` state.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
    /// `human` (aligned lines, with commands) or `json` (one object on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Also show, for each read model the change touches, its first N documents as the state
    /// holds them and as the new configuration makes them from their events in --source.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    diff: Option<u64>,
    /// With --diff, where the events are: nats://HOST:PORT/STREAM (read from its first message
    /// to its last as it was when plan started), or a file of messages as `replay` reads them.
    #[arg(long, value_name = "ADDR|FILE")]
    source: Option<String>,
}

pub fn plan(args: &PlanArgs) -> ExitCode {
    let request = match diff_request(args) {
        Ok(request) => request,
        Err(code) => return code,
    };
    let config = match load_plan(args.config.as_deref(), false) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let location = Location::new(&args.state, &args.schema);
    if let Location::Postgres(target) = &location {
        match cluster_versions(target) {
            Ok(Some(cluster)) => {
                return cluster_plan(args, &config, target, &cluster, request.as_ref())
            }
            Ok(None) => {}
            Err(e) => {
                log(&format!("projector: {e}"));
                return ExitCode::from(e.exit_code());
            }
        }
    }
    let commands = Commands::new(&config.name, &location);
    let stored = match location.inspect() {
        Ok(stored) => stored,
        Err(e) => {
            log(&format!("projector: {e}"));
            return ExitCode::from(e.exit_code());
        }
    };
    let Some(stored) = stored else {
        let text = format!(
            "There is no state at {}: `{}` creates it, with {}. Nothing to do.",
            location.path().display(),
            commands.run(&[]),
            plural(config.plan.model_count() as u64, "read model")
        );
        let report = json!({
            "state": location.path().display().to_string(),
            "config": config.name,
            "exists": false,
            "needs_action": false,
            "event_id": null,
            "models": [],
            "command": null,
        });
        let touched: Vec<Touched> = config
            .plan
            .model_names()
            .map(|name| Touched {
                name: name.to_owned(),
                status: Status::New.word(),
                live: false,
            })
            .collect();
        let live = Live::Nowhere;
        let shown = show(
            args,
            &config,
            (text, report),
            &touched,
            live,
            request.as_ref(),
        );
        return shown.err().unwrap_or(ExitCode::SUCCESS);
    };
    let reconciliation = Reconciliation::new(&config.plan, &stored, &Request::default())
        .expect("a plan without flags names no model");
    let mut text = format!(
        "Plan for the state {} with {}:\n",
        location.path().display(),
        config.name
    );
    text.push_str(&lines(&reconciliation, &commands, false));
    let all = commands.all(&reconciliation);
    match &all {
        None => text.push_str("Nothing to do: `projector run` starts on this state as it is."),
        Some(all) => {
            let n = reconciliation
                .models
                .iter()
                .filter(|m| m.need.is_action())
                .count()
                + usize::from(reconciliation.event_id.need.is_action());
            text.push_str(&format!(
                "{} before `projector run` starts on this state. All at once:\n  {all}",
                match n {
                    1 => "1 difference needs a command".to_owned(),
                    n => format!("{n} differences need a command"),
                }
            ));
        }
    }
    let report = json!({
        "state": location.path().display().to_string(),
        "config": config.name,
        "exists": true,
        "needs_action": reconciliation.needs_action(),
        "event_id": rule_json(&reconciliation.event_id, &commands),
        "models": reconciliation.models.iter().map(|m| model_json(m, &commands)).collect::<Vec<_>>(),
        "command": all,
    });
    let touched = touched(&reconciliation);
    let live = Live::State(&location);
    if let Err(code) = show(
        args,
        &config,
        (text, report),
        &touched,
        live,
        request.as_ref(),
    ) {
        return code;
    }
    match reconciliation.needs_action() {
        true => ExitCode::from(NEEDS_ACTION),
        false => ExitCode::SUCCESS,
    }
}

/// What a cluster (`run --source`) keeps in the schema: the versions it
/// serves and builds, and the retired schemas no version uses; `None`
/// when it holds no version.
fn cluster_versions(target: &Target) -> Result<Option<Cluster>, StateError> {
    let mut client = target.connect()?;
    let failed = |e| target.failed("reading the cluster's versions", e);
    let versions = registry::active(&mut client, target).map_err(failed)?;
    if versions.is_empty() {
        return Ok(None);
    }
    let retired = gc::retired(&mut client, target, Duration::ZERO).map_err(failed)?;
    Ok(Some(Cluster { versions, retired }))
}

struct Cluster {
    versions: Vec<Version>,
    retired: Vec<Retired>,
}

/// The retired schemas `projector gc` would drop, after a plan's lines.
fn retired_lines(retired: &[Retired], target: &Target) -> String {
    if retired.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\nRetired schemas that no version uses ({} drops them):",
        super::gc::command(target)
    );
    for r in retired {
        text.push_str(&format!("\n  {}", r.describe()));
    }
    text
}

/// What starting `run --source` with this configuration does to a cluster:
/// per unit, kept as it is, or built anew from the stream's start beside the
/// serving one, which keeps serving until the new version catches up and
/// the views switch to it.
fn cluster_plan(
    args: &PlanArgs,
    config: &super::Loaded,
    target: &Target,
    cluster: &Cluster,
    request: Option<&diff::Request>,
) -> ExitCode {
    let versions = &cluster.versions;
    let serving = versions
        .iter()
        .find(|v| !v.building)
        .unwrap_or(&versions[0]);
    let building = versions.iter().find(|v| v.building);
    // The parts are fixed: the serving version's units tell how many.
    let parts = serving
        .units
        .iter()
        .filter_map(|u| u.name.rsplit_once('/').and_then(|(_, of)| of.parse().ok()))
        .max()
        .unwrap_or(cluster::DEFAULT_PARTS);
    let units = cluster::layout(&config.plan, parts, &target.schema);
    let kept: Vec<&str> = serving.units.iter().map(|u| u.schema.as_str()).collect();
    let same_as_building = building.is_some_and(|b| {
        b.units
            .iter()
            .map(|u| u.schema.as_str())
            .eq(units.iter().map(|u| u.schema.as_str()))
    });
    let now = Tally::of(&serving.units, building.map_or(&[][..], |b| &b.units));
    let planned = Tally::of(&serving.units, &units);
    let mut text = format!(
        "Plan for the cluster {} (serving version {}{}: {now}) with {}:\n",
        target.display(),
        serving.number,
        building.map_or(String::new(), |b| format!(
            ", building version {}",
            b.number
        )),
        config.name
    );
    // A unit whose schema a retired version left resumes where it stopped.
    let left = target
        .connect()
        .ok()
        .and_then(|mut c| registry::unit_states(&mut c, &units).ok())
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut rebuilt = 0;
    for (i, unit) in units.iter().enumerate() {
        let resumed = left.get(i).and_then(|s| s.checkpoint);
        let (status, line) = if kept.contains(&unit.schema.as_str()) {
            ("unchanged", format!("  unit {}: unchanged", unit.name))
        } else {
            rebuilt += 1;
            let new: Vec<&String> = unit
                .models
                .iter()
                .filter(|m| !serving.units.iter().any(|u| u.models.contains(m)))
                .collect();
            let what = match new.len() {
                0 => "definition changed".to_owned(),
                _ => format!(
                    "new read model{} {}",
                    if new.len() == 1 { "" } else { "s" },
                    new.iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            (
                "rebuilt",
                format!(
                    "  unit {}: {what}: built {} in schema {} beside the serving one, which keeps serving and keeping up",
                    unit.name,
                    resumed.map_or_else(
                        || "from the stream's start".to_owned(),
                        |c| format!("from sequence {}, where a retired version left it,", c + 1)
                    ),
                    unit.schema
                ),
            )
        };
        text.push_str(&line);
        text.push('\n');
        rows.push(json!({"unit": unit.name, "models": unit.models, "schema": unit.schema, "status": status}));
    }
    let configured: Vec<&String> = units.iter().flat_map(|u| &u.models).collect();
    let removed: Vec<&String> = serving
        .units
        .iter()
        .flat_map(|u| &u.models)
        .filter(|m| !configured.contains(m))
        .collect();
    for model in &removed {
        text.push_str(&format!(
            "  read model {model}: no longer configured: its view is dropped at the switch\n"
        ));
    }
    let needs = rebuilt > 0 || !removed.is_empty();
    if needs {
        text.push_str(&format!(
            "`projector run --source …{}` with this configuration builds version {} beside version {} ({planned}); when every unit of it has caught up, the read models' views switch to it in one transaction (`projector status` shows its lag){}.",
            if same_as_building { "" } else { " --deploy" },
            if same_as_building {
                building.map_or(0, |b| b.number)
            } else {
                versions.iter().map(|v| v.number).max().unwrap_or(0) + 1
            },
            serving.number,
            match (building, same_as_building) {
                (Some(b), false) => format!("; the build of version {} is given up", b.number),
                _ => String::new(),
            }
        ));
    } else {
        text.push_str("Nothing to do: every unit is served as it is.");
    }
    text.push_str(&retired_lines(&cluster.retired, target));
    let report = json!({
        "state": target.display(),
        "config": config.name,
        "cluster": true,
        "serving_version": serving.number,
        "building_version": building.map(|b| b.number),
        "needs_action": needs,
        "unit_count": now.units,
        "units_being_built": now.building,
        "planned": needs.then(|| json!({
            "unit_count": planned.units,
            "units_being_built": planned.building,
        })),
        "units": rows,
        "removed": removed,
        "retired_schemas": cluster.retired.iter().map(|r| json!({
            "schema": r.unit.schema,
            "unit": r.unit.name,
            "version": r.version,
            "retired_seconds_ago": r.age.map(f64::round),
        })).collect::<Vec<_>>(),
        "gc_command": (!cluster.retired.is_empty()).then(|| super::gc::command(target)),
    });
    let touched = cluster_touched(config, &units, serving, &removed);
    let live = Live::Cluster {
        target,
        units: &serving.units,
    };
    if let Err(code) = show(args, config, (text, report), &touched, live, request) {
        return code;
    }
    match needs {
        true => ExitCode::from(NEEDS_ACTION),
        false => ExitCode::SUCCESS,
    }
}

/// `--diff N --source ADDR`, checked.
fn diff_request(args: &PlanArgs) -> Result<Option<diff::Request>, ExitCode> {
    diff::Request::from_flags(args.diff, args.source.as_deref()).map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(EX_USAGE)
    })
}

/// The read models a change touches in a state of its own: every one that
/// is not unchanged, or that is rebuilt since the event-id rule changed.
fn touched(r: &Reconciliation) -> Vec<Touched> {
    r.models
        .iter()
        .filter(|m| m.status != Status::Unchanged || m.need == Need::Rebuild)
        .map(|m| Touched {
            name: m.name.clone(),
            status: m.status.word(),
            live: m.status != Status::New,
        })
        .collect()
}

/// The read models a change touches in a cluster: those of the units it
/// rebuilds (`rebuilt`, or `new` when no serving unit has them), in the
/// configuration's order, then the removed ones.
fn cluster_touched(
    config: &super::Loaded,
    units: &[registry::Listed],
    serving: &Version,
    removed: &[&String],
) -> Vec<Touched> {
    let kept = |schema: &str| serving.units.iter().any(|u| u.schema == schema);
    let served = |model: &str| {
        serving
            .units
            .iter()
            .any(|u| u.models.iter().any(|m| m == model))
    };
    let rebuilt = |model: &str| {
        units
            .iter()
            .any(|u| !kept(&u.schema) && u.models.iter().any(|m| m == model))
    };
    let configured = config
        .plan
        .model_names()
        .filter(|m| rebuilt(m))
        .map(|m| Touched {
            name: m.to_owned(),
            status: if served(m) { "rebuilt" } else { "new" },
            live: served(m),
        });
    let removed = removed.iter().map(|m| Touched {
        name: (*m).clone(),
        status: Status::Removed.word(),
        live: true,
    });
    configured.chain(removed).collect()
}

/// Prints the plan (`text`, or `report` as JSON), followed by the diff of
/// the `touched` read models when `--diff` asks for it.
fn show(
    args: &PlanArgs,
    config: &super::Loaded,
    (mut text, mut report): (String, Value),
    touched: &[Touched],
    live: Live<'_>,
    request: Option<&diff::Request>,
) -> Result<(), ExitCode> {
    if let Some(request) = request {
        let diff = diff::diff(&config.plan, &config.name, touched, &live, request)?;
        text.push('\n');
        text.push_str(diff.human().trim_end());
        report["diff"] = diff.json();
        report["diff_source"] = diff.source_json();
    }
    print(args.format, &text, &report);
    Ok(())
}

fn print(format: Format, text: &str, report: &Value) {
    let mut out = io::stdout().lock();
    // A closed stdout does not change the verdict, which the exit code carries.
    let _ = match format {
        Format::Human => writeln!(out, "{text}"),
        Format::Json => writeln!(out, "{report}"),
    };
}

/// Why `run` or `replay` refuses a state: the differences left unresolved,
/// and the command that resolves them.
pub fn refusal(reconciliation: &Reconciliation, config: &str, state: &Location) -> String {
    let commands = Commands::new(config, state);
    let mut text = format!(
        "projector: {} was built by rules other than {config} declares; nothing was changed, and nothing runs until this is resolved:\n",
        state.path().display()
    );
    text.push_str(&lines(reconciliation, &commands, true));
    if let Some(all) = commands.all(reconciliation) {
        text.push_str(&format!("All at once:\n  {all}\n"));
    }
    text.push_str(&format!(
        "(`projector plan --config {} --state {}` shows the whole plan.)",
        commands.config, commands.state
    ));
    text
}

/// A line per difference (per model and the event-id rule), each followed
/// by the command that resolves it; only the unresolved ones when
/// `unresolved`.
fn lines(r: &Reconciliation, commands: &Commands, unresolved: bool) -> String {
    let width = r
        .models
        .iter()
        .map(|m| m.name.chars().count())
        .chain([EVENT_IDS.len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut line = |name: &str, status: Status, text: String, command: Option<String>| {
        out.push_str(&format!("  {name:<width$}  {:<9}  {text}\n", status.word()));
        if let Some(command) = command {
            out.push_str(&format!("  {:<width$}  {:<9}  {command}\n", "", ""));
        }
    };
    let rule = &r.event_id;
    if !(unresolved && rule.resolved) {
        line(
            EVENT_IDS,
            rule.status,
            rule_text(rule),
            rule_command(rule, commands),
        );
    }
    for m in r.models.iter().filter(|m| !(unresolved && m.resolved)) {
        line(
            &m.name,
            m.status,
            model_text(m, rule),
            model_command(m, commands),
        );
    }
    out
}

const EVENT_IDS: &str = "[event_id]";

fn rule_text(rule: &RulePlan) -> String {
    let configured = describe_rule(&rule.configured);
    let stored = rule
        .stored
        .as_deref()
        .map(describe_rule)
        .unwrap_or_default();
    match (rule.status, rule.need) {
        (Status::Changed, Need::Rebuild) => format!(
            "processed event ids ({}) were found as {stored}; found as {configured} they would all be new: rebuild every read model from the event log, finding the ids anew",
            rule.processed
        ),
        (Status::Changed, _) => format!(
            "found as {configured} (was {stored}); no event was processed yet: recorded at start"
        ),
        (Status::New, _) => format!("found as {configured}: recorded at start"),
        _ => format!("found as {configured}"),
    }
}

fn model_text(m: &ModelPlan, rule: &RulePlan) -> String {
    let documents = plural(m.documents, "document");
    let processed = plural(m.processed, "processed event");
    match (m.status, m.need) {
        (Status::Unchanged, Need::Nothing) => documents,
        (_, Need::Rebuild) if rule.need == Need::Rebuild && m.status != Status::Changed => {
            format!("{documents}: rebuilt with every model, since the event-id rule changed")
        }
        (Status::Changed, Need::Rebuild) => format!(
            "{documents}, built by another definition: rebuild it from the event log"
        ),
        (Status::Changed, _) => {
            "no documents, and no processed events of its types: the new definition is recorded at start"
                .to_owned()
        }
        (Status::New, Need::Backfill) => format!(
            "{processed} of its types came before it: backfill it from the event log"
        ),
        (Status::New, _) => "no processed events of its types: it starts empty".to_owned(),
        (Status::Removed, _) => format!(
            "no longer configured; its {documents} would be dropped: drop them explicitly"
        ),
        (Status::Unchanged, _) => documents,
    }
}

/// An event-id rule's canonical text, as a reader would say it.
fn describe_rule(text: &str) -> String {
    let Ok(rule) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    let path = rule["path"].as_str().unwrap_or("?");
    match &rule["derive"] {
        Value::Object(d) => format!(
            "{path}, else derived from {} (/{}/ -> {})",
            d.get("from").and_then(Value::as_str).unwrap_or("?"),
            d.get("pattern").and_then(Value::as_str).unwrap_or("?"),
            d.get("template").and_then(Value::as_str).unwrap_or("?"),
        ),
        _ => path.to_owned(),
    }
}

fn rule_command(rule: &RulePlan, commands: &Commands) -> Option<String> {
    (rule.need == Need::Rebuild).then(|| commands.replay("--rebuild-all".to_owned()))
}

fn model_command(m: &ModelPlan, commands: &Commands) -> Option<String> {
    match m.need {
        Need::Rebuild if m.status != Status::Changed => None,
        Need::Rebuild | Need::Backfill => {
            Some(commands.replay(format!("--rebuild {}", shell_word(&m.name))))
        }
        Need::Drop => Some(commands.run(&[&m.name])),
        Need::Nothing | Need::Record => None,
    }
}

fn rule_json(rule: &RulePlan, commands: &Commands) -> Value {
    let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "status": rule.status.word(),
        "need": rule.need.word(),
        "stored": rule.stored.as_deref().map(parsed),
        "configured": parsed(&rule.configured),
        "processed_events": rule.processed,
        "command": rule_command(rule, commands),
    })
}

fn model_json(m: &ModelPlan, commands: &Commands) -> Value {
    json!({
        "name": m.name,
        "status": m.status.word(),
        "need": m.need.word(),
        "documents": m.documents,
        "processed_events": m.processed,
        "command": model_command(m, commands),
    })
}

/// Command lines for one configuration and state, ready to paste.
struct Commands {
    config: String,
    state: String,
}

impl Commands {
    fn new(config: &str, state: &Location) -> Commands {
        let state = match state {
            Location::Sqlite(path) => path_word(path),
            Location::Postgres(target) if target.schema == DEFAULT_SCHEMA => {
                shell_word(&projector::state::postgres::secret::redacted(&target.url))
            }
            Location::Postgres(target) => format!(
                "{} --schema {}",
                shell_word(&projector::state::postgres::secret::redacted(&target.url)),
                shell_word(&target.schema)
            ),
        };
        Commands {
            config: shell_word(config),
            state,
        }
    }

    fn run(&self, drop: &[&str]) -> String {
        let mut command = format!(
            "projector run --config {} --state {}",
            self.config, self.state
        );
        for name in drop {
            command.push_str(&format!(" --drop {}", shell_word(name)));
        }
        command
    }

    fn replay(&self, flags: String) -> String {
        format!(
            "projector replay --config {} --state {} {flags} <EVENTS.ndjson>",
            self.config, self.state
        )
    }

    /// One command that resolves every difference, when any needs one.
    fn all(&self, r: &Reconciliation) -> Option<String> {
        let drops: Vec<&str> = r
            .models
            .iter()
            .filter(|m| m.need == Need::Drop)
            .map(|m| m.name.as_str())
            .collect();
        let mut flags: Vec<String> = match r.event_id.need {
            Need::Rebuild => vec!["--rebuild-all".to_owned()],
            _ => r
                .models
                .iter()
                .filter(|m| matches!(m.need, Need::Rebuild | Need::Backfill))
                .map(|m| format!("--rebuild {}", shell_word(&m.name)))
                .collect(),
        };
        if flags.is_empty() {
            return (!drops.is_empty()).then(|| self.run(&drops));
        }
        flags.extend(
            drops
                .iter()
                .map(|name| format!("--drop {}", shell_word(name))),
        );
        Some(self.replay(flags.join(" ")))
    }
}
