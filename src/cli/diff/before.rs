//! The documents before a change, as the state serves them now, read
//! without claiming it (a running projector's state too): a read model's
//! first ones in key order, or those with given keys.

use super::Live;
use projector::plan::ModelId;
use projector::state::postgres::Target;
use projector::state::reader::Reader;
use projector::state::{Location, StateError};
use projector::store::Document;
use std::path::PathBuf;

/// Documents by key, in key order.
pub type Documents = Vec<(String, Document)>;

/// The first `n` documents of `model`, in key order.
pub fn first(live: &Live<'_>, model: &str, n: usize) -> Result<Documents, StateError> {
    let mut documents = Vec::new();
    for (mut reader, path) in readers(live, model)? {
        let mut texts = Vec::new();
        reader.page(ModelId(0), None, n, &mut |key, text| {
            texts.push((key.to_owned(), text.to_owned()))
        })?;
        documents.extend(parsed(texts, &path, model)?);
    }
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    documents.truncate(n);
    Ok(documents)
}

/// The documents of `model` with these keys, in key order.
pub fn with_keys(live: &Live<'_>, model: &str, keys: &[&str]) -> Result<Documents, StateError> {
    let mut documents = Vec::new();
    for (mut reader, path) in readers(live, model)? {
        let mut texts = Vec::new();
        reader.documents(ModelId(0), keys, &mut |key, text| {
            texts.push((key.to_owned(), text.to_owned()))
        })?;
        documents.extend(parsed(texts, &path, model)?);
    }
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(documents)
}

/// A reader of a state, and the state it reads.
type Opened = (Box<dyn Reader>, PathBuf);

/// Readers of `model` (as their model 0), and the state each reads: the
/// state of its own, or each unit of a cluster that serves it.
fn readers(live: &Live<'_>, model: &str) -> Result<Vec<Opened>, StateError> {
    let locations: Vec<Location> = match live {
        Live::State(location) => vec![(*location).clone()],
        Live::Cluster { target, units } => units
            .iter()
            .filter(|u| u.models.iter().any(|m| m == model))
            .map(|u| Location::Postgres(Target::new(&target.url, &u.schema)))
            .collect(),
        Live::Nowhere => Vec::new(),
    };
    let mut readers = Vec::new();
    for location in locations {
        if let Some(reader) = location.reader(vec![model.to_owned()])? {
            readers.push((reader, location.path()));
        }
    }
    Ok(readers)
}

/// Documents from their JSON text, as read from the state at `path`.
fn parsed(
    texts: Vec<(String, String)>,
    path: &std::path::Path,
    model: &str,
) -> Result<Documents, StateError> {
    texts
        .into_iter()
        .map(|(key, text)| match serde_json::from_str::<Document>(&text) {
            Ok(document) => Ok((key, document)),
            Err(e) => Err(StateError::Damaged {
                path: path.to_owned(),
                detail: format!(
                    "the document of read model \"{model}\", key \"{key}\", is not a JSON object: {e}"
                ),
            }),
        })
        .collect()
}
