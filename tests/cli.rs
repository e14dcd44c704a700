//! Behaviour of the running binary that the stdio cases cannot express:
//! configs written at test time, byte-level input, an interactive peer, help.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;
use support::{repo, PgDb, Run, TempDir, BIN};

const CREATED: &str = r#"{"type":"event","msg_id":1,"event":{"type":"UserCreated","id":"e1","payload":{"id":"u1","name":"Ann"}}}"#;

#[test]
fn a_read_model_added_to_the_toml_is_used_without_recompiling() {
    let bundled = std::fs::read_to_string(repo().join("projections.toml")).unwrap();
    let extended = format!(
        "{bundled}\n[[model]]\nname = \"name_lengths\"\nkey = \"$.payload.name\"\non.UserCreated = {{ increment = {{ users = 1 }} }}\n"
    );
    Run::new()
        .config(&extended)
        .stdin(&[
            CREATED,
            r#"{"type":"query","msg_id":2,"model":"name_lengths","key":"Ann"}"#,
        ])
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["user_listing", "user_by_email", "name_lengths"]}"#,
            r#"{"type": "query_result", "in_reply_to": 2, "model": "name_lengths", "key": "Ann", "document": {"users": 1}}"#,
        ]);
}

#[test]
fn without_a_config_file_the_bundled_one_is_used() {
    Run::new()
        .in_empty_dir()
        .stdin(&[r#"{"type":"event","msg_id":1,"event":{"type":"UserCreated","payload":{"id":"user-123","name":"John"}}}"#])
        .go()
        .success()
        .stdout_is(&[r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "evt-123", "updated_models": ["user_listing", "user_by_email"]}"#])
        .stderr_is("projector: no ./projections.toml; using the bundled configuration\n");
}

#[test]
fn run_is_the_default_subcommand() {
    let explicit = Run::new().arg("run").stdin(&[CREATED]).go();
    let implicit = Run::new().stdin(&[CREATED]).go();
    explicit.success();
    assert_eq!(explicit.stdout, implicit.stdout);
    assert_eq!(explicit.stdout_lines().len(), 1);
}

#[test]
fn invalid_utf8_gets_an_error_and_the_next_line_is_served() {
    let mut input = b"{\"type\":\"init\",\"msg_id\":1,\"node_id\":\"n\xff\"}\n".to_vec();
    input.extend_from_slice(CREATED.as_bytes());
    Run::new()
        .stdin_bytes(&input)
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "error", "in_reply_to": null, "code": 12, "text": "input line 1 is not valid UTF-8 at column 39"}"#,
            r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["user_listing", "user_by_email"]}"#,
        ]);
}

#[test]
fn crlf_endings_and_a_last_line_without_newline_are_served() {
    let input = format!("{{\"type\":\"init\",\"msg_id\":1}}\r\n\r\n{CREATED}");
    Run::new()
        .stdin_bytes(input.as_bytes())
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "init_ok", "in_reply_to": 1}"#,
            r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["user_listing", "user_by_email"]}"#,
        ]);
}

#[test]
fn a_line_far_over_the_limit_is_skipped_without_losing_the_next() {
    let huge = format!(
        "{{\"type\":\"init\",\"msg_id\":1,\"pad\":\"{}\"}}",
        "x".repeat(3_000_000)
    );
    let out = Run::new()
        .args(&["--max-line-bytes", "1000000"])
        .stdin(&[&huge, CREATED])
        .go();
    out.success().stdout_is(&[
        r#"{"type": "error", "in_reply_to": null, "code": 12, "text": "input line 1 is 3000035 bytes long, over the limit of 1000000 bytes (--max-line-bytes)"}"#,
        r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["user_listing", "user_by_email"]}"#,
    ]);
}

#[test]
fn the_limit_counts_a_line_without_its_line_break_and_blank_lines_stay_blank() {
    let init = r#"{"type":"init","msg_id":1}"#;
    let input = format!("{init}\r\n{}\r\n{init}x\r\n", " ".repeat(5_000));
    Run::new()
        .args(&["--max-line-bytes", &init.len().to_string()])
        .stdin_bytes(input.as_bytes())
        .go()
        .success()
        .stdout_is(&[
            r#"{"type": "init_ok", "in_reply_to": 1}"#,
            r#"{"type": "error", "in_reply_to": null, "code": 12, "text": "input line 3 is 27 bytes long, over the limit of 26 bytes (--max-line-bytes)"}"#,
        ]);
}

#[test]
fn warnings_go_to_stderr_and_stdout_stays_protocol_only() {
    Run::new()
        .stdin(&[r#"{"type":"subscribe","msg_id":1,"event_types":["OrderPlaced"]}"#])
        .go()
        .success()
        .stdout_is(&[r#"{"type": "subscribed", "in_reply_to": 1, "event_types": ["OrderPlaced"]}"#])
        .stderr_is("projector: warning: subscribed to \"OrderPlaced\", which no read model reacts to: its events will update nothing\n");
}

#[test]
fn a_piped_stream_gets_one_reply_per_message() {
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"type":"event","msg_id":{i},"event":{{"type":"UserCreated","id":"e{}","payload":{{"id":"u{i}"}}}}}}"#, i % 15_000))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = Run::new().stdin(&lines).go();
    out.success();
    let replies = out.stdout_lines();
    assert_eq!(replies.len(), 20_000);
    assert!(replies[14_999]
        .contains(r#""event_id": "e14999", "updated_models": ["user_listing", "user_by_email"]"#));
    assert_eq!(
        replies[15_000],
        r#"{"type": "event_skipped", "in_reply_to": 15000, "event_id": "e0", "reason": "already_processed"}"#
    );
}

/// A peer that sends one line and waits must get its reply without closing stdin.
#[test]
fn each_reply_is_flushed_while_the_peer_waits() {
    let mut child = support::spawn();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait = Duration::from_secs(5);
    writeln!(stdin, r#"{{"type":"init","msg_id":1,"node_id":"n1"}}"#).unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        rx.recv_timeout(wait).unwrap(),
        r#"{"type": "init_ok", "in_reply_to": 1}"#
    );
    writeln!(stdin, "{CREATED}").unwrap();
    stdin.flush().unwrap();
    assert!(rx
        .recv_timeout(wait)
        .unwrap()
        .starts_with(r#"{"type": "read_models_updated""#));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let mut child = support::spawn();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let lines = format!("{CREATED}\n").repeat(100_000);
        let _ = stdin.write_all(lines.as_bytes());
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with(r#"{"type": "read_models_updated""#));
    // The reader (stdout) is dropped here, while replies are still coming.
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn help_documents_every_command_and_option() {
    let out = Run::new().arg("--help").go();
    out.success();
    for word in [
        "validate",
        "run",
        "replay",
        "plan",
        "--config",
        "--envelope",
        "--max-line-bytes",
        "--drop",
        "projections.toml",
        "SIGTERM",
        "78",
        "rejections",
    ] {
        assert!(
            out.stdout.contains(word),
            "--help does not mention {word}:\n{}",
            out.stdout
        );
    }
    let out = Run::new().args(&["validate", "--help"]).go();
    for word in ["--deny-warnings", "CONFIG", "file:line:col"] {
        assert!(
            out.stdout.contains(word),
            "validate --help does not mention {word}:\n{}",
            out.stdout
        );
    }
    let out = Run::new().args(&["replay", "--help"]).go();
    for word in [
        "--rebuild",
        "--rebuild-all",
        "--allow-incomplete",
        "--drop",
        "--state",
    ] {
        assert!(
            out.stdout.contains(word),
            "replay --help lacks {word}:\n{}",
            out.stdout
        );
    }
    let out = Run::new().args(&["plan", "--help"]).go();
    for word in ["--state", "--config", "--format"] {
        assert!(
            out.stdout.contains(word),
            "plan --help lacks {word}:\n{}",
            out.stdout
        );
    }
    let out = Run::new().args(&["rejections", "--help"]).go();
    for word in ["list", "retry", "drop"] {
        assert!(
            out.stdout.contains(word),
            "rejections --help lacks {word}:\n{}",
            out.stdout
        );
    }
    let filters = [
        "--state",
        "--schema",
        "--unit",
        "--model",
        "--key",
        "--code",
        "--position",
    ];
    for (command, more) in [
        ("list", &["--status", "--format"][..]),
        ("retry", &[]),
        ("drop", &["--all"]),
    ] {
        let out = Run::new().args(&["rejections", command, "--help"]).go();
        for word in filters.iter().chain(more) {
            assert!(
                out.stdout.contains(word),
                "rejections {command} --help lacks {word}:\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn a_wrong_command_line_is_a_usage_error_apart_from_plan_s_2() {
    Run::new()
        .args(&["plan", "--no-such-flag"])
        .go()
        .code_is(64)
        .stderr_has("--no-such-flag");
    Run::new()
        .args(&["replay", "--rebuild", "m", "log.ndjson"])
        .go()
        .code_is(64)
        .stderr_has("--state");
}

#[test]
fn the_readme_example_stream_gives_the_documented_replies() {
    let input = std::fs::read(repo().join("examples/events.ndjson")).unwrap();
    let expected = std::fs::read_to_string(repo().join("examples/events.replies")).unwrap();
    let out = Run::new()
        .args(&["--config", "projections.toml"])
        .stdin_bytes(&input)
        .go();
    out.success();
    assert_eq!(out.stdout, expected);
}

/// A page holds at most 1,000 documents, whatever `limit` asks for, and
/// `next` goes on from the last one; a `limit` below 1 is refused.
#[test]
fn a_query_page_is_capped_and_next_goes_on_from_it() {
    let mut lines: Vec<String> = (0..1500)
        .map(|i| {
            format!(
                r#"{{"type":"event","msg_id":{i},"event":{{"type":"UserCreated","id":"e{i}","payload":{{"id":"u{i:04}"}}}}}}"#
            )
        })
        .collect();
    lines
        .push(r#"{"type":"query","msg_id":1,"model":"user_listing","limit":100000000}"#.to_owned());
    lines.push(
        r#"{"type":"query","msg_id":2,"model":"user_listing","limit":1000,"after":"u0999"}"#
            .to_owned(),
    );
    lines.push(r#"{"type":"query","msg_id":3,"model":"user_listing","limit":0}"#.to_owned());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = Run::new().stdin(&lines).go();
    out.success();
    let replies: Vec<serde_json::Value> = out
        .stdout_lines()
        .iter()
        .skip(1500)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies[0]["documents"].as_object().unwrap().len(), 1000);
    assert_eq!(replies[0]["total"], 1500);
    assert_eq!(replies[0]["next"], "u0999");
    assert_eq!(replies[1]["documents"].as_object().unwrap().len(), 500);
    assert_eq!(replies[1]["next"], serde_json::Value::Null);
    assert_eq!(replies[2]["type"], "error");
    assert_eq!(replies[2]["code"], 12);
}

/// A `[[tests]]` entry left behind by a change of the read models is for
/// `validate` and `test` to report: it does not stop the projector serving.
#[test]
fn an_outdated_test_does_not_stop_the_read_models_from_being_served() {
    let bundled = std::fs::read_to_string(repo().join("projections.toml")).unwrap();
    let outdated = format!(
        "{bundled}\n[[tests]]\nname = \"gone\"\nevents = []\nexpect = [{{ model = \"sessions\", key = \"k\", absent = true }}]\n"
    );
    let dir = support::TempDir::new();
    let config = dir.write("c.toml", &outdated);
    let config = config.to_str().unwrap();
    Run::new()
        .args(&["--config", config])
        .stdin(&[CREATED])
        .go()
        .success()
        .stdout_is(&[r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "e1", "updated_models": ["user_listing", "user_by_email"]}"#])
        .stderr_is(&format!("projector: warning: {config}: [[tests]] with 1 error (`projector validate {config}` shows them); tests do not stop the read models from being served\n"));
    Run::new().args(&["validate", config]).go().code_is(78);
    Run::new().args(&["test", config]).go().code_is(78);
}

/// Every subcommand takes `-c/--config`, and PROJECTOR_CONFIG names the
/// configuration when the command line does not.
#[test]
fn one_configuration_flag_and_variable_for_every_subcommand() {
    let dir = support::TempDir::new();
    let config = dir.write(
        "only.toml",
        "[[model]]\nname = \"only\"\nkey = \"$.payload.id\"\non.UserCreated = { put = { n = 1 } }\n",
    );
    let config = config.to_str().unwrap();
    let query = r#"{"type":"query","msg_id":2,"model":"only","key":"u1"}"#;
    let only = r#"{"type": "query_result", "in_reply_to": 2, "model": "only", "key": "u1", "document": {"n": 1}}"#;
    for run in [
        Run::new().args(&["-c", config]),
        Run::new().args(&["run", "-c", config]),
        Run::new().env("PROJECTOR_CONFIG", config),
    ] {
        run.stdin(&[CREATED, query]).go().success().stdout_has(only);
    }
    for args in [
        &["validate", "-c", config][..],
        &["test", "-c", config],
        &["test", config],
    ] {
        Run::new().args(args).go().success();
    }
    Run::new()
        .arg("validate")
        .env("PROJECTOR_CONFIG", config)
        .go()
        .success()
        .stdout_is(&[&format!("{config}: ok: 1 read model, 1 event type")]);
    let log = dir.write("log.ndjson", &format!("{CREATED}\n"));
    Run::new()
        .args(&[
            "replay",
            "--dump",
            dir.path().join("d.json").to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .env("PROJECTOR_CONFIG", config)
        .go()
        .success();
    assert!(std::fs::read_to_string(dir.path().join("d.json"))
        .unwrap()
        .contains("\"only\""));
}

/// `replay -` reads the log from stdin, a rebuild too (it reads the log twice).
#[test]
fn replay_reads_a_log_from_stdin() {
    let dir = support::TempDir::new();
    let state = dir.path().join("s.db");
    let state = state.to_str().unwrap();
    Run::new()
        .args(&["replay", "--state", state, "-"])
        .stdin(&[CREATED])
        .go()
        .success()
        .stderr_has("replay: done: 1/1 lines");
    Run::new()
        .args(&["replay", "--state", state, "--rebuild", "user_listing", "-"])
        .stdin(&[CREATED])
        .go()
        .success()
        .stderr_has("replay: rebuilding user_listing from the log on stdin")
        .stderr_has("replay: swapped in user_listing: 1 event applied to it");
}

#[test]
fn completion_scripts_and_code_explanations_are_printed() {
    let out = Run::new().args(&["completions", "bash"]).go();
    out.success();
    for word in ["replay", "plan", "explain-code", "--rebuild-all", "--drop"] {
        assert!(
            out.stdout.contains(word),
            "the bash completions lack {word}"
        );
    }
    Run::new().args(&["completions", "fish"]).go().success();
    Run::new()
        .args(&["explain-code", "P0102"])
        .go()
        .success()
        .stdout_has("P0102: no read model reacts to an event type\n\nA [[tests]] event");
    Run::new()
        .args(&["validate", "--explain", "p0026"])
        .go()
        .success()
        .stdout_has("P0026: condition with no test or several");
    Run::new()
        .args(&["explain-code", "P9999"])
        .go()
        .code_is(64)
        .stderr_has("P9999 is not a diagnostic code");
}

/// Diagnostics are in colour on a terminal, and plain under NO_COLOR or in
/// a pipe (every other test reads them from a pipe).
#[test]
fn diagnostics_are_coloured_on_a_terminal_unless_no_color() {
    let fixture = repo().join("tests/fixtures/invalid/hints.toml");
    let command = format!("{} validate {}", support::BIN, fixture.display());
    let on_a_terminal = |no_color: Option<&str>| {
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm");
        match no_color {
            Some(v) => script.env("NO_COLOR", v),
            None => script.env_remove("NO_COLOR"),
        };
        script.output()
    };
    let Ok(coloured) = on_a_terminal(None) else {
        eprintln!("skipped: no `script` to run the binary on a terminal");
        return;
    };
    let coloured = String::from_utf8_lossy(&coloured.stdout).into_owned();
    assert!(
        coloured.contains("\x1b[1;31merror[P0003]\x1b[0m"),
        "{coloured}"
    );
    let plain = on_a_terminal(Some("1")).unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        plain.contains("error[P0003]") && !plain.contains('\x1b'),
        "{plain}"
    );
}

#[test]
fn a_half_written_line_costs_one_error_reply_and_no_message_after_it() {
    let messages: Vec<String> = (0..45)
        .map(|i| {
            format!(
                r#"{{"type":"event","msg_id":{i},"event":{{"type":"UserCreated","id":"e{i}","payload":{{"id":"u{i}","name":"N{i}"}}}}}}"#
            )
        })
        .collect();
    let whole = Run::new()
        .stdin(&messages.iter().map(String::as_str).collect::<Vec<_>>())
        .go();
    whole.success();
    assert_eq!(whole.stdout_lines().len(), 45);
    let cut_lines = [
        // inside a string, inside a key, inside a literal, after a colon
        r#"{"type":"event","msg_id":9,"event":{"type":"UserCreated","payload":{"id":"u","name":"Jo"#,
        r#"{"type":"event","msg_id":9,"event":{"type":"UserCreated","pay"#,
        r#"[ false, nul"#,
        r#"{"type":"event","msg_id":9,"event":"#,
    ];
    for cut in cut_lines {
        let mut input = vec![cut];
        input.extend(messages.iter().map(String::as_str));
        let out = Run::new().stdin(&input).go();
        out.success();
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 46, "after {cut}: {lines:?}");
        assert!(
            lines[0].starts_with(
                r#"{"type": "error", "in_reply_to": null, "code": 12, "text": "input line 1"#
            ),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1..], whole.stdout_lines()[..], "after {cut}");
    }
}

/// `ARGS` with a stdout whose reader went away before anything was
/// written: no panic, a quiet end.
fn closed_stdout(args: &[&str], input: &[u8]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_command_panics_when_its_reader_goes_away() {
    let dir = TempDir::new();
    let config = repo().join("projections.toml");
    let config = config.to_str().unwrap();
    let events = std::fs::read(repo().join("examples/events.ndjson")).unwrap();
    let log = dir.path().join("events.ndjson");
    std::fs::write(&log, &events).unwrap();
    let log = log.to_str().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let rebuilt = dir.path().join("rebuilt.db");
    let db = PgDb::new("closed_stdout");
    let url = db.url();
    Run::new()
        .args(&["--config", config, "--state", state])
        .stdin_bytes(&events)
        .go()
        .success();
    Run::new()
        .args(&["--config", config, "--state", &url])
        .stdin_bytes(&events)
        .go()
        .success();
    let many = events.repeat(20);
    let commands: [(&[&str], &[u8]); 13] = [
        (&["--config", config], &many),
        (&["status", "--state", state], b""),
        (&["status", "--state", state, "--format", "json"], b""),
        (&["status", "--state", &url], b""),
        (&["status", "--state", &url, "--format", "json"], b""),
        (&["plan", "--config", config, "--state", state], b""),
        (&["check", "--state", state], b""),
        (&["check", "--state", &url], b""),
        (&["validate", config], b""),
        (&["test", "--config", config], b""),
        (
            &[
                "replay",
                "--config",
                config,
                "--state",
                rebuilt.to_str().unwrap(),
                log,
            ],
            b"",
        ),
        (&["completions", "bash"], b""),
        (&["explain-code", "P0102"], b""),
    ];
    for (args, input) in commands {
        let (code, stderr) = closed_stdout(args, input);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(code, Some(101), "{args:?}: {stderr}");
        assert!(code.is_some(), "{args:?} killed by a signal: {stderr}");
    }
}

#[test]
fn log_lines_are_json_objects_under_log_format_json_and_filtered_by_projector_log() {
    let run = Run::new()
        .in_empty_dir()
        .arg("--log-format")
        .arg("json")
        .stdin(&[CREATED])
        .go();
    run.success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "projector");
    assert_eq!(
        line["message"],
        "no ./projections.toml; using the bundled configuration"
    );
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    // The same line, filtered out; then a filter that does not parse.
    for filter in ["projector=warn", "off"] {
        let quiet = Run::new()
            .in_empty_dir()
            .env("PROJECTOR_LOG", filter)
            .stdin(&[CREATED])
            .go();
        quiet.success().stderr_is("");
    }
    Run::new()
        .in_empty_dir()
        .env("PROJECTOR_LOG", "projector=loud")
        .stdin(&[CREATED])
        .go()
        .success()
        .stderr_has("projector: warning: PROJECTOR_LOG does not parse")
        .stderr_has("projector: no ./projections.toml; using the bundled configuration\n");
}
