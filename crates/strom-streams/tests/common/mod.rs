//! Test harness: starts the real `strom` binary (built from this workspace) on a free port
//! with a temporary data directory, and produces and reads topics with strom-client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

/// The `strom` binary: `STROM_BIN`, else `strom` next to this test's target directory
/// (built with `cargo build -p strom-cli` if missing, as `cargo test --workspace` does).
pub fn strom_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STROM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join("strom");
    if !bin.exists() {
        let target = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "strom-cli", "--bin", "strom", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p strom-cli failed");
    }
    bin
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Server {
    child: Child,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A broker with extra `--set` settings (e.g. `schema.registry.listeners`).
    pub fn start_with(extra: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(strom_bin());
        cmd.arg("server");
        for (k, v) in [
            ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
            ("log.dirs", tmp.path().join("data").display().to_string()),
            ("group.initial.rebalance.delay.ms", "0".into()),
            ("auto.create.topics.enable", "false".into()),
        ] {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (k, v) in extra {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.env(
            "STROM_LOG",
            std::env::var("STROM_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start strom");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "strom did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            port,
            _tmp: tmp,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn create_topic(b: &str, name: &str, partitions: i32) {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    for (n, r) in admin
        .create_topics(&[NewTopic::new(name, partitions, 1)], false)
        .await
        .unwrap()
    {
        r.unwrap_or_else(|e| panic!("create {n}: {e}"));
    }
    // Wait for leaders.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(t) = admin.describe_topics(&[name.to_owned()]).await {
            if t[0].partitions.len() == partitions as usize
                && t[0].partitions.iter().all(|p| p.leader >= 0)
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "topic {name} has no leaders");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A record to produce: key, value, timestamp, partition (None: by key).
pub type In = (Option<Vec<u8>>, Option<Vec<u8>>, i64, Option<i32>);

pub async fn produce(b: &str, topic: &str, records: &[In]) {
    let mut c = ProducerConfig::new(b);
    c.set("linger.ms", "2").unwrap();
    let p = Producer::new(c).await.unwrap();
    let mut acks = Vec::new();
    for (k, v, ts, part) in records {
        let rec = ProducerRecord {
            topic: topic.to_owned(),
            partition: *part,
            key: k.clone().map(Into::into),
            value: v.clone().map(Into::into),
            headers: Vec::new(),
            timestamp: Some(*ts),
        };
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    p.close().await;
}

pub fn kv(k: &str, v: &str, ts: i64) -> In {
    (
        Some(k.as_bytes().to_vec()),
        Some(v.as_bytes().to_vec()),
        ts,
        None,
    )
}

/// Reads `topic` from the beginning until `done(records)` holds or `timeout` passes.
pub async fn read_until(
    b: &str,
    topic: &str,
    committed: bool,
    timeout: Duration,
    mut done: impl FnMut(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    let mut c = ConsumerConfig::new(b);
    c.set("auto.offset.reset", "earliest").unwrap();
    c.set("fetch.max.wait.ms", "100").unwrap();
    if committed {
        c.set("isolation.level", "read_committed").unwrap();
    }
    let mut consumer = Consumer::new(c).await.unwrap();
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    let deadline = Instant::now() + timeout;
    let n = loop {
        if let Ok(t) = admin.describe_topics(&[topic.to_owned()]).await {
            break t[0].partitions.len() as i32;
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(&tps);
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

pub fn s(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

pub fn i64v(b: &Option<bytes::Bytes>) -> i64 {
    i64::from_be_bytes(b.as_deref().unwrap_or(&[0; 8]).try_into().unwrap_or([0; 8]))
}

/// The last value per key (as strings) of records.
pub fn latest<V>(
    records: &[ConsumerRecord],
    value: impl Fn(&Option<bytes::Bytes>) -> V,
) -> BTreeMap<String, V> {
    records
        .iter()
        .map(|r| (s(&r.key), value(&r.value)))
        .collect()
}

pub fn config(b: &str, app: &str, state: &std::path::Path) -> strom_streams::StreamsConfig {
    let mut c = strom_streams::StreamsConfig::new(app, b);
    c.set("state.dir", &state.display().to_string()).unwrap();
    c.set("commit.interval.ms", "200").unwrap();
    c.set("consumer.session.timeout.ms", "6000").unwrap();
    c.set("consumer.heartbeat.interval.ms", "300").unwrap();
    c.set("consumer.fetch.max.wait.ms", "100").unwrap();
    c
}
