//! What a stream instance does with a message it does not project. Every
//! one is accounted for: a row of the state's `rejections`, written in the
//! transaction of the batch whose checkpoint passes it, the metrics'
//! refused count, and a log line (at most [`LOGGED_PER_SECOND`] a second,
//! then how many were not logged). What a stream instance projects is set
//! by its configuration: a `subscribe`, `unsubscribe`, `init` or `query`
//! in the stream is refused, never obeyed.

use crate::protocol::code::NOT_SUPPORTED;
use crate::protocol::reply;
use crate::state::{Rejection, RejectionStatus};
use serde_json::{Map, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// Refusals logged one by one in a second; the rest are counted.
const LOGGED_PER_SECOND: u32 = 10;
/// The most bytes of a refused message kept in `rejections.text`.
pub const KEPT_BYTES: usize = 1024;

/// Writes the error reply that refuses `body` and returns true when it is
/// not an event: a stream carries events alone.
pub fn not_an_event(body: &Map<String, Value>, out: &mut Vec<u8>) -> bool {
    let kind = match body.get("type") {
        Some(Value::String(kind)) if kind == "event" => return false,
        Some(Value::String(kind)) => format!("a {kind:?} message"),
        Some(_) | None => "a message without a string \"type\"".to_owned(),
    };
    let text = format!(
        "{kind} is not applied from a stream: a stream carries events, and what an instance \
         projects is set by its configuration"
    );
    let msg_id = body.get("msg_id").map(crate::value::event::Raw::from);
    reply::error(out, msg_id.as_ref(), NOT_SUPPORTED, &text);
    true
}

/// The row that records the message `line` at `position`, refused with
/// the error reply `reply`.
pub fn rejection(position: u64, id: Option<String>, reply: &[u8], line: &str) -> Rejection {
    let reply: Value = serde_json::from_slice(reply).unwrap_or_default();
    Rejection {
        position,
        id,
        code: reply["code"].as_i64().unwrap_or(0) as i32,
        error: reply["text"].as_str().unwrap_or_default().to_owned(),
        text: first_bytes(line.trim_end(), KEPT_BYTES).to_owned(),
        status: RejectionStatus::Recorded,
        documents: Vec::new(),
        behind: None,
    }
}

/// Why the run stops at `rejection` (`--on-refused stop`).
pub fn halt(rejection: &Rejection) -> String {
    let Rejection {
        position,
        id,
        code,
        error,
        ..
    } = rejection;
    let id = id
        .as_deref()
        .map(|id| format!(" (id {id})"))
        .unwrap_or_default();
    format!("the message at sequence {position}{id} was refused (error {code}): {error}")
}

/// At most `limit` bytes of `text`, cut at a character's boundary.
fn first_bytes(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How many refusals were logged in the current second.
#[derive(Debug)]
pub struct Logged {
    since: Instant,
    logged: u32,
    held_back: u64,
}

impl Default for Logged {
    fn default() -> Self {
        Logged {
            since: Instant::now(),
            logged: 0,
            held_back: 0,
        }
    }
}

impl Logged {
    /// Logs `rejection` to `log`, unless enough were this second.
    pub fn log(&mut self, log: &mut impl Write, rejection: &Rejection) {
        if self.since.elapsed() >= Duration::from_secs(1) {
            if self.held_back > 0 {
                let _ = writeln!(
                    log,
                    "projector: {} more messages refused and recorded in rejections, not logged one by one",
                    self.held_back
                );
            }
            *self = Logged::default();
        }
        if self.logged == LOGGED_PER_SECOND {
            self.held_back += 1;
            return;
        }
        self.logged += 1;
        // A log that cannot be written is no reason to stop.
        let kept = match rejection.status {
            RejectionStatus::Parked => {
                "parked in rejections with every later event of its documents"
            }
            _ => "recorded in rejections",
        };
        let _ = writeln!(log, "projector: {}; {kept}", halt(rejection));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_are_applied_from_a_stream() {
        let body = |text: &str| match serde_json::from_str(text).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        assert!(!not_an_event(&body(r#"{"type":"event"}"#), &mut out));
        assert!(out.is_empty());
        assert!(not_an_event(
            &body(r#"{"type":"unsubscribe","msg_id":4}"#),
            &mut out
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type": "error", "in_reply_to": 4, "code": 10, "text": "a \"unsubscribe\" message is not applied from a stream: a stream carries events, and what an instance projects is set by its configuration"}"#
        );
        assert!(not_an_event(&body(r#"{"type":7}"#), &mut Vec::new()));
    }

    #[test]
    fn a_refused_message_is_kept_in_its_first_bytes_cut_at_a_character() {
        let reply = br#"{"type": "error", "in_reply_to": null, "code": 12, "text": "bad"}"#;
        let line = format!("{}é{}\n", "x".repeat(KEPT_BYTES - 1), "y".repeat(10));
        let r = rejection(7, None, reply, &line);
        assert_eq!((r.position, r.code, r.error.as_str()), (7, 12, "bad"));
        assert_eq!(r.text, "x".repeat(KEPT_BYTES - 1));
        assert_eq!(
            halt(&r),
            "the message at sequence 7 was refused (error 12): bad"
        );
    }

    #[test]
    fn a_flood_of_refusals_is_logged_ten_a_second_then_counted() {
        let mut logged = Logged::default();
        let mut log = Vec::new();
        let r = rejection(1, Some("e".into()), b"{}", "x");
        for _ in 0..25 {
            logged.log(&mut log, &r);
        }
        assert_eq!(String::from_utf8_lossy(&log).lines().count(), 10);
        logged.since -= Duration::from_secs(1);
        logged.log(&mut log, &r);
        let text = String::from_utf8(log).unwrap();
        assert!(
            text.contains("projector: 15 more messages refused"),
            "{text}"
        );
        assert!(text.ends_with(
            "projector: the message at sequence 1 (id e) was refused (error 0): ; recorded in rejections\n"
        ));
    }
}
