//! SIGTERM and SIGINT: the first stops reading input, so that what was
//! read is applied, committed and answered before the process exits 0; a
//! second one exits at once (128 + the signal), which leaves a state as
//! safe as a crash does.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::{flag, low_level};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

static STOPPING: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// The read end of a pipe that becomes readable at the first signal: the
/// input of a run stops there (see `projector::input::source::Stoppable`).
pub struct Stop(UnixStream);

impl Stop {
    /// Installs the handlers. Without them (which should not happen), a
    /// signal kills the process as before: the state is still safe.
    pub fn install() -> std::io::Result<Stop> {
        let (read, write) = UnixStream::pair()?;
        for signal in [SIGTERM, SIGINT] {
            // The exit goes first: it acts only once the flag is set, that
            // is from the second signal on.
            flag::register_conditional_shutdown(signal, 128 + signal, &STOPPING)?;
            flag::register(signal, &STOPPING)?;
            flag::register_usize(signal, &SIGNAL, signal as usize)?;
            low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(Stop(read))
    }

    /// Installs handlers that only make the pipe readable, at every signal:
    /// for a command that ends on its own soon after the first and says
    /// what it did before it exits.
    pub fn install_without_exit() -> std::io::Result<Stop> {
        let (read, write) = UnixStream::pair()?;
        for signal in [SIGTERM, SIGINT] {
            flag::register(signal, &STOPPING)?;
            flag::register_usize(signal, &SIGNAL, signal as usize)?;
            low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(Stop(read))
    }

    /// Another handle on the pipe, for one input.
    pub fn fd(&self) -> std::io::Result<OwnedFd> {
        Ok(self.0.try_clone()?.into())
    }
}

/// Ends the process `grace` after the first signal if it is still running
/// then (the database or the broker does not answer, and something waits
/// for it), with the status a graceful stop gives: what was committed is
/// kept, as after a crash.
pub fn exit_within(grace: Duration) {
    let watch = move || {
        while !STOPPING.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(grace);
        let (signal, _) = received().unwrap_or(("a signal", 0));
        projector::util::log::log(&format!(
            "{signal}: still stopping after {} s (the database or the broker does not answer): exiting; what was committed is kept",
            grace.as_secs_f64()
        ));
        std::process::exit(0);
    };
    // Without the thread, a stop waits for what it waits for.
    let _ = std::thread::Builder::new()
        .name("stop deadline".to_owned())
        .spawn(watch);
}

/// The signal that stopped the run, if one did: its name and number.
pub fn received() -> Option<(&'static str, i32)> {
    match SIGNAL.load(Ordering::SeqCst) as i32 {
        0 => None,
        SIGTERM => Some(("SIGTERM", SIGTERM)),
        SIGINT => Some(("SIGINT", SIGINT)),
        other => Some(("a signal", other)),
    }
}
