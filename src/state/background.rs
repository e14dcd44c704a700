//! The journal of `--state`: batches are committed on a thread of their own,
//! so the engine applies the next batch while the database makes the last
//! one durable. One batch is in flight at most; the server writes a batch's
//! replies only once [`Journal::wait`] has seen it committed.

use super::batch::{Batch, Documents, Recorder};
use super::open::Backend;
use super::{FilterWrite, Journal, Rejection, StateError, Swap, Totals};
use crate::store::Change;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// How long each batch took to commit, over the process.
pub static COMMITS: crate::util::histogram::Histogram = crate::util::histogram::Histogram::new();

pub struct Background {
    recorder: Recorder,
    batches: Option<SyncSender<Batch>>,
    /// Each batch comes back with its outcome, to be freed on the thread
    /// that allocated it.
    results: Receiver<(Result<(), StateError>, Batch)>,
    in_flight: bool,
    writer: Option<JoinHandle<()>>,
    /// The checkpoint last handed over.
    checkpoint: Option<u64>,
}

impl Background {
    /// Starts the writer thread, which owns `state` from now on.
    pub fn start(mut state: Box<dyn Backend>) -> Background {
        let (batches, inbox) = mpsc::sync_channel(1);
        let (done, results) = mpsc::sync_channel(1);
        let writer = thread::Builder::new()
            .name("state writer".to_owned())
            .spawn(move || {
                for batch in inbox {
                    let started = std::time::Instant::now();
                    let result = state.write(&batch);
                    COMMITS.observe(started.elapsed());
                    if done.send((result, batch)).is_err() {
                        break;
                    }
                }
            })
            .expect("the state writer thread starts");
        Background {
            recorder: Recorder::default(),
            batches: Some(batches),
            results,
            in_flight: false,
            writer: Some(writer),
            checkpoint: None,
        }
    }

    /// The writer thread ended without answering: it panicked. The panic
    /// is passed on.
    fn writer_gone(&mut self) -> ! {
        if let Some(Err(panic)) = self.writer.take().map(JoinHandle::join) {
            std::panic::resume_unwind(panic);
        }
        unreachable!("the state writer stops only when the journal is dropped")
    }
}

impl Journal for Background {
    fn record_event(
        &mut self,
        event: Option<(&str, &str)>,
        changes: &[Change],
    ) -> Result<(), StateError> {
        self.recorder.event(event, changes);
        Ok(())
    }

    fn record_swap(&mut self, swap: Swap) -> Result<(), StateError> {
        self.recorder.swap(swap);
        Ok(())
    }

    fn stage(&mut self, staging: bool) {
        self.recorder.stage(staging);
    }

    fn record_covered(&mut self, old: &str) {
        self.recorder.covered(old);
    }

    fn record_subscriptions(&mut self, names: Option<&[String]>) -> Result<(), StateError> {
        self.recorder.subscriptions(names);
        Ok(())
    }

    fn record_filter(&mut self, write: FilterWrite) {
        self.recorder.filter(write);
    }

    fn record_rejection(&mut self, rejection: Rejection) -> Result<(), StateError> {
        self.recorder.rejection(rejection);
        Ok(())
    }

    fn submit(&mut self, totals: Totals, docs: &mut dyn Documents) -> Result<(), StateError> {
        self.wait()?;
        // A batch of nothing but duplicates still moves the checkpoint.
        if self.recorder.is_empty() && totals.checkpoint == self.checkpoint {
            return Ok(());
        }
        self.checkpoint = totals.checkpoint;
        let batch = self.recorder.take(totals, docs);
        let sender = self.batches.as_ref().expect("open until dropped");
        if sender.send(batch).is_err() {
            self.writer_gone();
        }
        self.in_flight = true;
        Ok(())
    }

    fn wait(&mut self) -> Result<(), StateError> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        match self.results.recv() {
            Ok((result, batch)) => {
                self.recorder.reuse(batch);
                result
            }
            Err(_) => self.writer_gone(),
        }
    }
}

impl Drop for Background {
    /// Lets the writer finish and close the database.
    fn drop(&mut self) {
        self.batches = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
