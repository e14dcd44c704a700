//! Retired schemas dropped. A version retired by a switch leaves its
//! units' schemas behind; those that no version served or built still has
//! (units are shared between versions by schema) are dropped with
//! `DROP SCHEMA … CASCADE`, one transaction each. Each drop waits at most
//! [`LOCK_TIMEOUT`] for its locks and is tried again later: a reader's long
//! transaction on an old table never has the drop, nor the readers that
//! come after the drop, wait on it any longer than that. A schema still
//! claimed by an instance, or read by a view outside it (an
//! application's), is left in place and named.
//!
//! Every instance runs a [`Collector`]: once a minute (every
//! `PROJECTOR_GC_SECONDS` when that is shorter, but no more often than a
//! lease), the one instance that takes the main schema's advisory lock
//! drops the schemas retired longer than `PROJECTOR_GC_SECONDS` (default
//! an hour). `projector gc` does the same at once.

use super::registry::Listed;
use crate::state::postgres::client as pg;
use crate::state::postgres::client::Client;
use crate::state::postgres::{ident, Target};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a drop waits for its locks before it gives up, for now.
pub const LOCK_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a version is retired before the instances drop its schemas,
/// unless `PROJECTOR_GC_SECONDS` says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// How often, at most, the instances look for schemas to drop.
const EVERY: Duration = Duration::from_secs(60);

/// A schema of a retired version's unit that no active version uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Retired {
    /// The unit, as the retired version named it.
    pub unit: Listed,
    /// The last version that had it.
    pub version: i32,
    /// Seconds since that version was retired; `None` when not recorded.
    pub age: Option<f64>,
}

impl Retired {
    /// `S (unit U of version N, retired 5 min ago)`.
    pub fn describe(&self) -> String {
        let when = match self.age {
            Some(seconds) => format!("retired {} ago", ago(seconds)),
            None => "retired before retirements were recorded".to_owned(),
        };
        format!(
            "{} (unit {} of version {}, {when})",
            self.unit.schema, self.unit.name, self.version
        )
    }
}

/// `42 s`, `5 min`, `3 h`, `2 days`.
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// What became of one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Dropped,
    /// Its locks were not granted in time, however often tried: a reader
    /// or a writer holds its tables.
    Busy,
    /// An instance still holds its unit's claim (named).
    Claimed(String),
    /// Views outside the schema read its tables (named).
    Read(Vec<String>),
    /// A version served or built took it up again meanwhile, or it is gone.
    Kept,
}

/// The schemas of retired versions' units that exist and that no version
/// served or built has, retired at least `older` ago (those whose
/// retirement was not recorded count as retired long ago), by name.
pub fn retired(
    client: &mut Client,
    main: &Target,
    older: Duration,
) -> Result<Vec<Retired>, pg::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I._projector_versions', $1::text)) IS NOT NULL",
            &[&main.schema],
        )?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT schema, name, models, version, EXTRACT(EPOCH FROM now() - last)::float8
         FROM (SELECT DISTINCT ON (u.schema) u.schema, u.name, u.models, v.version,
                      max(v.retired) OVER (PARTITION BY u.schema) AS last
               FROM {s}._projector_units u JOIN {s}._projector_versions v USING (version)
               WHERE v.status = 'retired'
                 AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = u.schema)
                 AND u.schema NOT IN ({ACTIVE})
               ORDER BY u.schema, v.version DESC) r
         WHERE last IS NULL OR last <= now() - make_interval(secs => $1::float8)
         ORDER BY schema",
        s = main.schema_ident(),
        ACTIVE = active_schemas(main),
    );
    let rows = client.query(&sql, &[&older.as_secs_f64()])?;
    Ok(rows
        .iter()
        .map(|r| Retired {
            unit: Listed {
                schema: r.get(0),
                name: r.get(1),
                models: r.get(2),
            },
            version: r.get(3),
            age: r.get(4),
        })
        .collect())
}

/// The query of the schemas the versions served or built have.
fn active_schemas(main: &Target) -> String {
    let s = main.schema_ident();
    format!(
        "SELECT a.schema FROM {s}._projector_units a JOIN {s}._projector_versions w
         USING (version) WHERE w.status IN ('serving', 'building')"
    )
}

/// Drops `schema`, tried up to `tries` times, `pause` apart, while its
/// locks are not granted within [`LOCK_TIMEOUT`]. It is dropped only while
/// it is still a retired unit's that no active version has, no instance
/// claims, and no view outside it reads: checked in the drop's own
/// transaction, under the lock that registering a version takes.
pub fn drop_schema(
    client: &mut Client,
    main: &Target,
    schema: &str,
    (tries, pause): (u32, Duration),
) -> Result<Outcome, pg::Error> {
    for attempt in 1..=tries.max(1) {
        match attempt_drop(client, main, schema) {
            Err(e) if is_lock_timeout(&e) => {
                if attempt < tries {
                    std::thread::sleep(pause);
                }
            }
            done => return done,
        }
    }
    Ok(Outcome::Busy)
}

fn is_lock_timeout(e: &pg::Error) -> bool {
    e.code() == Some(&pg::SqlState::LOCK_NOT_AVAILABLE)
}

fn attempt_drop(client: &mut Client, main: &Target, schema: &str) -> Result<Outcome, pg::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        LOCK_TIMEOUT.as_millis()
    ))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('projector schema ' || $1::text))",
        &[&main.schema],
    )?;
    let s = main.schema_ident();
    let still: bool = tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
                    AND EXISTS (SELECT 1 FROM {s}._projector_units u
                                JOIN {s}._projector_versions v USING (version)
                                WHERE u.schema = $1 AND v.status = 'retired')
                    AND $1 NOT IN ({})",
                active_schemas(main)
            ),
            &[&schema],
        )?
        .get(0);
    if !still {
        return Ok(Outcome::Kept);
    }
    if let Some(holder) = claim_holder(&mut tx, schema)? {
        return Ok(Outcome::Claimed(holder));
    }
    let readers = outside_readers(&mut tx, schema)?;
    if !readers.is_empty() {
        return Ok(Outcome::Read(readers));
    }
    tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(schema)))?;
    tx.commit()?;
    Ok(Outcome::Dropped)
}

/// Who holds a live claim on the unit state in `schema`, if anyone.
fn claim_holder(tx: &mut pg::Transaction<'_>, schema: &str) -> Result<Option<String>, pg::Error> {
    let claim = crate::state::postgres::claim_of(tx, schema)?;
    Ok(claim.filter(|c| c.is_live()).map(|c| c.holder))
}

/// The views outside `schema` that read a table of it, as `schema.view`.
fn outside_readers(tx: &mut pg::Transaction<'_>, schema: &str) -> Result<Vec<String>, pg::Error> {
    let rows = tx.query(
        "SELECT DISTINCT vn.nspname || '.' || v.relname
         FROM pg_depend d
         JOIN pg_rewrite r ON r.oid = d.objid
         JOIN pg_class v ON v.oid = r.ev_class
         JOIN pg_namespace vn ON vn.oid = v.relnamespace
         JOIN pg_class t ON t.oid = d.refobjid
         JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
           AND tn.nspname = $1 AND vn.nspname <> $1
         ORDER BY 1",
        &[&schema],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The grace period `PROJECTOR_GC_SECONDS` sets (seconds; a number of
/// them, or [`DEFAULT_GRACE`]).
pub fn grace() -> Duration {
    std::env::var("PROJECTOR_GC_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_GRACE, Duration::from_secs_f64)
}

/// Drops, on a thread of its own, the schemas retired longer than a grace
/// period, while it lives.
pub struct Collector {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Looks every minute (every `grace` when that is shorter, but no more
    /// often than every `main`'s lease).
    pub fn start(main: Target, grace: Duration) -> Collector {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = grace.max(main.lease).min(EVERY);
        let thread = std::thread::Builder::new()
            .name("retired schemas".to_owned())
            .spawn(move || {
                let settings = main.settings().ok();
                let mut client = None;
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    if client.is_none() {
                        // One attempt per turn, so that stopping never
                        // waits for a database out of reach.
                        client = settings.as_ref().and_then(|s| s.connect().ok());
                    }
                    let Some(c) = client.as_mut() else { continue };
                    if collect(c, &main, grace).is_err() {
                        client = None;
                    }
                }
            })
            .expect("the thread starts");
        Collector {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One turn: when this instance takes the main schema's collector lock,
/// drops what was retired at least `grace` ago, once each, and logs it.
fn collect(client: &mut Client, main: &Target, grace: Duration) -> Result<(), pg::Error> {
    let lock = "hashtext('projector gc ' || $1::text)";
    let taken: bool = client
        .query_one(
            &format!("SELECT pg_try_advisory_lock({lock})"),
            &[&main.schema],
        )?
        .get(0);
    if !taken {
        return Ok(());
    }
    let done = retired(client, main, grace).and_then(|found| {
        for retired in found {
            let schema = &retired.unit.schema;
            if drop_schema(client, main, schema, (1, Duration::ZERO))? == Outcome::Dropped {
                crate::util::log::log(&format!(
                    "dropped schema {}: retired longer than PROJECTOR_GC_SECONDS ({} s)",
                    retired.describe(),
                    grace.as_secs_f64()
                ));
            }
        }
        Ok(())
    });
    client.execute(
        &format!("SELECT pg_advisory_unlock({lock})"),
        &[&main.schema],
    )?;
    done
}
