//! Fault injection for the crash tests, shared by every backend.

/// Fault injection for the crash tests: with `PROJECTOR_TEST_CRASH_AT_STEP=N`
/// the process aborts, as abruptly as SIGKILL, just before the N-th write step
/// (a BEGIN, an insert of event ids, a document write or a COMMIT). Walking N
/// over a run puts a crash between every two writes, which random kills
/// rarely hit.
pub struct CrashPoint {
    at: Option<u64>,
    steps: u64,
}

impl CrashPoint {
    pub fn from_env() -> Self {
        let at = std::env::var("PROJECTOR_TEST_CRASH_AT_STEP")
            .ok()
            .and_then(|v| v.parse().ok());
        CrashPoint { at, steps: 0 }
    }

    pub fn step(&mut self) {
        self.steps += 1;
        if self.at == Some(self.steps) {
            std::process::abort();
        }
    }
}
