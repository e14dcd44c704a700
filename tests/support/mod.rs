//! Drives the real `projector` binary: write stdin, compare stdout and stderr in full.
#![allow(dead_code)]

pub mod proxy;
pub mod versions;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_projector");

/// The repository root, where the bundled `projections.toml` lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "projector-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary started in the repository with piped stdin, stdout and stderr,
/// for tests that talk to it while it runs.
pub fn spawn() -> std::process::Child {
    Command::new(BIN)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the projector binary starts")
}

#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// One run of the binary, built fluently:
/// `Run::new().config(toml).stdin(lines).go().stdout_is(expected)`.
pub struct Run {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    cwd: PathBuf,
    dir: TempDir,
}

impl Run {
    pub fn new() -> Run {
        Run {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Vec::new(),
            cwd: repo(),
            dir: TempDir::new(),
        }
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, name: &str, value: &str) -> Run {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Run {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Run {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes `toml` to a temporary file and passes `--config` with it.
    pub fn config(self, toml: &str) -> Run {
        let path = self.dir.write("projections.toml", toml);
        self.args(&["--config", path.to_str().unwrap()])
    }

    /// Keeps the state in a fresh SQLite file (`--state`).
    pub fn with_state(self) -> Run {
        let path = self.dir.path().join("state.db");
        self.args(&["--state", path.to_str().unwrap()])
    }

    /// Runs in an empty temporary directory instead of the repository.
    pub fn in_empty_dir(mut self) -> Run {
        self.cwd = self.dir.path().to_owned();
        self
    }

    /// Runs in `dir` instead of the repository.
    pub fn cwd(mut self, dir: &Path) -> Run {
        self.cwd = dir.to_owned();
        self
    }

    pub fn stdin(mut self, lines: &[&str]) -> Run {
        for line in lines {
            self.stdin.extend_from_slice(line.as_bytes());
            self.stdin.push(b'\n');
        }
        self
    }

    pub fn stdin_bytes(mut self, bytes: &[u8]) -> Run {
        self.stdin.extend_from_slice(bytes);
        self
    }

    pub fn go(self) -> Output {
        let mut child = Command::new(BIN)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the projector binary starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Output {
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }
}

impl Output {
    pub fn stdout_is(&self, expected: &[&str]) -> &Output {
        let want: String = expected.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(
            self.stdout, want,
            "stdout differs; stderr was:\n{}",
            self.stderr
        );
        self
    }

    pub fn stderr_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stderr, expected, "stderr differs");
        self
    }

    pub fn code_is(&self, code: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stderr was:\n{}",
            self.stderr
        );
        self
    }

    pub fn success(&self) -> &Output {
        self.code_is(0)
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    pub fn stdout_has(&self, text: &str) -> &Output {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}; it was:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Output {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}; it was:\n{}",
            self.stderr
        );
        self
    }
}

/// A users-orders stream from the event generator (tests/shared): every
/// line an envelope, 10% of events delivered twice.
pub fn generated_events(events: usize, users: usize, seed: u64) -> String {
    let out = Command::new("python3")
        .arg(repo().join("tests/shared/gen_events.py"))
        .args([
            "--events",
            &events.to_string(),
            "--users",
            &users.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .expect("python3 runs the event generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every document of `model` in the state file, read with SQL: key → JSON text.
pub fn stored_documents(state: &Path, model: &str) -> std::collections::BTreeMap<String, String> {
    let db =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut select = db
        .prepare("SELECT key, doc FROM documents WHERE model = ?1")
        .unwrap();
    let rows = select
        .query_map([model], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// The definition the state holds for `model`, if any.
pub fn stored_definition(state: &Path, model: &str) -> Option<String> {
    let db =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.query_row(
        "SELECT definition FROM models WHERE name = ?1",
        [model],
        |r| r.get(0),
    )
    .ok()
}

/// The event ids the state holds as processed (none when it has no schema yet).
pub fn stored_ids(state: &Path) -> std::collections::HashSet<String> {
    let Ok(db) =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Default::default();
    };
    let Ok(mut select) = db.prepare("SELECT id FROM processed_events") else {
        return Default::default();
    };
    let ids = select
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}

/// `text` with every duration written as `in 0.12 s` turned into `in <t> s`,
/// so that lines which say how long something took compare exactly.
pub fn times_masked(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(" in ") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let digits = rest
            .find(" s")
            .filter(|end| rest[..*end].chars().all(|c| c.is_ascii_digit() || c == '.'));
        if let Some(end) = digits.filter(|end| *end > 0) {
            out.push_str("<t>");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The users-orders read models, plus a count of applied events per type.
pub const USERS_ORDERS: &str = r#"
[[model]]
name = "user_listing"
key = "$.payload.id"
on.UserCreated = { put = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserUpdated = { merge = { id = "$.payload.id", name = "$.payload.name", email = "$.payload.email" } }
on.UserDeleted = { delete = true }

[[model]]
name = "orders"
key = "$.payload.order_id"
on.OrderPlaced = { put = { order_id = "$.payload.order_id", user_id = "$.payload.user_id", amount = "$.payload.amount" } }

[[model]]
name = "user_order_stats"
key = "$.payload.user_id"
on.OrderPlaced = { increment = { order_count = 1, total_spent = "$.payload.amount" }, merge = { last_order_id = "$.payload.order_id" } }

[[model]]
name = "applied_per_type"
key = "$.type"
on.UserCreated = { increment = { events = 1 } }
on.UserUpdated = { increment = { events = 1 } }
on.UserDeleted = { increment = { events = 1 } }
on.OrderPlaced = { increment = { events = 1 } }
"#;

/// One UserCreated event, id e1, for the bundled `projections.toml`.
pub const CREATED: &str = r#"{"type":"event","msg_id":1,"event":{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann"}}}"#;

/// `projector replay --config C --dump DUMP LOG`, in memory.
pub fn replay_in_memory(config: &Path, log: &Path, dump: &Path) {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    Run::new()
        .args(&[
            "replay",
            "--config",
            &path(config),
            "--dump",
            &path(dump),
            &path(log),
        ])
        .go()
        .success();
}

/// A small tmpfs, or `None` where this process may not mount one.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let at = dir.join("disk");
        std::fs::create_dir_all(&at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .ok()?;
        mounted.status.success().then_some(SmallDisk(at))
    }

    /// Fills what is left of the disk but `keep` bytes.
    pub fn fill(&self, keep: u64) {
        let stat = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&stat.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let filler = vec![0u8; avail.saturating_sub(keep) as usize];
        let _ = std::fs::write(self.0.join("filler"), filler);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A small xorshift generator: what a randomized test draws varies from run
/// to run, and the seed is printed so that a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator seeded from the clock; the seed is printed as `what seed: N`.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("{what} seed: {seed}");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The local PostgreSQL server the tests use.
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own for one test, dropped after it.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn new(what: &str) -> PgDb {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("projector_test_{what}_{}_{n}", std::process::id());
        let mut admin = pg_admin();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .expect("the test database is created");
        }
        PgDb { name }
    }

    /// The URL `--state` takes.
    pub fn url(&self) -> String {
        format!("{PG_SERVER}/{}", self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("the test database answers")
    }

    /// Every document of `model`, read through its view: key → doc (as
    /// PostgreSQL prints jsonb), in `schema`.
    pub fn view(
        &self,
        schema: &str,
        model: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let sql = format!("SELECT key, doc::text FROM \"{schema}\".\"{model}\"");
        self.client()
            .query(&sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                let doc: String = r.get(1);
                (r.get(0), serde_json::from_str(&doc).unwrap())
            })
            .collect()
    }

    /// The event ids the state in `schema` holds as processed (none before
    /// it exists).
    pub fn ids(&self, schema: &str) -> std::collections::HashSet<String> {
        let sql = format!("SELECT id FROM \"{schema}\"._projector_processed");
        match self.client().query(&sql, &[]) {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(_) => Default::default(),
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = pg_admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn pg_admin() -> postgres::Client {
    postgres::Client::connect(&format!("{PG_SERVER}/postgres"), postgres::NoTls)
        .expect("PostgreSQL answers on 127.0.0.1:5432 (see .ci/run)")
}

/// How a delivery run ends: killed with SIGKILL after a delay, aborted by
/// the projector itself just before its n-th write step
/// (PROJECTOR_TEST_CRASH_AT_STEP), or left to finish.
pub enum Stop {
    KillAfter(std::time::Duration),
    CrashAtStep(u64),
    Finish,
}

/// Delivers `events` to `projector ARGS` over time, as a bus would (`per_write`
/// lines at a time, `pause` apart), so that a run commits many batches; runs
/// `meanwhile` while it goes on, then stops it as `stop` says. Returns the
/// ids replied to as applied, and whether the run was stopped (or failed)
/// while running.
pub fn deliver(
    args: &[&str],
    events: &str,
    stop: Stop,
    (per_write, pause): (usize, std::time::Duration),
    meanwhile: impl FnOnce(),
) -> (Vec<String>, bool) {
    use std::io::BufRead;
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Stop::CrashAtStep(n) = stop {
        command.env("PROJECTOR_TEST_CRASH_AT_STEP", n.to_string());
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: Vec<String> = events.lines().map(|l| format!("{l}\n")).collect();
    let writer = std::thread::spawn(move || {
        for chunk in input.chunks(per_write) {
            if stdin.write_all(chunk.concat().as_bytes()).is_err() {
                break;
            }
            std::thread::sleep(pause);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let reply: serde_json::Value = serde_json::from_str(&line).ok()?;
                (reply["type"] == "read_models_updated")
                    .then(|| reply["event_id"].as_str().unwrap().to_owned())
            })
            .collect::<Vec<_>>()
    });
    meanwhile();
    let stopped = match stop {
        Stop::KillAfter(delay) => {
            std::thread::sleep(delay);
            let running = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            child.wait().unwrap();
            running
        }
        Stop::CrashAtStep(_) | Stop::Finish => !child.wait().unwrap().success(),
    };
    writer.join().unwrap();
    (reader.join().unwrap(), stopped)
}

/// A nats-server of its own with JetStream, on a free port, its store in a
/// temporary directory; killed when dropped.
pub struct NatsServer {
    pub port: u16,
    child: std::process::Child,
    _store: TempDir,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = TempDir::new();
        let child = NatsServer::spawn(port, store.path());
        NatsServer {
            port,
            child,
            _store: store,
        }
    }

    fn spawn(port: u16, store: &Path) -> std::process::Child {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (Debian's nats-server package)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "nats-server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// Kills the server and starts it again on the same port and store,
    /// `down` later.
    pub fn restart(&mut self, down: std::time::Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.child = NatsServer::spawn(self.port, self._store.path());
    }

    /// Kills the server (for good).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How many messages the stream `stream` holds (0 before it exists).
    pub fn count(&self, stream: &str) -> u64 {
        self.with_jetstream(|js| async move {
            match js.get_stream(stream).await {
                Ok(mut stream) => stream.info().await.map_or(0, |i| i.state.messages),
                Err(_) => 0,
            }
        })
    }

    /// How many consumers the stream `stream` has.
    pub fn consumers(&self, stream: &str) -> usize {
        self.with_jetstream(|js| async move {
            let mut stream = js.get_stream(stream).await.unwrap();
            stream.info().await.unwrap().state.consumer_count
        })
    }

    /// `nats://127.0.0.1:PORT/STREAM`.
    pub fn stream(&self, stream: &str) -> String {
        format!("nats://127.0.0.1:{}/{stream}", self.port)
    }

    /// Publishes `payloads` as they are, with a plain client, on the
    /// subject `STREAM.events` of a stream it creates if need be; returns
    /// the stream's last sequence.
    pub fn publish_raw(&self, stream: &str, payloads: &[Vec<u8>]) -> u64 {
        self.with_jetstream(|js| async move {
            let subject = format!("{stream}.events");
            let mut created = js
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: stream.to_owned(),
                    subjects: vec![subject.clone()],
                    ..Default::default()
                })
                .await
                .unwrap();
            for payload in payloads {
                js.publish(subject.clone(), payload.clone().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
            created.info().await.unwrap().state.last_sequence
        })
    }

    /// Runs `work` with a JetStream context on this server, to its end.
    fn with_jetstream<T, F>(&self, work: impl FnOnce(async_nats::jetstream::Context) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = async_nats::connect(format!("127.0.0.1:{}", self.port))
                .await
                .unwrap();
            work(async_nats::jetstream::new(client)).await
        })
    }

    /// Deletes the stream `stream`, messages and all.
    pub fn delete_stream(&self, stream: &str) {
        self.with_jetstream(|js| async move {
            js.delete_stream(stream).await.unwrap();
        })
    }

    /// Every message the stream holds, in order: its Nats-Msg-Id and payload.
    pub fn messages(&self, stream: &str) -> Vec<(Option<String>, String)> {
        self.with_jetstream(|js| async move {
            let mut stream = js.get_stream(stream).await.unwrap();
            let count = stream.info().await.unwrap().state.messages;
            let mut messages = Vec::new();
            for seq in 1..=count {
                let m = stream.get_raw_message(seq).await.unwrap();
                let id = m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned());
                messages.push((id, String::from_utf8_lossy(&m.payload).into_owned()));
            }
            messages
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The schemas of a cluster's serving units (main schema `projector`).
pub const SERVING: &str = "SELECT schema FROM projector._projector_units
     JOIN projector._projector_versions USING (version) WHERE status = 'serving'";

/// Each serving unit's checkpoint in a cluster's database (none before its
/// state exists).
pub fn unit_checkpoints(db: &PgDb) -> Vec<Option<u64>> {
    let mut client = db.client();
    let Ok(rows) = client.query(SERVING, &[]) else {
        return Vec::new();
    };
    rows.iter()
        .map(|r| {
            let schema: String = r.get(0);
            let sql =
                format!("SELECT value FROM \"{schema}\"._projector_meta WHERE name = 'checkpoint'");
            client
                .query_opt(&sql, &[])
                .ok()
                .flatten()
                .and_then(|r| r.get::<_, String>(0).parse().ok())
        })
        .collect()
}

/// Models for [`surrogate_lines`]: `Put` puts `v` into `values`, `Keyed`
/// into `keyed`.
pub const SURROGATE_MODELS: &str = r#"
[event_id]
path = "$.id"

[[model]]
name = "values"
key = "$.payload.k"
on.Put = { put = { v = "$.payload.v" } }

[[model]]
name = "keyed"
key = "$.payload.k"
on.Keyed = { put = { v = "$.payload.v" } }
"#;

/// Lines that put lone surrogates, U+D7FF, U+10FFFF and NUL characters in
/// ids, event types, subscriptions, document keys, object keys and values.
pub fn surrogate_lines(from: u32) -> Vec<String> {
    let keys = [
        r#""\ud800""#,
        r#""\ue000""#,
        r#""\udbff\udfff""#,
        r#""\ud7ff""#,
        "\"\u{D7FF}\\ud800\"",
        r#""a""#,
        r#""\u0000x""#,
        r#""\u0001""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\udfff\uffff""#,
        r#""\uffff""#,
    ];
    let mut lines = vec![
        r#"{"type":"subscribe","msg_id":1,"event_types":["Put","Keyed","Odd\udc00"]}"#.to_owned(),
    ];
    for (i, key) in keys.iter().enumerate() {
        let n = from + i as u32;
        lines.push(format!(
            r#"{{"type":"event","msg_id":{n},"event":{{"type":"Keyed","id":"k\udc{:02x}{n}","payload":{{"k":{key},"v":{{{key}: {n}, "\ue000": "\ud800\u0000", "\udbff\udfff": [{key}]}}}}}}}}"#,
            i
        ));
        lines.push(format!(
            r#"{{"type":"event","msg_id":{n},"event":{{"type":"Put","id":"p\ud7ff{n}","payload":{{"k":{key},"v":{key}}}}}}}"#
        ));
    }
    lines.push(format!(
        r#"{{"type":"event","msg_id":{from},"event":{{"type":"Odd\udc00","id":"odd{from}\ud800","payload":{{}}}}}}"#
    ));
    lines
}

pub fn as_strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// The pages of `keyed`, three documents at a time, each asked after the
/// last key of the one before (as the first page names it).
pub fn keyed_pages(msg_id: u32, afters: &[&str]) -> Vec<String> {
    let mut lines = vec![r#"{"type":"query","msg_id":0,"model":"keyed","limit":3}"#.to_owned()];
    for (i, after) in afters.iter().enumerate() {
        lines.push(format!(
            r#"{{"type":"query","msg_id":{},"model":"keyed","limit":3,"after":{after}}}"#,
            msg_id + i as u32
        ));
    }
    lines
}

/// The subscriptions or row counts of a state's metadata with the type
/// names in the earlier held form of lone surrogates.
pub fn meta_as_earlier(text: &str) -> String {
    use projector::value::surrogate::earlier;
    let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
    match &mut value {
        serde_json::Value::Array(names) => names
            .iter_mut()
            .for_each(|n| *n = earlier(n.as_str().unwrap()).into()),
        rows => {
            let types = rows["processed_types"].as_object().unwrap();
            rows["processed_types"] = types
                .iter()
                .map(|(name, n)| (earlier(name).into_owned(), n.clone()))
                .collect();
        }
    }
    value.to_string()
}

/// `projector run --config CONFIG --state DB --source STREAM ARGS` (leases
/// of 2 s, `env` added) until `done` holds, then SIGTERM: it must exit 0.
/// Returns its log.
pub fn run_until(
    nats: &NatsServer,
    db: &PgDb,
    config: &Path,
    (args, env): (&[&str], &[(&str, &str)]),
    done: impl Fn() -> bool,
) -> String {
    let dir = TempDir::new();
    let log = dir.path().join("run.log");
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--state", &db.url(), "--source", &nats.stream("EVENTS")])
        .args(args)
        .env("PROJECTOR_LEASE_SECONDS", "2")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "exited {status}: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "not done after 60 s: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {log}");
    log
}

/// [`run_until`] every unit has applied the stream `EVENTS` up to `last`.
pub fn run_until_caught_up(nats: &NatsServer, db: &PgDb, config: &Path, last: u64) -> String {
    run_until(nats, db, config, (&[], &[]), || {
        let at = unit_checkpoints(db);
        !at.is_empty() && at.iter().all(|c| *c == Some(last))
    })
}

/// Says past the harness's capture, on the terminal, that the running test
/// could not run here and why: the harness has no "skipped" outcome, and a
/// silent pass would claim what was not checked.
pub fn skipped(why: &str) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "test {name} ... skipped: {why}");
}
