//! The `strom` client subcommands run as a user would run them, against a real broker:
//! topic, produce, consume, group, config and perf, checking table and JSON output and the
//! one-line error with the Kafka error name.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::Server;
use serde_json::Value;

fn strom(server: &Server, args: &[&str]) -> Output {
    strom_stdin(server, args, "")
}

fn strom_stdin(server: &Server, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .args(["--bootstrap-server", &server.bootstrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strom");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(server: &Server, args: &[&str]) -> String {
    let out = strom(server, args);
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&ok(server, &all)).expect("valid JSON")
}

#[test]
fn topic_commands_and_errors() {
    let server = Server::start(&[]);
    let out = ok(
        &server,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert_eq!(out, "TOPIC   STATUS\norders  created\n");
    let err = strom(&server, &["topic", "create", "orders", "-p", "3"]);
    assert!(!err.status.success());
    let line = String::from_utf8(err.stderr).unwrap();
    assert!(line.starts_with("strom: TOPIC_ALREADY_EXISTS"), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
    ok(
        &server,
        &["topic", "create", "orders", "-p", "3", "--if-not-exists"],
    );

    let list = ok(&server, &["topic", "list"]);
    assert!(
        list.starts_with("TOPIC   PARTITIONS  TOPIC-ID\norders  3"),
        "{list}"
    );
    let described = json(&server, &["topic", "describe", "orders"]);
    let parts = described.as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["partition"], 2);
    assert_eq!(parts[0]["leader"], 1);

    ok(
        &server,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "retention.ms=120000",
        ],
    );
    assert_eq!(
        json(&server, &["topic", "describe", "orders"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let cfg = json(
        &server,
        &["config", "get", "--topic", "orders", "retention.ms"],
    );
    assert_eq!(cfg[0]["value"], "120000");
    assert_eq!(cfg[0]["source"], "DYNAMIC_TOPIC_CONFIG");

    ok(&server, &["topic", "delete", "orders"]);
    let gone = strom(&server, &["topic", "describe", "orders"]);
    let line = String::from_utf8(gone.stderr).unwrap();
    assert!(
        line.starts_with("strom: UNKNOWN_TOPIC_OR_PARTITION"),
        "{line}"
    );
}

#[test]
fn produce_and_consume_with_keys_headers_and_positions() {
    let server = Server::start(&[]);
    ok(&server, &["topic", "create", "lines", "-p", "1"]);
    let input: String = (0..10).map(|i| format!("k{i}:value {i}\n")).collect();
    let out = strom_stdin(
        &server,
        &[
            "produce",
            "lines",
            "--key-separator",
            ":",
            "--header",
            "app=cli",
            "--output",
            "json",
        ],
        &input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["records"], 10);

    let values = ok(
        &server,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--max-messages",
            "3",
        ],
    );
    assert_eq!(values, "value 0\nvalue 1\nvalue 2\n");
    let keyed = ok(
        &server,
        &[
            "consume",
            "lines",
            "--offset",
            "8",
            "--max-messages",
            "2",
            "--print-key",
            "--key-separator",
            "=",
        ],
    );
    assert_eq!(keyed, "k8=value 8\nk9=value 9\n");
    let fmt = ok(
        &server,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "-n",
            "1",
            "--format",
            "%t/%p/%o %k %h|%v\\n",
        ],
    );
    assert_eq!(fmt, "lines/0/0 k0 app=cli|value 0\n");
    let lines = ok(
        &server,
        &[
            "consume",
            "lines",
            "--partition",
            "0",
            "--offset",
            "5",
            "-n",
            "1",
            "--output",
            "json",
        ],
    );
    let rec: Value = serde_json::from_str(lines.trim()).unwrap();
    assert_eq!(
        (
            rec["offset"].as_i64(),
            rec["key"].as_str(),
            rec["headers"]["app"].as_str()
        ),
        (Some(5), Some("k5"), Some("cli"))
    );
    // --timestamp far in the future: nothing to read, --timeout-ms ends the wait.
    let none = ok(
        &server,
        &[
            "consume",
            "lines",
            "--timestamp",
            "99999999999999",
            "--timeout-ms",
            "500",
        ],
    );
    assert_eq!(none, "");

    // From a file, to a fixed partition, compressed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "x\ny\n").unwrap();
    ok(
        &server,
        &[
            "produce",
            "lines",
            "--file",
            path.to_str().unwrap(),
            "--partition",
            "0",
            "--compression",
            "zstd",
        ],
    );
    assert_eq!(
        ok(&server, &["consume", "lines", "--offset", "10", "-n", "2"]),
        "x\ny\n"
    );
}

#[test]
fn group_describe_reset_and_delete() {
    let server = Server::start(&[]);
    ok(&server, &["topic", "create", "events", "-p", "2"]);
    // Ten records in each partition, so shifting partition 0 back by 3 is always possible
    // (the sticky partitioner alone may put every record in one partition).
    let input: String = (0..10).map(|i| format!("{i}\n")).collect();
    strom_stdin(&server, &["produce", "events", "-p", "0"], &input);
    strom_stdin(&server, &["produce", "events", "-p", "1"], &input);
    let read = ok(
        &server,
        &[
            "consume",
            "events",
            "--group",
            "readers",
            "--from-beginning",
            "--max-messages",
            "20",
        ],
    );
    assert_eq!(read.lines().count(), 20);

    let groups = json(&server, &["group", "list"]);
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "readers"));
    let lag = json(&server, &["group", "describe", "readers"]);
    let rows = lag.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let total_end: i64 = rows
        .iter()
        .map(|r| r["log_end_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(total_end, 20);
    assert!(rows
        .iter()
        .all(|r| r["lag"] == 0 && r["current_offset"] == r["log_end_offset"]));
    let table = ok(&server, &["group", "describe", "readers"]);
    assert!(
        table.starts_with("GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG"),
        "{table}"
    );

    let dry = json(
        &server,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert_eq!(dry[0]["applied"], false);
    assert!(json(&server, &["group", "describe", "readers"])
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["lag"] == 0));
    // Null keys stick to one partition; shift the one that holds the records.
    let busy = rows
        .iter()
        .max_by_key(|r| r["log_end_offset"].as_i64())
        .map(|r| r["partition"].as_i64().unwrap())
        .unwrap();
    let target = format!("events:{busy}");
    json(
        &server,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            &target,
            "--shift-by",
            "-3",
            "--execute",
        ],
    );
    let lag = json(&server, &["group", "describe", "readers"]);
    for row in lag.as_array().unwrap() {
        let expected = if row["partition"] == busy { 3 } else { 0 };
        assert_eq!(row["lag"], expected, "{row}");
    }

    ok(&server, &["group", "delete", "readers"]);
    let after = json(&server, &["group", "list"]);
    assert!(!after
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "readers"));
}

#[test]
fn perf_produce_and_consume_report_json() {
    let server = Server::start(&[]);
    let p = json(
        &server,
        &[
            "perf",
            "produce",
            "--topic",
            "bench",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--acks",
            "all",
            "--compression",
            "lz4",
            "--producers",
            "2",
        ],
    );
    assert_eq!(p["records"], 20000);
    assert_eq!(p["errors"], 0);
    assert!(p["latency_p99_ms"].as_f64().unwrap() >= p["latency_p50_ms"].as_f64().unwrap());
    assert!(p["records_per_sec"].as_f64().unwrap() > 0.0);
    let c = json(
        &server,
        &["perf", "consume", "--topic", "bench", "--messages", "20000"],
    );
    assert_eq!(c["records"], 20000);
    assert!((c["mb"].as_f64().unwrap() - 1.91).abs() < 0.01, "{c}");
    let table = ok(
        &server,
        &[
            "perf",
            "produce",
            "--topic",
            "bench",
            "--num-records",
            "1000",
            "--throughput",
            "2000",
        ],
    );
    assert!(table.starts_with("1000 records sent"), "{table}");
    assert!(
        table.contains("P50-MS  P95-MS  P99-MS  P99.9-MS  MAX-MS"),
        "{table}"
    );
}
