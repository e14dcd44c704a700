//! How `plan --diff` shows its documents: per read model, per document,
//! its key, what changed (a word, or the fields: `+added`, `-removed`,
//! `~changed`), and both versions as `json.dumps` prints them; as JSON, one
//! entry per read model with its documents.

use super::super::changes::{self, FieldChange};
use super::{Diff, DocumentDiff, ModelDiff};
use projector::protocol::json;
use projector::store::Document;
use serde_json::{json, Value};

/// What became of a document.
enum Change {
    Unchanged,
    /// These fields differ.
    Fields(Vec<FieldChange>),
    /// None before; the events make one.
    New,
    /// None after: the new configuration makes no document with its key
    /// from its events (or deletes it).
    Gone,
    /// Its read model is no longer configured.
    Removed,
}

impl Change {
    fn of(model: &ModelDiff, document: &DocumentDiff) -> Change {
        if model.status == "removed" {
            return Change::Removed;
        }
        match (&document.before, &document.after) {
            (None, Some(_)) => Change::New,
            (_, None) => Change::Gone,
            (Some(before), Some(after)) => {
                match changes::fields(Some(&value(before)), Some(&value(after))) {
                    fields if fields.is_empty() => Change::Unchanged,
                    fields => Change::Fields(fields),
                }
            }
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Change::Unchanged => "unchanged",
            Change::Fields(_) => "changed",
            Change::New => "new",
            Change::Gone => "gone",
            Change::Removed => "removed",
        }
    }

    /// `+added ~changed -removed`, field by field, or the word.
    fn marker(&self) -> String {
        let Change::Fields(fields) = self else {
            return self.word().to_owned();
        };
        let sign = |f: &FieldChange| match (&f.old, &f.new) {
            (None, _) => '+',
            (_, None) => '-',
            _ => '~',
        };
        fields
            .iter()
            .map(|f| format!("{}{}", sign(f), f.field))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The fields added, removed and changed, for JSON.
    fn lists(&self) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
        let mut lists = (Vec::new(), Vec::new(), Vec::new());
        if let Change::Fields(fields) = self {
            for f in fields {
                match (&f.old, &f.new) {
                    (None, _) => lists.0.push(f.field.as_str()),
                    (_, None) => lists.1.push(f.field.as_str()),
                    _ => lists.2.push(f.field.as_str()),
                }
            }
        }
        lists
    }
}

impl Diff {
    /// The lines that follow the plan's.
    pub fn human(&self) -> String {
        let to = match self.read.to_sequence {
            Some(sequence) => format!(" up to sequence {sequence}"),
            None => String::new(),
        };
        let mut out = format!(
            "Diff, up to {} per read model: before, as the state holds them; after, as {} makes them from their events in {}{to} ({} read; {} applied to them):\n",
            noun(self.n as u64, "document"),
            self.config,
            self.source,
            noun(self.read.messages, "message"),
            noun(self.applied, "event"),
        );
        for model in &self.models {
            if model.documents.is_empty() {
                out.push_str(&format!(
                    "  {}  {}: no document before, and none made by these events\n",
                    model.name, model.status
                ));
                continue;
            }
            out.push_str(&format!("  {}  {}\n", model.name, model.status));
            for document in &model.documents {
                let change = Change::of(model, document);
                out.push_str(&format!(
                    "    {}  {}\n      before  {}\n      after   {}\n",
                    quoted(&document.key),
                    change.marker(),
                    shown(document.before.as_ref()),
                    shown(document.after.as_ref()),
                ));
            }
        }
        out
    }

    /// The `diff` array of the JSON report: per read model, its documents.
    pub fn json(&self) -> Value {
        let models: Vec<Value> = self
            .models
            .iter()
            .map(|model| {
                let documents: Vec<Value> = model
                    .documents
                    .iter()
                    .map(|document| document_json(model, document))
                    .collect();
                json!({"model": model.name, "status": model.status, "documents": documents})
            })
            .collect();
        Value::Array(models)
    }

    /// Where the documents after came from, for the JSON report.
    pub fn source_json(&self) -> Value {
        json!({
            "source": self.source,
            "documents_per_model": self.n,
            "messages": self.read.messages,
            "to_sequence": self.read.to_sequence,
            "applied": self.applied,
        })
    }
}

fn document_json(model: &ModelDiff, document: &DocumentDiff) -> Value {
    let change = Change::of(model, document);
    let (added, removed, changed) = change.lists();
    json!({
        "key": document.key,
        "change": change.word(),
        "before": document.before.as_ref().map(value),
        "after": document.after.as_ref().map(value),
        "added": added,
        "removed": removed,
        "changed": changed,
    })
}

fn value(document: &Document) -> Value {
    serde_json::to_value(document).expect("documents serialize")
}

/// A document as `json.dumps` prints it, or `(none)`.
fn shown(document: Option<&Document>) -> String {
    let Some(document) = document else {
        return "(none)".to_owned();
    };
    let mut out = Vec::new();
    json::document(&mut out, document.iter());
    String::from_utf8(out).expect("JSON text is UTF-8")
}

fn quoted(key: &str) -> String {
    let mut out = Vec::new();
    json::string(&mut out, key);
    String::from_utf8(out).expect("JSON text is UTF-8")
}

fn noun(n: u64, word: &str) -> String {
    super::super::plural(n, word)
}
