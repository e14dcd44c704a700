//! `projector validate`: golden diagnostics for broken configurations, exit codes.
//!
//! Each `tests/fixtures/{invalid,warning,valid}/NAME.toml` has its expected stderr in
//! `NAME.stderr` and stdout in `NAME.stdout` (absent when empty); one with a `NAME.ndjson`
//! beside it is validated against those sample events (`--samples`). After changing a message on
//! purpose, rewrite them with `BLESS=1 cargo test --test integration validate::` and review
//! the diff.

use crate::support;

use std::path::Path;
use support::{repo, Run};

fn golden(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("BLESS").is_some() {
        match got.is_empty() {
            true => drop(std::fs::remove_file(path)),
            false => std::fs::write(path, got).unwrap(),
        }
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want != got {
        failures.push(format!(
            "{}:\n--- want\n{want}--- got\n{got}",
            path.display()
        ));
    }
}

fn check_fixtures(folder: &str, code: i32) {
    let dir = repo().join("tests/fixtures").join(folder);
    let mut configs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty());
    let mut failures = Vec::new();
    for config in &configs {
        let relative = config.strip_prefix(repo()).unwrap().to_str().unwrap();
        let mut args = vec!["validate", relative];
        let samples = Path::new(relative).with_extension("ndjson");
        if repo().join(&samples).exists() {
            args.extend(["--samples", samples.to_str().unwrap()]);
        }
        let out = Run::new().args(&args).go();
        if out.code != Some(code) {
            failures.push(format!("{relative}: exit {:?}, expected {code}", out.code));
        }
        golden(&config.with_extension("stderr"), &out.stderr, &mut failures);
        golden(&config.with_extension("stdout"), &out.stdout, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_configs_report_every_problem_with_its_place() {
    check_fixtures("invalid", 78);
}

#[test]
fn warnings_alone_pass() {
    check_fixtures("warning", 0);
}

#[test]
fn valid_configs_pass_without_a_word() {
    check_fixtures("valid", 0);
}

#[test]
fn deny_warnings_fails_on_warnings() {
    Run::new()
        .args(&["validate", "--deny-warnings", "tests/fixtures/warning/no_models.toml"])
        .go()
        .code_is(78)
        .stdout_is(&[])
        .stderr_is(
            "tests/fixtures/warning/no_models.toml:1:1: warning[P0100]: no read model is declared\n  |\n1 | # Nothing declared yet.\n  | ^\ntests/fixtures/warning/no_models.toml: invalid: 0 errors, 1 warning\n(`projector explain-code CODE` says more about a code)\n",
        );
}

#[test]
fn deny_warnings_fails_on_a_misspelt_type_and_a_condition_the_samples_contradict() {
    let out = Run::new()
        .args(&[
            "validate",
            "--deny-warnings",
            "tests/fixtures/warning/misspelt_event_type.toml",
        ])
        .go();
    out.code_is(78).stdout_is(&[]);
    assert!(
        out.stderr.contains("invalid: 0 errors, 2 warnings"),
        "{}",
        out.stderr
    );
    Run::new()
        .args(&[
            "validate",
            "--deny-warnings",
            "tests/fixtures/warning/condition_types.toml",
            "--samples",
            "tests/fixtures/warning/condition_types.ndjson",
        ])
        .go()
        .code_is(78)
        .stdout_is(&[]);
}

#[test]
fn the_bundled_config_is_valid_and_is_the_default() {
    let ok = "projections.toml: ok: 4 read models, 5 event types";
    Run::new()
        .args(&["validate"])
        .go()
        .success()
        .stdout_is(&[ok])
        .stderr_is("");
    Run::new()
        .args(&["validate", "projections.toml"])
        .go()
        .success()
        .stdout_is(&[ok]);
}

#[test]
fn every_file_is_checked_and_one_bad_file_fails_the_run() {
    let out = Run::new()
        .args(&[
            "validate",
            "tests/fixtures/invalid/duplicate_key.toml",
            "projections.toml",
            "no/such.toml",
        ])
        .go();
    out.code_is(78)
        .stdout_is(&["projections.toml: ok: 4 read models, 5 event types"]);
    assert!(out
        .stderr
        .contains("duplicate_key.toml:3:1: error[P0001]: invalid TOML: duplicate key"));
    assert!(out.stderr.ends_with(
        "projector: cannot read no/such.toml: No such file or directory (os error 2)\n(`projector explain-code CODE` says more about a code)\n"
    ));
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_messages() {
    let validate = Run::new()
        .args(&["validate", "tests/fixtures/invalid/bad_jsonpath.toml"])
        .go();
    let run = Run::new()
        .args(&["--config", "tests/fixtures/invalid/bad_jsonpath.toml"])
        .stdin(&[r#"{"type":"init","msg_id":1}"#])
        .go();
    run.code_is(78).stdout_is(&[]);
    let diagnostics = validate
        .stderr
        .rsplit_once("tests/fixtures/invalid/bad_jsonpath.toml: invalid")
        .unwrap()
        .0;
    assert_eq!(
        run.stderr,
        format!("{diagnostics}projector: tests/fixtures/invalid/bad_jsonpath.toml is invalid; not starting\n")
    );
}

#[test]
fn a_config_that_cannot_be_read_is_a_config_error() {
    Run::new()
        .args(&["--config", "no/such.toml"])
        .go()
        .code_is(78)
        .stdout_is(&[])
        .stderr_is("projector: cannot read no/such.toml: No such file or directory (os error 2)\n");
}

#[test]
fn the_readme_configuration_example_is_valid_and_passes_its_test() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let dir = support::TempDir::new();
    let path = dir.write("readme.toml", example);
    let out = Run::new().args(&["validate", path.to_str().unwrap()]).go();
    out.success().stderr_is("");
    Run::new()
        .args(&["test", path.to_str().unwrap()])
        .go()
        .success()
        .stdout_is(&["test an order is counted ... ok", "1 passed, 0 failed"]);
    assert!(
        out.stdout.ends_with(": ok: 2 read models, 5 event types\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn json_format_reports_each_file_on_one_line() {
    let out = Run::new()
        .args(&[
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/duplicate_key.toml",
            "projections.toml",
        ])
        .go();
    out.code_is(78).stderr_is("").stdout_is(&[
        r#"{"diagnostics":[{"code":"P0001","column":1,"end_column":5,"end_line":3,"file":"tests/fixtures/invalid/duplicate_key.toml","help":null,"line":3,"message":"invalid TOML: duplicate key","severity":"error","span":[25,29]}],"file":"tests/fixtures/invalid/duplicate_key.toml","valid":false}"#,
        r#"{"diagnostics":[],"file":"projections.toml","valid":true}"#,
    ]);
}
