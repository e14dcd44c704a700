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
use projector::plan::{ModelId, Plan};
use projector::state::postgres::Target;
use projector::state::{Location, StateError};
use projector::store::Document;
use std::process::ExitCode;

/// `--diff N --source ADDR`.
pub struct Request {
    pub n: usize,
    pub source: Source,
}

impl Request {
    /// The request the flags make: both or neither; what is wrong
    /// otherwise.
    pub fn from_flags(n: Option<u64>, source: Option<&str>) -> Result<Option<Request>, String> {
        match (n, source) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(
                "--diff needs --source: the events the documents after the change are computed from (nats://HOST:PORT/STREAM, or a file of messages as `replay` reads them)".to_owned(),
            ),
            (None, Some(_)) => Err(
                "--source is read only with --diff N: the number of documents to show per read model".to_owned(),
            ),
            (Some(n), Some(source)) => Ok(Some(Request {
                n: n as usize,
                source: Source::parse(source).map_err(|e| format!("--source: {e}"))?,
            })),
        }
    }
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
    let read = read(request, None, &mut followed)?;
    let mut models: Vec<ModelDiff> = touched
        .iter()
        .zip(before.iter_mut())
        .map(|(model, documents)| pair(plan, &followed, model, std::mem::take(documents)))
        .collect();
    let applied = followed.applied + remade(plan, live, request, read.to_sequence, &mut models)?;
    Ok(Diff {
        n: request.n,
        source: request.source.to_string(),
        config: config.to_owned(),
        read,
        applied,
        models,
    })
}

/// Applies the source's events (a stream's up to the sequence `to`) to
/// what `followed` follows.
fn read(
    request: &Request,
    to: Option<u64>,
    followed: &mut after::Followed,
) -> Result<source::Read, ExitCode> {
    let digester = followed.digester();
    request
        .source
        .read(to, digester, |line| followed.line(line))
        .map_err(|e| {
            log(&format!("projector: --source: {e}"));
            ExitCode::from(EX_IOERR)
        })
}

/// The first `n` documents of each touched model as the state holds them.
fn live_documents(
    live: &Live<'_>,
    touched: &[Touched],
    n: usize,
) -> Result<Vec<before::Documents>, ExitCode> {
    touched
        .iter()
        .map(|m| match m.live {
            true => before::first(live, &m.name, n).map_err(failed),
            false => Ok(Vec::new()),
        })
        .collect()
}

fn failed(e: StateError) -> ExitCode {
    log(&format!("projector: {e}"));
    ExitCode::from(e.exit_code())
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

/// For each model none of whose live documents has one after (its key is
/// made another way, say), adds the first `n` documents the new
/// configuration makes for it, reading the source again (a stream up to
/// the sequence `to`, as the first time). Returns the events applied.
fn remade(
    plan: &Plan,
    live: &Live<'_>,
    request: &Request,
    to: Option<u64>,
    models: &mut [ModelDiff],
) -> Result<u64, ExitCode> {
    let gone: Vec<(usize, ModelId)> = models
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            !m.documents.is_empty()
                && m.documents
                    .iter()
                    .all(|d| d.before.is_some() && d.after.is_none())
        })
        .filter_map(|(i, m)| Some((i, plan.model_by_name(&m.name)?)))
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    let mut followed = after::Followed::new(plan.clone(), live.obeys_subscriptions());
    for (_, id) in &gone {
        followed.follow_first(*id, request.n);
    }
    read(request, to, &mut followed)?;
    for (i, id) in gone {
        let keys = followed.keys(id);
        let wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
        let stored = before::with_keys(live, &models[i].name, &wanted).map_err(failed)?;
        for key in keys {
            let before = stored
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| d.clone());
            let after = followed.document(id, &key).cloned();
            models[i]
                .documents
                .push(DocumentDiff { key, before, after });
        }
    }
    Ok(followed.applied)
}
