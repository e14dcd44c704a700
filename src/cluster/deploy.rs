//! Deploys are explicit: the live configuration is a recorded fact of the
//! main schema (the serving version), and an instance whose configuration
//! differs from it is let in only when started with `--deploy`.
//!
//! Two configurations are the same version when they make the same units
//! (the same schemas: the same event-id rule, models and split), whatever
//! else differs in their text. The first instance on a new main schema
//! records its configuration as the live one. An instance of the live
//! configuration, or of the one being built, joins it. Any other
//! configuration is refused, a retired one included (an instance restarted
//! with last week's file never switches the read models back), unless
//! `--deploy` asks for it: then it is built beside the live one, replacing
//! a version being built, and switched to once it has caught up. Going
//! back to an earlier configuration is a deploy like any other.

use super::registry::{Listed, Refusal};
use crate::state::postgres::client as pg;
use crate::state::postgres::client::Transaction;
use crate::state::postgres::Target;

/// What an instance brings to the cluster.
pub struct Offer<'a> {
    /// The configuration's text.
    pub config: &'a str,
    /// `--deploy`: build it beside the live one when it differs.
    pub deploy: bool,
    /// The stream given with `--source`.
    pub stream: &'a super::stream::Stream,
}

/// What the instance's configuration is to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// No configuration was live: it is recorded as the live version.
    Recorded(i32),
    /// It is the live version.
    Live(i32),
    /// It is the version being built, deployed earlier.
    Building(i32),
    /// `--deploy`: it is a new version, built beside the live one, which
    /// replaced the version being built, if there was one.
    Deployed { version: i32, replaced: Option<i32> },
    /// `--deploy` of the live configuration: the version being built is
    /// given up.
    Kept { version: i32, replaced: i32 },
}

/// Why an instance's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDeployed {
    /// The live version and since when (UTC) it is.
    pub live: i32,
    pub since: String,
    /// The version being built, if any.
    pub building: Option<i32>,
    /// The retired version the configuration is, and when it was retired.
    pub retired: Option<(i32, String)>,
}

/// A version as [`offer`] compares it.
struct Active {
    number: i32,
    building: bool,
    schemas: Vec<String>,
}

/// Offers the configuration whose units are `units` to the cluster, in
/// `tx` (which holds the main schema's lock).
pub fn offer(
    tx: &mut Transaction<'_>,
    target: &Target,
    offered: &Offer<'_>,
    units: &[Listed],
) -> Result<Result<Joined, Refusal>, pg::Error> {
    let s = target.schema_ident();
    let schemas: Vec<String> = units.iter().map(|u| u.schema.clone()).collect();
    let active = active(tx, &s)?;
    let serving = active.iter().find(|v| !v.building);
    let building = active.iter().find(|v| v.building);
    let Some(serving) = serving else {
        let version = record(tx, &s, offered.config, units, "serving")?;
        return Ok(Ok(Joined::Recorded(version)));
    };
    let update = format!("UPDATE {s}._projector_versions SET config = $2 WHERE version = $1");
    if serving.schemas == schemas {
        tx.execute(&update, &[&serving.number, &offered.config])?;
        return Ok(Ok(match (offered.deploy, building) {
            (true, Some(b)) => {
                retire(tx, &s, b.number)?;
                Joined::Kept {
                    version: serving.number,
                    replaced: b.number,
                }
            }
            _ => Joined::Live(serving.number),
        }));
    }
    if let Some(b) = building.filter(|b| b.schemas == schemas) {
        tx.execute(&update, &[&b.number, &offered.config])?;
        return Ok(Ok(Joined::Building(b.number)));
    }
    if !offered.deploy {
        return refusal(tx, &s, serving.number, building.map(|b| b.number), &schemas);
    }
    let replaced = building.map(|b| b.number);
    if let Some(b) = replaced {
        retire(tx, &s, b)?;
    }
    let version = record(tx, &s, offered.config, units, "building")?;
    Ok(Ok(Joined::Deployed { version, replaced }))
}

/// The versions served and built, with their units' schemas.
fn active(tx: &mut Transaction<'_>, s: &str) -> Result<Vec<Active>, pg::Error> {
    let rows = tx.query(
        &format!(
            "SELECT v.version, v.status = 'building',
                    array(SELECT schema FROM {s}._projector_units u
                          WHERE u.version = v.version ORDER BY position)
             FROM {s}._projector_versions v
             WHERE status IN ('serving', 'building') ORDER BY version"
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Active {
            number: r.get(0),
            building: r.get(1),
            schemas: r.get(2),
        })
        .collect())
}

/// Records the configuration as a new version with `status`; its number.
fn record(
    tx: &mut Transaction<'_>,
    s: &str,
    config: &str,
    units: &[Listed],
    status: &str,
) -> Result<i32, pg::Error> {
    let version: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) + 1 FROM {s}._projector_versions"),
            &[],
        )?
        .get(0);
    tx.execute(
        &format!(
            "INSERT INTO {s}._projector_versions (version, config, status) VALUES ($1, $2, $3)"
        ),
        &[&version, &config, &status],
    )?;
    for (i, unit) in units.iter().enumerate() {
        tx.execute(
            &format!("INSERT INTO {s}._projector_units VALUES ($1, $2, $3, $4, $5)"),
            &[
                &version,
                &(i as i32),
                &unit.name,
                &unit.schema,
                &unit.models,
            ],
        )?;
    }
    Ok(version)
}

fn retire(tx: &mut Transaction<'_>, s: &str, version: i32) -> Result<(), pg::Error> {
    tx.execute(
        &format!(
            "UPDATE {s}._projector_versions SET status = 'retired', retired = now()
             WHERE version = $1"
        ),
        &[&version],
    )
    .map(drop)
}

/// The refusal of a configuration that is not live, naming the retired
/// version it is, if it is one.
fn refusal(
    tx: &mut Transaction<'_>,
    s: &str,
    live: i32,
    building: Option<i32>,
    schemas: &[String],
) -> Result<Result<Joined, Refusal>, pg::Error> {
    const UTC: &str = "'YYYY-MM-DD HH24:MI:SS \"UTC\"'";
    let since: String = tx
        .query_one(
            &format!(
                "SELECT to_char(coalesce(switched, created) AT TIME ZONE 'UTC', {UTC})
                 FROM {s}._projector_versions WHERE version = $1"
            ),
            &[&live],
        )?
        .get(0);
    let retired = tx
        .query_opt(
            &format!(
                "SELECT v.version, to_char(coalesce(v.retired, v.created) AT TIME ZONE 'UTC', {UTC})
                 FROM {s}._projector_versions v
                 WHERE v.status = 'retired' AND array(SELECT schema FROM {s}._projector_units u
                       WHERE u.version = v.version ORDER BY position) = $1
                 ORDER BY v.version DESC LIMIT 1"
            ),
            &[&schemas],
        )?
        .map(|r| (r.get(0), r.get(1)));
    Ok(Err(Refusal::NotDeployed(NotDeployed {
        live,
        since,
        building,
        retired,
    })))
}
