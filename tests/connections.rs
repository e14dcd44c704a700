//! Connection settings, TLS and passwords, against a PostgreSQL cluster of
//! the test's own: TLS only (`hostssl`), SCRAM passwords, a certificate
//! signed by a certificate authority the test makes with `openssl`.

use crate::support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Output, Run, TempDir};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SECRET: &str = "Tls5ecretPW";
const USERS_ORDERS: &str = include_str!("../bench/users-orders.toml");
/// How long a refusal may take: it is not retried, so it takes well under
/// a second; the margin is for a busy machine.
const FAST: Duration = Duration::from_secs(8);

/// A PostgreSQL cluster that takes only TLS connections from 127.0.0.1,
/// with a password, stopped and removed on drop.
struct TlsServer {
    dir: TempDir,
    port: u16,
}

fn sh(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(dir: &Path, program: &str, args: &[&str]) {
    let mut all = vec!["-u", "postgres", "--", program];
    all.extend_from_slice(args);
    sh("runuser", &all, dir);
}

/// A certificate authority, and a server certificate it signs for
/// `localhost` (not for 127.0.0.1).
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for ca in ["ca", "other_ca"] {
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend_from_slice(&ec);
        let subject = format!("/CN=projector {ca}");
        args.extend_from_slice(&["-keyout", &key, "-out", &crt, "-subj", &subject]);
        sh("openssl", &args, dir);
    }
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(&ec);
    args.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    sh("openssl", &args, dir);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
        dir,
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = TempDir::new();
        let path = dir.path();
        certificates(path);
        std::fs::write(path.join("pw"), SECRET).unwrap();
        sh("chown", &["-R", "postgres", path.to_str().unwrap()], path);
        sh("chmod", &["600", "server.key"], path);
        let bin = |name: &str| format!("{PG_BIN}/{name}");
        as_postgres(
            path,
            &bin("initdb"),
            &[
                "-D",
                "data",
                "-U",
                "postgres",
                "--pwfile=pw",
                "-A",
                "scram-sha-256",
            ],
        );
        // Database `plain` is taken without TLS only; every other one with
        // TLS only.
        std::fs::write(
            path.join("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl plain all 127.0.0.1/32 reject\n\
             hostnossl plain all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             password_encryption = 'scram-sha-256'\nfsync = off\n",
            dir = path.display()
        );
        let mut all = std::fs::read_to_string(path.join("data/postgresql.conf")).unwrap();
        all.push_str(&conf);
        std::fs::write(path.join("data/postgresql.conf"), all).unwrap();
        as_postgres(
            path,
            &bin("pg_ctl"),
            &["-D", "data", "-l", "log", "-w", "-t", "30", "start"],
        );
        let socket = format!("host={} port={port} user=postgres", path.display());
        postgres::Client::connect(&socket, postgres::NoTls)
            .and_then(|mut c| c.batch_execute("CREATE DATABASE plain"))
            .expect("database plain is made");
        TlsServer { dir, port }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cert(&self, name: &str) -> String {
        self.file(name).to_str().unwrap().to_owned()
    }

    /// A URL for `dbname` on `host`, with the password and `query`.
    fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{SECRET}@{host}:{}/{db}{query}",
            self.port
        )
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let path = self.dir.path().to_str().unwrap().to_owned();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .args([
                "-D",
                &format!("{path}/data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

/// `projector status` on `state`, timed.
fn status(state: &str, env: &[(&str, &str)]) -> (Output, Duration) {
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let mut run = Run::new().args(&["status", "-c", config.to_str().unwrap(), "--state", state]);
    for (name, value) in env {
        run = run.env(name, value);
    }
    let started = Instant::now();
    let out = run.go();
    (out, started.elapsed())
}

/// `projector status` reached the state (a fresh one has no schema yet).
fn connects(state: &str, env: &[(&str, &str)], what: &str) {
    let (out, took) = status(state, env);
    println!("{what}: {took:?}");
    assert!(
        out.stderr.contains("no projector state") || out.code == Some(0),
        "{what}: {}{}",
        out.stdout,
        out.stderr
    );
    never_shows_the_password(&out, what);
}

/// `projector status` failed fast, saying `reason`.
fn refused(state: &str, env: &[(&str, &str)], reason: &str, what: &str) {
    let (out, took) = status(state, env);
    println!("{what}: refused in {took:?}: {}", out.stderr.trim());
    assert_ne!(out.code, Some(0), "{what}: {}", out.stderr);
    assert!(took < FAST, "{what}: took {took:?}: {}", out.stderr);
    assert!(
        out.stderr.contains(reason),
        "{what}: wanted {reason:?} in {}",
        out.stderr
    );
    never_shows_the_password(&out, what);
}

fn never_shows_the_password(out: &Output, what: &str) {
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
        "{what} printed the password:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn tls_modes_connect_or_fail_fast_with_the_reason() {
    let server = TlsServer::start();
    let ca = server.cert("ca.crt");
    let on = |host: &str, query: &str| server.url(host, "postgres", query);
    connects(&on("127.0.0.1", ""), &[], "prefer (the default)");
    connects(&on("127.0.0.1", "?sslmode=require"), &[], "require");
    connects(
        &on(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={ca}"),
        ),
        &[],
        "verify-full, the right root certificate and host name",
    );
    connects(
        &on("127.0.0.1", &format!("?sslmode=verify-ca&sslrootcert={ca}")),
        &[],
        "verify-ca, the right root certificate, another host name",
    );
    connects(
        &server.url("127.0.0.1", "plain", ""),
        &[],
        "prefer, a database the server takes without TLS only",
    );
    every_refusal_is_fast_and_says_why(&server);
}

/// What the server refuses, or the client refuses of it, is reported at
/// once with the reason.
fn every_refusal_is_fast_and_says_why(server: &TlsServer) {
    let ca = server.cert("ca.crt");
    let other = server.cert("other_ca.crt");
    let on = |host: &str, query: &str| server.url(host, "postgres", query);
    refused(
        &on(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={other}"),
        ),
        &[],
        "certificate",
        "verify-full, the wrong root certificate",
    );
    refused(
        &on(
            "127.0.0.1",
            &format!("?sslmode=verify-full&sslrootcert={ca}"),
        ),
        &[],
        "127.0.0.1",
        "verify-full, a host name the certificate is not for",
    );
    refused(
        &server.url("127.0.0.1", "plain", "?sslmode=require"),
        &[],
        "pg_hba.conf rejects connection",
        "require, a database the server takes without TLS only",
    );
    refused(
        &on("127.0.0.1", "?sslmode=disable"),
        &[],
        "no encryption",
        "disable, against a server that takes TLS only",
    );
    refused(
        &format!(
            "postgres://postgres:wrong{SECRET}@127.0.0.1:{}/postgres",
            server.port
        ),
        &[],
        "password authentication failed",
        "a wrong password",
    );
    refused(
        &server.url("127.0.0.1", "no_such_database", ""),
        &[],
        "does not exist",
        "an unknown database",
    );
}

/// Environment variables a command runs with.
type Env = Vec<(&'static str, String)>;

/// A state named in each way a password may be given: `--state` and the
/// environment variables that go with it.
fn ways(server: &TlsServer, password: &str, db: &str) -> Vec<(&'static str, String, Env)> {
    let port = server.port;
    let kv = format!("host=127.0.0.1 port={port} user=postgres dbname={db}");
    let bare = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let passfile = passfile(server, password, 0o600);
    vec![
        (
            "in the URL",
            format!("postgres://postgres:{password}@127.0.0.1:{port}/{db}?sslmode=require"),
            vec![],
        ),
        (
            "as ?password=",
            format!("{bare}?password={password}"),
            vec![],
        ),
        (
            "as key=value",
            format!("{kv} password='{password}' sslmode=require"),
            vec![],
        ),
        (
            "in PGPASSWORD",
            bare.clone(),
            vec![("PGPASSWORD", password.to_owned())],
        ),
        (
            "in a passfile",
            kv,
            vec![("PGPASSFILE", passfile.to_str().unwrap().to_owned())],
        ),
        (
            "all from the environment",
            format!("dbname={db}"),
            vec![
                ("PGHOST", "127.0.0.1".to_owned()),
                ("PGPORT", port.to_string()),
                ("PGUSER", "postgres".to_owned()),
                ("PGPASSWORD", password.to_owned()),
            ],
        ),
    ]
}

/// A passfile that holds `password` for the server, after lines that
/// match no connection (a `\:` escaped in a host name among them).
fn passfile(server: &TlsServer, password: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = server.file(&format!("pgpass-{}-{mode:o}", password.len()));
    let text = format!(
        "# comment\nother\\:host:*:*:*:nope\n127.0.0.1:1:*:*:nope\n127.0.0.1:{}:*:postgres:{password}\n",
        server.port
    );
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// One command, run in `cwd` with `env`: its output.
fn command(args: &[&str], env: &[(&'static str, String)], cwd: &Path, stdin: &[&str]) -> Output {
    let mut run = Run::new().args(args).cwd(cwd).stdin(stdin);
    for (name, value) in env {
        run = run.env(name, value);
    }
    run.go()
}

#[test]
fn every_way_of_giving_the_password_connects_and_none_is_printed() {
    let server = TlsServer::start();
    let dir = TempDir::new();
    let cwd = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let changed = dir.write(
        "v2.toml",
        &USERS_ORDERS.replace(
            "merge = { last_order_id = \"$.payload.order_id\" }",
            "merge = { last_order_id = \"$.payload.order_id\" }\nwhen = { path = \"$.payload.amount\", ge = 100 }",
        ),
    );
    let events = support::generated_events(50, 5, 4);
    let lines: Vec<&str> = events.lines().collect();
    let log = dir.write("events.jsonl", &events);
    let (c, v2, log) = (
        config.to_str().unwrap(),
        changed.to_str().unwrap(),
        log.to_str().unwrap(),
    );
    for (n, (way, state, env)) in ways(&server, SECRET, "postgres").into_iter().enumerate() {
        let schema = format!("way{n}");
        let s = ["--state", state.as_str(), "--schema", schema.as_str()];
        let out = command(
            &[&["run", "-c", c][..], &s].concat(),
            &env,
            cwd.path(),
            &lines,
        );
        never_shows_the_password(&out, way);
        assert_eq!(out.code, Some(0), "run, password {way}: {}", out.stderr);
        assert_eq!(out.stdout.lines().count(), lines.len(), "{way}");
        // plan exits 2 for the changes it lists, gc 65 for a schema that
        // is no cluster's: both after reading the state.
        for (what, args, code) in [
            ("status", [&["status", "-c", c][..], &s].concat(), 0),
            ("plan", [&["plan", "-c", v2][..], &s].concat(), 2),
            ("replay", [&["replay", "-c", c][..], &s, &[log]].concat(), 0),
            ("gc", [&["gc"][..], &s].concat(), 65),
        ] {
            let out = command(&args, &env, cwd.path(), &[]);
            let what = format!("{what}, password {way}");
            println!("{what}: exit {:?}", out.code);
            never_shows_the_password(&out, &what);
            assert!(!out.stderr.contains("connecting"), "{what}: {}", out.stderr);
            assert_eq!(out.code, Some(code), "{what}: {}", out.stderr);
        }
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "a PostgreSQL state made files: {left:?}");
}

#[test]
fn failing_commands_show_no_password_and_a_loose_passfile_is_ignored() {
    let server = TlsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let c = config.to_str().unwrap();
    let wrong = format!("{SECRET}x");
    for (db, password) in [("no_such_database", SECRET), ("postgres", wrong.as_str())] {
        for (way, state, env) in ways(&server, password, db) {
            for args in [
                vec!["run", "-c", c, "--state", &state],
                vec!["status", "-c", c, "--state", &state],
                vec!["plan", "-c", c, "--state", &state],
                vec!["gc", "--state", &state],
            ] {
                let started = Instant::now();
                let out = command(&args, &env, dir.path(), &["{}"]);
                let took = started.elapsed();
                let what = format!("{} on {db}, password {way}", args[0]);
                println!("{what}: {took:?}: {}", out.stderr.trim());
                assert_ne!(out.code, Some(0), "{what}");
                assert!(took < FAST, "{what} took {took:?}");
                never_shows_the_password(&out, &what);
            }
        }
    }
    let loose = passfile(&server, SECRET, 0o644);
    let state = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        server.port
    );
    let (out, took) = status(&state, &[("PGPASSFILE", loose.to_str().unwrap())]);
    println!("a loose passfile: {took:?}: {}", out.stderr.trim());
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("permissions"),
        "{}",
        out.stderr
    );
    assert_ne!(out.code, Some(0));
    assert!(took < FAST, "{took:?}");
    never_shows_the_password(&out, "a loose passfile");
}

#[test]
fn a_cluster_instance_works_over_verified_tls_with_a_password_from_the_environment() {
    let server = TlsServer::start();
    let nats = support::NatsServer::start();
    let dir = TempDir::new();
    let config = dir.write("c.toml", USERS_ORDERS);
    let events = support::generated_events(200, 20, 7);
    let lines: Vec<&str> = events.lines().collect();
    Run::new()
        .args(&["publish", "--to", &nats.stream("EVENTS")])
        .config(USERS_ORDERS)
        .stdin(&lines)
        .go()
        .success();
    let (log, dump) = (
        dir.write("events.jsonl", &events),
        dir.path().join("dump.json"),
    );
    support::replay_in_memory(&config, &log, &dump);
    let dumped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let expected = dumped["user_listing"].as_object().unwrap().len() as i64;
    let state = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        server.port,
        server.cert("ca.crt")
    );
    let log = dir.path().join("instance.log");
    // A lease of a second: the heartbeat, the registry and the switch of
    // the views connect again and again, each through the same settings.
    let mut child = Command::new(support::BIN)
        .args(["run", "-c", config.to_str().unwrap(), "--state", &state])
        .args(["--source", &nats.stream("EVENTS")])
        .env("PGPASSWORD", SECRET)
        .env("PROJECTOR_LEASE_SECONDS", "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let socket = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.dir.path().display(),
        server.port
    );
    let users = || {
        postgres::Client::connect(&socket, postgres::NoTls)
            .and_then(|mut c| c.query_one("SELECT count(*) FROM projector.user_listing", &[]))
            .map_or(0, |row| row.get::<_, i64>(0))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while users() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    println!("{said}");
    assert_eq!(users(), expected, "{said}");
    assert!(status.success(), "{status}: {said}");
    assert!(!said.contains(SECRET), "{said}");
}
