//! SIGTERM and SIGINT end a run gracefully: reading stops, what was read is
//! applied and committed, every reply of what committed is written, stderr
//! says how many events were committed, and the exit status is 0, within
//! 5 s even mid-batch. A line cut short by the signal is not answered.

use crate::support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{generated_events, stored_ids, TempDir, BIN, USERS_ORDERS};

fn spawn(dir: &TempDir, durable: bool) -> Child {
    let config = dir.write("c.toml", USERS_ORDERS);
    let mut command = Command::new(BIN);
    command.args(["--config", config.to_str().unwrap()]);
    if durable {
        command.args(["--state", dir.path().join("s.db").to_str().unwrap()]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit after a signal; its exit status, stderr and
/// how long it took.
fn wait(mut child: Child) -> (Option<i32>, String, Duration) {
    let since = Instant::now();
    let status = child.wait().unwrap();
    let took = since.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr, took)
}

/// Event ids of the replies that say an event was applied.
fn applied(replies: &[String]) -> Vec<String> {
    replies
        .iter()
        .filter_map(|line| {
            let reply: Value = serde_json::from_str(line).unwrap();
            (reply["type"] == "read_models_updated")
                .then(|| reply["event_id"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// With every line answered and a last one half written, the signal ends
/// the run: the half line gets no reply, and nothing else is lost.
#[test]
fn a_signal_while_waiting_for_input_exits_0_and_leaves_a_cut_line_unanswered() {
    let events = generated_events(200, 50, 1);
    let lines: Vec<&str> = events.lines().collect();
    for (name, durable) in [("TERM", true), ("INT", true), ("TERM", false)] {
        let dir = TempDir::new();
        let mut child = spawn(&dir, durable);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        for line in &lines[..100] {
            writeln!(stdin, "{line}").unwrap();
        }
        write!(stdin, "{}", &lines[100][..40]).unwrap();
        stdin.flush().unwrap();
        let mut replies = Vec::new();
        for _ in 0..100 {
            let mut reply = String::new();
            stdout.read_line(&mut reply).unwrap();
            replies.push(reply.trim_end().to_owned());
        }
        signal(&child, name);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let (code, stderr, took) = wait(child);
        assert_eq!(code, Some(0), "SIG{name}: {stderr}");
        // A deadline against a hang, not a speed: stdin stays open.
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert_eq!(rest, "", "the cut line was answered");
        let n = applied(&replies).len();
        let kept = if durable {
            "committed"
        } else {
            "applied in memory"
        };
        assert!(
            stderr.ends_with(&format!(
                "projector: SIG{name}: stopped reading input; {n} events {kept} and answered in this run; exiting\n"
            )),
            "{stderr}"
        );
        if durable {
            let ids = stored_ids(&dir.path().join("s.db"));
            assert_eq!(ids.len(), n);
        }
        drop(stdin);
    }
}

/// A signal in the middle of a stream, while batches are applied and
/// committed: before its input ends, every committed event is answered and every
/// answered one committed; the replies are those of a prefix of the input.
#[test]
fn a_signal_mid_stream_answers_everything_committed_and_exits_0() {
    let events = generated_events(60_000, 3000, 2);
    for name in ["TERM", "INT"] {
        let dir = TempDir::new();
        let mut child = spawn(&dir, true);
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let input = events.clone();
        // The input is never closed: only the signal ends the run.
        let writer = std::thread::spawn(move || {
            for chunk in input.as_bytes().chunks(64 * 1024) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_secs(30));
        });
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, name);
        let (code, stderr, took) = wait(child);
        let replies = reader.join().unwrap();
        assert_eq!(code, Some(0), "SIG{name}: {stderr}");
        // The signal ended the run, not the input (open 30 s longer).
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert!(
            !replies.is_empty() && replies.len() < 66_000,
            "{} replies",
            replies.len()
        );
        for (i, reply) in replies.iter().enumerate() {
            let reply: Value = serde_json::from_str(reply).unwrap();
            assert_eq!(
                reply["in_reply_to"],
                i + 1,
                "the replies are not those of a prefix"
            );
        }
        let answered = applied(&replies);
        let stored = stored_ids(&dir.path().join("s.db"));
        assert_eq!(
            answered.len(),
            stored.len(),
            "committed and answered differ"
        );
        assert!(answered.iter().all(|id| stored.contains(id)));
        assert!(
            stderr.contains(&format!(
                "{} events committed and answered in this run",
                answered.len()
            )),
            "{stderr}"
        );
        drop(writer);
    }
}
