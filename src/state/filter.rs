//! The filter a state keeps of the ids and document keys it holds (see
//! [`crate::engine::durable`]): how each is hashed, and reading it back.

use super::KeptFilter;
use crate::util::bloom::{self, Bloom};

/// An event id's hash in the filter.
pub fn id_hash(id: &str) -> u64 {
    bloom::hash(&[0], id.as_bytes())
}

/// The domain of a read model's keys in the filter: its name.
pub fn domain(model: &str) -> Vec<u8> {
    [&[1u8][..], model.as_bytes()].concat()
}

/// A document key's hash in the filter, given its model's [`domain`].
pub fn key_hash(domain: &[u8], key: &str) -> u64 {
    bloom::hash(domain, key.as_bytes())
}

/// The filter a state keeps, read back at no more than `bytes`, and how
/// many hashes its log holds; `None` when what was kept is not a filter.
pub fn read_back(kept: &KeptFilter, bytes: usize) -> Option<(Bloom, usize)> {
    let mut filter = match &kept.snapshot {
        Some(snapshot) => Bloom::from_bytes(snapshot, bytes)?,
        None => Bloom::with_bytes(bytes),
    };
    let mut logged = 0;
    for blob in &kept.log {
        for hash in bloom::hashes_from_bytes(blob) {
            filter.insert(hash);
            logged += 1;
        }
    }
    Some((filter, logged))
}

/// The size to read a kept filter back at for an audit: its own.
fn audit_bytes(kept: &KeptFilter) -> usize {
    match &kept.snapshot {
        Some(snapshot) => snapshot.len(),
        None => kept.log.iter().map(Vec::len).sum::<usize>() * 4,
    }
}

/// Checks that the kept filter holds every id and key a state holds, as
/// `projector check` reads them: a filter that lacks one would let an
/// event be applied twice. Returns what it lacks first.
pub struct Audit {
    filter: Option<Bloom>,
    domains: std::collections::HashMap<String, Vec<u8>>,
    pub lacking: Option<String>,
}

/// What a state keeps as its filter cannot be read as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the kept filter is not one")]
pub struct NotAFilter;

impl Audit {
    /// An audit of `kept`; `None` (nothing to audit) when the state keeps
    /// no filter, `Err` when what it keeps is not one.
    pub fn new(kept: Option<&KeptFilter>) -> Result<Audit, NotAFilter> {
        let filter = match kept {
            None => None,
            // At the kept size; without a snapshot, at 32 bytes a hash.
            Some(kept) => match read_back(kept, audit_bytes(kept)) {
                Some((filter, _)) => Some(filter),
                None => return Err(NotAFilter),
            },
        };
        Ok(Audit {
            filter,
            domains: Default::default(),
            lacking: None,
        })
    }

    pub fn id(&mut self, id: &str) {
        if let Some(filter) = &self.filter {
            if self.lacking.is_none() && !filter.may_contain(id_hash(id)) {
                self.lacking = Some(format!("event id \"{id}\""));
            }
        }
    }

    pub fn key(&mut self, model: &str, key: &str) {
        let Some(filter) = &self.filter else {
            return;
        };
        let domain = self
            .domains
            .entry(model.to_owned())
            .or_insert_with(|| domain(model));
        if self.lacking.is_none() && !filter.may_contain(key_hash(domain, key)) {
            self.lacking = Some(format!("read model \"{model}\", key \"{key}\""));
        }
    }
}
