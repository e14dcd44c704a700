//! The operator's side of the main schema's `rejections` table: list the
//! events the units did not project, ask that parked ones be applied again,
//! drop them on purpose.
//!
//! A parked event holds every later event of its documents, so a retry
//! takes the rest of its sequence with it: every later parked event of the
//! unit that shares a document with one already taken ([`sequence`], a pure
//! function of the unit's parked events). The rows are only marked: the
//! instance that owns a unit applies its `retry` rows, in position order, at
//! its next batch. A retry or a drop is one transaction that first locks
//! the table against writers, so that it sees every event parked before it
//! and no unit parks one while it decides.

use crate::state::postgres::client as pg;
use crate::state::postgres::client::Client;
use crate::state::postgres::REJECTIONS;
use crate::state::postgres::{from_column, to_column, Target};
use crate::state::StateError;
use std::collections::HashSet;

/// A document, as `rejections.documents` names it: `(model, key)`.
pub type Document = (String, String);

/// Which rows a command applies to; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub unit: Option<String>,
    /// Rows whose documents include one of this model.
    pub model: Option<String>,
    /// Rows whose documents include one with this key (of `model`, when given).
    pub key: Option<String>,
    pub code: Option<i32>,
    pub position: Option<u64>,
}

impl Filter {
    /// Whether it lets every row through.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// A row of `rejections`, its text as it was before it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub unit: String,
    pub position: u64,
    pub id: Option<String>,
    pub code: i32,
    pub error: String,
    pub text: String,
    /// When it was recorded, in UTC: `2026-01-02T03:04:05.000006Z`.
    pub at: String,
    pub status: String,
    pub documents: Vec<Document>,
    pub behind: Option<u64>,
}

/// A unit's events, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPositions {
    pub unit: String,
    pub positions: Vec<u64>,
}

/// What a retry asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retry {
    /// Marked `retry`, per unit in name order.
    pub marked: Vec<UnitPositions>,
    /// Matched but left parked: they wait behind an earlier parked event of
    /// their documents that is not retried.
    pub waiting: Vec<UnitPositions>,
}

/// What a drop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Marked `dropped`, per unit in name order.
    pub dropped: Vec<UnitPositions>,
    /// Parked events that waited behind one of them, and still do.
    pub still_parked: u64,
}

/// One parked event of a unit, as a retry weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub position: u64,
    pub documents: Vec<Document>,
    /// Whether the command's filter chose it.
    pub matched: bool,
}

/// Which of a unit's parked events (in position order) a retry marks, and
/// which it matched but must leave. An event is marked when it was matched
/// or shares a document with one marked before it, unless it shares a
/// document with an earlier event that stays parked: that one still holds
/// it, and applying it first would break its documents' order.
pub fn sequence(parked: &[Parked]) -> (Vec<u64>, Vec<u64>) {
    let mut taken: HashSet<&Document> = HashSet::new();
    let mut held: HashSet<&Document> = HashSet::new();
    let (mut marked, mut waiting) = (Vec::new(), Vec::new());
    for event in parked {
        let shares = |set: &HashSet<&Document>| event.documents.iter().any(|d| set.contains(d));
        if !shares(&held) && (event.matched || shares(&taken)) {
            marked.push(event.position);
            taken.extend(&event.documents);
            continue;
        }
        if event.matched {
            waiting.push(event.position);
        }
        held.extend(&event.documents);
    }
    (marked, waiting)
}

/// The filter's condition on a row of `rejections`, over the parameters
/// `$1` .. `$5` that [`Filter::params`] gives.
const MATCHES: &str = "($1::text IS NULL OR unit = $1)
     AND ($2::text IS NULL AND $3::text IS NULL OR EXISTS (
         SELECT 1 FROM jsonb_array_elements(documents) AS d
         WHERE ($2::text IS NULL OR d->>0 = $2) AND ($3::text IS NULL OR d->>1 = $3)))
     AND ($4::int IS NULL OR code = $4)
     AND ($5::bigint IS NULL OR position = $5)";

/// The filter's values, as the table holds text.
struct Params {
    unit: Option<String>,
    model: Option<String>,
    key: Option<String>,
    code: Option<i32>,
    position: Option<i64>,
}

impl Filter {
    fn params(&self) -> Params {
        let column = |s: &Option<String>| s.as_deref().map(|s| to_column(s).into_owned());
        Params {
            unit: self.unit.clone(),
            model: column(&self.model),
            key: column(&self.key),
            code: self.code,
            position: self.position.map(|p| p.min(i64::MAX as u64) as i64),
        }
    }
}

impl Params {
    fn sql(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 5] {
        [
            &self.unit,
            &self.model,
            &self.key,
            &self.code,
            &self.position,
        ]
    }
}

/// Connects to `target`, which must be a cluster's main schema.
pub fn connect(target: &Target) -> Result<Client, StateError> {
    let mut client = target.connect()?;
    let row = client
        .query_one(
            "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL,
                    to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&target.schema, &REJECTIONS],
        )
        .map_err(|e| target.failed("reading the rejections", e))?;
    let (state, rejections): (bool, bool) = (row.get(0), row.get(1));
    let s = &target.schema;
    let reason = match (state, rejections) {
        (true, _) => format!(
            "schema \"{s}\" holds the state of one projector; the table {REJECTIONS} is in a cluster's main schema, where `projector run --source …` keeps it: name that with --schema"
        ),
        (false, false) => format!(
            "schema \"{s}\" has no table {REJECTIONS}: no `projector run --source …` has run with it; name a cluster's main schema with --schema"
        ),
        (false, true) => return Ok(client),
    };
    Err(StateError::NotAState {
        path: target.path(),
        reason,
    })
}

/// The rows that match `filter` and have one of `statuses`, in (position,
/// unit) order.
pub fn list(
    client: &mut Client,
    target: &Target,
    filter: &Filter,
    statuses: &[&str],
) -> Result<Vec<Row>, StateError> {
    let s = target.schema_ident();
    let params = filter.params();
    let mut values = params.sql().to_vec();
    values.push(&statuses);
    let rows = client
        .query(
            &format!(
                "SELECT unit, position, id, code, error, text,
                        to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                        status, documents::text, behind
                 FROM {s}.{REJECTIONS}
                 WHERE {MATCHES} AND status = ANY($6::text[])
                 ORDER BY position, unit"
            ),
            &values,
        )
        .map_err(|e| target.failed("reading the rejections", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let text = |i: usize| from_column(r.get::<_, &str>(i)).into_owned();
            Row {
                unit: r.get(0),
                position: r.get::<_, i64>(1) as u64,
                id: r
                    .get::<_, Option<&str>>(2)
                    .map(|id| from_column(id).into_owned()),
                code: r.get(3),
                error: text(4),
                text: text(5),
                at: r.get(6),
                status: r.get(7),
                documents: documents(r.get(8)),
                behind: r.get::<_, Option<i64>>(9).map(|b| b as u64),
            }
        })
        .collect())
}

/// Marks the parked rows that match `filter` `retry`, with the rest of
/// their sequences (see [`sequence`]), in one transaction.
pub fn retry(client: &mut Client, target: &Target, filter: &Filter) -> Result<Retry, StateError> {
    let failed = |e| target.failed("marking rejections to retry", e);
    let s = target.schema_ident();
    let params = filter.params();
    let mut tx = client.transaction().map_err(failed)?;
    lock(&mut tx, &s).map_err(failed)?;
    let rows = tx
        .query(
            &format!(
                "SELECT unit, position, documents::text, {MATCHES}
                 FROM {s}.{REJECTIONS}
                 WHERE status = 'parked' AND unit IN (
                     SELECT unit FROM {s}.{REJECTIONS} WHERE status = 'parked' AND {MATCHES})
                 ORDER BY unit, position"
            ),
            &params.sql(),
        )
        .map_err(failed)?;
    let mut units: Vec<(String, Vec<Parked>)> = Vec::new();
    for row in &rows {
        let unit: &str = row.get(0);
        let event = Parked {
            position: row.get::<_, i64>(1) as u64,
            documents: documents(row.get(2)),
            matched: row.get(3),
        };
        match units.last_mut() {
            Some((name, events)) if name == unit => events.push(event),
            _ => units.push((unit.to_owned(), vec![event])),
        }
    }
    let mut report = Retry::default();
    let (mut names, mut positions): (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    for (unit, events) in &units {
        let (marked, waiting) = sequence(events);
        for p in &marked {
            names.push(unit);
            positions.push(*p as i64);
        }
        let name = unit.clone();
        if !marked.is_empty() {
            report.marked.push(UnitPositions {
                unit: name.clone(),
                positions: marked,
            });
        }
        if !waiting.is_empty() {
            report.waiting.push(UnitPositions {
                unit: name,
                positions: waiting,
            });
        }
    }
    tx.execute(
        &format!(
            "UPDATE {s}.{REJECTIONS} AS r SET status = 'retry'
             FROM unnest($1::text[], $2::bigint[]) AS c(unit, position)
             WHERE r.unit = c.unit AND r.position = c.position"
        ),
        &[&names, &positions],
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(report)
}

/// Marks the rows that match `filter` and are parked, to retry or
/// recorded `dropped`, in one transaction.
pub fn drop(client: &mut Client, target: &Target, filter: &Filter) -> Result<Dropped, StateError> {
    let failed = |e| target.failed("dropping rejections", e);
    let s = target.schema_ident();
    let params = filter.params();
    let mut tx = client.transaction().map_err(failed)?;
    lock(&mut tx, &s).map_err(failed)?;
    let rows = tx
        .query(
            &format!(
                "WITH dropped AS (
                     UPDATE {s}.{REJECTIONS} SET status = 'dropped'
                     WHERE status IN ('parked', 'retry', 'recorded') AND {MATCHES}
                     RETURNING unit, position)
                 SELECT unit, array_agg(position ORDER BY position) FROM dropped
                 GROUP BY unit ORDER BY unit"
            ),
            &params.sql(),
        )
        .map_err(failed)?;
    let (mut names, mut positions): (Vec<String>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut report = Dropped::default();
    for row in &rows {
        let unit: String = row.get(0);
        let dropped: Vec<i64> = row.get(1);
        for p in &dropped {
            names.push(unit.clone());
            positions.push(*p);
        }
        report.dropped.push(UnitPositions {
            unit: unit.clone(),
            positions: dropped.iter().map(|p| *p as u64).collect(),
        });
    }
    let still: i64 = tx
        .query_one(
            &format!(
                "SELECT count(*) FROM {s}.{REJECTIONS} AS r
                 WHERE status = 'parked' AND EXISTS (
                     SELECT 1 FROM unnest($1::text[], $2::bigint[]) AS d(unit, position)
                     WHERE r.unit = d.unit AND r.behind = d.position)"
            ),
            &[&names, &positions],
        )
        .map_err(failed)?
        .get(0);
    report.still_parked = still as u64;
    tx.commit().map_err(failed)?;
    Ok(report)
}

/// Keeps the units from writing `rejections` until the transaction ends,
/// once the writes they have begun are committed.
fn lock(tx: &mut pg::Transaction<'_>, s: &str) -> Result<(), pg::Error> {
    tx.batch_execute(&format!(
        "LOCK TABLE {s}.{REJECTIONS} IN SHARE ROW EXCLUSIVE MODE"
    ))
}

/// `documents` as the table holds it: a JSON array of `[model, key]`
/// (anything else in it is passed over).
fn documents(json: &str) -> Vec<Document> {
    let pairs: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    pairs
        .iter()
        .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([model, key]) => Some((
                from_column(model.as_str()?).into_owned(),
                from_column(key.as_str()?).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parked events from `position documents matched`, documents as
    /// `model/key` separated by commas, `*` for matched.
    fn decide(events: &[&str]) -> (Vec<u64>, Vec<u64>) {
        let parked: Vec<Parked> = events
            .iter()
            .map(|e| {
                let mut words = e.split(' ');
                let position = words.next().unwrap().parse().unwrap();
                let documents = words
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|d| {
                        let (m, k) = d.split_once('/').unwrap();
                        (m.to_owned(), k.to_owned())
                    })
                    .collect();
                let matched = words.next() == Some("*");
                Parked {
                    position,
                    documents,
                    matched,
                }
            })
            .collect();
        sequence(&parked)
    }

    #[test]
    fn a_retry_takes_the_rest_of_the_sequence_and_nothing_held_by_another() {
        assert_eq!(decide(&["1 a/1 *", "2 a/1", "3 b/1"]), (vec![1, 2], vec![]));
        // Transitively: 3 shares b/1 with 2, which shares a/1 with 1.
        assert_eq!(
            decide(&["1 a/1 *", "2 a/1,b/1", "3 b/1", "4 c/1"]),
            (vec![1, 2, 3], vec![])
        );
        // Earlier events are not taken, even sharing a document.
        assert_eq!(
            decide(&["1 b/1", "2 a/1,c/1 *", "3 a/1"]),
            (vec![2, 3], vec![])
        );
        // 2 waits behind 1, which stays parked; so does 3, behind 2.
        assert_eq!(
            decide(&["1 b/1", "2 b/1 *", "3 b/1 *"]),
            (vec![], vec![2, 3])
        );
        // 3 shares a/1 with 1 but waits behind 2, which is not retried.
        assert_eq!(
            decide(&["1 a/1 *", "2 b/1", "3 a/1,b/1", "4 a/1"]),
            (vec![1], vec![])
        );
        assert_eq!(decide(&["1 a/1", "2 b/1"]), (vec![], vec![]));
    }

    #[test]
    fn documents_are_read_back_as_written() {
        assert_eq!(
            documents(r#"[["orders", "o1"], ["stats", "\u0001\u0001"], "odd", [1, 2]]"#),
            vec![
                ("orders".to_owned(), "o1".to_owned()),
                ("stats".to_owned(), "\0".to_owned())
            ]
        );
        assert!(Filter::default().is_empty());
        assert!(!Filter {
            code: Some(12),
            ..Filter::default()
        }
        .is_empty());
    }
}
