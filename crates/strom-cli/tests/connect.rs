//! `strom connect`: a standalone worker run from Kafka Connect's properties files moves a
//! file into a topic (read back with librdkafka), and the REST helpers create, list, pause,
//! resume and delete connectors.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use serde_json::Value;

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strom(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .expect("run strom");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_rows(args: &[&str]) -> Vec<Value> {
    let (ok, out, err) = strom(args);
    assert!(ok, "strom {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_standalone_worker_runs_file_connectors_and_the_rest_helpers_manage_them() {
    let server = common::Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let lines: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let rest_port = common::free_port();
    let url = format!("http://127.0.0.1:{rest_port}");
    let worker_props = dir.path().join("worker.properties");
    std::fs::write(
        &worker_props,
        format!(
            "bootstrap.servers={}\nkey.converter=org.apache.kafka.connect.storage.StringConverter\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\noffset.storage.file.filename={}\nlisteners={url}\nplugin.path=/usr/share/java\n",
            server.bootstrap(),
            dir.path().join("offsets").display()
        ),
    )
    .unwrap();
    let source = dir.path().join("source.properties");
    std::fs::write(
        &source,
        format!(
            "name=file-in\nconnector.class=FileStreamSource\ntasks.max=1\nfile={}\ntopic=from-file\n",
            input.display()
        ),
    )
    .unwrap();
    let _worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(["connect", "standalone"])
            .arg(&worker_props)
            .arg(&source)
            .env("STROM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the worker"),
    );

    // The file's lines arrive in the topic, in order.
    let records = common::consume(
        &server.bootstrap(),
        "from-file",
        &[0],
        Offset::Beginning,
        lines.len(),
        Duration::from_secs(60),
        &[],
    );
    let got: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(got, lines);

    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let rows = json_rows(&["connect", "list", "--url", &url, "--output", "json"]);
        if rows.first().is_some_and(|r| r["state"] == "RUNNING") {
            break rows;
        }
        assert!(Instant::now() < deadline, "never RUNNING: {rows:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "file-in");
    assert_eq!(listed[0]["type"], "source");

    // A sink created from a properties file writes the topic back out.
    let output = dir.path().join("out.txt");
    let sink = dir.path().join("sink.properties");
    std::fs::write(
        &sink,
        format!(
            "name=file-out\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\ntopics=from-file\nfile={}\n",
            output.display()
        ),
    )
    .unwrap();
    let created = json_rows(&[
        "connect",
        "create",
        sink.to_str().unwrap(),
        "--url",
        &url,
        "--output",
        "json",
    ]);
    assert_eq!(created[0]["name"], "file-out");
    assert_eq!(created[0]["type"], "sink");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&output).unwrap_or_default();
        if text.lines().count() >= lines.len() {
            assert_eq!(text.lines().collect::<Vec<_>>(), lines);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink wrote {} lines",
            text.lines().count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Pause, status, resume, delete.
    let (ok, _, err) = strom(&["connect", "pause", "file-out", "--url", &url]);
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = json_rows(&[
            "connect", "status", "file-out", "--url", &url, "--output", "json",
        ]);
        if rows[0]["state"] == "PAUSED" {
            break;
        }
        assert!(Instant::now() < deadline, "never PAUSED: {rows:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, _, err) = strom(&["connect", "resume", "file-out", "--url", &url]);
    assert!(ok, "{err}");
    let (ok, _, err) = strom(&["connect", "delete", "file-out", "--url", &url]);
    assert!(ok, "{err}");
    let (ok, _, err) = strom(&["connect", "status", "file-out", "--url", &url]);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    assert!(err.contains("file-out"), "{err}");
}
