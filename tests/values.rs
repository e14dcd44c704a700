//! Every value exact: numbers and strings come back as Python's `json`
//! reads and writes them, checked case by case and against CPython itself.

mod support;

use std::process::Command;
use support::{repo, Run, TempDir};

const CONFIG: &str = r#"
[event_id]
path = "$.id"

[[model]]
name = "values"
key = "$.payload.k"
on.Put = { put = { v = "$.payload.v" } }

[[model]]
name = "total"
key = "$.payload.k"
on.Add = { increment = { n = "$.payload.by" } }
"#;

fn put(msg_id: &str, id: &str, key: &str, v: &str) -> String {
    format!(
        r#"{{"type":"event","msg_id":{msg_id},"event":{{"type":"Put","id":{id},"payload":{{"k":{key},"v":{v}}}}}}}"#
    )
}

fn add(msg_id: u32, key: &str, by: &str) -> String {
    format!(
        r#"{{"type":"event","msg_id":{msg_id},"event":{{"type":"Add","id":"add-{msg_id}","payload":{{"k":"{key}","by":{by}}}}}}}"#
    )
}

fn query(model: &str) -> String {
    format!(r#"{{"type":"query","msg_id":99,"model":"{model}"}}"#)
}

fn run(lines: &[String]) -> Vec<String> {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let memory = Run::new().config(CONFIG).stdin(&lines).go();
    memory.success();
    let durable = Run::new().config(CONFIG).with_state().stdin(&lines).go();
    durable.success();
    assert_eq!(memory.stdout, durable.stdout, "with a state file");
    memory
        .stdout_lines()
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn integers_past_64_bits_keep_their_digits_as_ids_keys_values_and_msg_ids() {
    let out = run(&[
        put(
            "18446744073709551616",
            "18446744073709551616",
            "18446744073709551616",
            "1",
        ),
        put(
            "18446744073709551617",
            "18446744073709551617",
            "18446744073709551617",
            "-9223372036854775809",
        ),
        query("values"),
    ]);
    assert_eq!(
        out,
        [
            r#"{"type": "read_models_updated", "in_reply_to": 18446744073709551616, "event_id": "18446744073709551616", "updated_models": ["values"]}"#,
            r#"{"type": "read_models_updated", "in_reply_to": 18446744073709551617, "event_id": "18446744073709551617", "updated_models": ["values"]}"#,
            r#"{"type": "query_result", "in_reply_to": 99, "model": "values", "documents": {"18446744073709551616": {"v": 1}, "18446744073709551617": {"v": -9223372036854775809}}, "total": 2, "next": null}"#,
        ]
    );
}

#[test]
fn increments_are_exact_past_64_bits_and_refuse_what_cannot_be_held() {
    let huge = "9".repeat(4300);
    let out = run(&[
        add(1, "t", "18446744073709551615"),
        add(2, "t", "1"),
        add(3, "t", "-18446744073709551617"),
        add(4, "t", "-18446744073709551617"),
        query("total"),
        add(5, "t", "1.5"),
        add(6, "t", &huge),
        add(7, "u", &huge),
        add(8, "u", &huge),
        query("total"),
    ]);
    assert_eq!(
        out[4],
        r#"{"type": "query_result", "in_reply_to": 99, "model": "total", "documents": {"t": {"n": -18446744073709551618}}, "total": 1, "next": null}"#
    );
    assert_eq!(
        out[6],
        r#"{"type": "error", "in_reply_to": 6, "code": 22, "text": "event add-6 (Add) was not applied, and no read model changed: read model \"total\": incrementing field \"n\" of document \"t\" would make a number past the largest double, which cannot be held"}"#
    );
    assert_eq!(
        out[8],
        r#"{"type": "error", "in_reply_to": 8, "code": 22, "text": "event add-8 (Add) was not applied, and no read model changed: read model \"total\": incrementing field \"n\" of document \"u\" would make an integer of more than 4300 digits, which cannot be held"}"#
    );
    assert_eq!(
        out[9],
        format!(
            r#"{{"type": "query_result", "in_reply_to": 99, "model": "total", "documents": {{"t": {{"n": -1.8446744073709552e+19}}, "u": {{"n": {huge}}}}}, "total": 2, "next": null}}"#
        )
    );
}

#[test]
fn negative_zero_halfway_doubles_and_infinity_print_as_python_prints_them() {
    let out = run(&[
        put(
            "1",
            "1",
            "\"a\"",
            "[-0, -0.0, 0E0, 1860080658555479.2, 9007199254740993.0, 1e400, -1E400, 1.50]",
        ),
        query("values"),
    ]);
    assert_eq!(
        out[1],
        r#"{"type": "query_result", "in_reply_to": 99, "model": "values", "documents": {"a": {"v": [0, -0.0, 0.0, 1860080658555479.2, 9007199254740992.0, Infinity, -Infinity, 1.5]}}, "total": 1, "next": null}"#
    );
}

#[test]
fn lone_surrogates_are_read_and_written_back() {
    let out = run(&[
        put(
            "1",
            r#""\ud800""#,
            r#""\udc00k""#,
            r#"["\ud800", "x\udfffy", "\udbff\udfff", "\ud83d\ude00"]"#,
        ),
        put("2", r#""\ud801""#, r#""\udc00k""#, "\"\u{10FFFF}\""),
        query("values"),
    ]);
    assert_eq!(
        out,
        [
            r#"{"type": "read_models_updated", "in_reply_to": 1, "event_id": "\ud800", "updated_models": ["values"]}"#,
            r#"{"type": "read_models_updated", "in_reply_to": 2, "event_id": "\ud801", "updated_models": ["values"]}"#,
            r#"{"type": "query_result", "in_reply_to": 99, "model": "values", "documents": {"\udc00k": {"v": "\udbff\udfff"}}, "total": 1, "next": null}"#,
        ]
    );
}

/// Random values through put and query, and integer sums through
/// `increment`, against what CPython's `json.dumps(json.loads(...))` gives.
#[test]
fn thousands_of_random_values_read_back_as_cpython_reads_them() {
    let dir = TempDir::new();
    let input = dir.path().join("values.jsonl");
    let expected = dir.path().join("expected.jsonl");
    let seed = std::env::var("PROJECTOR_ORACLE_SEED").unwrap_or_else(|_| "1".to_owned());
    let status = Command::new("python3")
        .arg(repo().join("tests/oracle/values.py"))
        .args([&seed, "2500"])
        .args([&input, &expected])
        .status()
        .expect("python3 runs (the oracle is CPython's json module)");
    assert!(status.success());
    let input = std::fs::read_to_string(&input).unwrap();
    let expected = std::fs::read_to_string(&expected).unwrap();
    let lines: Vec<&str> = input.lines().collect();
    for durable in [false, true] {
        let mut run = Run::new().config(CONFIG);
        if durable {
            run = run.with_state();
        }
        let out = run.stdin(&lines).go();
        out.success();
        let differences: Vec<(&str, &str)> = out
            .stdout
            .lines()
            .zip(expected.lines())
            .filter(|(ours, python)| ours != python)
            .collect();
        assert_eq!(out.stdout.lines().count(), expected.lines().count());
        assert!(
            differences.is_empty(),
            "{} of {} replies differ from CPython (state file: {durable}), first: {:?}",
            differences.len(),
            lines.len(),
            differences.first()
        );
    }
}
