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
pub mod registry;
pub mod share;
pub mod worker;

use crate::input::nats::{StreamAddress, Tail};
use crate::plan::units::{self, Unit};
use crate::plan::Plan;
use crate::state::postgres::Target;
use crate::state::StateError;
use registry::{Listed, Registry};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use worker::{Report, Worker};

/// Parts a splittable group is split in unless `--units` says otherwise.
pub const DEFAULT_PARTS: u32 = 4;

pub struct Settings {
    pub plan: Plan,
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
/// first model and its part; hashed when that is over PostgreSQL's 63 bytes.
pub fn unit_schema(main: &str, plan: &Plan, unit: &Unit) -> String {
    let first = plan.model_name(unit.models[0]);
    let name = format!("{main}_{first}_{}of{}", unit.part + 1, unit.of);
    if name.len() <= 63 {
        return name;
    }
    let hash = units::part_of(&name, u32::MAX);
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

/// Runs an instance until `stop` becomes readable; then every unit it owns
/// commits what it applied and is given up.
pub fn run(settings: Settings) -> Result<Ran, Stopped> {
    let Settings {
        plan,
        target,
        address,
        parts,
        stop,
        stop_on_refused,
    } = settings;
    let (registry, parts, listed) = Registry::open(&target, parts, DEFAULT_PARTS, |parts| {
        layout(&plan, parts, &target.schema)
    })?;
    let units = units::units(&plan, parts);
    let names: Vec<&str> = listed.iter().map(|u| u.name.as_str()).collect();
    log(&format!(
        "{} units of work: {}",
        units.len(),
        names.join(", ")
    ));
    let mut coordinator = Coordinator {
        plan,
        target,
        units,
        listed,
        registry,
        workers: Vec::new(),
        stopping: Vec::new(),
        tail: Tail::new(&address),
        address,
        reports: mpsc::channel(),
        stop_on_refused,
        ran: Ran::default(),
        warned: false,
    };
    let tick = coordinator.target.lease / 3;
    let mut next = Instant::now();
    let result = loop {
        if stop.as_ref().is_some_and(|s| readable(s, Duration::ZERO)) {
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
    plan: Plan,
    target: Target,
    address: StreamAddress,
    units: Vec<Unit>,
    listed: Vec<Listed>,
    registry: Registry,
    /// The units this instance owns or is claiming.
    workers: Vec<Worker>,
    /// Workers giving their units up.
    stopping: Vec<Worker>,
    reports: (mpsc::Sender<Report>, Receiver<Report>),
    stop_on_refused: bool,
    /// Asks the broker how far the stream goes, for the lag.
    tail: Tail,
    ran: Ran,
    /// Whether the database's being out of reach was said.
    warned: bool,
}

impl Coordinator {
    /// Says this instance is alive, then gives up units beyond its share
    /// or claims free ones up to it.
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
        let me = crate::state::postgres::holder();
        let index = live.iter().position(|h| *h == me).unwrap_or(live.len());
        let count = live.len().max(index + 1);
        let share = share::share(self.units.len(), count, index);
        while self.workers.len() > share {
            let mut worker = self.workers.pop().expect("more than the share");
            log(&format!(
                "giving up unit {} ({count} instances share {} units)",
                self.listed[worker.unit].name,
                self.units.len()
            ));
            worker.stop();
            self.stopping.push(worker);
        }
        let states = match self.registry.states(&self.listed) {
            Ok(states) => states,
            Err(_) => return,
        };
        let last = self.tail.last().ok();
        metrics::set_units(
            self.listed
                .iter()
                .zip(&states)
                .enumerate()
                .map(|(unit, (listed, state))| {
                    let owned = self.workers.iter().any(|w| w.unit == unit && w.claimed);
                    let lag = last.map(|l| l.saturating_sub(state.checkpoint.unwrap_or(0)));
                    (listed.name.clone(), owned, lag)
                })
                .collect(),
        );
        // A unit claimed by another instance while this one could not renew
        // its lease (stopped, cut off): its worker can commit nothing more.
        for at in (0..self.workers.len()).rev() {
            let worker = &self.workers[at];
            let taken = match &states[worker.unit].owner {
                Some((holder, _)) => worker.claimed && *holder != me,
                None => false,
            };
            if taken {
                let mut worker = self.workers.remove(at);
                log(&format!(
                    "lost unit {}: {} claimed it while this instance could not renew its lease",
                    self.listed[worker.unit].name,
                    states[worker.unit].owner.as_ref().expect("owned").0
                ));
                worker.lost = true;
                worker.stop();
                self.stopping.push(worker);
            }
        }
        for unit in share::preference(self.units.len(), count, index) {
            if self.workers.len() >= share {
                break;
            }
            let mine = self
                .workers
                .iter()
                .chain(&self.stopping)
                .any(|w| w.unit == unit);
            if mine || states[unit].owner.is_some() {
                continue;
            }
            let target = Target {
                schema: self.listed[unit].schema.clone(),
                rejections: Some((self.target.schema.clone(), self.listed[unit].name.clone())),
                ..self.target.clone()
            };
            match Worker::start(
                unit,
                self.listed[unit].name.clone(),
                self.plan.for_unit(&self.units[unit]),
                target,
                self.address.clone(),
                self.stop_on_refused,
                self.reports.0.clone(),
            ) {
                Ok(worker) => self.workers.push(worker),
                Err(e) => log(&format!("cannot start a thread: {e}")),
            }
        }
    }

    /// Acts on what a worker reports; a state that cannot be trusted stops
    /// the instance.
    fn report(&mut self, report: Report) -> Result<(), Stopped> {
        let listed = self.listed.clone();
        let name = |unit: usize| listed[unit].name.clone();
        match report {
            Report::Claimed { unit, checkpoint } => {
                self.ran.claimed += 1;
                if let Some(worker) = self.workers.iter_mut().find(|w| w.unit == unit) {
                    worker.claimed = true;
                }
                log(&format!(
                    "claimed unit {}: applying from sequence {}",
                    name(unit),
                    checkpoint + 1
                ));
                if let Err(e) = self.registry.refresh_views(&self.listed) {
                    log(&format!(
                        "cannot make the read models' views: {}",
                        crate::state::postgres::describe(&e)
                    ));
                }
            }
            Report::Busy { unit } => {
                let _ = self.end(unit);
            }
            Report::Released { unit } => {
                if !self.end(unit) {
                    log(&format!("released unit {}", name(unit)));
                }
            }
            Report::Lost { unit, why } => {
                if !self.end(unit) {
                    log(&format!("lost unit {}: {why}", name(unit)));
                }
            }
            Report::Failed { unit, error } => {
                let _ = self.end(unit);
                if matches!(error, StateError::Postgres { .. }) {
                    log(&format!(
                        "unit {}: {error}; it will be claimed again",
                        name(unit)
                    ));
                } else {
                    log(&format!("unit {}: {error}", name(unit)));
                    return Err(Stopped::State(error));
                }
            }
            Report::Halted { unit, why } => {
                let _ = self.end(unit);
                return Err(Stopped::Refused {
                    unit: name(unit),
                    why,
                });
            }
        }
        Ok(())
    }

    /// Forgets the worker of `unit`, which has ended; returns whether its
    /// unit was found lost before.
    fn end(&mut self, unit: usize) -> bool {
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

/// Waits up to `pause` for `fd` to become readable.
pub(crate) fn readable(fd: &OwnedFd, pause: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: pause.as_secs() as i64,
        tv_nsec: i64::from(pause.subsec_nanos()),
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}
