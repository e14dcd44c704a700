//! `projector test`: run the `[[tests]]` a configuration declares.

use super::{load_checked, log, DEFAULT_CONFIG};
use clap::Args;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TestArgs {
    /// The configuration whose tests to run.
    #[arg(value_name = "CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

pub fn test(args: &TestArgs) -> ExitCode {
    let plan = match load_checked(&args.config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let mut out = io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for test in &plan.tests {
        let failures = projector::testing::run(&plan, test);
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
            args.config.display()
        ));
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
