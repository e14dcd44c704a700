//! Every value exact: numbers and strings come back as Python's `json`
//! reads and writes them, checked case by case and against CPython itself.

use crate::support;

use std::process::Command;
use support::{as_strs, keyed_pages, meta_as_earlier, repo, surrogate_lines, Run, TempDir};

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

[[model]]
name = "keyed"
key = "$.payload.k"
on.Keyed = { put = { v = "$.payload.v" } }
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

/// Rewrites a state file into the form a projector of format 3 wrote: lone
/// surrogates after U+10FFFF, that character twice, U+D7FF once; the
/// checksums and the kept filter as that projector kept them.
fn as_format_3(file: &std::path::Path) {
    use projector::state::filter::{domain, id_hash, key_hash};
    use projector::value::surrogate::earlier;
    let db = rusqlite::Connection::open(file).unwrap();
    let sum = |fields: &[&str]| i64::from(crc32fast::hash(fields.join("\0").as_bytes()));
    let rows = |sql: &str| -> Vec<Vec<String>> {
        let mut statement = db.prepare(sql).unwrap();
        let n = statement.column_count();
        statement
            .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut hashes = Vec::new();
    for row in rows("SELECT CAST(code AS TEXT), name FROM event_types") {
        let name = earlier(&row[1]);
        db.execute(
            "UPDATE event_types SET name = ?1, sum = ?2 WHERE code = ?3",
            rusqlite::params![name, sum(&[&row[0], &name]), row[0]],
        )
        .unwrap();
    }
    let ids = "SELECT CAST(p.rowid AS TEXT), p.id, t.name FROM processed_events AS p
               JOIN event_types AS t ON t.code = p.type";
    for row in rows(ids) {
        let id = earlier(&row[1]);
        hashes.push(id_hash(&id));
        db.execute(
            "UPDATE processed_events SET id = ?1, sum = ?2 WHERE rowid = ?3",
            rusqlite::params![id, sum(&[&id, &row[2]]), row[0]],
        )
        .unwrap();
    }
    let documents = rows("SELECT model, key, doc FROM documents");
    db.execute("DELETE FROM documents", []).unwrap();
    for row in documents {
        let (key, doc) = (earlier(&row[1]), earlier(&row[2]));
        hashes.push(key_hash(&domain(&row[0]), &key));
        db.execute(
            "INSERT INTO documents (model, key, doc, sum) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![row[0], key, doc, sum(&[&row[0], &key, &doc])],
        )
        .unwrap();
    }
    let meta =
        rows("SELECT name, value FROM projector_meta WHERE name IN ('rows', 'subscriptions')");
    for row in meta {
        let value = meta_as_earlier(&row[1]);
        db.execute(
            "UPDATE projector_meta SET value = ?2, sum = ?3 WHERE name = ?1",
            rusqlite::params![row[0], value, sum(&[&row[0], &value])],
        )
        .unwrap();
    }
    let log = projector::util::bloom::hashes_to_bytes(&hashes);
    let format = "projector-state 3";
    db.execute_batch("DELETE FROM filter; DELETE FROM filter_log; PRAGMA user_version = 3")
        .unwrap();
    db.execute(
        "INSERT INTO filter_log (hashes, sum) VALUES (?1, ?2)",
        rusqlite::params![log, i64::from(crc32fast::hash(&log))],
    )
    .unwrap();
    db.execute(
        "UPDATE projector_meta SET value = ?1, sum = ?2 WHERE name = 'format'",
        rusqlite::params![format, sum(&["format", format])],
    )
    .unwrap();
}

/// A state written by a projector that held lone surrogates in the earlier
/// form (format 3) is upgraded when opened: its documents, ids, types and
/// subscriptions read back as they were written, events already applied
/// are known as such, and its keys are paged by code point, as memory does.
#[test]
fn a_state_of_the_earlier_form_of_lone_surrogates_is_upgraded() {
    let dir = TempDir::new();
    let first = surrogate_lines(100);
    let mut second = first.clone();
    second.extend(surrogate_lines(200));
    second.extend(keyed_pages(
        300,
        &[
            r#""\u0001""#,
            r#""\ud7ff""#,
            r#""\ud800""#,
            r#""\udfff\uffff""#,
            r#""\udbff\udfff""#,
        ],
    ));
    second.push(query("values"));
    let all: Vec<&str> = first.iter().chain(&second).map(String::as_str).collect();
    let memory_dump = dir.path().join("memory.json");
    let memory = Run::new()
        .config(CONFIG)
        .args(&["--dump", memory_dump.to_str().unwrap()])
        .stdin(&all)
        .go();
    memory.success();

    let file = dir.path().join("state.db");
    let state = file.to_str().unwrap();
    let before = Run::new()
        .config(CONFIG)
        .args(&["--state", state])
        .stdin(&as_strs(&first))
        .go();
    before.success();
    as_format_3(&file);
    let dump = dir.path().join("state.json");
    let after = Run::new()
        .config(CONFIG)
        .args(&["--state", state, "--cache-mb", "0"])
        .args(&["--dump", dump.to_str().unwrap()])
        .stdin(&as_strs(&second))
        .go();
    after.success();
    assert_eq!(before.stdout + &after.stdout, memory.stdout);
    assert!(memory
        .stdout
        .contains(r#"{"\u0000x": {"v": "\u0000x"}, "\u0001": {"v": "\u0001"}"#));
    assert!(memory
        .stdout
        .contains(r#""\ud7ff\ud800": {"v": "\ud7ff\ud800"}, "\ud800":"#));
    assert!(memory
        .stdout
        .contains(r#""\udfff\uffff": {"v": "\udfff\uffff"}, "\ue000":"#));
    assert_eq!(
        std::fs::read_to_string(dump).unwrap(),
        std::fs::read_to_string(memory_dump).unwrap()
    );
    let check = Run::new().args(&["check", "--state", state]).go();
    check.success();
    assert!(check.stdout.contains(": sound: "), "{}", check.stdout);
    let db = rusqlite::Connection::open(&file).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
}
