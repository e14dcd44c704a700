//! `projector plan --diff N`: a configuration change shown on real data.
//! For each read model the change touches, N live documents as the state
//! holds them now ([`before`]) and as the new configuration makes them from
//! their events ([`after`]), read from a stream or a file ([`source`]);
//! [`render`] prints them with what changed.

mod after;
mod before;
mod render;
mod source;

pub use source::Source;

use super::{log, EX_IOERR};
use projector::cluster::registry::Listed;
use projector::plan::Plan;
use projector::state::postgres::Target;
use projector::state::Location;
use projector::store::Document;
use std::process::ExitCode;

/// `--diff N --source ADDR`.
pub struct Request {
    pub n: usize,
    pub source: Source,
}

/// A read model the change touches, and how, as the plan words it
/// (changed, new, removed, ...).
pub struct Touched {
    pub name: String,
    pub status: &'static str,
    /// Whether the state serves it now.
    pub live: bool,
}

/// Where the documents before the change are.
pub enum Live<'a> {
    /// A state of its own (stdin mode).
    State(&'a Location),
    /// A cluster's serving units.
    Cluster {
        target: &'a Target,
        units: &'a [Listed],
    },
    /// Nowhere yet: there is no state.
    Nowhere,
}

impl Live<'_> {
    /// Whether subscription messages in the events say which are applied:
    /// they do for a state of its own; a stream instance never obeys them.
    fn obeys_subscriptions(&self) -> bool {
        !matches!(self, Live::Cluster { .. })
    }
}

/// The diff of every touched read model.
pub struct Diff {
    pub n: usize,
    /// The source, as the command line named it.
    pub source: String,
    /// The configuration, as named.
    pub config: String,
    pub read: source::Read,
    /// Events applied to the followed documents.
    pub applied: u64,
    pub models: Vec<ModelDiff>,
}

pub struct ModelDiff {
    pub name: String,
    pub status: &'static str,
    pub documents: Vec<DocumentDiff>,
}

pub struct DocumentDiff {
    pub key: String,
    pub before: Option<Document>,
    pub after: Option<Document>,
}

/// Reads the live documents of `touched`, applies their events from the
/// source with `plan` (the new configuration's), and pairs them up. Logs
/// what fails and returns its exit status.
pub fn diff(
    plan: &Plan,
    config: &str,
    touched: &[Touched],
    live: &Live<'_>,
    request: &Request,
) -> Result<Diff, ExitCode> {
    let mut before = live_documents(live, touched, request.n)?;
    let mut followed = after::Followed::new(plan.clone(), live.obeys_subscriptions());
    for (model, documents) in touched.iter().zip(&before) {
        let Some(id) = plan.model_by_name(&model.name) else {
            continue;
        };
        match documents.is_empty() {
            true => followed.follow_first(id, request.n),
            false => followed.follow(id, documents.iter().map(|(key, _)| key.clone())),
        }
    }
    let read = request
        .source
        .read(followed.digester(), |line| followed.line(line))
        .map_err(|e| {
            log(&format!("projector: --source: {e}"));
            ExitCode::from(EX_IOERR)
        })?;
    let models = touched
        .iter()
        .zip(before.iter_mut())
        .map(|(model, documents)| pair(plan, &followed, model, std::mem::take(documents)))
        .collect();
    Ok(Diff {
        n: request.n,
        source: request.source.to_string(),
        config: config.to_owned(),
        read,
        applied: followed.applied,
        models,
    })
}

/// The first `n` documents of each touched model as the state holds them.
fn live_documents(
    live: &Live<'_>,
    touched: &[Touched],
    n: usize,
) -> Result<Vec<before::Documents>, ExitCode> {
    let names: Vec<&str> = touched
        .iter()
        .filter(|m| m.live)
        .map(|m| m.name.as_str())
        .collect();
    let read = match live {
        Live::State(location) => before::of_state(location, &names, n),
        Live::Cluster { target, units } => names
            .iter()
            .map(|name| before::of_cluster(target, units, name, n))
            .collect(),
        Live::Nowhere => Ok(vec![Vec::new(); names.len()]),
    };
    let mut read = read
        .map_err(|e| {
            log(&format!("projector: {e}"));
            ExitCode::from(e.exit_code())
        })?
        .into_iter();
    Ok(touched
        .iter()
        .map(|m| match m.live {
            true => read.next().unwrap_or_default(),
            false => Vec::new(),
        })
        .collect())
}

/// Each document of `model` before and after, in key order: the live
/// ones, or, for a model without any, those its events made first.
fn pair(
    plan: &Plan,
    followed: &after::Followed,
    model: &Touched,
    before: before::Documents,
) -> ModelDiff {
    let id = plan.model_by_name(&model.name);
    let mut documents: Vec<DocumentDiff> = before
        .into_iter()
        .map(|(key, document)| DocumentDiff {
            key,
            before: Some(document),
            after: None,
        })
        .collect();
    if let (Some(id), true) = (id, documents.is_empty()) {
        documents = followed
            .keys(id)
            .into_iter()
            .map(|key| DocumentDiff {
                key,
                before: None,
                after: None,
            })
            .collect();
    }
    if let Some(id) = id {
        for document in &mut documents {
            document.after = followed.document(id, &document.key).cloned();
        }
    }
    ModelDiff {
        name: model.name.clone(),
        status: model.status,
        documents,
    }
}
