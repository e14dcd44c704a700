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
        return no_state(args, &config, &location, &commands, request.as_ref());
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
    text.push_str(&state_verdict(&reconciliation, all.as_deref()));
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

/// The plan for a state that does not exist yet: `run` creates it, and
/// every read model is new.
fn no_state(
    args: &PlanArgs,
    config: &super::Loaded,
    location: &Location,
    commands: &Commands,
    request: Option<&diff::Request>,
) -> ExitCode {
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
    let shown = show(args, config, (text, report), &touched, live, request);
    shown.err().unwrap_or(ExitCode::SUCCESS)
}

/// The last line of a state's plan: nothing to do, or how many differences
/// need a command and `all`, the one that resolves them all.
fn state_verdict(r: &Reconciliation, all: Option<&str>) -> String {
    let Some(all) = all else {
        return "Nothing to do: `projector run` starts on this state as it is.".to_owned();
    };
    let n = r.models.iter().filter(|m| m.need.is_action()).count()
        + usize::from(r.event_id.need.is_action());
    format!(
        "{} before `projector run` starts on this state. All at once:\n  {all}",
        match n {
            1 => "1 difference needs a command".to_owned(),
            n => format!("{n} differences need a command"),
        }
    )
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
    let (serving, _) = serving_and_building(&cluster.versions);
    let units = cluster::layout(&config.plan, parts(serving), &target.schema);
    // A unit whose schema a retired version left resumes where it stopped.
    let resumed: Vec<Option<u64>> = target
        .connect()
        .ok()
        .and_then(|mut c| registry::unit_states(&mut c, &units).ok())
        .unwrap_or_default()
        .iter()
        .map(|s| s.checkpoint)
        .collect();
    let change = ClusterChange::decide(&cluster.versions, &units, &resumed);
    let mut text = change.text(&target.display(), &config.name);
    text.push_str(&retired_lines(&cluster.retired, target));
    let report = cluster_report(config, target, cluster, &units, &change);
    let touched = cluster_touched(config, &units, serving, &change.removed);
    let live = Live::Cluster {
        target,
        units: &serving.units,
    };
    if let Err(code) = show(args, config, (text, report), &touched, live, request) {
        return code;
    }
    match change.needs() {
        true => ExitCode::from(NEEDS_ACTION),
        false => ExitCode::SUCCESS,
    }
}

/// The version a cluster serves (else its first), and the one it builds,
/// if any.
fn serving_and_building(versions: &[Version]) -> (&Version, Option<&Version>) {
    let serving = versions
        .iter()
        .find(|v| !v.building)
        .unwrap_or(&versions[0]);
    (serving, versions.iter().find(|v| v.building))
}

/// The parts a cluster's streams are split into: fixed, the serving
/// version's units tell how many.
fn parts(serving: &Version) -> u32 {
    serving
        .units
        .iter()
        .filter_map(|u| u.name.rsplit_once('/').and_then(|(_, of)| of.parse().ok()))
        .max()
        .unwrap_or(cluster::DEFAULT_PARTS)
}

/// What a cluster plan decided: per configured unit, kept or rebuilt, and
/// the read models no unit has any more.
struct ClusterChange<'a> {
    serving: &'a Version,
    building: Option<&'a Version>,
    /// Per configured unit, its status (`unchanged` or `rebuilt`) and its
    /// plan line.
    units: Vec<(&'static str, String)>,
    rebuilt: usize,
    removed: Vec<&'a String>,
    /// The units of the cluster now, and once the plan is carried out.
    now: Tally,
    planned: Tally,
    /// The configured units are those of the version being built.
    same_as_building: bool,
    /// The version `run --source` builds.
    builds: i32,
}

impl<'a> ClusterChange<'a> {
    /// Compares the configured `units` with the cluster's `versions`;
    /// `resumed` holds, per unit, where a retired version left its schema.
    fn decide(
        versions: &'a [Version],
        units: &[registry::Listed],
        resumed: &[Option<u64>],
    ) -> ClusterChange<'a> {
        let (serving, building) = serving_and_building(versions);
        let kept: Vec<&str> = serving.units.iter().map(|u| u.schema.as_str()).collect();
        let same_as_building = building.is_some_and(|b| {
            b.units
                .iter()
                .map(|u| u.schema.as_str())
                .eq(units.iter().map(|u| u.schema.as_str()))
        });
        let lines: Vec<(&'static str, String)> = units
            .iter()
            .enumerate()
            .map(|(i, unit)| match kept.contains(&unit.schema.as_str()) {
                true => ("unchanged", format!("  unit {}: unchanged", unit.name)),
                false => (
                    "rebuilt",
                    rebuilt_line(unit, serving, resumed.get(i).copied().flatten()),
                ),
            })
            .collect();
        let configured: Vec<&String> = units.iter().flat_map(|u| &u.models).collect();
        let removed: Vec<&String> = serving
            .units
            .iter()
            .flat_map(|u| &u.models)
            .filter(|m| !configured.contains(m))
            .collect();
        ClusterChange {
            serving,
            building,
            rebuilt: lines
                .iter()
                .filter(|(status, _)| *status == "rebuilt")
                .count(),
            units: lines,
            removed,
            now: Tally::of(&serving.units, building.map_or(&[][..], |b| &b.units)),
            planned: Tally::of(&serving.units, units),
            same_as_building,
            builds: match same_as_building {
                true => building.map_or(0, |b| b.number),
                false => versions.iter().map(|v| v.number).max().unwrap_or(0) + 1,
            },
        }
    }

    /// Whether starting `run --source` changes anything.
    fn needs(&self) -> bool {
        self.rebuilt > 0 || !self.removed.is_empty()
    }

    /// The plan's lines for the cluster at `cluster` and the configuration
    /// `config`.
    fn text(&self, cluster: &str, config: &str) -> String {
        let mut text = format!(
            "Plan for the cluster {cluster} (serving version {}{}: {}) with {config}:\n",
            self.serving.number,
            self.building.map_or(String::new(), |b| format!(
                ", building version {}",
                b.number
            )),
            self.now,
        );
        for (_, line) in &self.units {
            text.push_str(line);
            text.push('\n');
        }
        for model in &self.removed {
            text.push_str(&format!(
                "  read model {model}: no longer configured: its view is dropped at the switch\n"
            ));
        }
        if self.needs() {
            text.push_str(&format!(
                "`projector run --source …{}` with this configuration builds version {} beside version {} ({}); when every unit of it has caught up, the read models' views switch to it in one transaction (`projector status` shows its lag){}.",
                if self.same_as_building { "" } else { " --deploy" },
                self.builds,
                self.serving.number,
                self.planned,
                match (self.building, self.same_as_building) {
                    (Some(b), false) => format!("; the build of version {} is given up", b.number),
                    _ => String::new(),
                }
            ));
        } else {
            text.push_str("Nothing to do: every unit is served as it is.");
        }
        text
    }
}

/// The line of a unit built anew: what changed, and where its build starts
/// (`resumed`: where a retired version left its schema).
fn rebuilt_line(unit: &registry::Listed, serving: &Version, resumed: Option<u64>) -> String {
    let new: Vec<&str> = unit
        .models
        .iter()
        .filter(|m| !serving.units.iter().any(|u| u.models.contains(m)))
        .map(|m| m.as_str())
        .collect();
    let what = match new.len() {
        0 => "definition changed".to_owned(),
        _ => format!(
            "new read model{} {}",
            if new.len() == 1 { "" } else { "s" },
            new.join(", ")
        ),
    };
    format!(
        "  unit {}: {what}: built {} in schema {} beside the serving one, which keeps serving and keeping up",
        unit.name,
        resumed.map_or_else(
            || "from the stream's start".to_owned(),
            |c| format!("from sequence {}, where a retired version left it,", c + 1)
        ),
        unit.schema
    )
}

/// A cluster plan as `--format json` prints it.
fn cluster_report(
    config: &super::Loaded,
    target: &Target,
    cluster: &Cluster,
    units: &[registry::Listed],
    change: &ClusterChange,
) -> Value {
    let needs = change.needs();
    let rows: Vec<Value> = change
        .units
        .iter()
        .zip(units)
        .map(|((status, _), unit)| json!({"unit": unit.name, "models": unit.models, "schema": unit.schema, "status": status}))
        .collect();
    json!({
        "state": target.display(),
        "config": config.name,
        "cluster": true,
        "serving_version": change.serving.number,
        "building_version": change.building.map(|b| b.number),
        "needs_action": needs,
        "unit_count": change.now.units,
        "units_being_built": change.now.building,
        "planned": needs.then(|| json!({
            "unit_count": change.planned.units,
            "units_being_built": change.planned.building,
        })),
        "units": rows,
        "removed": change.removed,
        "retired_schemas": cluster.retired.iter().map(|r| json!({
            "schema": r.unit.schema,
            "unit": r.unit.name,
            "version": r.version,
            "retired_seconds_ago": r.age.map(f64::round),
        })).collect::<Vec<_>>(),
        "gc_command": (!cluster.retired.is_empty()).then(|| super::gc::command(target)),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use registry::Listed;

    fn unit(name: &str, schema: &str, models: &[&str]) -> Listed {
        Listed {
            name: name.to_owned(),
            schema: schema.to_owned(),
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn version(number: i32, building: bool, units: Vec<Listed>) -> Version {
        Version {
            number,
            config: String::new(),
            building,
            views: !building,
            units,
        }
    }

    #[test]
    fn a_cluster_plan_keeps_known_units_and_rebuilds_the_others() {
        let versions = [version(
            3,
            false,
            vec![unit("a/1", "s_a", &["a"]), unit("b/1", "s_b", &["b"])],
        )];
        let configured = [unit("a/1", "s_a", &["a"]), unit("c/1", "s_c", &["c"])];
        let change = ClusterChange::decide(&versions, &configured, &[None, Some(9)]);
        let statuses: Vec<&str> = change.units.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses, ["unchanged", "rebuilt"]);
        assert_eq!(change.units[0].1, "  unit a/1: unchanged");
        assert_eq!(
            change.units[1].1,
            "  unit c/1: new read model c: built from sequence 10, where a retired version left it, \
             in schema s_c beside the serving one, which keeps serving and keeping up"
        );
        assert_eq!(change.removed, ["b"]);
        assert!(change.needs());
        assert!(!change.same_as_building);
        assert_eq!(change.builds, 4);
    }

    #[test]
    fn a_cluster_plan_that_matches_the_build_goes_on_with_it() {
        let versions = [
            version(3, false, vec![unit("a/1", "s_a", &["a"])]),
            version(4, true, vec![unit("a/1", "s_a2", &["a"])]),
        ];
        let change = ClusterChange::decide(&versions, &[unit("a/1", "s_a2", &["a"])], &[]);
        assert!(change.same_as_building);
        assert_eq!(change.builds, 4);
        assert!(change.units[0]
            .1
            .contains("definition changed: built from the stream's start"));
        let unchanged = ClusterChange::decide(&versions, &[unit("a/1", "s_a", &["a"])], &[]);
        assert!(!unchanged.needs());
        assert!(unchanged
            .text("c", "p.toml")
            .ends_with("Nothing to do: every unit is served as it is."));
    }

    fn reconciliation(model_needs: &[Need], rule: Need) -> Reconciliation {
        Reconciliation {
            event_id: RulePlan {
                status: Status::Unchanged,
                stored: None,
                configured: String::new(),
                processed: 0,
                need: rule,
                resolved: false,
            },
            models: model_needs
                .iter()
                .map(|need| ModelPlan {
                    name: "m".to_owned(),
                    id: None,
                    status: Status::Changed,
                    documents: 0,
                    processed: 0,
                    need: *need,
                    resolved: false,
                })
                .collect(),
        }
    }

    #[test]
    fn a_state_verdict_counts_the_differences_that_need_a_command() {
        let r = reconciliation(&[Need::Nothing], Need::Nothing);
        assert_eq!(
            state_verdict(&r, None),
            "Nothing to do: `projector run` starts on this state as it is."
        );
        let r = reconciliation(&[Need::Rebuild], Need::Nothing);
        assert_eq!(
            state_verdict(&r, Some("X")),
            "1 difference needs a command before `projector run` starts on this state. All at once:\n  X"
        );
        let r = reconciliation(&[Need::Rebuild, Need::Drop], Need::Rebuild);
        assert!(state_verdict(&r, Some("X")).starts_with("3 differences need a command"));
    }
}
