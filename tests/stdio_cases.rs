//! Runs every stdio case, ours (tests/cases) and the public ones
//! (tests/shared/conformance, copied from ../shared/conformance/cases),
//! against the binary: one fresh process per case, stdin closed after the
//! input, stdout compared line by line.

use crate::support;

use serde_json::Value;
use std::path::Path;
use support::{repo, PgDb, Run};

fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(s), _) if s == "*" => true,
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| subset(v, gv))),
        _ => want == got,
    }
}

fn same(mode: &str, want: &str, got: &str) -> bool {
    if mode == "exact" {
        return want == got;
    }
    match (
        serde_json::from_str::<Value>(want),
        serde_json::from_str::<Value>(got),
    ) {
        (Ok(w), Ok(g)) if mode == "json" => w == g,
        (Ok(w), Ok(g)) => subset(&w, &g),
        _ => false,
    }
}

/// Where a case's run keeps its state.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Memory,
    Sqlite,
    /// A schema of its own per case, in this database.
    Postgres(&'a PgDb),
}

/// Runs the cases in `dir`; returns one description per failing case.
fn run_cases(dir: &Path, mode: Mode<'_>) -> (usize, Vec<String>) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let lines = |key: &str| -> Vec<String> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect()
        };
        let mut run = match mode {
            Mode::Memory => Run::new(),
            Mode::Sqlite => Run::new().with_state(),
            Mode::Postgres(db) => {
                let schema = format!("case_{i}");
                Run::new().args(&["--state", &db.url(), "--schema", &schema])
            }
        };
        let mut args: Vec<String> = case.get("args").map_or_else(Vec::new, |_| lines("args"));
        if let Some(config) = case.get("config").and_then(Value::as_str) {
            // `config` passes the file with --config; drop the case's own placeholder pair.
            if let Some(i) = args.iter().position(|a| a == "{config}") {
                args.drain(i - 1..=i);
            }
            run = run.config(config);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let input = lines("input");
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        let out = run.args(&args).stdin(&input).go();
        let got: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let want = lines("expected");
        let compare = case
            .get("compare")
            .and_then(Value::as_str)
            .unwrap_or("exact");
        let name = path.file_name().unwrap().to_string_lossy();
        if got.len() != want.len() || want.iter().zip(&got).any(|(w, g)| !same(compare, w, g)) {
            failures.push(format!(
                "{name}:\n  want:\n    {}\n  got:\n    {}\n  stderr: {}",
                want.join("\n    "),
                got.join("\n    "),
                out.stderr.trim()
            ));
        }
    }
    (paths.len(), failures)
}

fn check(dir: &Path, mode: Mode<'_>) {
    let (count, failures) = run_cases(dir, mode);
    assert!(count > 0, "no cases in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn our_cases_pass() {
    check(&repo().join("tests/cases"), Mode::Memory);
}

#[test]
fn public_conformance_cases_pass() {
    check(&repo().join("tests/shared/conformance"), Mode::Memory);
}

/// The durable backend answers every case exactly as the in-memory one.
#[test]
fn every_case_passes_with_a_state_file_too() {
    check(&repo().join("tests/cases"), Mode::Sqlite);
    check(&repo().join("tests/shared/conformance"), Mode::Sqlite);
}

/// And so does PostgreSQL, each case in a schema of its own.
#[test]
fn every_case_passes_with_a_postgres_state_too() {
    let db = PgDb::new("cases");
    check(&repo().join("tests/cases"), Mode::Postgres(&db));
    let db = PgDb::new("conformance");
    check(
        &repo().join("tests/shared/conformance"),
        Mode::Postgres(&db),
    );
}
