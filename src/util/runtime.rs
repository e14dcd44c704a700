//! The process's one tokio runtime: the NATS client, the stream's reader,
//! every PostgreSQL connection and the metrics server run their I/O on it.
//! The threads that apply events stay plain threads; they wait on it
//! ([`wait`]) for what they ask of the network.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// Threads the runtime runs its tasks on: the reader's task and the
/// connections' tasks do little each, but one must not wait for another.
const THREADS: usize = 2;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime, started on first use.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("projector-io")
            .enable_all()
            .build()
            // Only a process that cannot start two threads gets here, and
            // it could not run anyway.
            .expect("the I/O threads start")
    })
}

/// Runs `future` to its end on the runtime, from a thread that is not one
/// of the runtime's own.
pub fn wait<F: Future>(future: F) -> F::Output {
    runtime().handle().block_on(future)
}
