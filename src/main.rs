//! The `projector` command: `run` (the default) serves the stdio protocol,
//! `validate` checks configurations, `replay` applies an event log to a
//! state, `plan` compares a configuration with a state, `test` runs a
//! configuration's tests. See [`cli`].

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The allocator asks for transparent huge pages. Where the kernel
    // compacts memory to find them on the spot (its `defrag = madvise`
    // default), a growing store stalls in page faults; small pages cost
    // more faults but no stalls. Failure (an older kernel) changes nothing.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    cli::main()
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
