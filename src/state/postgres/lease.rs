//! One writer per schema: a projector claims the state in its lease row
//! before it reads or writes anything, renews the claim while it runs, and
//! releases it when it stops. Each claim takes a new token, and every
//! batch commits only if the row still holds that token (checked in the
//! batch's own transaction), so a projector that lost its claim (stopped
//! past its lease, cut off from the database) can never commit again.
//! A claim not renewed lapses after the lease: a projector killed without
//! releasing it keeps a successor waiting no longer than that.

use super::super::StateError;
use super::connect::Target;
use postgres::Client;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;

/// Who holds a claim, as the lease row names it.
pub fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("projector pid {} on {}", std::process::id(), host.trim())
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
                "SELECT holder, expires > clock_timestamp(),
                        EXTRACT(EPOCH FROM expires - clock_timestamp())::float8
                 FROM {s}._projector_lease WHERE id = 1 FOR UPDATE"
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
                     expires = clock_timestamp() + make_interval(secs => $2)
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

/// Gives the claim up, so that a successor need not wait for it to lapse.
pub fn release(client: &mut Client, target: &Target, token: i64) -> Result<(), postgres::Error> {
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
                let mut client = None;
                loop {
                    match stopped.recv_timeout(target.lease / 3) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    if client.is_none() {
                        // One attempt per beat: a lost connection is tried
                        // again at the next one.
                        client = postgres::Client::connect(&target.url, postgres::NoTls).ok();
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
