//! `projector explain`: the history of one document, replayed from a log in
//! memory. Each event that changed it (its line in the log, id and type),
//! and each field it changed, old → new: field lineage.

use super::changes::{self, shown, FieldChange};
use super::{load_plan, log, plural, Format, EX_IOERR, EX_USAGE};
use clap::Args;
use projector::engine::{Engine, Outcome};
use projector::plan::ModelId;
use projector::store::{DocumentStore, Key};
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ExplainArgs {
    /// The configuration. Default: $PROJECTOR_CONFIG, else ./projections.toml.
    #[arg(short, long, value_name = "FILE", env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// The event log to replay: JSON lines, as `run` reads them on stdin.
    #[arg(long, value_name = "EVENTS")]
    log: PathBuf,
    /// Only the changes of this field (a dotted path: `address.city`), and what is inside it.
    #[arg(long, value_name = "FIELD")]
    field: Option<String>,
    /// `human` (a block per event) or `json` (one object on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// The read model.
    #[arg(value_name = "MODEL")]
    model: String,
    /// The document's key.
    #[arg(value_name = "KEY")]
    key: String,
}

/// One event that changed the document.
struct Step {
    line: usize,
    id: String,
    event_type: String,
    fields: Vec<FieldChange>,
}

pub fn explain(args: &ExplainArgs) -> ExitCode {
    let config = match load_plan(args.config.as_deref(), true) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(model) = config.plan.model_by_name(&args.model) else {
        let known: Vec<&str> = config.plan.model_names().collect();
        log(&format!(
            "projector: {} declares no read model \"{}\"; the read models are: {}",
            config.name,
            args.model,
            known.join(", ")
        ));
        return ExitCode::from(EX_USAGE);
    };
    let file = match std::fs::File::open(&args.log) {
        Ok(file) => file,
        Err(e) => {
            log(&format!(
                "projector: cannot read {}: {e}",
                args.log.display()
            ));
            return ExitCode::from(EX_IOERR);
        }
    };
    let key = Key::new(&args.key);
    let mut engine = Engine::in_memory(config.plan);
    let (steps, now) = match history(&mut engine, file, model, &key, args.field.as_deref()) {
        Ok(history) => history,
        Err(e) => {
            log(&format!(
                "projector: cannot read {}: {e}",
                args.log.display()
            ));
            return ExitCode::from(EX_IOERR);
        }
    };
    match args.format {
        Format::Human => print_human(args, &steps, now.as_ref()),
        Format::Json => print_json(args, &steps, now.as_ref()),
    }
    ExitCode::SUCCESS
}

/// Replays the log in `file` and keeps each event that changed the document
/// at `key` of `model` (its `field` alone, if given); returns them and the
/// document as the log leaves it.
fn history(
    engine: &mut Engine,
    file: std::fs::File,
    model: ModelId,
    key: &Key,
    field: Option<&str>,
) -> io::Result<(Vec<Step>, Option<Value>)> {
    let mut before: Option<Value> = None;
    let mut steps = Vec::new();
    let mut reply = Vec::new();
    for (i, line) in io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        // Lines that are not messages are refused by `replay` too; here they change nothing.
        let Some((body, event_type)) = message(&line) else {
            continue;
        };
        reply.clear();
        let handled = engine.handle(&body, &mut reply);
        if !matches!(handled, Ok(Outcome::Applied)) {
            continue;
        }
        if !engine
            .changed()
            .iter()
            .any(|c| c.model == model && c.key == *key)
        {
            continue;
        }
        let after = engine
            .store(model)
            .get(key)
            .map(|doc| serde_json::to_value(doc).expect("documents serialize"));
        let id = serde_json::from_slice::<Value>(&reply)
            .ok()
            .and_then(|r| r["event_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let changed = Step {
            line: i + 1,
            id,
            event_type,
            fields: Vec::new(),
        };
        steps.extend(step(changed, before.as_ref(), after.as_ref(), field));
        before = after;
    }
    Ok((steps, before))
}

/// An event that changed the document from `before` to `after`, with the
/// fields it changed (`field` alone and what is inside it, if given); `None`
/// when it changed nothing that is shown.
fn step(
    event: Step,
    before: Option<&Value>,
    after: Option<&Value>,
    field: Option<&str>,
) -> Option<Step> {
    let mut fields = changes::fields(before, after);
    if let Some(only) = field {
        fields.retain(|f| f.field == *only || f.field.starts_with(&format!("{only}.")));
    }
    (!fields.is_empty() || (field.is_none() && before != after)).then_some(Step { fields, ..event })
}

/// A log line's message body, when it is an event message, and the event's type.
fn message(line: &[u8]) -> Option<(Map<String, Value>, String)> {
    let Value::Object(mut message) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let body = match message.contains_key("type") {
        true => message,
        false => match message.remove("body")? {
            Value::Object(body) => body,
            _ => return None,
        },
    };
    let event_type = body.get("event")?.get("type")?.as_str()?.to_owned();
    Some((body, event_type))
}

fn print_human(args: &ExplainArgs, steps: &[Step], now: Option<&Value>) {
    let mut out = io::stdout().lock();
    let field = args
        .field
        .as_deref()
        .map_or(String::new(), |f| format!(", field {f}"));
    let _ = writeln!(
        out,
        "{} {}{field}, replayed from {}:",
        args.model,
        args.key,
        args.log.display()
    );
    for step in steps {
        let _ = writeln!(
            out,
            "  line {}: {} ({})",
            step.line, step.id, step.event_type
        );
        for f in &step.fields {
            let _ = writeln!(
                out,
                "    {}: {} -> {}",
                f.field,
                shown(f.old.as_ref()),
                shown(f.new.as_ref())
            );
        }
        if step.fields.is_empty() {
            let _ = writeln!(out, "    (deleted, empty)");
        }
    }
    let _ = writeln!(
        out,
        "{} changed {}; it is now {}",
        plural(steps.len() as u64, "event"),
        args.field.as_deref().unwrap_or("it"),
        now.map_or_else(|| "absent".to_owned(), Value::to_string)
    );
}

fn print_json(args: &ExplainArgs, steps: &[Step], now: Option<&Value>) {
    let events: Vec<Value> = steps
        .iter()
        .map(|step| {
            let fields: Vec<Value> = step
                .fields
                .iter()
                .map(|f| {
                    let mut change = json!({"field": f.field});
                    if let Some(old) = &f.old {
                        change["old"] = old.clone();
                    }
                    if let Some(new) = &f.new {
                        change["new"] = new.clone();
                    }
                    change
                })
                .collect();
            json!({"line": step.line, "event_id": step.id, "event_type": step.event_type, "fields": fields})
        })
        .collect();
    let report = json!({
        "model": args.model,
        "key": args.key,
        "field": args.field,
        "events": events,
        "document": now,
    });
    let _ = writeln!(io::stdout(), "{report}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(
        before: Option<Value>,
        after: Option<Value>,
        field: Option<&str>,
    ) -> Option<Vec<String>> {
        let event = Step {
            line: 1,
            id: "e1".to_owned(),
            event_type: "T".to_owned(),
            fields: Vec::new(),
        };
        step(event, before.as_ref(), after.as_ref(), field)
            .map(|s| s.fields.into_iter().map(|f| f.field).collect())
    }

    #[test]
    fn an_event_is_a_step_when_it_changes_what_is_shown() {
        let (a, b) = (
            json!({"n": 1, "address": {"city": "X"}}),
            json!({"n": 2, "address": {"city": "Y"}}),
        );
        assert_eq!(
            changed(Some(a.clone()), Some(b.clone()), None).unwrap(),
            ["address.city", "n"]
        );
        assert_eq!(
            changed(Some(a.clone()), Some(b.clone()), Some("address")).unwrap(),
            ["address.city"]
        );
        assert_eq!(changed(Some(a.clone()), Some(a.clone()), None), None);
        assert_eq!(
            changed(
                Some(json!({"n": 1})),
                Some(json!({"n": 2})),
                Some("address")
            ),
            None
        );
        // A document deleted, or made empty, is a step without fields.
        assert_eq!(
            changed(Some(json!({})), None, None).unwrap(),
            Vec::<String>::new()
        );
    }
}
