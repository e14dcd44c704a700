//! `replay --rebuild`: a rebuilt model is built beside the stored one and
//! swapped in whole, only from a log that holds every event it must; a
//! rebuild stopped at any instant (SIGTERM, SIGKILL, a crash between any
//! two writes) leaves the old version or the new one, complete.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use support::{
    generated_events, replay_in_memory, stored_definition, stored_documents, stored_ids, Rng, Run,
    SmallDisk, TempDir, BIN, USERS_ORDERS,
};

/// USERS_ORDERS with the orders model changed: it needs a rebuild.
fn changed() -> String {
    let config = USERS_ORDERS.replace(
        "amount = \"$.payload.amount\" } }",
        "amount = \"$.payload.amount\", currency = { value = \"EUR\" } } }",
    );
    assert_ne!(config, USERS_ORDERS);
    config
}

const MODELS: [&str; 4] = [
    "user_listing",
    "orders",
    "user_order_stats",
    "applied_per_type",
];

/// Every model's documents in a state, read with SQL.
fn snapshot(state: &Path) -> BTreeMap<&'static str, BTreeMap<String, String>> {
    MODELS
        .iter()
        .map(|m| (*m, stored_documents(state, m)))
        .collect()
}

/// A state built by USERS_ORDERS from the first `processed` lines of a
/// stream, and the whole stream as the log to rebuild from.
struct Fixture {
    dir: TempDir,
    lines: Vec<String>,
    state: Vec<u8>,
    /// The state as built: its documents, processed ids, and orders' definition.
    before: BTreeMap<&'static str, BTreeMap<String, String>>,
    processed: HashSet<String>,
    old_definition: Option<String>,
    log: PathBuf,
    old: PathBuf,
    new: PathBuf,
}

impl Fixture {
    fn new(events: &str, processed: usize) -> Fixture {
        let dir = TempDir::new();
        let lines: Vec<String> = events.lines().map(str::to_owned).collect();
        let old = dir.write("old.toml", USERS_ORDERS);
        let new = dir.write("new.toml", &changed());
        let log = dir.write("log.ndjson", events);
        let state = dir.path().join("built.db");
        let head: Vec<&str> = lines[..processed].iter().map(String::as_str).collect();
        Run::new()
            .args(&[
                "--config",
                old.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .stdin(&head)
            .go()
            .success();
        let before = snapshot(&state);
        let processed = stored_ids(&state);
        let old_definition = stored_definition(&state, "orders");
        let state = std::fs::read(&state).unwrap();
        Fixture {
            dir,
            lines,
            state,
            before,
            processed,
            old_definition,
            log,
            old,
            new,
        }
    }

    /// A fresh copy of the built state.
    fn state(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        std::fs::write(&path, &self.state).unwrap();
        path
    }

    fn rebuild(&self, state: &Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["replay", "--config", self.new.to_str().unwrap()])
            .args(["--state", state.to_str().unwrap(), "--rebuild", "orders"])
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// `projector replay --config NEW --state STATE FLAGS... LOG`.
    fn replay(&self, state: &Path, flags: &[&str], log: &Path) -> Run {
        Run::new()
            .args(&["replay", "--config", self.new.to_str().unwrap()])
            .args(&["--state", state.to_str().unwrap()])
            .args(flags)
            .arg(log.to_str().unwrap())
    }

    /// Every read model of a state, as `run --dump` writes them.
    fn dump(&self, state: &Path) -> Value {
        let dump = self.dir.path().join("dump.json");
        Run::new()
            .args(&["--config", self.new.to_str().unwrap()])
            .args(&["--state", state.to_str().unwrap()])
            .args(&["--dump", dump.to_str().unwrap()])
            .go()
            .success();
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap()
    }

    /// What `config` builds from the first `n` lines of the log, in memory.
    fn expected(&self, config: &Path, n: usize) -> Value {
        let prefix = self
            .dir
            .write("prefix.ndjson", &(self.lines[..n].join("\n") + "\n"));
        let dump = self.dir.path().join("expected.json");
        replay_in_memory(config, &prefix, &dump);
        serde_json::from_str(&std::fs::read_to_string(dump).unwrap()).unwrap()
    }
}

/// Ids of the event lines, in order (`None` for other lines).
fn ids(lines: &[String]) -> Vec<Option<String>> {
    lines
        .iter()
        .map(|line| {
            let msg: Value = serde_json::from_str(line).unwrap();
            msg["body"]["event"]["id"].as_str().map(str::to_owned)
        })
        .collect()
}

/// The length of the log's prefix whose events the state holds as
/// processed: every id up to it is held, and none past it.
fn processed_prefix(lines: &[String], held: &HashSet<String>) -> usize {
    let ids = ids(lines);
    let end = ids
        .iter()
        .position(|id| id.as_ref().is_some_and(|id| !held.contains(id)))
        .unwrap_or(ids.len());
    let within: HashSet<&String> = ids[..end].iter().flatten().collect();
    assert_eq!(
        within.len(),
        held.len(),
        "the state holds processed ids beyond line {end}, with a gap before them"
    );
    end
}

/// The state after a stopped rebuild holds the old version or the new one,
/// complete: with the old definition, every model exactly as before; with
/// the new one, every model exactly what the new configuration builds from
/// the events the state holds as processed.
fn check_old_or_new(f: &Fixture, state: &Path) -> &'static str {
    if stored_definition(state, "orders") == f.old_definition {
        assert!(snapshot(state) == f.before, "the old version is not whole");
        assert!(
            stored_ids(state) == f.processed,
            "the processed ids changed"
        );
        return "old";
    }
    let held = stored_ids(state);
    let n = processed_prefix(&f.lines, &held);
    let got = f.dump(state);
    assert!(
        got == f.expected(&f.new, n),
        "the new version is not what the log's first {n} lines build"
    );
    "new"
}

fn generated() -> &'static str {
    static EVENTS: OnceLock<String> = OnceLock::new();
    EVENTS.get_or_init(|| generated_events(4000, 400, 11))
}

/// A stream long enough that a signal sent as the rebuild starts lands
/// while it reads.
fn long_stream() -> &'static str {
    static EVENTS: OnceLock<String> = OnceLock::new();
    EVENTS.get_or_init(|| generated_events(60_000, 3000, 5))
}

#[test]
fn a_rebuild_interrupted_by_sigterm_leaves_the_old_version_whole() {
    let f = Fixture::new(long_stream(), long_stream().lines().count());
    for (config, stale) in [(&f.old, false), (&f.new, true)] {
        let state = f.state("s.db");
        let before = snapshot(&state);
        let mut child = Command::new(BIN)
            .args(["replay", "--config", config.to_str().unwrap()])
            .args(["--state", state.to_str().unwrap(), "--rebuild", "orders"])
            .arg(&f.log)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("replay: rebuilding orders") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the rebuild did not start"
            );
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        assert_eq!(status.code(), Some(143), "{rest}");
        assert!(
            rest.contains("replay: SIGTERM: stopped at line ")
                && rest.contains("orders was not rebuilt"),
            "{rest}"
        );
        assert_eq!(snapshot(&state), before);

        // The next run serves the old version whole, or, where it was
        // already stale, refuses it as before.
        let out = Run::new()
            .args(&[
                "--config",
                config.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .go();
        match stale {
            false => {
                out.success();
            }
            true => {
                out.code_is(78).stderr_has("  orders            changed");
            }
        }
    }
}

#[test]
fn a_log_that_lacks_processed_events_is_refused_unless_allowed() {
    let f = Fixture::new(generated(), 3000);
    let state = f.state("s.db");
    let before = snapshot(&state);
    let empty = f.dir.write("empty.ndjson", "");
    let orders_placed = {
        let mut seen = HashSet::new();
        f.lines[..3000]
            .iter()
            .filter(|l| l.contains("\"OrderPlaced\""))
            .filter_map(|l| ids(std::slice::from_ref(l)).pop().flatten())
            .filter(|id| seen.insert(id.clone()))
            .count()
    };
    let rebuild = |log: &Path, more: &[&str]| {
        let flags: Vec<&str> = ["--rebuild", "orders"]
            .iter()
            .chain(more)
            .copied()
            .collect();
        f.replay(&state, &flags, log).go()
    };
    rebuild(&empty, &[]).code_is(65).stderr_has(&format!(
        "projector: the log lacks {orders_placed} of the {orders_placed} events it must hold to rebuild orders: the events the state has processed for orders; nothing was changed."
    ));
    assert_eq!(snapshot(&state), before);
    Run::new()
        .args(&[
            "--config",
            f.new.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .go()
        .code_is(78);

    // Half the log lacks some; with --allow-incomplete the rebuild goes in.
    let half = f
        .dir
        .write("half.ndjson", &(f.lines[..1500].join("\n") + "\n"));
    rebuild(&half, &[]).code_is(65);
    assert_eq!(snapshot(&state), before);
    let out = rebuild(&half, &["--allow-incomplete"]);
    out.success()
        .stderr_has("(--allow-incomplete: the log lacked ");
    let expected = f.expected(&f.new, 1500);
    assert_eq!(
        stored_documents(&state, "orders").len(),
        expected["orders"].as_object().unwrap().len()
    );
    Run::new()
        .args(&[
            "plan",
            "--config",
            f.new.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .go()
        .success();
}

#[test]
fn a_rebuild_counts_what_it_applies_and_then_applies_the_new_events_to_every_model() {
    let f = Fixture::new(generated(), 3000);
    let state = f.state("s.db");
    let out = f.replay(&state, &["--rebuild", "orders"], &f.log).go();
    out.success();
    let placed: HashSet<String> = f.lines[..3000]
        .iter()
        .filter(|l| l.contains("\"OrderPlaced\""))
        .filter_map(|l| ids(std::slice::from_ref(l)).pop().flatten())
        .collect();
    out.stderr_has(&format!(
        "replay: swapped in orders: {} events applied to it\n",
        placed.len()
    ));
    // Applied: the rebuilt model's events, then every new event once.
    let new: HashSet<String> = ids(&f.lines[3000..])
        .into_iter()
        .flatten()
        .filter(|id| !f.processed.contains(id))
        .collect();
    out.stderr_has(&format!("; {} applied, ", placed.len() + new.len()));

    let got = f.dump(&state);
    assert!(got == f.expected(&f.new, f.lines.len()));
}

enum Stop {
    Kill(Duration),
    Term(Duration),
    CrashAtStep(u64),
}

/// Rebuilds orders on a copy of the state, stopped as `stop` says, then
/// checks the old or the new version is whole, then finishes the job and
/// checks the result equals a clean build of the whole log.
fn stop_a_rebuild(f: &Fixture, stop: Stop, seed: u64) -> &'static str {
    let state = f.state("s.db");
    let mut command = f.rebuild(&state);
    if let Stop::CrashAtStep(n) = stop {
        command.env("PROJECTOR_TEST_CRASH_AT_STEP", n.to_string());
    }
    let mut child = command.spawn().unwrap();
    match stop {
        Stop::Kill(after) => {
            std::thread::sleep(after);
            let _ = child.kill();
        }
        Stop::Term(after) => {
            std::thread::sleep(after);
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        Stop::CrashAtStep(_) => {}
    }
    let status = child.wait().unwrap();
    if let Stop::Term(_) = stop {
        // Killed outright only by a signal sent before its handler was in
        // place, as the process started.
        use std::os::unix::process::ExitStatusExt;
        assert!(
            matches!(status.code(), Some(0 | 143)) || status.signal() == Some(15),
            "{status:?} (seed {seed})"
        );
    }
    let found = check_old_or_new(f, &state);

    // Whatever was left, running the same command again finishes the job.
    let rebuild = match found {
        "old" => vec!["--rebuild", "orders"],
        _ => vec![],
    };
    f.replay(&state, &rebuild, &f.log).go().success();
    let got = f.dump(&state);
    assert!(
        got == f.expected(&f.new, f.lines.len()),
        "the finished state differs from a clean build (seed {seed})"
    );
    found
}

/// Kills land before, during and after the swap: the swap's own writes
/// (a crash between any two), and the batches of new events after it.
#[test]
fn a_rebuild_killed_at_any_instant_leaves_the_old_or_the_new_version_whole() {
    let f = Fixture::new(generated(), 3000);
    let mut rng = Rng::seeded("rebuild crash test");
    let seed = rng.0;
    let mut found = BTreeMap::new();
    for trial in 0..36 {
        let stop = match trial % 3 {
            0 => Stop::Kill(Duration::from_millis(rng.below(80))),
            1 => Stop::Term(Duration::from_millis(rng.below(80))),
            _ => Stop::CrashAtStep(1 + rng.below(150)),
        };
        *found.entry(stop_a_rebuild(&f, stop, seed)).or_insert(0) += 1;
    }
    eprintln!("versions found after a stop: {found:?}");
    assert!(
        found.get("old").is_some_and(|n| *n > 0),
        "no stop left the old version (seed {seed})"
    );
    assert!(
        found.get("new").is_some_and(|n| *n > 0),
        "no stop left the new version (seed {seed})"
    );
}

/// A disk that fills during the swap leaves the old version whole.
#[test]
fn a_rebuild_that_fills_the_disk_leaves_the_old_version_whole() {
    let f = Fixture::new(generated(), 3000);
    let Some(disk) = SmallDisk::mount(f.dir.path(), "8m") else {
        support::skipped("this process cannot mount a tmpfs to fill up");
        return;
    };
    let state = disk.0.join("s.db");
    std::fs::write(&state, &f.state).unwrap();
    // Room to open the state, not to write the rebuilt model beside it.
    disk.fill(96 * 1024);
    let out = f.replay(&state, &["--rebuild", "orders"], &f.log).go();
    out.code_is(74).stderr_has("disk full");
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    assert_eq!(check_old_or_new(&f, &state), "old");
}
