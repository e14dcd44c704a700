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
//! free ones up to it, every [`TURN`]. A dead instance is counted out, and
//! its claims are free, as soon as the server no longer lists the
//! processes of its connections (or its leases lapse); the others take its
//! units over. An instance that cannot read the stream for longer than its
//! lease gives its units up to the others and claims none until it can
//! ([`reach`]). An instance reads the stream once, whatever the number of
//! units it owns: one consumer, on the process's one NATS connection, routes
//! each message to the unit that takes it ([`crate::input::hub`]). Which
//! configuration is served is a recorded fact
//! ([`deploy`]), and so is the stream followed ([`stream`]); the read
//! models' views change only at a switch, off the coordinator's path
//! ([`views`]).

pub mod deploy;
pub mod gc;
pub mod metrics;
mod parked;
mod reach;
pub mod registry;
pub mod rejections;
pub mod share;
pub mod stream;
pub mod tally;
mod views;
pub mod worker;

use crate::input::broker::BrokerError;
use crate::input::nats::{StreamAddress, Tail};
use crate::plan::units::{self, Unit};
use crate::plan::Plan;
use crate::state::postgres::client as pg;
use crate::state::postgres::Target;
use crate::state::StateError;
use registry::{Listed, Registry, Version};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use worker::{Report, Worker};

/// How often an instance says it is alive and looks for units to claim or
/// give up (a third of the lease when that is shorter): a dead instance's
/// units are found free, and claimed, within about this long.
const TURN: Duration = Duration::from_millis(500);

/// How long a stopping instance waits for its units to commit what they
/// applied and give their claims up; past it (the database out of reach),
/// it leaves without them: what they committed is kept, the rest is
/// applied again by their next owner, and their claims lapse.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
    /// `--deploy`: a configuration that differs from the live one is built
    /// beside it and switched to, instead of refused.
    pub deploy: bool,
}

/// Why an instance stopped before it was asked to.
#[derive(Debug)]
pub enum Stopped {
    /// A unit's state cannot be trusted or written.
    State(StateError),
    /// An event was refused under `--on-refused stop`.
    Refused { unit: String, why: String },
    /// The state follows another stream than the one given.
    OtherStream {
        recorded: stream::Stream,
        given: stream::Stream,
    },
    /// The configuration is not the live one, and `--deploy` was not given.
    NotDeployed(deploy::NotDeployed),
}

impl From<StateError> for Stopped {
    fn from(e: StateError) -> Self {
        Stopped::State(e)
    }
}

impl From<registry::Refusal> for Stopped {
    fn from(refusal: registry::Refusal) -> Self {
        match refusal {
            registry::Refusal::State(e) => Stopped::State(e),
            registry::Refusal::OtherStream { recorded, given } => {
                Stopped::OtherStream { recorded, given }
            }
            registry::Refusal::NotDeployed(not) => Stopped::NotDeployed(not),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Ran {
    /// Units claimed over the run.
    pub claimed: usize,
    /// Units that could not commit and give their claims up in time when
    /// the instance stopped, by name.
    pub abandoned: Vec<String>,
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

/// The workers (by their index in `owned`, their units' schemas) whose
/// unit no version in `work` has any more, last first so that each can be
/// removed in turn.
fn retired(owned: &[&str], work: &[&str]) -> Vec<usize> {
    (0..owned.len())
        .rev()
        .filter(|&at| !work.contains(&owned[at]))
        .collect()
}

/// The workers whose unit another holder than `me` claimed, last first:
/// pairs of a worker's index in `owned` (its unit's schema, and whether it
/// claimed it) and its unit's index in `schemas`, whose holders are
/// `owners`.
fn taken(
    owned: &[(&str, bool)],
    schemas: &[&str],
    owners: &[Option<&str>],
    me: &str,
) -> Vec<(usize, usize)> {
    (0..owned.len())
        .rev()
        .filter_map(|at| {
            let (unit, claimed) = owned[at];
            let i = schemas.iter().position(|s| *s == unit)?;
            let taken = owners[i].is_some_and(|holder| claimed && holder != me);
            taken.then_some((at, i))
        })
        .collect()
}

/// The units (by index in `schemas`) free to claim, in the order of
/// `preference`: neither `held` by this instance's workers nor `owned` by
/// any instance.
fn free(
    preference: impl Iterator<Item = usize>,
    schemas: &[&str],
    held: &[&str],
    owned: &[bool],
) -> Vec<usize> {
    preference
        .filter(|&i| !held.contains(&schemas[i]) && !owned[i])
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
        deploy,
    } = settings;
    let Some(given) = find_stream(&address, stop.as_ref()) else {
        return Ok(Ran::default());
    };
    let offered = deploy::Offer {
        config: &config,
        deploy,
        stream: &given,
    };
    let (registry, parts, joined) =
        Registry::open(&target, parts, DEFAULT_PARTS, &offered, |parts| {
            layout(&plan, parts, &target.schema)
        })?;
    log(&joined_text(&joined));
    let own = layout(&plan, parts, &target.schema)
        .into_iter()
        .map(|u| u.schema)
        .collect();
    // Schemas retired longer than PROJECTOR_GC_SECONDS are dropped while
    // the instance runs (by one instance at a time).
    let _collector = gc::Collector::start(target.clone(), gc::grace());
    let how = worker::How {
        stop_on_refused,
        budget: crate::engine::durable::Budget::of_megabytes(cache_mb / parts.max(1) as usize),
        max_line_bytes,
        park,
    };
    // The process's one reader of the stream.
    let hub = std::sync::Arc::new(crate::input::hub::Hub::start(&address, max_line_bytes));
    let mut coordinator = Coordinator::new(target, (address, hub), parts, registry, own, how);
    let result = coordinator.turns(stop.as_ref());
    coordinator.shut_down();
    // The database did not answer: nothing more is asked of it.
    if coordinator.ran.abandoned.is_empty() && !coordinator.warned {
        coordinator.show_before_leaving();
        coordinator.registry.leave();
    }
    result.map(|()| coordinator.ran)
}

struct Coordinator {
    target: Target,
    address: StreamAddress,
    /// The stream's reader, which the units attach to.
    hub: std::sync::Arc<crate::input::hub::Hub>,
    parts: u32,
    registry: Registry,
    /// The unit schemas of this instance's own configuration.
    own: Vec<String>,
    /// Its configuration is neither served nor built: it claims nothing.
    standby: bool,
    /// Changes of the read models' views, on a thread of their own.
    views: views::Views,
    /// Whether readers holding the views were said to delay a change.
    held: bool,
    /// The next turn is due at once (a unit was claimed whose state may
    /// complete the views).
    soon: bool,
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
    /// Asks the broker how far the stream goes, for the lag and to know
    /// whether the stream can be read.
    tail: Tail,
    reach: reach::Reach,
    ran: Ran,
    /// Whether the database's being out of reach was said.
    warned: bool,
}

impl Coordinator {
    /// A coordinator that owns no unit yet, of an instance that joined with
    /// the units `own`.
    fn new(
        target: Target,
        (address, hub): (StreamAddress, std::sync::Arc<crate::input::hub::Hub>),
        parts: u32,
        registry: Registry,
        own: Vec<String>,
        how: worker::How,
    ) -> Coordinator {
        Coordinator {
            target,
            parts,
            registry,
            own,
            standby: false,
            views: views::Views::default(),
            held: false,
            soon: false,
            plans: HashMap::new(),
            versions: Vec::new(),
            work: Vec::new(),
            workers: Vec::new(),
            stopping: Vec::new(),
            tail: Tail::new(&address),
            hub,
            reach: reach::Reach::default(),
            address,
            reports: mpsc::channel(),
            how,
            ran: Ran::default(),
            warned: false,
        }
    }

    /// Balances the units every turn and acts on the workers' reports until
    /// `stop` becomes readable, or a state cannot be trusted.
    fn turns(&mut self, stop: Option<&OwnedFd>) -> Result<(), Stopped> {
        let tick = TURN.min(self.target.lease / 3);
        let mut next = Instant::now();
        loop {
            if stop.is_some_and(|s| crate::input::source::readable(s, Duration::ZERO)) {
                return Ok(());
            }
            if Instant::now() >= next || std::mem::take(&mut self.soon) {
                self.balance();
                next = Instant::now() + tick;
            }
            match self.reports.1.recv_timeout(Duration::from_millis(100)) {
                Ok(report) => self.report(report)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    unreachable!("the coordinator holds a sender")
                }
            }
        }
    }

    /// Reads the versions served and built; returns whether they changed.
    fn read_versions(&mut self) -> Result<bool, pg::Error> {
        let versions = self.registry.versions()?;
        let numbers = |v: &[Version]| -> Vec<(i32, bool, bool)> {
            v.iter().map(|v| (v.number, v.building, v.views)).collect()
        };
        if numbers(&versions) == numbers(&self.versions) && !self.work.is_empty() {
            return Ok(false);
        }
        self.follow_own(&versions);
        let said = |v: &[Version]| -> Vec<(i32, bool)> {
            v.iter().map(|v| (v.number, v.building)).collect()
        };
        let quiet = said(&versions) == said(&self.versions);
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
        if quiet {
            self.versions = versions;
            self.work = work;
            return Ok(true);
        }
        log(&tally::said(&versions, &names(false), &names(true)));
        self.versions = versions;
        self.work = work;
        Ok(true)
    }

    /// Stands by while this instance's configuration is neither served nor
    /// built (a deploy replaced it): its units are given up and none is
    /// claimed until it is served or built again.
    fn follow_own(&mut self, versions: &[Version]) {
        let mine = versions.iter().find(|v| {
            v.units.len() == self.own.len()
                && v.units.iter().zip(&self.own).all(|(u, o)| u.schema == *o)
        });
        match (mine, self.standby) {
            (None, false) if !versions.is_empty() => {
                let live = versions
                    .iter()
                    .find(|v| !v.building)
                    .map_or(0, |v| v.number);
                log(&format!(
                    "this instance's configuration is no longer served or built (version {live} is live): it gives its units up and claims none; start it with the live configuration, or with --deploy to go back to this one"
                ));
                self.standby = true;
                for mut worker in self.workers.drain(..) {
                    worker.stop();
                    self.stopping.push(worker);
                }
                self.registry.leave();
            }
            (Some(v), true) => {
                log(&format!(
                    "this instance's configuration is version {} again: it claims units again",
                    v.number
                ));
                self.standby = false;
            }
            _ => {}
        }
    }

    /// What the database answered; `None`, said once, when it did not.
    fn answered<T>(&mut self, result: Result<T, pg::Error>) -> Option<T> {
        match result {
            Ok(answer) => {
                if std::mem::take(&mut self.warned) {
                    log("the database answers again");
                }
                Some(answer)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log(&format!(
                        "{}: {}; units are neither claimed nor given up until it answers",
                        self.target.display(),
                        crate::state::postgres::describe(&e)
                    ));
                }
                None
            }
        }
    }

    /// Follows the views' change under way, and starts the next one: the
    /// switch to a version built once it has caught up, or the first views
    /// of a serving version once its units all exist.
    fn views_turn(&mut self, states: &[registry::UnitState]) {
        if self.views.busy() {
            return;
        }
        if let Some(job) = self.switch_due(states) {
            self.views.start(&self.target, job);
            return;
        }
        let Some(serving) = self.versions.iter().find(|v| !v.building) else {
            return;
        };
        let exist = serving.units.iter().all(|u| {
            self.work
                .iter()
                .position(|w| w.listed.schema == u.schema)
                .is_some_and(|i| states[i].exists)
        });
        if !serving.views && exist {
            self.views
                .start(&self.target, views::Job::Show(serving.clone()));
        }
    }

    fn views_ended(&mut self, job: &views::Job, outcome: views::Outcome) {
        use views::{Job, Outcome};
        let what = match job {
            Job::Show(v) => format!("showing version {}", v.number),
            Job::Switch { to, .. } => format!("switching to version {}", to.number),
        };
        match outcome {
            Outcome::Done => {
                self.held = false;
                match job {
                    Job::Show(v) => log(&format!(
                        "the read models' views show version {} of the configuration",
                        v.number
                    )),
                    Job::Switch { from, to, .. } => log(&format!(
                        "version {} of the configuration caught up: the read models' views switched to it from version {from}",
                        to.number
                    )),
                }
            }
            Outcome::NotNow => {}
            Outcome::Held => {
                if !std::mem::replace(&mut self.held, true) {
                    log(&format!(
                        "{what}: readers hold the views in open transactions; tried again until they let go (they are not kept waiting)"
                    ));
                }
            }
            Outcome::Failed(why) => log(&format!("{what}: {why}; tried again")),
        }
    }

    /// Says this instance is alive, follows the versions, gives up units
    /// beyond its share or claims free ones up to it, and switches to a
    /// version built once it has caught up.
    fn balance(&mut self) {
        if let Some((job, outcome)) = self.views.ended() {
            self.views_ended(&job, outcome);
        }
        let read = self.read_versions();
        if self.answered(read).is_none() || self.standby {
            return;
        }
        let asked = Instant::now();
        let last = match self.hub.last_heard(TURN) {
            Some(last) => Ok(last),
            None => self.tail.last(),
        };
        if !self.follow_stream(&last, asked) {
            return;
        }
        let beat = self.registry.beat(self.workers.len());
        let Some(live) = self.answered(beat) else {
            return;
        };
        self.give_up_retired();
        let listed: Vec<Listed> = self.work.iter().map(|w| w.listed.clone()).collect();
        let states = match self.registry.states(&listed) {
            Ok(states) => states,
            Err(_) => return,
        };
        self.show_units(&listed, &states, last.ok());
        let me = crate::state::postgres::holder();
        self.give_up_taken(&listed, &states, &me);
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
        self.claim(
            share,
            share::preference(self.work.len(), count, index),
            &states,
        );
        self.views_turn(&states);
    }

    /// Gives up the units of a version retired.
    fn give_up_retired(&mut self) {
        let work: Vec<&str> = self.work.iter().map(|w| w.listed.schema.as_str()).collect();
        let owned: Vec<&str> = self.workers.iter().map(|w| w.unit.as_str()).collect();
        for at in retired(&owned, &work) {
            let mut worker = self.workers.remove(at);
            log(&format!(
                "giving up unit {}: its version of the configuration is retired",
                worker.unit
            ));
            worker.stop();
            self.stopping.push(worker);
        }
    }

    /// Shows each unit's owner, lag and parked events in the metrics; `last`
    /// is the stream's last sequence.
    fn show_units(&mut self, listed: &[Listed], states: &[registry::UnitState], last: Option<u64>) {
        let parked = self.registry.parked().unwrap_or_default();
        metrics::set_units(
            listed
                .iter()
                .zip(states)
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
    }

    /// Gives up the units another instance claimed while this one (`me`)
    /// could not renew its lease (stopped, cut off): their workers can
    /// commit nothing more.
    fn give_up_taken(&mut self, listed: &[Listed], states: &[registry::UnitState], me: &str) {
        let schemas: Vec<&str> = listed.iter().map(|u| u.schema.as_str()).collect();
        let owners: Vec<Option<&str>> = states
            .iter()
            .map(|s| s.owner.as_ref().map(|(holder, _)| holder.as_str()))
            .collect();
        let owned: Vec<(&str, bool)> = self
            .workers
            .iter()
            .map(|w| (w.unit.as_str(), w.claimed))
            .collect();
        for (at, i) in taken(&owned, &schemas, &owners, me) {
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

    /// Claims free units, in the order of `preference`, until this
    /// instance owns its `share`.
    fn claim(
        &mut self,
        share: usize,
        preference: impl Iterator<Item = usize>,
        states: &[registry::UnitState],
    ) {
        let schemas: Vec<&str> = self.work.iter().map(|w| w.listed.schema.as_str()).collect();
        let held: Vec<&str> = self
            .workers
            .iter()
            .chain(&self.stopping)
            .map(|w| w.unit.as_str())
            .collect();
        let owned: Vec<bool> = states.iter().map(|s| s.owner.is_some()).collect();
        for i in free(preference, &schemas, &held, &owned) {
            if self.workers.len() >= share || self.reach.silent() {
                break;
            }
            let work = &self.work[i];
            let target = Target {
                schema: work.listed.schema.clone(),
                rejections: Some((self.target.schema.clone(), work.listed.name.clone())),
                ..self.target.clone()
            };
            match Worker::start(
                work.listed.name.clone(),
                work.plan.clone(),
                target,
                self.hub.clone(),
                self.how,
                self.reports.0.clone(),
            ) {
                Ok(worker) => self.workers.push(worker),
                Err(e) => log(&format!("cannot start a thread: {e}")),
            }
        }
    }

    /// Follows whether the stream answered (`last`, asked at `asked`):
    /// silent longer than a lease, every unit is given up and the instance
    /// leaves the live ones until it answers again. Returns whether the
    /// turn goes on.
    fn follow_stream(&mut self, last: &Result<u64, BrokerError>, asked: Instant) -> bool {
        let lease = self.target.lease;
        match self.reach.answered(last.is_ok(), asked, lease) {
            reach::Change::Lost => {
                log(&format!(
                    "{}: cannot read the stream for longer than its lease ({} s): {}; this instance gives its units up to the others and claims none until the stream answers",
                    self.address,
                    lease.as_secs_f64(),
                    last.as_ref().err().map(ToString::to_string).unwrap_or_default(),
                ));
                for mut worker in self.workers.drain(..) {
                    worker.stop();
                    self.stopping.push(worker);
                }
                self.registry.leave();
            }
            reach::Change::Back => log(&format!(
                "{}: the stream answers again: this instance claims units again",
                self.address
            )),
            reach::Change::Same => {}
        }
        !self.reach.cut_off()
    }

    /// The switch to the version being built, once each of its units has
    /// caught up with the serving version's slowest unit.
    fn switch_due(&self, states: &[registry::UnitState]) -> Option<views::Job> {
        let building = self.versions.iter().find(|v| v.building)?;
        let serving = self.versions.iter().find(|v| !v.building)?;
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
            .collect::<Option<Vec<u64>>>()?;
        if !built.iter().all(|&c| c >= served) {
            return None;
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
        Some(views::Job::Switch {
            from: serving.number,
            to: building.clone(),
            dropped,
        })
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
                metrics::set_owned(&self.name(&unit), true);
                self.soon = self.versions.iter().any(|v| !v.building && !v.views);
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
        metrics::set_owned(&self.name(unit), false);
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

    /// Makes the views of a serving version that has none yet, if its
    /// units all exist, before the instance leaves: the read models are
    /// there to query whatever stopped it.
    fn show_before_leaving(&mut self) {
        let Some(serving) = self.versions.iter().find(|v| !v.building && !v.views) else {
            return;
        };
        let job = views::Job::Show(serving.clone());
        if let views::Outcome::Done = views::apply(&self.target, &job) {
            log(&format!(
                "the read models' views show version {} of the configuration",
                serving.number
            ));
        }
    }

    /// Stops every worker and waits for them, [`SHUTDOWN_GRACE`] at most:
    /// what each applied is committed and its unit given up. Those still
    /// at it then are left to end with the process.
    fn shut_down(&mut self) {
        for worker in &mut self.workers {
            worker.stop();
        }
        self.stopping.append(&mut self.workers);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.stopping.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.1.recv_timeout(left) {
                Ok(Report::Claimed { .. }) => {}
                Ok(report) => {
                    let _ = self.report(report);
                }
                Err(_) => break,
            }
        }
        for worker in self.stopping.drain(..) {
            let name = self
                .work
                .iter()
                .find(|w| w.listed.schema == worker.unit)
                .map_or_else(|| worker.unit.clone(), |w| w.listed.name.clone());
            self.ran.abandoned.push(name);
        }
    }
}

fn log(text: &str) {
    crate::util::log::log(text);
}

/// The stream `address` names, waited for while its broker does not
/// answer or it does not exist; `None` when the instance is stopped first.
fn find_stream(address: &StreamAddress, stop: Option<&OwnedFd>) -> Option<stream::Stream> {
    let mut said = false;
    loop {
        match stream::identity(address) {
            Ok(found) => return Some(found),
            Err(e) if !std::mem::replace(&mut said, true) => {
                log(&format!("{e}; waiting for it"));
            }
            Err(_) => {}
        }
        let stopped = match stop {
            Some(stop) => crate::input::source::readable(stop, Duration::from_millis(250)),
            None => {
                std::thread::sleep(Duration::from_millis(250));
                false
            }
        };
        if stopped {
            return None;
        }
    }
}

/// What an instance's configuration is to the cluster, as the log says it.
fn joined_text(joined: &deploy::Joined) -> String {
    use deploy::Joined;
    match joined {
        Joined::Recorded(v) => format!(
            "no configuration was live: this one is recorded as version {v}, the live one"
        ),
        Joined::Live(v) => format!("this configuration is version {v}, the live one"),
        Joined::Building(v) => {
            format!("this configuration is version {v}, being built beside the live one")
        }
        Joined::Deployed { version, replaced } => format!(
            "--deploy: this configuration is version {version}, built beside the live one and switched to once it has caught up{}",
            replaced.map_or_else(String::new, |r| format!(
                "; version {r}, which was being built, is given up"
            ))
        ),
        Joined::Kept { version, replaced } => format!(
            "--deploy: this configuration is version {version}, the live one; version {replaced}, which was being built, is given up"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_no_version_has_are_given_up_last_first() {
        assert_eq!(retired(&["a", "x", "b", "y"], &["a", "b"]), [3, 1]);
        assert!(retired(&["a"], &["a", "b"]).is_empty());
    }

    #[test]
    fn a_unit_claimed_by_another_holder_is_lost_once_claimed_here() {
        let schemas = ["a", "b", "c"];
        let owners = [Some("other"), Some("me"), None];
        let owned = [("a", true), ("b", true), ("c", true), ("gone", true)];
        assert_eq!(taken(&owned, &schemas, &owners, "me"), [(0, 0)]);
        // Not yet claimed here: the other holder got it first, not from us.
        assert!(taken(&[("a", false)], &schemas, &owners, "me").is_empty());
    }

    #[test]
    fn free_units_are_neither_held_here_nor_owned_anywhere() {
        let schemas = ["a", "b", "c", "d"];
        let owned = [false, true, false, false];
        assert_eq!(
            free([2, 3, 0, 1].into_iter(), &schemas, &["d"], &owned),
            [2, 0]
        );
    }
}
