//! The cluster's own tables, in the main schema (`--schema`): which units
//! there are and where each keeps its state, which instances are alive,
//! the events refused, and the read models' views over the units.
//!
//! - `_projector_layout`: how many parts a splittable group has; fixed by
//!   the first instance, since every document's unit depends on it.
//! - `_projector_stream`: the stream the cluster follows: its name, its
//!   creation time in JetStream (a stream deleted and made again under the
//!   same name is another one) and its first sequence when recorded.
//! - `_projector_versions`: each configuration the cluster has run, by
//!   number, with its text and status: `serving` (the live one: the views
//!   read its units once `views`), `building` (deployed with `--deploy`:
//!   its changed units are built from the stream's start beside the
//!   serving ones, until they catch up and it is switched to), or
//!   `retired` (since `retired`).
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

use super::deploy::{offer, Joined, NotDeployed, Offer};
use super::stream::{follow_stream, Stream};
use crate::state::postgres::client as pg;
use crate::state::postgres::client::Client;
use crate::state::postgres::settings::Settings;
use crate::state::postgres::{
    ident, is_connection_error, Target, REJECTIONS, THIS_WRITER, WRITER_LIVES,
};
use crate::state::StateError;
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
    /// Its state exists.
    pub exists: bool,
    /// The holder of a live claim (its writer still connected), and its
    /// seconds left.
    pub owner: Option<(String, f64)>,
    pub checkpoint: Option<u64>,
}

pub struct Registry {
    target: Target,
    settings: Settings,
    client: Option<Client>,
    holder: String,
}

impl Registry {
    /// Makes the main schema's tables if they are missing, fixes the
    /// number of parts (the stored one wins; a different `requested` one is
    /// refused) and the stream followed (another one is refused). Then
    /// offers the instance's configuration, whose units `layout` lists for
    /// a number of parts (see [`offer`]). Returns the number of parts and
    /// what the configuration is to the cluster.
    pub fn open(
        target: &Target,
        requested: Option<u32>,
        default_parts: u32,
        offered: &Offer<'_>,
        layout: impl Fn(u32) -> Vec<Listed>,
    ) -> Result<(Registry, u32, Joined), Refusal> {
        let settings = target.settings()?;
        let mut client = target.connect()?;
        let failed = |e| Refusal::State(target.failed("preparing the cluster's tables", e));
        let mut tx = client.transaction().map_err(failed)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('projector schema ' || $1::text))",
            &[&target.schema],
        )
        .map_err(failed)?;
        prepare_tables(&mut tx, target)?;
        let parts = fix_parts(
            &mut tx,
            target,
            requested.map(|r| r as i32),
            default_parts as i32,
        )?;
        follow_stream(&mut tx, target, offered.stream)?;
        let joined = offer(&mut tx, target, offered, &layout(parts as u32)).map_err(failed)?;
        let joined = joined?;
        tx.commit().map_err(failed)?;
        let registry = Registry {
            target: target.clone(),
            settings,
            client: Some(client),
            holder: crate::state::postgres::holder(),
        };
        Ok((registry, parts as u32, joined))
    }

    /// The versions being served and built, with their units.
    pub fn versions(&mut self) -> Result<Vec<Version>, pg::Error> {
        let target = self.target.clone();
        self.with(|c| active(c, &target))
    }

    fn client(&mut self) -> Result<&mut Client, pg::Error> {
        if self.client.is_none() {
            self.client = Some(self.settings.connect()?);
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    /// Runs `f` on the connection, made again once if it was lost.
    fn with<T>(&mut self, f: impl Fn(&mut Client) -> Result<T, pg::Error>) -> Result<T, pg::Error> {
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
    /// instances alive, this one among them, in a fixed order. An instance
    /// is alive while it says so every lease and the server lists the
    /// process of the connection it said it on, so that one killed is
    /// counted out at once.
    pub fn beat(&mut self, owned: usize) -> Result<Vec<String>, pg::Error> {
        let s = self.target.schema_ident();
        let lease = self.target.lease.as_secs_f64();
        let holder = self.holder.clone();
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO {s}._projector_instances
                     VALUES ($1, clock_timestamp(), $2, pg_backend_pid(),
                         (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())))
                     ON CONFLICT (holder) DO UPDATE SET seen = clock_timestamp(), units = $2,
                     {THIS_WRITER}"
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
                    "SELECT holder FROM {s}._projector_instances l
                     WHERE seen > clock_timestamp() - make_interval(secs => $1::float8)
                     AND {WRITER_LIVES} ORDER BY holder"
                ),
                &[&lease],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Where each of `units` stands.
    pub fn states(&mut self, units: &[Listed]) -> Result<Vec<UnitState>, pg::Error> {
        self.with(|c| unit_states(c, units))
    }

    /// How many events each unit has parked (or asked to be retried), by
    /// the unit's name; units with none are left out.
    pub fn parked(&mut self) -> Result<HashMap<String, u64>, pg::Error> {
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

/// Why an instance is not let in.
#[derive(Debug)]
pub enum Refusal {
    State(StateError),
    /// The state follows another stream than the one given.
    OtherStream {
        recorded: Stream,
        given: Stream,
    },
    /// The configuration is not the live one, and `--deploy` was not given.
    NotDeployed(NotDeployed),
}

impl From<StateError> for Refusal {
    fn from(e: StateError) -> Self {
        Refusal::State(e)
    }
}

/// The tables of the main schema and their columns, in the order made.
const TABLES: &str = "
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE IF NOT EXISTS {s}._projector_layout (
        id int PRIMARY KEY CHECK (id = 1), parts int NOT NULL);
    CREATE TABLE IF NOT EXISTS {s}._projector_stream (
        id int PRIMARY KEY CHECK (id = 1), name text NOT NULL, created text NOT NULL,
        first_sequence bigint NOT NULL, recorded timestamptz NOT NULL DEFAULT now());
    CREATE TABLE IF NOT EXISTS {s}._projector_versions (
        version int PRIMARY KEY, config text NOT NULL, status text NOT NULL,
        created timestamptz NOT NULL DEFAULT now(), switched timestamptz);
    ALTER TABLE {s}._projector_versions
        ADD COLUMN IF NOT EXISTS retired timestamptz,
        ADD COLUMN IF NOT EXISTS views boolean NOT NULL DEFAULT false;
    CREATE TABLE IF NOT EXISTS {s}._projector_units (
        version int NOT NULL, position int NOT NULL, name text NOT NULL,
        schema text NOT NULL, models text[] NOT NULL,
        PRIMARY KEY (version, position));
    CREATE TABLE IF NOT EXISTS {s}._projector_instances (
        holder text PRIMARY KEY, seen timestamptz NOT NULL, units int NOT NULL);
    ALTER TABLE {s}._projector_instances
        ADD COLUMN IF NOT EXISTS backend_pid int,
        ADD COLUMN IF NOT EXISTS backend_start timestamptz;
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
        WHERE status IN ('parked', 'retry');";

/// The columns last added to each table: when they are all there, the
/// tables are as [`TABLES`] makes them.
const NEWEST: [(&str, &str); 4] = [
    ("_projector_stream", "recorded"),
    ("_projector_versions", "views"),
    ("_projector_instances", "backend_start"),
    (REJECTIONS, "behind"),
];

/// Makes the main schema's tables, or adds what a table made by an earlier
/// projector lacks; nothing (no lock taken on a table an operator may be
/// reading) when they are complete.
fn prepare_tables(tx: &mut pg::Transaction<'_>, target: &Target) -> Result<(), Refusal> {
    let failed = |e| Refusal::State(target.failed("preparing the cluster's tables", e));
    let single: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I._projector_meta', $1::text)) IS NOT NULL",
            &[&target.schema],
        )
        .map_err(failed)?
        .get(0);
    if single {
        return Err(Refusal::State(StateError::NotAState {
            path: target.path(),
            reason: format!(
                "schema \"{}\" holds the state of a projector that reads stdin; a --source run keeps its units elsewhere: choose another --schema",
                target.schema
            ),
        }));
    }
    let (tables, columns): (Vec<&str>, Vec<&str>) = NEWEST.iter().copied().unzip();
    let complete: bool = tx
        .query_one(
            "SELECT count(*) = cardinality($2::text[]) FROM unnest($2::text[], $3::text[]) AS n(t, c)
             WHERE EXISTS (SELECT 1 FROM pg_attribute
                 WHERE attrelid = to_regclass(format('%I.%I', $1::text, t))
                 AND attname = c AND NOT attisdropped)",
            &[&target.schema, &tables, &columns],
        )
        .map_err(failed)?
        .get(0);
    if !complete {
        let tables = TABLES
            .replace("{s}", &target.schema_ident())
            .replace("{REJECTIONS}", REJECTIONS);
        tx.batch_execute(&tables).map_err(failed)?;
    }
    Ok(())
}

/// The number of parts of a splittable group: the stored one, recorded
/// when none is; a different `requested` one is refused.
fn fix_parts(
    tx: &mut pg::Transaction<'_>,
    target: &Target,
    requested: Option<i32>,
    default_parts: i32,
) -> Result<i32, Refusal> {
    let failed = |e| Refusal::State(target.failed("preparing the cluster's tables", e));
    let s = target.schema_ident();
    let parts = requested.unwrap_or(default_parts);
    tx.execute(
        &format!("INSERT INTO {s}._projector_layout VALUES (1, $1) ON CONFLICT DO NOTHING"),
        &[&parts],
    )
    .map_err(failed)?;
    let stored: i32 = tx
        .query_one(&format!("SELECT parts FROM {s}._projector_layout"), &[])
        .map_err(failed)?
        .get(0);
    if requested.is_some_and(|r| r != stored) {
        return Err(Refusal::State(StateError::Unsupported {
            path: target.path(),
            reason: format!(
                "its read models are split in {stored} parts per group, and --units asks for {parts}: every document's unit depends on it. Leave --units out, or build the split anew in another --schema"
            ),
        }));
    }
    Ok(stored)
}

/// A configuration the cluster serves or builds.
#[derive(Debug, Clone)]
pub struct Version {
    pub number: i32,
    pub config: String,
    /// Being built beside the serving version.
    pub building: bool,
    /// The read models' views show it (a serving version's units all
    /// exist and its views were made).
    pub views: bool,
    pub units: Vec<Listed>,
}

/// The versions served and built, serving first; empty when the main
/// schema has none.
pub fn active(client: &mut Client, target: &Target) -> Result<Vec<Version>, pg::Error> {
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
            "SELECT version, config, status = 'building',
                    (to_jsonb(v) ->> 'views') IS DISTINCT FROM 'false'
             FROM {s}._projector_versions v
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
            views: row.get(3),
            units,
        });
    }
    Ok(versions)
}

/// Where each unit stands: its claim and checkpoint, read from its state
/// (nothing for a unit whose state does not exist yet).
pub fn unit_states(client: &mut Client, units: &[Listed]) -> Result<Vec<UnitState>, pg::Error> {
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
            exists: false,
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
                "SELECT {i}, holder, expires > clock_timestamp() AND {WRITER_LIVES},
                        EXTRACT(EPOCH FROM expires - clock_timestamp())::float8,
                        (SELECT value FROM {s}._projector_meta WHERE name = 'checkpoint')
                 FROM {s}._projector_lease l WHERE id = 1"
            )
        })
        .collect();
    for row in client.query(&selects.join(" UNION ALL "), &[])? {
        let i: i32 = row.get(0);
        let (holder, live, left): (Option<String>, bool, f64) =
            (row.get(1), row.get(2), row.get(3));
        let checkpoint: Option<String> = row.get(4);
        states[i as usize] = UnitState {
            exists: true,
            owner: holder.filter(|_| live).map(|h| (h, left.max(0.0))),
            checkpoint: checkpoint.and_then(|c| c.parse().ok()),
        };
    }
    Ok(states)
}
