//! One writer per schema: a projector claims the state in its lease row
//! before it reads or writes anything, renews the claim while it runs, and
//! releases it when it stops. Each claim takes a new token, and every
//! batch commits only if the row still holds that token (checked in the
//! batch's own transaction), so a projector that lost its claim (stopped
//! past its lease, cut off from the database) can never commit again.
//! A claim not renewed lapses after the lease. It also ends with the
//! connection its batches are written on: the claim records that
//! connection's server process (`backend_pid`, `backend_start`, renewed by
//! every batch), and a claim whose process the server no longer lists in
//! `pg_stat_activity` is free at once, so a projector killed without
//! releasing its claim keeps no successor waiting. (Behind a pooler that
//! hands one session to several clients this cannot be told; the lease
//! still holds.)

use super::super::StateError;
use super::client;
use super::client::Client;
use super::connect::Target;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;

/// Who holds a claim, as the lease row names it.
pub fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("projector pid {} on {}", std::process::id(), host.trim())
}

/// A claim as the lease row of a state holds it, for those who watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// `projector pid N on HOST`.
    pub holder: String,
    /// Seconds until the lease lapses unless renewed (negative: lapsed).
    pub seconds_left: f64,
    /// Whether the server still lists the writer's connection (true when
    /// the claim names none).
    pub writer_connected: bool,
}

impl Claim {
    /// Whether it still excludes another projector.
    pub fn is_live(&self) -> bool {
        self.seconds_left > 0.0 && self.writer_connected
    }
}

/// The claim on the state in `schema`, if a projector made one and did
/// not give it up; `None` too when the schema has no lease row.
pub fn claim_of(
    client: &mut impl client::Queries,
    schema: &str,
) -> Result<Option<Claim>, client::Error> {
    let columns = client.query_one(
        "SELECT to_regclass(format('%I._projector_lease', $1::text)) IS NOT NULL,
                    EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = to_regclass(format('%I._projector_lease', $1::text))
                        AND attname = 'backend_pid' AND NOT attisdropped)",
        &[&schema],
    )?;
    let (table, named): (bool, bool) = (columns.get(0), columns.get(1));
    if !table {
        return Ok(None);
    }
    let lives = if named { WRITER_LIVES } else { "true" };
    let row = client.query_opt(
        &format!(
            "SELECT holder, EXTRACT(EPOCH FROM expires - clock_timestamp())::float8, {lives}
             FROM {}._projector_lease l WHERE id = 1 AND holder IS NOT NULL",
            super::ident(schema)
        ),
        &[],
    )?;
    Ok(row.map(|r| Claim {
        holder: r.get(0),
        seconds_left: r.get(1),
        writer_connected: r.get(2),
    }))
}

/// Claims the state for this process; returns the claim's token. Refused
/// while another projector's claim is live.
pub fn claim(client: &mut Client, target: &Target) -> Result<i64, StateError> {
    let s = target.schema_ident();
    let failed = |e| target.failed("claiming the state", e);
    let mut tx = client.transaction().map_err(failed)?;
    let row = tx
        .query_one(
            &format!(
                "SELECT holder, expires > clock_timestamp() AND {WRITER_LIVES},
                        EXTRACT(EPOCH FROM expires - clock_timestamp())::float8
                 FROM {s}._projector_lease l WHERE id = 1 FOR UPDATE"
            ),
            &[],
        )
        .map_err(failed)?;
    let (holder_now, live, left): (Option<String>, bool, f64) =
        (row.get(0), row.get(1), row.get(2));
    if let (Some(holder), true) = (holder_now, live) {
        return Err(StateError::Claimed {
            path: target.path(),
            holder,
            seconds_left: left.max(0.0),
        });
    }
    let token: i64 = tx
        .query_one(
            &format!(
                "UPDATE {s}._projector_lease
                 SET holder = $1, token = token + 1,
                     expires = clock_timestamp() + make_interval(secs => $2), {THIS_WRITER}
                 WHERE id = 1 RETURNING token"
            ),
            &[&holder(), &target.lease.as_secs_f64()],
        )
        .map_err(failed)?
        .get(0);
    tx.commit().map_err(failed)?;
    Ok(token)
}

/// The statement that renews the claim of token `$1`, for `$2` seconds:
/// it changes one row while the claim is this process's, none after.
pub fn renew_sql(target: &Target) -> String {
    format!(
        "UPDATE {}._projector_lease SET expires = clock_timestamp() + make_interval(secs => $2)
         WHERE id = 1 AND token = $1",
        target.schema_ident()
    )
}

/// The same for a batch, on the connection it writes on: the claim names
/// that connection's server process, which may be a new one since the last
/// batch (after a lost connection).
pub fn renew_writer_sql(target: &Target) -> String {
    format!(
        "UPDATE {}._projector_lease
         SET expires = clock_timestamp() + make_interval(secs => $2), {THIS_WRITER}
         WHERE id = 1 AND token = $1",
        target.schema_ident()
    )
}

/// The claim's writer, in the lease row `l`, is still connected: the
/// server lists its process (or the claim names none, as one made before
/// claims named it).
pub const WRITER_LIVES: &str = "(l.backend_pid IS NULL OR EXISTS (
    SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid
    AND (a.backend_start IS NULL OR a.backend_start = l.backend_start)))";

/// The assignments that name this connection's server process as the
/// claim's writer.
pub const THIS_WRITER: &str = "backend_pid = pg_backend_pid(),
    backend_start = (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()))";

/// Adds the writer's columns to a lease table made before claims named
/// their writer; nothing when it has them.
pub fn add_backend_columns(
    tx: &mut client::Transaction<'_>,
    schema: &str,
) -> Result<(), client::Error> {
    let has: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = to_regclass(format('%s._projector_lease', $1::text))
                AND attname = 'backend_pid' AND NOT attisdropped)",
            &[&schema],
        )?
        .get(0);
    if !has {
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}._projector_lease
                 ADD COLUMN backend_pid int, ADD COLUMN backend_start timestamptz"
        ))?;
    }
    Ok(())
}

/// Gives the claim up, so that a successor need not wait for it to lapse.
pub fn release(client: &mut Client, target: &Target, token: i64) -> Result<(), client::Error> {
    client
        .execute(
            &format!(
                "UPDATE {}._projector_lease SET holder = NULL, expires = clock_timestamp()
                 WHERE id = 1 AND token = $1",
                target.schema_ident()
            ),
            &[&token],
        )
        .map(drop)
}

/// Renews the claim on a connection of its own, a third of the lease
/// apart, while the projector waits for input or for a long batch.
pub struct Heartbeat {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(target: &Target, token: i64) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let target = target.clone();
        let thread = std::thread::Builder::new()
            .name("state lease".to_owned())
            .spawn(move || {
                let sql = renew_sql(&target);
                let settings = target.settings().ok();
                let mut client = None;
                loop {
                    match stopped.recv_timeout(target.lease / 3) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    if client.is_none() {
                        // One attempt per beat: a lost connection is tried
                        // again at the next one.
                        client = settings.as_ref().and_then(|s| s.connect().ok());
                    }
                    let Some(c) = client.as_mut() else { continue };
                    match c.execute(&sql, &[&token, &target.lease.as_secs_f64()]) {
                        Ok(1) => {}
                        // Taken over: the next commit finds it so.
                        Ok(_) => return,
                        Err(_) => client = None,
                    }
                }
            })
            .expect("the lease thread starts");
        Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    //! The claim, its lease and its fencing token, against the local
    //! PostgreSQL server (see `.ci/run`), with a lease of one second.
    use super::*;
    use std::time::Duration;

    const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

    struct Db(String);

    fn admin_config() -> tokio_postgres::Config {
        format!("{SERVER}/postgres").parse().unwrap()
    }

    impl Db {
        fn new() -> Db {
            let name = format!("projector_lease_unit_{}", std::process::id());
            let mut admin = Client::connect(&admin_config(), tokio_postgres::NoTls)
                .expect("PostgreSQL answers on 127.0.0.1:5432");
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                admin.batch_execute(&sql).unwrap();
            }
            Db(name)
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            if let Ok(mut admin) = Client::connect(&admin_config(), tokio_postgres::NoTls) {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
            }
        }
    }

    /// Renews token `token`'s claim as a batch does: the rows it changed.
    fn renew(client: &mut Client, target: &Target, token: i64) -> u64 {
        client
            .execute(&renew_sql(target), &[&token, &target.lease.as_secs_f64()])
            .unwrap()
    }

    #[test]
    fn a_claim_excludes_others_until_released_or_lapsed_and_a_lapsed_token_is_fenced() {
        let db = Db::new();
        let mut target = Target::new(&format!("{SERVER}/{}", db.0), "lease_unit");
        target.lease = Duration::from_secs(1);
        let mut a = target.connect().unwrap();
        let mut b = target.connect().unwrap();
        super::super::create_schema(&mut a, &target).unwrap();

        // Free: a claims it; b is refused while a's claim is live.
        let first = claim(&mut a, &target).unwrap();
        match claim(&mut b, &target) {
            Err(StateError::Claimed {
                holder,
                seconds_left,
                ..
            }) => {
                assert_eq!(holder, super::holder());
                assert!(seconds_left > 0.0 && seconds_left <= 1.0, "{seconds_left}");
            }
            other => panic!("claimed twice: {other:?}"),
        }
        // Renewed, it stays a's past its first lease.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(renew(&mut a, &target, first), 1);
        std::thread::sleep(Duration::from_millis(600));
        assert!(claim(&mut b, &target).is_err());

        // Not renewed, it lapses: b claims it with the next token, and a's
        // token renews nothing (its batches would commit nothing).
        std::thread::sleep(Duration::from_millis(1100));
        let second = claim(&mut b, &target).unwrap();
        assert_eq!(second, first + 1);
        assert_eq!(renew(&mut a, &target, first), 0);
        assert_eq!(renew(&mut b, &target, second), 1);

        // A release by the fenced token changes nothing; b's frees it at once.
        release(&mut a, &target, first).unwrap();
        assert!(claim(&mut a, &target).is_err());
        release(&mut b, &target, second).unwrap();
        let third = claim(&mut a, &target).unwrap();
        assert_eq!(third, second + 1);

        // A claim whose writer's connection is gone is free at once.
        let mut c = target.connect().unwrap();
        release(&mut a, &target, third).unwrap();
        let fourth = claim(&mut c, &target).unwrap();
        assert!(claim(&mut b, &target).is_err(), "c is connected");
        drop(c);
        let dropped = std::time::Instant::now();
        let fifth = loop {
            match claim(&mut b, &target) {
                Ok(token) => break token,
                Err(_) => {
                    assert!(
                        dropped.elapsed() < Duration::from_secs(1),
                        "c's claim outlived it"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        assert_eq!(fifth, fourth + 1);
        release(&mut b, &target, fifth).unwrap();
        let third = claim(&mut a, &target).unwrap();

        // The heartbeat keeps a claim alive past many leases, and stops
        // once the claim is taken over.
        let mut heartbeat = Heartbeat::start(&target, third);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(claim(&mut b, &target).is_err(), "the heartbeat kept it");
        heartbeat.stop();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(claim(&mut b, &target).unwrap(), third + 1);
    }
}
