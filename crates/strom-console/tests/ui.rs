//! End-to-end test of the web console in a real headless Chromium (Debian's `chromium`)
//! driven by Playwright (`playwright-core` from npm, pinned in tests/ui/package-lock.json):
//! starts the broker and the console, installs the npm package if `node_modules` is
//! missing (`npm ci`), and runs `node tests/ui/console.mjs <console-url> <bootstrap>
//! <screenshot-dir>`. The script creates and deletes topics, produces, browses and filters
//! through the pages; when it prints `STEP <name>` this test drives the consumer group
//! `ui-group` (caught up, lagging, caught up again, stopped) and answers `DONE`; the script
//! then resets the group's offsets with a preview. Screenshots go to `STROM_UI_SCREENSHOTS`
//! or `<target>/tmp/console-screenshots`.
//!
//! Needs `node` (>= 18, with npm) and `/usr/bin/chromium` (or `CHROMIUM`): without them the
//! test fails and says what to install.
//!
//! `ui_page_load_figures` (ignored: it writes a million records) measures page load times
//! on a topic of 1,000,000 records and a cluster of ~2,000 partitions:
//! `cargo test -p strom-console --test ui -- --ignored --nocapture`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use strom_client::{Consumer, ConsumerConfig, ProducerRecord, TopicPartition};
use strom_console::ConsoleConfig;
use tokio::sync::{mpsc, oneshot};

const INSTALL: &str = "install them with: apt-get install -y chromium nodejs npm \
     (node >= 18; the test runs `npm ci` in crates/strom-console/tests/ui itself)";

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

/// Checks node and chromium, and installs playwright-core with `npm ci` when missing.
fn prepare() {
    let node = Command::new("node").arg("--version").output();
    let node_ok = node.as_ref().is_ok_and(|o| o.status.success());
    assert!(node_ok, "the console UI test needs node: {INSTALL}");
    assert!(
        chromium().exists(),
        "the console UI test needs Chromium at {}: {INSTALL}",
        chromium().display()
    );
    let dir = ui_dir();
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run npm ({e}): {INSTALL}"));
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
}

fn screenshot_dir(name: &str) -> PathBuf {
    let dir = std::env::var("STROM_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"))
        .join(name);
    println!("console screenshots: {}", dir.display());
    // This run's screenshots only (a failure.png of an earlier run would mislead).
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    dir
}

enum Cmd {
    Hold(oneshot::Sender<()>),
    Resume,
    Close(oneshot::Sender<()>),
}

/// The group's consumer: polls and commits its positions while consuming; on `Hold` it
/// pauses its partitions (and keeps heartbeating through `poll`) and commits nothing.
async fn consumer_task(b: String, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut cc = ConsumerConfig::new(&b);
    for (k, v) in [
        ("group.id", "ui-group"),
        ("client.id", "ui-consumer"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ] {
        cc.set(k, v).unwrap();
    }
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&["ui-orders"], None).unwrap();
    let mut held = false;
    loop {
        match rx.try_recv() {
            Ok(Cmd::Hold(ack)) => {
                consumer.pause(&consumer.assignment());
                held = true;
                let _ = ack.send(());
            }
            Ok(Cmd::Resume) => {
                consumer.resume(&consumer.assignment());
                held = false;
            }
            Ok(Cmd::Close(ack)) => {
                consumer.close().await.unwrap();
                let _ = ack.send(());
                return;
            }
            Err(_) => {}
        }
        consumer.poll(Duration::from_millis(100)).await.unwrap();
        let assigned = consumer.assignment();
        if !held && !assigned.is_empty() {
            let offsets: BTreeMap<TopicPartition, i64> = assigned
                .iter()
                .map(|tp| (tp.clone(), consumer.position(tp).unwrap_or(0)))
                .collect();
            consumer.commit_offsets(&offsets).await.unwrap();
        }
    }
}

async fn committed(b: &str) -> Vec<i64> {
    let c = admin(b).await.list_group_offsets("ui-group").await.unwrap();
    (0..2)
        .map(|p| {
            c.get(&TopicPartition::new("ui-orders", p))
                .map_or(-1, |o| o.offset)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() {
    prepare();
    let server = Server::start();
    let b = server.bootstrap();
    let mut cfg = ConsoleConfig::new(&b);
    cfg.history_interval = Duration::from_millis(500);
    cfg.lag.poll_interval = Duration::from_millis(500);
    cfg.schema_registry_url = Some(start_registry(&b).await);
    let work = tempfile::tempdir().unwrap();
    let (connect_url, _connect) = start_connect(&b, work.path()).await;
    cfg.connect_url = Some(connect_url);
    let cs = serve_console(cfg).await;
    let shots = screenshot_dir("scenario");

    let mut child = Command::new("node")
        .arg(ui_dir().join("console.mjs"))
        .arg(&cs.base)
        .arg(&b)
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let mut cmd_rx = Some(cmd_rx);
    let producer = producer(&b).await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut passed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = tokio::time::timeout(left, lines.recv()).await else {
            let _ = child.kill();
            panic!("the UI scenario did not finish within 240 s");
        };
        let Some(line) = line else { break };
        println!("ui: {line}");
        passed |= line == "PASS";
        let Some(step) = line.strip_prefix("STEP ") else {
            continue;
        };
        match step {
            "group-caught-up" => {
                tokio::spawn(consumer_task(b.clone(), cmd_rx.take().unwrap()));
                eventually("ui-group caught up", Duration::from_secs(30), async || {
                    (committed(&b).await == [3, 0]).then_some(())
                })
                .await;
                let (ack, done) = oneshot::channel();
                cmd_tx.send(Cmd::Hold(ack)).unwrap();
                done.await.unwrap();
            }
            "lag-up" => {
                let mut futs = Vec::new();
                for i in 0..50 {
                    let r = ProducerRecord::new("ui-orders")
                        .partition(i % 2)
                        .key(format!("k{i}"))
                        .value(format!("{{\"n\":{i}}}"));
                    futs.push(producer.send(r).await.unwrap());
                }
                for f in futs {
                    f.await.unwrap();
                }
            }
            "lag-down" => {
                cmd_tx.send(Cmd::Resume).unwrap();
                eventually(
                    "ui-group caught up again",
                    Duration::from_secs(30),
                    async || (committed(&b).await == [28, 25]).then_some(()),
                )
                .await;
            }
            "stop" => {
                let (ack, done) = oneshot::channel();
                cmd_tx.send(Cmd::Close(ack)).unwrap();
                done.await.unwrap();
            }
            other => panic!("unknown step {other}"),
        }
        writeln!(stdin, "DONE").unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(
        status.success() && passed,
        "the UI scenario failed ({status}); screenshots in {}",
        shots.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 1,000,000 records and creates ~2,000 partitions (a few minutes)"]
async fn ui_page_load_figures() {
    prepare();
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "big", 1).await;
    let producer = {
        let mut c = strom_client::ProducerConfig::new(&b);
        c.set("linger.ms", "20").unwrap();
        c.set("batch.size", "1000000").unwrap();
        strom_client::Producer::new(c).await.unwrap()
    };
    let started = Instant::now();
    let mut futs = Vec::new();
    for i in 0..1_000_000u32 {
        let r = ProducerRecord::new("big")
            .key(format!("key-{i}"))
            .value(format!(
                "{{\"id\":{i},\"item\":\"widget-{}\",\"qty\":{}}}",
                i % 1000,
                i % 7
            ));
        futs.push(producer.send(r).await.unwrap());
        if futs.len() >= 50_000 {
            for f in futs.drain(..) {
                f.await.unwrap();
            }
        }
    }
    for f in futs {
        f.await.unwrap();
    }
    println!("1,000,000 records written in {:?}", started.elapsed());
    // ~2,000 partitions: 20 topics of 50 and one of 1,000.
    let admin = admin(&b).await;
    let topics = (0..20)
        .map(|i| (format!("wide-{i:02}"), 50))
        .chain([("wide-1000".to_owned(), 1000)]);
    for (name, n) in topics {
        admin
            .create_topics(&[strom_client::NewTopic::new(&name, n, 1)], false)
            .await
            .unwrap()
            .into_iter()
            .for_each(|(t, r)| r.unwrap_or_else(|e| panic!("create {t}: {e}")));
        wait_for_leaders(&admin, &name, n).await;
    }
    let cs = serve_console(ConsoleConfig::new(&b)).await;
    let shots = screenshot_dir("bench");
    let out = Command::new("node")
        .arg(ui_dir().join("console.mjs"))
        .args(["--bench", &cs.base, "big", "wide-1000"])
        .arg(&shots)
        .arg("5")
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "the page load run failed");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .expect("a BENCH line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    for page in [
        "topics",
        "wide_topic_partitions",
        "messages_latest",
        "messages_at_offset",
        "messages_filtered_100k",
        "messages_filtered_latest_100k",
    ] {
        let ms = v[page]["median_ms"].as_f64().unwrap();
        assert!(ms > 0.0 && ms < 10_000.0, "{page} loads in {ms} ms");
    }
}
