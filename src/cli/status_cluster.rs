//! `projector status` on a cluster's main schema (`run --source`): each
//! unit of the serving version and of the version being built (a unit they
//! share shown once, with the serving one), its owner, checkpoint and lag
//! behind the JetStream source.

use super::{load_plan, log, plural, Format, EX_IOERR, EX_USAGE};
use projector::cluster;
use projector::cluster::registry::{self, Listed, UnitState, Version};
use projector::cluster::tally::Tally;
use projector::input::nats::{StreamAddress, Tail};
use projector::state::postgres::Target;
use projector::state::StateError;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// The versions and their units' states, as read.
struct Read {
    versions: Vec<(Version, Vec<UnitState>)>,
    /// Whether an instance registered a version (else the units are the
    /// configuration's, as an instance would lay them out).
    known: bool,
    /// The stream's last sequence.
    last: u64,
}

/// A unit and its state.
type UnitView<'a> = (&'a Listed, &'a UnitState);

/// The version being built, its units' states, and the units only it has.
struct Building<'a> {
    version: &'a Version,
    states: &'a [UnitState],
    built: Vec<UnitView<'a>>,
}

/// What the report says.
struct View<'a> {
    serving: &'a Version,
    units: Vec<UnitView<'a>>,
    building: Option<Building<'a>>,
    tally: Tally,
    owned: usize,
    last: u64,
    known: bool,
}

pub fn status(
    config: Option<&Path>,
    source: Option<&str>,
    target: &Target,
    format: Format,
) -> ExitCode {
    let Some(source) = source else {
        log("projector: --source: the status of a cluster's state (`run --source`) needs its stream, for the lag: nats://HOST:PORT/STREAM");
        return ExitCode::from(EX_USAGE);
    };
    let address = match StreamAddress::parse(source) {
        Ok(address) => address,
        Err(e) => {
            log(&format!("projector: --source: {e}"));
            return ExitCode::from(EX_USAGE);
        }
    };
    let read = match read(config, target, &address) {
        Ok(read) => read,
        Err(code) => return code,
    };
    let view = View::of(&read);
    match format {
        Format::Json => outln!("{}", view.report(&address, target)),
        Format::Human => out!("{}", view.human(&address, target)),
    }
    ExitCode::SUCCESS
}

fn read(config: Option<&Path>, target: &Target, address: &StreamAddress) -> Result<Read, ExitCode> {
    let config = load_plan(config, false)?;
    let read = target.connect().and_then(|mut client| {
        let failed = |e| target.failed("reading the units", e);
        let mut versions = registry::active(&mut client, target).map_err(failed)?;
        let known = !versions.is_empty();
        if !known {
            versions.push(Version {
                number: 0,
                config: String::new(),
                building: false,
                views: false,
                units: cluster::layout(&config.plan, cluster::DEFAULT_PARTS, &target.schema),
            });
        }
        let versions = versions
            .into_iter()
            .map(|v| {
                let states = registry::unit_states(&mut client, &v.units).map_err(failed)?;
                Ok((v, states))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok((versions, known))
    });
    let (versions, known) = read.map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(e.exit_code())
    })?;
    let last = Tail::new(address).last().map_err(|e| {
        log(&format!("projector: {e}"));
        ExitCode::from(EX_IOERR)
    })?;
    Ok(Read {
        versions,
        known,
        last,
    })
}

impl<'a> View<'a> {
    fn of(read: &'a Read) -> View<'a> {
        let (serving, states) = read
            .versions
            .iter()
            .find(|(v, _)| !v.building)
            .unwrap_or(&read.versions[0]);
        let building = read
            .versions
            .iter()
            .find(|(v, _)| v.building)
            .map(|(v, s)| {
                let built = pairs(&v.units, s)
                    .into_iter()
                    .filter(|(u, _)| !serving.units.iter().any(|s| s.schema == u.schema))
                    .collect();
                Building {
                    version: v,
                    states: s,
                    built,
                }
            });
        let tally = Tally::of(
            &serving.units,
            building.as_ref().map_or(&[][..], |b| &b.version.units),
        );
        let units = pairs(&serving.units, states);
        let owned = units
            .iter()
            .chain(building.iter().flat_map(|b| &b.built))
            .filter(|(_, s)| s.owner.is_some())
            .count();
        View {
            serving,
            units,
            building,
            tally,
            owned,
            last: read.last,
            known: read.known,
        }
    }

    fn lag_of(&self, state: &UnitState) -> u64 {
        self.last.saturating_sub(state.checkpoint.unwrap_or(0))
    }

    fn lag_over<'s>(&self, states: impl IntoIterator<Item = &'s UnitState>) -> u64 {
        states
            .into_iter()
            .map(|s| self.lag_of(s))
            .max()
            .unwrap_or(0)
    }

    fn report(&self, address: &StreamAddress, target: &Target) -> Value {
        json!({
            "kind": "cluster",
            "source": address.to_string(),
            "state": target.display(),
            "lag": self.lag_over(self.units.iter().map(|(_, s)| *s)),
            "stream_last_sequence": self.last,
            "version": self.known.then_some(self.serving.number),
            "unit_count": self.tally.units,
            "units_being_built": self.tally.building,
            "units_owned": self.owned,
            "units": self.units_json(&self.units),
            "building": self.building.as_ref().map(|b| json!({
                "version": b.version.number,
                "lag": self.lag_over(b.states),
                "units": self.units_json(&b.built),
                "shared": b.version.units.len() - b.built.len(),
            })),
        })
    }

    fn units_json(&self, units: &[UnitView<'_>]) -> Vec<Value> {
        units
            .iter()
            .map(|(unit, state)| {
                json!({
                    "unit": unit.name,
                    "models": unit.models,
                    "schema": unit.schema,
                    "owner": state.owner.as_ref().map(|(holder, _)| holder),
                    "lease_expires_in": state.owner.as_ref().map(|(_, left)| (left * 10.0).round() / 10.0),
                    "checkpoint": state.checkpoint,
                    "lag": self.lag_of(state),
                })
            })
            .collect()
    }

    fn human(&self, address: &StreamAddress, target: &Target) -> String {
        let mut text = format!(
            "{} from {address}: lag {} (stream at sequence {}); {}, {} owned{}\n",
            target.display(),
            self.lag_over(self.units.iter().map(|(_, s)| *s)),
            self.last,
            self.tally,
            self.owned,
            if self.known {
                ""
            } else {
                " (no instance has run yet)"
            }
        );
        if self.known {
            text.push_str(&format!("serving version {}:\n", self.serving.number));
        }
        text.push_str(&self.unit_lines(&self.units));
        if let Some(Building {
            version,
            states,
            built,
        }) = &self.building
        {
            let serving = self.serving.number;
            let shared = match version.units.len() - built.len() {
                0 => format!("it shares no unit with version {serving}"),
                n => format!(
                    "it shares its other {} with version {serving}",
                    plural(n as u64, "unit")
                ),
            };
            text.push_str(&format!(
                "building version {} beside it, from the stream's start (lag {}; the views switch to it when it catches up; {shared}):\n",
                version.number,
                self.lag_over(*states),
            ));
            text.push_str(&self.unit_lines(built));
        }
        text
    }

    fn unit_lines(&self, units: &[UnitView<'_>]) -> String {
        let mut text = String::new();
        for (unit, state) in units {
            let owner = match &state.owner {
                Some((holder, left)) => format!("owned by {holder}, lease expires in {left:.1} s"),
                None => "not owned".to_owned(),
            };
            let at = state
                .checkpoint
                .map_or("no checkpoint".to_owned(), |c| format!("checkpoint {c}"));
            text.push_str(&format!(
                "  unit {} ({}): {owner}; {at}; lag {}\n",
                unit.name,
                unit.models.join(", "),
                self.lag_of(state)
            ));
        }
        text
    }
}

/// Each unit with its state.
fn pairs<'a>(units: &'a [Listed], states: &'a [UnitState]) -> Vec<UnitView<'a>> {
    units.iter().zip(states).collect()
}
