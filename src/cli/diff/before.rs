//! The documents before a change: the first ones of a read model in key
//! order, as the state serves them now, read without claiming it (a running
//! projector's state too).

use projector::cluster::registry::Listed;
use projector::plan::ModelId;
use projector::state::postgres::Target;
use projector::state::reader::Reader;
use projector::state::{Location, StateError};
use projector::store::Document;
use std::path::Path;

/// Documents by key, in key order.
pub type Documents = Vec<(String, Document)>;

/// The first `n` documents of each of `models`, as a state of its own
/// holds them (none where there is no state).
pub fn of_state(
    location: &Location,
    models: &[&str],
    n: usize,
) -> Result<Vec<Documents>, StateError> {
    let names = models.iter().map(|m| (*m).to_owned()).collect();
    let Some(mut reader) = location.reader(names)? else {
        return Ok(vec![Vec::new(); models.len()]);
    };
    let path = location.path();
    (0..models.len())
        .map(|i| first(&mut *reader, &path, (ModelId(i as u32), models[i]), n))
        .collect()
}

/// The first `n` documents of `model` over the units of a cluster that
/// serve it (`units`, the serving version's).
pub fn of_cluster(
    target: &Target,
    units: &[Listed],
    model: &str,
    n: usize,
) -> Result<Documents, StateError> {
    let mut documents = Vec::new();
    for unit in units.iter().filter(|u| u.models.iter().any(|m| m == model)) {
        let location = Location::Postgres(Target::new(&target.url, &unit.schema));
        if let Some(mut reader) = location.reader(vec![model.to_owned()])? {
            let path = location.path();
            documents.extend(first(&mut *reader, &path, (ModelId(0), model), n)?);
        }
    }
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    documents.truncate(n);
    Ok(documents)
}

/// The first `n` documents of `model` (its id for `reader`, and its name).
fn first(
    reader: &mut dyn Reader,
    path: &Path,
    (model, name): (ModelId, &str),
    n: usize,
) -> Result<Documents, StateError> {
    let mut texts = Vec::new();
    reader.page(model, None, n, &mut |key, text| {
        texts.push((key.to_owned(), text.to_owned()))
    })?;
    texts
        .into_iter()
        .map(|(key, text)| match serde_json::from_str::<Document>(&text) {
            Ok(document) => Ok((key, document)),
            Err(e) => Err(StateError::Damaged {
                path: path.to_owned(),
                detail: format!(
                    "the document of read model \"{name}\", key \"{key}\", is not a JSON object: {e}"
                ),
            }),
        })
        .collect()
}
