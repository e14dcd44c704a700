//! Cluster instances cut off from their broker or their database (through
//! a proxy of the test's own), and a broker restarted: an instance that
//! cannot read its stream gives its units up to the others and claims
//! again once it can; consumption resumes soon after a broker restart;
//! SIGTERM ends an instance within seconds whatever it cannot reach, and
//! nothing committed is lost or applied twice.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::{generated_events, unit_checkpoints, NatsServer, PgDb, Run, TempDir};

const USERS_ORDERS: &str = include_str!("../bench/users-orders.toml");

/// The lease every instance here takes.
const LEASE_SECONDS: u64 = 2;

const MODELS: [&str; 3] = ["user_listing", "orders", "user_order_stats"];

type Models = BTreeMap<String, BTreeMap<String, Value>>;

/// A broker, a database, a directory with the benchmark's configuration,
/// and a generated stream with the read models memory builds from it.
struct Setup {
    nats: NatsServer,
    db: PgDb,
    dir: TempDir,
    config: PathBuf,
    lines: Vec<String>,
    expected: Models,
}

impl Setup {
    fn new(what: &str, events: usize, seed: u64) -> Setup {
        let dir = TempDir::new();
        let config = dir.write("c.toml", USERS_ORDERS);
        let events = generated_events(events, 200, seed);
        let log = dir.write("events.ndjson", &events);
        let dump = dir.path().join("memory.json");
        support::replay_in_memory(&config, &log, &dump);
        Setup {
            nats: NatsServer::start(),
            db: PgDb::new(what),
            expected: serde_json::from_str(&std::fs::read_to_string(dump).unwrap()).unwrap(),
            lines: events.lines().map(str::to_owned).collect(),
            dir,
            config,
        }
    }

    /// Starts an instance consuming `source` into `state`.
    fn start(&self, name: &str, source: &str, state: &str) -> Instance {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(support::BIN)
            .args(["run", "--config", self.config.to_str().unwrap()])
            .args(["--state", state, "--source", source])
            .env("PROJECTOR_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance { child, log }
    }

    fn source(&self) -> String {
        self.nats.stream("EVENTS")
    }

    /// A proxy in front of the broker.
    fn nats_proxy(&self) -> Proxy {
        Proxy::start(SocketAddr::from(([127, 0, 0, 1], self.nats.port)))
    }

    /// Publishes lines `range` of the stream (the end past the last one:
    /// up to the last one); returns its last sequence.
    fn publish(&self, range: std::ops::Range<usize>) -> u64 {
        let end = range.end.min(self.lines.len());
        let lines: Vec<&str> = self.lines[range.start..end]
            .iter()
            .map(String::as_str)
            .collect();
        Run::new()
            .args(&["publish", "--to", &self.source()])
            .config(USERS_ORDERS)
            .stdin(&lines)
            .go()
            .success();
        self.nats.messages("EVENTS").len() as u64
    }

    /// Waits until every unit has applied the stream up to `last`;
    /// returns how long that took.
    fn caught_up(&self, last: u64, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let at = unit_checkpoints(&self.db);
            if !at.is_empty() && at.iter().all(|c| *c == Some(last)) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the units' checkpoints are {at:?}, not all {last}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The read models are those of an in-memory run of the whole stream:
    /// every event applied once.
    fn assert_all_applied_once(&self, what: &str) {
        for model in MODELS {
            let got = self.db.view("projector", model);
            assert!(
                got == self.expected[model],
                "{what}: read model {model} differs from the in-memory run's ({} documents, {} expected)",
                got.len(),
                self.expected[model].len()
            );
        }
    }

    /// The units each instance owns, by the pid in its holder's name.
    fn owners(&self) -> BTreeMap<u32, usize> {
        let out = Run::new()
            .args(&["status", "--config", self.config.to_str().unwrap()])
            .args(&["--source", &self.source(), "--state", &self.db.url()])
            .args(&["--format", "json"])
            .go();
        out.success();
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        let mut owners = BTreeMap::new();
        for unit in report["units"].as_array().unwrap() {
            if let Some(owner) = unit["owner"].as_str() {
                let pid = owner.split_whitespace().nth(2).unwrap().parse().unwrap();
                *owners.entry(pid).or_default() += 1;
            }
        }
        owners
    }

    /// Waits until the units are owned as `want` says (`(pid, units)`, in
    /// any order); returns how long that took.
    fn owned(&self, want: &[(u32, usize)], within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let got = self.owners();
            let fits = |shares: &[(u32, usize)]| {
                got.len() == shares.len() && shares.iter().all(|(p, n)| got.get(p) == Some(n))
            };
            let mut swapped = want.to_vec();
            if want.len() == 2 {
                (swapped[0].1, swapped[1].1) = (want[1].1, want[0].1);
            }
            if fits(want) || fits(&swapped) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "units are owned {got:?}, not {want:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until its log holds `text`.
    fn wait_for_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "not logged: {text}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM once it claimed a unit; its exit status and how long it
    /// took to exit (panics past `within`).
    fn terminate(self, within: Duration) -> (Option<i32>, Duration, String) {
        self.terminate_after("claimed unit", within)
    }

    /// SIGTERM once it logged `ready`, as [`Instance::terminate`].
    fn terminate_after(mut self, ready: &str, within: Duration) -> (Option<i32>, Duration, String) {
        self.wait_for_log(ready, Duration::from_secs(30));
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), sent.elapsed(), self.log());
            }
            assert!(
                sent.elapsed() < within,
                "not exited {within:?} after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(log: &str, text: &str) -> usize {
    log.matches(text).count()
}

/// What an instance logs when it loses its stream, and when it reads it
/// again.
const STREAM_LOST: &str = "cannot read the stream for longer than its lease";
const STREAM_BACK: &str = "the stream answers again";

#[test]
fn an_instance_cut_off_from_its_stream_gives_its_units_up_and_claims_again_once_healed() {
    let setup = Setup::new("part_nats_cut", 3000, 31);
    let last = setup.publish(0..1000);
    let proxy = setup.nats_proxy();
    let a = setup.start(
        "a",
        &proxy.url(&setup.source(), setup.nats.port),
        &setup.db.url(),
    );
    a.wait_for_log("claimed unit", Duration::from_secs(30));
    let b = setup.start("b", &setup.source(), &setup.db.url());
    let shared = [(a.pid(), 3), (b.pid(), 2)];
    setup.owned(&shared, Duration::from_secs(20));
    setup.caught_up(last, Duration::from_secs(60));

    // Cut off from the broker (not from the database), a gives its units
    // up once its lease has passed; b takes them and applies what comes.
    proxy.cut();
    let took = setup.owned(&[(b.pid(), 5)], Duration::from_secs(20));
    println!("units taken over {:.1} s after the cut", took.as_secs_f64());
    let last = setup.publish(1000..2000);
    setup.caught_up(last, Duration::from_secs(60));
    a.wait_for_log(STREAM_LOST, Duration::from_secs(5));
    assert!(!a.log().contains(STREAM_BACK), "{}", a.log());

    // Healed, it claims its share again.
    proxy.heal();
    setup.owned(&shared, Duration::from_secs(20));
    let last = setup.publish(2000..usize::MAX);
    setup.caught_up(last, Duration::from_secs(60));
    setup.assert_all_applied_once("after a cut and its healing");
    let log = a.log();
    assert_eq!(count(&log, STREAM_LOST), 1, "{log}");
    assert_eq!(count(&log, STREAM_BACK), 1, "{log}");
    for instance in [a, b] {
        let (code, _, log) = instance.terminate(Duration::from_secs(15));
        assert_eq!(code, Some(0), "{log}");
    }
    setup.assert_all_applied_once("at the end");
}

#[test]
fn consumption_resumes_soon_after_a_broker_restart() {
    let mut setup = Setup::new("part_restart", 1500, 32);
    let last = setup.publish(0..500);
    let instance = setup.start("a", &setup.source(), &setup.db.url());
    setup.caught_up(last, Duration::from_secs(60));
    for (round, range) in [(1, 500..1000), (2, 1000..usize::MAX)] {
        // Killed, the broker comes back on its port with its store.
        setup.nats.restart(Duration::from_millis(500));
        let back = Instant::now();
        let last = setup.publish(range);
        setup.caught_up(last, Duration::from_secs(30));
        let resumed = back.elapsed();
        println!(
            "restart {round}: the events published were applied {:.2} s after the broker answered",
            resumed.as_secs_f64()
        );
        assert!(resumed < Duration::from_secs(10), "{}", instance.log());
    }
    setup.assert_all_applied_once("after two broker restarts");
    let (code, _, log) = instance.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{log}");
}

/// Runs an instance through `nats` and `pg` (each a proxy or not), cuts
/// `cut` once it caught up and a batch more was published, and sends it
/// SIGTERM: it exits 0 within 10 s, and a new instance finds everything
/// committed and applies the rest once.
fn terminated_while_cut(setup: &Setup, source: &str, state: &str, cut: &Proxy, what: &str) {
    let last = setup.publish(0..500);
    let instance = setup.start(what, source, state);
    setup.caught_up(last, Duration::from_secs(60));
    cut.cut();
    setup.publish(500..700);
    std::thread::sleep(Duration::from_millis(300));
    let committed = unit_checkpoints(&setup.db);
    let (code, took, log) = instance.terminate(Duration::from_secs(15));
    println!(
        "SIGTERM with {what} cut off: exited in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(10), "{took:?}: {log}");
    assert_eq!(code, Some(0), "{log}");
    cut.heal();
    let after = unit_checkpoints(&setup.db);
    assert!(
        after.iter().zip(&committed).all(|(a, c)| a >= c),
        "{committed:?} then {after:?}"
    );
    let again = setup.start(&format!("{what} again"), &setup.source(), &setup.db.url());
    let last = setup.publish(700..usize::MAX);
    setup.caught_up(last, Duration::from_secs(60));
    setup.assert_all_applied_once(&format!("after SIGTERM with {what} cut off"));
    again.terminate(Duration::from_secs(15));
}

#[test]
fn sigterm_ends_an_instance_within_seconds_while_its_database_is_cut_off() {
    let setup = Setup::new("part_term_pg", 1000, 33);
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 5432)));
    let state = proxy.url(&setup.db.url(), 5432);
    terminated_while_cut(&setup, &setup.source(), &state, &proxy, "the database");
}

#[test]
fn sigterm_ends_an_instance_within_seconds_while_its_broker_is_cut_off() {
    let setup = Setup::new("part_term_nats", 1000, 34);
    let proxy = setup.nats_proxy();
    let source = proxy.url(&setup.source(), setup.nats.port);
    terminated_while_cut(&setup, &source, &setup.db.url(), &proxy, "the broker");
}

#[test]
fn sigterm_ends_an_instance_that_starts_while_its_database_is_cut_off() {
    let setup = Setup::new("part_term_start", 200, 35);
    setup.publish(0..usize::MAX);
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 5432)));
    proxy.cut();
    let state = proxy.url(&setup.db.url(), 5432);
    let instance = setup.start("a", &setup.source(), &state);
    instance.wait_for_log("projector: consuming ", Duration::from_secs(30));
    // Past the stream's lookup, into the first connection's retries.
    std::thread::sleep(Duration::from_secs(1));
    let (code, took, log) = instance.terminate_after("consuming ", Duration::from_secs(15));
    println!(
        "SIGTERM while starting with the database cut off: exited in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(10), "{took:?}: {log}");
    assert_eq!(code, Some(0), "{log}");
}
