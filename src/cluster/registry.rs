//! The cluster's own tables, in the main schema (`--schema`): which units
//! there are and where each keeps its state, which instances are alive,
//! the events refused, and the read models' views over the units.
//!
//! - `_projector_layout`: how many parts a splittable group has; fixed by
//!   the first instance, since every document's unit depends on it.
//! - `_projector_versions`: each configuration the cluster has run, by
//!   number, with its text and status: `serving` (the views read its
//!   units), `building` (a changed configuration whose units are built
//!   from the stream's start beside the serving ones, until they catch up
//!   and it is switched to), or `retired` (since `retired`).
//! - `_projector_units`: each version's units: name, schema and models.
//! - `_projector_instances`: each instance and when it last said it was
//!   alive; an instance not heard from for a lease is not counted.
//! - `rejections`: messages a unit did not project (see [`crate::cluster`]):
//!   `unit`, `position` (the stream sequence), `id`, `code`, `error`, `text`
//!   (the message: whole when parked, else its first bytes), `at`, `status`
//!   (`recorded`: passed by; `parked`: held, with every later event of its
//!   `documents`, a JSON array of `[model, key]`; `retry`: asked to be
//!   applied again; `retried`; `dropped`), `behind` (the position of the
//!   parked event a held one waits behind; null when refused itself).
//! - `"<model>"`: a view, the union of the model's documents over its units.
//!
//! Each unit's state is a PostgreSQL state of its own (see
//! [`crate::state::postgres`]) in its own schema, claimed by the instance
//! that applies its events with a lease and a fencing token.

use crate::state::postgres::{ident, is_connection_error, Target};
use crate::state::StateError;
use postgres::Client;
use std::collections::HashMap;

/// A unit as the main schema lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub schema: String,
    pub models: Vec<String>,
}

/// Where a unit's state stands.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitState {
    /// The holder of a live claim, and its seconds left.
    pub owner: Option<(String, f64)>,
    pub checkpoint: Option<u64>,
}

/// The name of the table events refused are recorded in.
pub const REJECTIONS: &str = "rejections";

pub struct Registry {
    target: Target,
    client: Option<Client>,
    holder: String,
}

impl Registry {
    /// Makes the main schema's tables if they are missing and fixes the
    /// number of parts (the stored one wins; a different `requested` one is
    /// refused). Then offers `config`, whose units `layout` lists for a
    /// number of parts: it is the serving version when there is none, or
    /// when its units are the serving version's (its text replaces the
    /// stored one); otherwise it is built beside it (a version being built
    /// for another configuration is retired). Returns the number of parts.
    pub fn open(
        target: &Target,
        requested: Option<u32>,
        default_parts: u32,
        config: &str,
        layout: impl Fn(u32) -> Vec<Listed>,
    ) -> Result<(Registry, u32), StateError> {
        let mut client = target.connect()?;
        let failed = |e| target.failed("preparing the cluster's tables", e);
        let s = target.schema_ident();
        let mut tx = client.transaction().map_err(failed)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('projector schema ' || $1::text))",
            &[&target.schema],
        )
        .map_err(failed)?;
        let single: bool = tx
            .query_one(
                "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL",
                &[&target.schema],
            )
            .map_err(failed)?
            .get(0);
        if single {
            return Err(StateError::NotAState {
                path: target.path(),
                reason: format!(
                    "schema \"{}\" holds the state of a projector that reads stdin; a --source run keeps its units elsewhere: choose another --schema",
                    target.schema
                ),
            });
        }
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}._projector_layout (
                 id int PRIMARY KEY CHECK (id = 1), parts int NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}._projector_versions (
                 version int PRIMARY KEY, config text NOT NULL, status text NOT NULL,
                 created timestamptz NOT NULL DEFAULT now(), switched timestamptz);
             ALTER TABLE {s}._projector_versions ADD COLUMN IF NOT EXISTS retired timestamptz;
             CREATE TABLE IF NOT EXISTS {s}._projector_units (
                 version int NOT NULL, position int NOT NULL, name text NOT NULL,
                 schema text NOT NULL, models text[] NOT NULL,
                 PRIMARY KEY (version, position));
             CREATE TABLE IF NOT EXISTS {s}._projector_instances (
                 holder text PRIMARY KEY, seen timestamptz NOT NULL, units int NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.{REJECTIONS} (
                 unit text NOT NULL, position bigint NOT NULL, id text, code int NOT NULL,
                 error text NOT NULL, text text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (unit, position));
             ALTER TABLE {s}.{REJECTIONS}
                 ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'recorded',
                 ADD COLUMN IF NOT EXISTS documents jsonb NOT NULL DEFAULT '[]',
                 ADD COLUMN IF NOT EXISTS behind bigint;
             CREATE INDEX IF NOT EXISTS {REJECTIONS}_open ON {s}.{REJECTIONS} (unit, position)
                 WHERE status IN ('parked', 'retry');"
        ))
        .map_err(failed)?;
        let parts = requested.unwrap_or(default_parts) as i32;
        tx.execute(
            &format!("INSERT INTO {s}._projector_layout VALUES (1, $1) ON CONFLICT DO NOTHING"),
            &[&parts],
        )
        .map_err(failed)?;
        let stored: i32 = tx
            .query_one(&format!("SELECT parts FROM {s}._projector_layout"), &[])
            .map_err(failed)?
            .get(0);
        if requested.is_some_and(|r| r as i32 != stored) {
            return Err(StateError::Unsupported {
                path: target.path(),
                reason: format!(
                    "its read models are split in {stored} parts per group, and --units asks for {parts}: every document's unit depends on it. Leave --units out, or build the split anew in another --schema"
                ),
            });
        }
        let units = layout(stored as u32);
        let schemas: Vec<&str> = units.iter().map(|u| u.schema.as_str()).collect();
        let active = tx
            .query(
                &format!(
                    "SELECT v.version, v.status,
                            array(SELECT schema FROM {s}._projector_units u
                                  WHERE u.version = v.version ORDER BY position)
                     FROM {s}._projector_versions v
                     WHERE status IN ('serving', 'building') ORDER BY version"
                ),
                &[],
            )
            .map_err(failed)?;
        let same = |row: &postgres::Row| row.get::<_, Vec<String>>(2) == schemas;
        let serving = active.iter().find(|r| r.get::<_, &str>(1) == "serving");
        let building = active.iter().find(|r| r.get::<_, &str>(1) == "building");
        let next: i32 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) + 1 FROM {s}._projector_versions"),
                &[],
            )
            .map_err(failed)?
            .get(0);
        let update = format!("UPDATE {s}._projector_versions SET config = $2 WHERE version = $1");
        match (serving, building) {
            (Some(row), _) if same(row) => {
                tx.execute(&update, &[&row.get::<_, i32>(0), &config])
                    .map_err(failed)?;
            }
            (_, Some(row)) if same(row) => {
                tx.execute(&update, &[&row.get::<_, i32>(0), &config])
                    .map_err(failed)?;
            }
            (serving, _) => {
                tx.execute(
                    &format!(
                        "UPDATE {s}._projector_versions SET status = 'retired', retired = now()
                         WHERE status = 'building'"
                    ),
                    &[],
                )
                .map_err(failed)?;
                let status = if serving.is_some() {
                    "building"
                } else {
                    "serving"
                };
                tx.execute(
                    &format!(
                        "INSERT INTO {s}._projector_versions (version, config, status)
                         VALUES ($1, $2, $3)"
                    ),
                    &[&next, &config, &status],
                )
                .map_err(failed)?;
                for (i, unit) in units.iter().enumerate() {
                    tx.execute(
                        &format!("INSERT INTO {s}._projector_units VALUES ($1, $2, $3, $4, $5)"),
                        &[&next, &(i as i32), &unit.name, &unit.schema, &unit.models],
                    )
                    .map_err(failed)?;
                }
            }
        }
        tx.commit().map_err(failed)?;
        let registry = Registry {
            target: target.clone(),
            client: Some(client),
            holder: crate::state::postgres::holder(),
        };
        Ok((registry, stored as u32))
    }

    /// The versions being served and built, with their units.
    pub fn versions(&mut self) -> Result<Vec<Version>, postgres::Error> {
        let target = self.target.clone();
        self.with(|c| active(c, &target))
    }

    /// Makes `to` (being built) the serving version in place of `from`, and
    /// the read models' views its units', in one transaction; false when
    /// another instance did it first.
    pub fn switch(
        &mut self,
        from: i32,
        to: &Version,
        dropped: &[String],
    ) -> Result<bool, postgres::Error> {
        let s = self.target.schema_ident();
        let schema = self.target.schema.clone();
        self.with(|c| {
            let mut tx = views_locked(c, &schema)?;
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
            tx.execute(
                &format!(
                    "UPDATE {s}._projector_versions SET status = 'retired', retired = now()
                     WHERE version = $1"
                ),
                &[&from],
            )?;
            tx.execute(
                &format!(
                    "UPDATE {s}._projector_versions SET status = 'serving', switched = now()
                     WHERE version = $1"
                ),
                &[&to.number],
            )?;
            for model in dropped {
                tx.batch_execute(&format!("DROP VIEW IF EXISTS {s}.{}", ident(model)))?;
            }
            make_views(&mut tx, &s, &to.units)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.target.url, postgres::NoTls)?);
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    /// Runs `f` on the connection, made again once if it was lost.
    fn with<T>(
        &mut self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        match f(self.client()?) {
            Err(e)
                if is_connection_error(&e)
                    || self.client.as_ref().is_some_and(Client::is_closed) =>
            {
                self.client = None;
                f(self.client()?)
            }
            other => other,
        }
    }

    /// Says this instance is alive and owns `owned` units; returns the
    /// instances alive, this one among them, in a fixed order.
    pub fn beat(&mut self, owned: usize) -> Result<Vec<String>, postgres::Error> {
        let s = self.target.schema_ident();
        let lease = self.target.lease.as_secs_f64();
        let holder = self.holder.clone();
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO {s}._projector_instances VALUES ($1, clock_timestamp(), $2)
                     ON CONFLICT (holder) DO UPDATE SET seen = clock_timestamp(), units = $2"
                ),
                &[&holder, &(owned as i32)],
            )?;
            c.execute(
                &format!(
                    "DELETE FROM {s}._projector_instances
                     WHERE seen < clock_timestamp() - make_interval(secs => $1::float8 * 100)"
                ),
                &[&lease],
            )?;
            let rows = c.query(
                &format!(
                    "SELECT holder FROM {s}._projector_instances
                     WHERE seen > clock_timestamp() - make_interval(secs => $1::float8)
                     ORDER BY holder"
                ),
                &[&lease],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Where each of `units` stands.
    pub fn states(&mut self, units: &[Listed]) -> Result<Vec<UnitState>, postgres::Error> {
        self.with(|c| unit_states(c, units))
    }

    /// How many events each unit has parked (or asked to be retried), by
    /// the unit's name; units with none are left out.
    pub fn parked(&mut self) -> Result<HashMap<String, u64>, postgres::Error> {
        let sql = format!(
            "SELECT unit, count(*) FROM {}.{REJECTIONS}
             WHERE status IN ('parked', 'retry') GROUP BY unit",
            self.target.schema_ident()
        );
        self.with(|c| {
            let rows = c.query(&sql, &[])?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
                .collect())
        })
    }

    /// Makes each model's view the union of its documents over `units`
    /// (the serving version's) whose state exists.
    pub fn refresh_views(&mut self, units: &[Listed]) -> Result<(), postgres::Error> {
        let s = self.target.schema_ident();
        let schema = self.target.schema.clone();
        self.with(|c| {
            let mut tx = views_locked(c, &schema)?;
            make_views(&mut tx, &s, units)?;
            tx.commit()
        })
    }

    /// Says this instance has left.
    pub fn leave(&mut self) {
        let s = self.target.schema_ident();
        let holder = self.holder.clone();
        let _ = self.with(|c| {
            c.execute(
                &format!("DELETE FROM {s}._projector_instances WHERE holder = $1"),
                &[&holder],
            )
        });
    }
}

/// A configuration the cluster serves or builds.
#[derive(Debug, Clone)]
pub struct Version {
    pub number: i32,
    pub config: String,
    /// Being built beside the serving version.
    pub building: bool,
    pub units: Vec<Listed>,
}

/// The versions served and built, serving first; empty when the main
/// schema has none.
pub fn active(client: &mut Client, target: &Target) -> Result<Vec<Version>, postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I._projector_versions', $1::text)) IS NOT NULL",
            &[&target.schema],
        )?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let s = target.schema_ident();
    let rows = client.query(
        &format!(
            "SELECT version, config, status = 'building' FROM {s}._projector_versions
             WHERE status IN ('serving', 'building') ORDER BY status = 'building', version"
        ),
        &[],
    )?;
    let mut versions = Vec::new();
    for row in rows {
        let number: i32 = row.get(0);
        let units = client
            .query(
                &format!(
                    "SELECT name, schema, models FROM {s}._projector_units
                     WHERE version = $1 ORDER BY position"
                ),
                &[&number],
            )?
            .iter()
            .map(|r| Listed {
                name: r.get(0),
                schema: r.get(1),
                models: r.get(2),
            })
            .collect();
        versions.push(Version {
            number,
            config: row.get(1),
            building: row.get(2),
            units,
        });
    }
    Ok(versions)
}

/// A transaction that alone, among the instances on the main schema
/// `schema`, changes its views.
fn views_locked<'c>(
    client: &'c mut Client,
    schema: &str,
) -> Result<postgres::Transaction<'c>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('projector views ' || $1::text))",
        &[&schema],
    )?;
    Ok(tx)
}

/// Each model's view, the union of its documents over `units` whose state
/// exists, made in `tx`.
fn make_views(
    tx: &mut postgres::Transaction<'_>,
    s: &str,
    units: &[Listed],
) -> Result<(), postgres::Error> {
    let mut models: Vec<(&str, Vec<&str>)> = Vec::new();
    for unit in units {
        for model in &unit.models {
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                    &[&unit.schema, model],
                )?
                .get(0);
            if !exists {
                continue;
            }
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

/// Where each unit stands: its claim and checkpoint, read from its state
/// (nothing for a unit whose state does not exist yet).
pub fn unit_states(
    client: &mut Client,
    units: &[Listed],
) -> Result<Vec<UnitState>, postgres::Error> {
    let schemas: Vec<&str> = units.iter().map(|u| u.schema.as_str()).collect();
    let rows = client.query(
        "SELECT n FROM unnest($1::text[]) AS n
         WHERE to_regclass(format('%I._projector_lease', n)) IS NOT NULL
           AND to_regclass(format('%I._projector_meta', n)) IS NOT NULL",
        &[&schemas],
    )?;
    let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut states = vec![
        UnitState {
            owner: None,
            checkpoint: None,
        };
        units.len()
    ];
    if existing.is_empty() {
        return Ok(states);
    }
    let selects: Vec<String> = units
        .iter()
        .enumerate()
        .filter(|(_, u)| existing.contains(&u.schema))
        .map(|(i, u)| {
            let s = ident(&u.schema);
            format!(
                "SELECT {i}, holder, expires > clock_timestamp(),
                        EXTRACT(EPOCH FROM expires - clock_timestamp())::float8,
                        (SELECT value FROM {s}._projector_meta WHERE name = 'checkpoint')
                 FROM {s}._projector_lease WHERE id = 1"
            )
        })
        .collect();
    for row in client.query(&selects.join(" UNION ALL "), &[])? {
        let i: i32 = row.get(0);
        let (holder, live, left): (Option<String>, bool, f64) =
            (row.get(1), row.get(2), row.get(3));
        let checkpoint: Option<String> = row.get(4);
        states[i as usize] = UnitState {
            owner: holder.filter(|_| live).map(|h| (h, left.max(0.0))),
            checkpoint: checkpoint.and_then(|c| c.parse().ok()),
        };
    }
    Ok(states)
}
