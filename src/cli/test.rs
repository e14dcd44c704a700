//! `projector test`: run the `[[tests]]` a configuration declares.

use super::{configured_or_default, load_checked, log};
use clap::Args;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TestArgs {
    /// The configuration whose tests to run. Default: $PROJECTOR_CONFIG, else ./projections.toml.
    #[arg(value_name = "CONFIG")]
    path: Option<PathBuf>,
    /// The same, as the other subcommands name it.
    #[arg(short, long, value_name = "FILE", conflicts_with = "path")]
    config: Option<PathBuf>,
}

pub fn test(args: &TestArgs) -> ExitCode {
    let config = args
        .config
        .clone()
        .or_else(|| args.path.clone())
        .unwrap_or_else(configured_or_default);
    let plan = match load_checked(&config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let mut out = io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for test in &plan.tests {
        let failures = projector::engine::testing::run(&plan, test);
        if failures.is_empty() {
            passed += 1;
            let _ = writeln!(out, "test {} ... ok", test.name);
        } else {
            failed += 1;
            let _ = writeln!(out, "test {} ... FAILED", test.name);
            for failure in failures {
                let _ = writeln!(out, "  {failure}");
            }
        }
    }
    if plan.tests.is_empty() {
        log(&format!(
            "projector: {} declares no [[tests]]",
            config.display()
        ));
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
