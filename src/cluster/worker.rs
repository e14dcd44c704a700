//! One unit of work, applied on a thread of its own: its state claimed
//! (see [`crate::state::postgres`]), its engine restored, and the messages
//! of the stream that are its own, from the unit's checkpoint on, taken
//! from the instance's one reader of the stream ([`crate::input::hub`])
//! until it is told to stop or its claim is taken over.

use crate::engine::durable::Budget;
use crate::engine::Engine;
use crate::input::hub::Hub;
use crate::plan::Plan;
use crate::server::parking::ParkStore;
use crate::server::{self, Options, ServeError};
use crate::state::background::Background;
use crate::state::postgres::{PostgresState, Target};
use crate::state::reconcile::Request;
use crate::state::StateError;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The most messages a unit commits at once: a unit catching up commits
/// while it reads on, its checkpoint follows, and a unit taken over hands
/// on little to apply again.
const BATCH_MESSAGES: usize = 16_384;

/// What became of a worker, for the coordinator.
#[derive(Debug)]
pub enum Report {
    /// The unit is claimed and its state restored; the stream is read
    /// from the sequence after `checkpoint`.
    Claimed { unit: String, checkpoint: u64 },
    /// Another instance holds the unit.
    Busy { unit: String },
    /// Stopped as asked: everything applied is committed, the claim given up.
    Released { unit: String },
    /// The claim was taken over: nothing more of this worker's was committed.
    Lost { unit: String, why: String },
    /// The unit's state could not be opened or written.
    Failed { unit: String, error: StateError },
    /// An event was refused, and `--on-refused stop` asks to stop there.
    Halted { unit: String, why: String },
}

pub struct Worker {
    /// The unit's schema, which names it among all versions' units.
    pub unit: String,
    /// Its state is claimed and restored.
    pub claimed: bool,
    /// Another instance was found holding its unit: it is being stopped.
    pub lost: bool,
    /// Dropped to stop the worker: the other end becomes readable.
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts applying the unit whose state is at `target` (its schema
    /// names it) with `plan`, the unit's own.
    pub fn start(
        name: String,
        plan: Plan,
        target: Target,
        hub: Arc<Hub>,
        how: How,
        reports: Sender<Report>,
    ) -> std::io::Result<Worker> {
        let (stop, stopped) = UnixStream::pair()?;
        let unit = target.schema.clone();
        let id = unit.clone();
        let thread = std::thread::Builder::new()
            .name(format!("unit {name}"))
            .spawn(move || {
                let report = work(id, plan, &target, &hub, how, stopped.into(), &reports);
                let _ = reports.send(report);
            })?;
        Ok(Worker {
            unit,
            claimed: false,
            lost: false,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Asks the worker to commit what it applied and give the unit up.
    pub fn stop(&mut self) {
        self.stop = None;
    }

    /// Waits for the worker to end.
    pub fn join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a worker applies its unit.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// `--on-refused stop`.
    pub stop_on_refused: bool,
    /// What the unit's cache may hold.
    pub budget: Budget,
    /// `--max-line-bytes`.
    pub max_line_bytes: usize,
    /// `--on-refused park`.
    pub park: bool,
}

/// Claims the unit, restores its engine, and applies the stream to it from
/// its checkpoint on until `stopped` becomes readable or the claim is lost.
fn work(
    unit: String,
    plan: Plan,
    target: &Target,
    hub: &Hub,
    how: How,
    stopped: OwnedFd,
    reports: &Sender<Report>,
) -> Report {
    let opened = match PostgresState::open(target, &plan, &Request::default()) {
        Ok(opened) => opened,
        Err(StateError::Claimed { .. }) => return Report::Busy { unit },
        Err(error) => return Report::Failed { unit, error },
    };
    let mut engine = Engine::durable(
        plan.clone(),
        opened.restored,
        Box::new(Background::start(opened.state)),
        opened.reader,
        target.path(),
        how.budget,
    );
    let checkpoint = engine.checkpoint().unwrap_or(0);
    let _ = reports.send(Report::Claimed {
        unit: unit.clone(),
        checkpoint,
    });
    let park = match parking(how, target) {
        Ok(park) => park,
        Err(error) => return Report::Failed { unit, error },
    };
    let (feed, checkpoints) = hub.attach(plan, engine.digester(), checkpoint + 1, stopped);
    let options = Options {
        park,
        checkpoints: Some(checkpoints),
        stop_on_refused: how.stop_on_refused,
        max_line_bytes: how.max_line_bytes,
        counters: Some(&super::metrics::COUNTERS),
        batch_messages: BATCH_MESSAGES,
        ..Options::default()
    };
    let served = server::serve_lines(
        &mut engine,
        feed,
        std::io::sink(),
        crate::util::log::Stderr::default(),
        &options,
    );
    drop(engine);
    ended(unit, served.map(|_| ()))
}

/// Where refused events are parked under `--on-refused park`: the main
/// schema's rejections table, for the unit the target names.
fn parking(how: How, target: &Target) -> Result<Option<Arc<dyn ParkStore>>, StateError> {
    let (true, Some((schema, name))) = (how.park, &target.rejections) else {
        return Ok(None);
    };
    let main = Target {
        schema: schema.clone(),
        rejections: None,
        ..target.clone()
    };
    let parked = super::parked::Parked::open(main, name)?;
    Ok(Some(Arc::new(parked) as _))
}

/// What became of a unit whose stream was applied until it ended, as
/// `served` says.
fn ended(unit: String, served: Result<(), ServeError>) -> Report {
    match served {
        Ok(()) => Report::Released { unit },
        Err(ServeError::State(StateError::Fenced { .. })) => Report::Lost {
            unit,
            why: "its batch was refused: another instance claimed the unit while this one could not renew its lease, so nothing of that batch was committed".to_owned(),
        },
        Err(ServeError::State(error)) => Report::Failed { unit, error },
        Err(ServeError::Refused(why)) => Report::Halted { unit, why },
        Err(ServeError::Io(e)) => Report::Lost {
            unit,
            why: format!("reading the stream failed: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_unit_s_stream_ended_is_reported() {
        let unit = || "s_a".to_owned();
        assert!(matches!(ended(unit(), Ok(())), Report::Released { unit } if unit == "s_a"));
        assert!(matches!(
            ended(unit(), Err(ServeError::Refused("bad".to_owned()))),
            Report::Halted { why, .. } if why == "bad"
        ));
        let cut = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "cut");
        assert!(matches!(
            ended(unit(), Err(ServeError::Io(cut))),
            Report::Lost { why, .. } if why == "reading the stream failed: cut"
        ));
    }
}
