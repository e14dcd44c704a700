//! Several instances consuming one JetStream stream into one PostgreSQL
//! database, sharing the work.
//!
//! The read models are split into units of work ([`crate::plan::units`]).
//! Each unit keeps a PostgreSQL state of its own (documents, processed
//! ids, the stream sequence it has applied up to, committed together) in a
//! schema of its own, claimed by one instance at a time with a lease and a
//! fencing token: every batch's transaction first renews the claim by its
//! token, so an instance that lost it (stopped or cut off past its lease)
//! commits nothing more. Every instance says in the main schema that it is
//! alive ([`registry`]); each works out its fair share of the units from
//! the live instances ([`share`]), gives up units beyond it and claims
//! free ones up to it, a third of a lease apart. A dead instance's units
//! are free once its leases lapse; the others take them over.

pub mod metrics;
mod parked;
pub mod registry;
pub mod rejections;
pub mod share;
pub mod worker;

use crate::input::nats::{StreamAddress, Tail};
use crate::plan::units::{self, Unit};
use crate::plan::Plan;
use crate::state::postgres::Target;
use crate::state::StateError;
use registry::{Listed, Registry, Version};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use worker::{Report, Worker};

/// Parts a splittable group is split in unless `--units` says otherwise.
pub const DEFAULT_PARTS: u32 = 4;

pub struct Settings {
    pub plan: Plan,
    /// The configuration's text, kept in the main schema with its version.
    pub config: String,
    /// The main schema's state: the database, and the lease and retry
    /// times every unit's claim takes.
    pub target: Target,
    pub address: StreamAddress,
    /// `--units`, when given.
    pub parts: Option<u32>,
    /// Readable when the instance is to stop.
    pub stop: Option<OwnedFd>,
    /// `--on-refused stop`: the instance stops at the first event refused
    /// instead of recording it and going on.
    pub stop_on_refused: bool,
    /// `--cache-mb`: the memory of the units' caches, shared out evenly by
    /// the units of a layout.
    pub cache_mb: usize,
    /// `--max-line-bytes`: a longer message is refused, unread.
    pub max_line_bytes: usize,
    /// `--on-refused park`: an event refused is parked with every later
    /// event of its documents.
    pub park: bool,
}

/// Why an instance stopped before it was asked to.
#[derive(Debug)]
pub enum Stopped {
    /// A unit's state cannot be trusted or written.
    State(StateError),
    /// An event was refused under `--on-refused stop`.
    Refused { unit: String, why: String },
}

impl From<StateError> for Stopped {
    fn from(e: StateError) -> Self {
        Stopped::State(e)
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Ran {
    /// Units claimed over the run.
    pub claimed: usize,
}

/// The schema a unit's state lives in: the main schema's name, the unit's
/// first model, its part, and a fingerprint of what it builds (the event-id
/// rule and its models' definitions), so that a changed definition is built
/// in a schema of its own beside the one serving; hashed when that is over
/// PostgreSQL's 63 bytes.
pub fn unit_schema(main: &str, plan: &Plan, unit: &Unit) -> String {
    let mut built = plan.event_id_definition();
    for &m in &unit.models {
        built.push('\n');
        built.push_str(&plan.model_definition(m));
    }
    let fingerprint = units::part_of_text(&built, u32::MAX);
    let first = plan.model_name(unit.models[0]);
    let name = format!(
        "{main}_{first}_{}of{}_{fingerprint:08x}",
        unit.part + 1,
        unit.of
    );
    if name.len() <= 63 {
        return name;
    }
    let hash = units::part_of_text(&name, u32::MAX);
    let prefix: String = main.chars().take(40).collect();
    format!("{prefix}_{hash:08x}_{}of{}", unit.part + 1, unit.of)
}

/// The units of `plan` as the main schema lists them.
pub fn layout(plan: &Plan, parts: u32, main: &str) -> Vec<Listed> {
    units::units(plan, parts)
        .iter()
        .map(|u| Listed {
            name: u.name.clone(),
            schema: unit_schema(main, plan, u),
            models: u
                .models
                .iter()
                .map(|&m| plan.model_name(m).to_owned())
                .collect(),
        })
        .collect()
}

/// A unit of a version served or built, and the plan its engine runs.
struct Work {
    listed: Listed,
    plan: Plan,
    /// It belongs to the version being built (and not to the serving one).
    building: bool,
}

/// Runs an instance until `stop` becomes readable; then every unit it owns
/// commits what it applied and is given up.
pub fn run(settings: Settings) -> Result<Ran, Stopped> {
    let Settings {
        plan,
        config,
        target,
        address,
        parts,
        stop,
        stop_on_refused,
        cache_mb,
        max_line_bytes,
        park,
    } = settings;
    let (registry, parts) = Registry::open(&target, parts, DEFAULT_PARTS, &config, |parts| {
        layout(&plan, parts, &target.schema)
    })?;
    let mut coordinator = Coordinator {
        target,
        parts,
        registry,
        plans: HashMap::new(),
        versions: Vec::new(),
        work: Vec::new(),
        workers: Vec::new(),
        stopping: Vec::new(),
        tail: Tail::new(&address),
        address,
        reports: mpsc::channel(),
        how: worker::How {
            stop_on_refused,
            budget: crate::engine::durable::Budget::of_megabytes(cache_mb / parts.max(1) as usize),
            max_line_bytes,
            park,
        },
        ran: Ran::default(),
        warned: false,
    };
    let tick = coordinator.target.lease / 3;
    let mut next = Instant::now();
    let result = loop {
        if stop
            .as_ref()
            .is_some_and(|s| crate::input::source::readable(s, Duration::ZERO))
        {
            break Ok(());
        }
        if Instant::now() >= next {
            coordinator.balance();
            next = Instant::now() + tick;
        }
        match coordinator
            .reports
            .1
            .recv_timeout(Duration::from_millis(100))
        {
            Ok(report) => {
                if let Err(e) = coordinator.report(report) {
                    break Err(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the coordinator holds a sender"),
        }
    };
    coordinator.shut_down();
    coordinator.registry.leave();
    result.map(|()| coordinator.ran)
}

struct Coordinator {
    target: Target,
    address: StreamAddress,
    parts: u32,
    registry: Registry,
    /// Each version's plan, compiled from its stored text (`None`: it does
    /// not compile here).
    plans: HashMap<i32, Option<Plan>>,
    /// The versions served and built, as last read.
    versions: Vec<Version>,
    /// Their units, each once: the serving version's first.
    work: Vec<Work>,
    /// The units this instance owns or is claiming.
    workers: Vec<Worker>,
    /// Workers giving their units up.
    stopping: Vec<Worker>,
    reports: (mpsc::Sender<Report>, Receiver<Report>),
    /// How each unit is applied.
    how: worker::How,
    /// Asks the broker how far the stream goes, for the lag.
    tail: Tail,
    ran: Ran,
    /// Whether the database's being out of reach was said.
    warned: bool,
}

impl Coordinator {
    /// Reads the versions served and built; returns whether they changed.
    fn read_versions(&mut self) -> Result<bool, postgres::Error> {
        let versions = self.registry.versions()?;
        let numbers = |v: &[Version]| -> Vec<(i32, bool)> {
            v.iter().map(|v| (v.number, v.building)).collect()
        };
        if numbers(&versions) == numbers(&self.versions) && !self.work.is_empty() {
            return Ok(false);
        }
        let mut work: Vec<Work> = Vec::new();
        for version in &versions {
            let plan = self.plans.entry(version.number).or_insert_with(|| {
                match crate::load_to_serve(&version.config) {
                    Ok((plan, _, _)) => Some(plan),
                    Err(_) => {
                        log(&format!(
                            "version {} of the configuration does not compile here: its units are left to other instances",
                            version.number
                        ));
                        None
                    }
                }
            });
            let Some(plan) = plan else { continue };
            let planned = units::units(plan, self.parts);
            for (unit, listed) in planned.iter().zip(&version.units) {
                if work.iter().any(|w| w.listed.schema == listed.schema) {
                    continue;
                }
                work.push(Work {
                    listed: listed.clone(),
                    plan: plan.for_unit(unit),
                    building: version.building,
                });
            }
        }
        let names = |building: bool| -> Vec<&str> {
            work.iter()
                .filter(|w| w.building == building)
                .map(|w| w.listed.name.as_str())
                .collect()
        };
        let serving = versions
            .iter()
            .find(|v| !v.building)
            .map_or(0, |v| v.number);
        log(&format!(
            "serving version {serving} of the configuration: {} units of work: {}",
            names(false).len(),
            names(false).join(", ")
        ));
        if let Some(building) = versions.iter().find(|v| v.building) {
            log(&format!(
                "building version {} beside it, from the stream's start: {}",
                building.number,
                names(true).join(", ")
            ));
        }
        self.versions = versions;
        self.work = work;
        Ok(true)
    }

    /// Says this instance is alive, follows the versions, gives up units
    /// beyond its share or claims free ones up to it, and switches to a
    /// version built once it has caught up.
    fn balance(&mut self) {
        let live = match self.registry.beat(self.workers.len()) {
            Ok(live) => {
                if std::mem::take(&mut self.warned) {
                    log("the database answers again");
                }
                live
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log(&format!(
                        "{}: {}; units are neither claimed nor given up until it answers",
                        self.target.display(),
                        crate::state::postgres::describe(&e)
                    ));
                }
                return;
            }
        };
        if self.read_versions().is_err() {
            return;
        }
        // Units of a version retired: given up.
        for at in (0..self.workers.len()).rev() {
            if !self
                .work
                .iter()
                .any(|w| w.listed.schema == self.workers[at].unit)
            {
                let mut worker = self.workers.remove(at);
                log(&format!(
                    "giving up unit {}: its version of the configuration is retired",
                    worker.unit
                ));
                worker.stop();
                self.stopping.push(worker);
            }
        }
        let listed: Vec<Listed> = self.work.iter().map(|w| w.listed.clone()).collect();
        let states = match self.registry.states(&listed) {
            Ok(states) => states,
            Err(_) => return,
        };
        let last = self.tail.last().ok();
        let parked = self.registry.parked().unwrap_or_default();
        metrics::set_units(
            listed
                .iter()
                .zip(&states)
                .map(|(unit, state)| metrics::Unit {
                    name: unit.name.clone(),
                    owned: self
                        .workers
                        .iter()
                        .any(|w| w.unit == unit.schema && w.claimed),
                    lag: last.map(|l| l.saturating_sub(state.checkpoint.unwrap_or(0))),
                    parked: parked.get(&unit.name).copied().unwrap_or(0),
                })
                .collect(),
        );
        let me = crate::state::postgres::holder();
        // A unit claimed by another instance while this one could not renew
        // its lease (stopped, cut off): its worker can commit nothing more.
        for at in (0..self.workers.len()).rev() {
            let worker = &self.workers[at];
            let Some(i) = listed.iter().position(|u| u.schema == worker.unit) else {
                continue;
            };
            let taken = match &states[i].owner {
                Some((holder, _)) => worker.claimed && *holder != me,
                None => false,
            };
            if taken {
                let mut worker = self.workers.remove(at);
                log(&format!(
                    "lost unit {}: {} claimed it while this instance could not renew its lease",
                    listed[i].name,
                    states[i].owner.as_ref().expect("owned").0
                ));
                worker.lost = true;
                worker.stop();
                self.stopping.push(worker);
            }
        }
        let index = live.iter().position(|h| *h == me).unwrap_or(live.len());
        let count = live.len().max(index + 1);
        let share = share::share(self.work.len(), count, index);
        while self.workers.len() > share {
            let mut worker = self.workers.pop().expect("more than the share");
            log(&format!(
                "giving up unit {} ({count} instances share {} units)",
                self.name(&worker.unit),
                self.work.len()
            ));
            worker.stop();
            self.stopping.push(worker);
        }
        for i in share::preference(self.work.len(), count, index) {
            if self.workers.len() >= share {
                break;
            }
            let work = &self.work[i];
            let schema = &work.listed.schema;
            let mine = self
                .workers
                .iter()
                .chain(&self.stopping)
                .any(|w| w.unit == *schema);
            if mine || states[i].owner.is_some() {
                continue;
            }
            let target = Target {
                schema: schema.clone(),
                rejections: Some((self.target.schema.clone(), work.listed.name.clone())),
                ..self.target.clone()
            };
            match Worker::start(
                work.listed.name.clone(),
                work.plan.clone(),
                target,
                self.address.clone(),
                self.how,
                self.reports.0.clone(),
            ) {
                Ok(worker) => self.workers.push(worker),
                Err(e) => log(&format!("cannot start a thread: {e}")),
            }
        }
        self.switch_when_built(&states);
    }

    /// Switches the views to the version being built once each of its
    /// units has caught up with the serving version's slowest unit.
    fn switch_when_built(&mut self, states: &[registry::UnitState]) {
        let Some(building) = self.versions.iter().find(|v| v.building) else {
            return;
        };
        let Some(serving) = self.versions.iter().find(|v| !v.building) else {
            return;
        };
        let checkpoint = |schema: &str| {
            self.work
                .iter()
                .position(|w| w.listed.schema == schema)
                .and_then(|i| states[i].checkpoint)
        };
        let served = serving
            .units
            .iter()
            .map(|u| checkpoint(&u.schema).unwrap_or(0))
            .min()
            .unwrap_or(0);
        let built = building
            .units
            .iter()
            .map(|u| checkpoint(&u.schema))
            .collect::<Option<Vec<u64>>>();
        if !built.is_some_and(|b| b.iter().all(|&c| c >= served)) {
            return;
        }
        let kept: Vec<&str> = building
            .units
            .iter()
            .flat_map(|u| u.models.iter().map(String::as_str))
            .collect();
        let dropped: Vec<String> = serving
            .units
            .iter()
            .flat_map(|u| u.models.iter())
            .filter(|m| !kept.contains(&m.as_str()))
            .cloned()
            .collect();
        let (from, to) = (serving.number, building.clone());
        match self.registry.switch(from, &to, &dropped) {
            Ok(true) => log(&format!(
                "version {} of the configuration caught up (sequence {served}): the read models' views switched to it from version {from}",
                to.number
            )),
            Ok(false) => {}
            Err(e) => log(&format!(
                "cannot switch to version {}: {}",
                to.number,
                crate::state::postgres::describe(&e)
            )),
        }
        // Read again at the next turn.
        self.versions.clear();
    }

    fn name(&self, schema: &str) -> String {
        self.work
            .iter()
            .find(|w| w.listed.schema == schema)
            .map_or_else(|| schema.to_owned(), |w| w.listed.name.clone())
    }

    /// Acts on what a worker reports; a state that cannot be trusted stops
    /// the instance.
    fn report(&mut self, report: Report) -> Result<(), Stopped> {
        match report {
            Report::Claimed { unit, checkpoint } => {
                self.ran.claimed += 1;
                if let Some(worker) = self.workers.iter_mut().find(|w| w.unit == unit) {
                    worker.claimed = true;
                }
                let building = self
                    .work
                    .iter()
                    .find(|w| w.listed.schema == unit)
                    .is_some_and(|w| w.building);
                log(&format!(
                    "claimed unit {}{}: applying from sequence {}",
                    self.name(&unit),
                    if building { " (being built)" } else { "" },
                    checkpoint + 1
                ));
                let serving: Vec<Listed> = self
                    .versions
                    .iter()
                    .filter(|v| !v.building)
                    .flat_map(|v| v.units.clone())
                    .collect();
                if let Err(e) = self.registry.refresh_views(&serving) {
                    log(&format!(
                        "cannot make the read models' views: {}",
                        crate::state::postgres::describe(&e)
                    ));
                }
            }
            Report::Busy { unit } => {
                let _ = self.end(&unit);
            }
            Report::Released { unit } => {
                if !self.end(&unit) {
                    log(&format!("released unit {}", self.name(&unit)));
                }
            }
            Report::Lost { unit, why } => {
                let said = match self.end(&unit) {
                    true => "unit",
                    false => "lost unit",
                };
                log(&format!("{said} {}: {why}", self.name(&unit)));
            }
            Report::Failed { unit, error } => {
                let _ = self.end(&unit);
                if matches!(error, StateError::Postgres { .. }) {
                    log(&format!(
                        "unit {}: {error}; it will be claimed again",
                        self.name(&unit)
                    ));
                } else {
                    log(&format!("unit {}: {error}", self.name(&unit)));
                    return Err(Stopped::State(error));
                }
            }
            Report::Halted { unit, why } => {
                let _ = self.end(&unit);
                return Err(Stopped::Refused {
                    unit: self.name(&unit),
                    why,
                });
            }
        }
        Ok(())
    }

    /// Forgets the worker of `unit`, which has ended; returns whether its
    /// unit was found lost before.
    fn end(&mut self, unit: &str) -> bool {
        for list in [&mut self.workers, &mut self.stopping] {
            if let Some(at) = list.iter().position(|w| w.unit == unit) {
                let worker = list.remove(at);
                let lost = worker.lost;
                worker.join();
                return lost;
            }
        }
        false
    }

    /// Stops every worker and waits for them: what each applied is
    /// committed and its unit given up.
    fn shut_down(&mut self) {
        for worker in &mut self.workers {
            worker.stop();
        }
        self.stopping.append(&mut self.workers);
        while !self.stopping.is_empty() {
            match self.reports.1.recv() {
                Ok(report) => {
                    if let Report::Claimed { .. } = report {
                        continue;
                    }
                    let _ = self.report(report);
                }
                Err(_) => break,
            }
        }
    }
}

fn log(text: &str) {
    eprintln!("projector: {text}");
}
