//! The read models' views, `"<main schema>"."<model>"`: each the union of
//! the model's documents over the units of the serving version.
//!
//! A view is made or replaced only when what it shows changes: once the
//! first version's units all exist, and at a switch to a version built
//! beside it. Replacing a view waits for every reader of it, and every
//! later reader waits behind the replacement; so it is done on a thread of
//! its own, never on the coordinator's or a claim's path, with a short
//! `lock_timeout`, and tried again a little later while a reader holds the
//! view (a long transaction delays the change, never the readers).

use super::registry::{Listed, Version};
use crate::state::postgres::client as pg;
use crate::state::postgres::client::Client;
use crate::state::postgres::client::SqlState;
use crate::state::postgres::{describe, ident, Target};
use crate::util::retry::Backoff;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long one attempt waits for the views' readers before giving way.
const LOCK_TIMEOUT: &str = "50ms";

/// How long a job keeps trying before the coordinator's next turn starts it
/// again.
const PERSIST: Duration = Duration::from_secs(5);

/// A change of the views.
#[derive(Debug, Clone)]
pub enum Job {
    /// Show the serving version `0`'s units, whose views are not made yet.
    Show(Version),
    /// Make `to` (being built) the serving version in place of `from`, and
    /// the views its units', dropping the views of `dropped` models.
    Switch {
        from: i32,
        to: Version,
        dropped: Vec<String>,
    },
}

/// What became of a job.
#[derive(Debug)]
pub enum Outcome {
    /// Done: the views show the version.
    Done,
    /// Nothing to do: another instance did it, or a unit's state does not
    /// exist yet.
    NotNow,
    /// Readers held the views throughout: tried again at a later turn.
    Held,
    /// Why it failed.
    Failed(String),
}

/// At most one job at a time, on a thread of its own.
#[derive(Default)]
pub struct Views {
    running: Option<(Job, JoinHandle<Outcome>)>,
}

impl Views {
    /// Whether a job is under way.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Starts `job` on a thread of its own, unless one is under way.
    pub fn start(&mut self, target: &Target, job: Job) {
        if self.running.is_some() {
            return;
        }
        let (target, doing) = (target.clone(), job.clone());
        let thread = std::thread::Builder::new()
            .name("views".to_owned())
            .spawn(move || apply(&target, &doing));
        match thread {
            Ok(thread) => self.running = Some((job, thread)),
            Err(e) => crate::util::log::log(&format!("cannot start a thread: {e}")),
        }
    }

    /// The job that ended since the last call, with its outcome.
    pub fn ended(&mut self) -> Option<(Job, Outcome)> {
        if !self.running.as_ref()?.1.is_finished() {
            return None;
        }
        let (job, thread) = self.running.take()?;
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Outcome::Failed("its thread panicked".to_owned()));
        Some((job, outcome))
    }
}

/// Tries `job` until it is done or [`PERSIST`] has passed.
pub fn apply(target: &Target, job: &Job) -> Outcome {
    let failed = |e: pg::Error| Outcome::Failed(describe(&e));
    let mut client = match target.settings() {
        Ok(settings) => match settings.connect() {
            Ok(client) => client,
            Err(e) => return failed(e),
        },
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Err(e) = client.batch_execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'")) {
        return failed(e);
    }
    let mut backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).within(PERSIST);
    loop {
        let done = match job {
            Job::Show(version) => show(&mut client, target, version),
            Job::Switch { from, to, dropped } => switch(&mut client, target, *from, to, dropped),
        };
        match done {
            Ok(true) => return Outcome::Done,
            Ok(false) => return Outcome::NotNow,
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                if !backoff.sleep() {
                    return Outcome::Held;
                }
            }
            Err(e) => return failed(e),
        }
    }
}

/// Makes the views of the serving version `version` when every unit's
/// state exists and they are not made yet; false when not now.
fn show(client: &mut Client, target: &Target, version: &Version) -> Result<bool, pg::Error> {
    let s = target.schema_ident();
    let mut tx = locked(client, &target.schema)?;
    let row = tx.query_one(
        &format!("SELECT status, views FROM {s}._projector_versions WHERE version = $1"),
        &[&version.number],
    )?;
    let (status, made): (String, bool) = (row.get(0), row.get(1));
    if status != "serving" || made || !all_exist(&mut tx, &version.units)? {
        return Ok(false);
    }
    make(&mut tx, &s, &version.units)?;
    tx.execute(
        &format!("UPDATE {s}._projector_versions SET views = true WHERE version = $1"),
        &[&version.number],
    )?;
    tx.commit()?;
    Ok(true)
}

/// The switch from `from` to `to`, in one transaction: false when another
/// instance did it first.
fn switch(
    client: &mut Client,
    target: &Target,
    from: i32,
    to: &Version,
    dropped: &[String],
) -> Result<bool, pg::Error> {
    let s = target.schema_ident();
    let mut tx = locked(client, &target.schema)?;
    let row = tx.query_one(
        &format!(
            "SELECT (SELECT status FROM {s}._projector_versions WHERE version = $1),
                    (SELECT status FROM {s}._projector_versions WHERE version = $2)"
        ),
        &[&from, &to.number],
    )?;
    let (old, new): (Option<String>, Option<String>) = (row.get(0), row.get(1));
    if old.as_deref() != Some("serving") || new.as_deref() != Some("building") {
        return Ok(false);
    }
    if !all_exist(&mut tx, &to.units)? {
        return Ok(false);
    }
    tx.execute(
        &format!(
            "UPDATE {s}._projector_versions SET status = 'retired', retired = now()
             WHERE version = $1"
        ),
        &[&from],
    )?;
    tx.execute(
        &format!(
            "UPDATE {s}._projector_versions SET status = 'serving', switched = now(), views = true
             WHERE version = $1"
        ),
        &[&to.number],
    )?;
    for model in dropped {
        tx.batch_execute(&format!("DROP VIEW IF EXISTS {s}.{}", ident(model)))?;
    }
    make(&mut tx, &s, &to.units)?;
    tx.commit()?;
    Ok(true)
}

/// A transaction that alone, among the instances on the main schema
/// `schema`, changes its views.
fn locked<'c>(client: &'c mut Client, schema: &str) -> Result<pg::Transaction<'c>, pg::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('projector views ' || $1::text))",
        &[&schema],
    )?;
    Ok(tx)
}

/// Whether every model of every one of `units` has its documents' table
/// (its view in the unit's schema).
fn all_exist(tx: &mut pg::Transaction<'_>, units: &[Listed]) -> Result<bool, pg::Error> {
    let (schemas, models): (Vec<&str>, Vec<&str>) = units
        .iter()
        .flat_map(|u| u.models.iter().map(|m| (u.schema.as_str(), m.as_str())))
        .unzip();
    let missing: i64 = tx
        .query_one(
            "SELECT count(*) FROM unnest($1::text[], $2::text[]) AS u(s, m)
             WHERE to_regclass(format('%I.%I', s, m)) IS NULL",
            &[&schemas, &models],
        )?
        .get(0);
    Ok(missing == 0)
}

/// Each model's view, the union of its documents over `units`, made in `tx`.
fn make(tx: &mut pg::Transaction<'_>, s: &str, units: &[Listed]) -> Result<(), pg::Error> {
    let mut models: Vec<(&str, Vec<&str>)> = Vec::new();
    for unit in units {
        for model in &unit.models {
            match models.iter_mut().find(|(m, _)| m == model) {
                Some((_, schemas)) => schemas.push(&unit.schema),
                None => models.push((model, vec![&unit.schema])),
            }
        }
    }
    for (model, schemas) in models {
        let union: Vec<String> = schemas
            .iter()
            .map(|u| format!("SELECT key, doc FROM {}.{}", ident(u), ident(model)))
            .collect();
        tx.batch_execute(&format!(
            "CREATE OR REPLACE VIEW {s}.{} AS {}",
            ident(model),
            union.join(" UNION ALL ")
        ))?;
    }
    Ok(())
}
