//! The test harness of the ecosystem crates (strom-streams, strom-connect, strom-console,
//! strom-sql): the real `strom` binary started as a broker on a free port with a temporary
//! data directory, topic helpers on strom-client, and a minimal HTTP/1.1 client that speaks
//! to the REST APIs the way any client does.
//!
//! Only integration tests depend on this crate (as a dev-dependency). The broker's own tests
//! (`strom-cli/tests/common`) keep their larger harness, which also starts clusters.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

pub mod http;

/// The `strom` binary: `STROM_BIN`, else `strom` next to the running test's target directory
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

/// A port nothing listens on right now, and never handed out before in this process. The
/// OS may give the same port to two calls in a row once the first probe is closed; two tests
/// running at once then started two brokers on one port, and the second test, finding the
/// first one's broker listening, used it until that test ended and killed it.
///
/// The probe socket is bound but never listens: a listener, even for the moment of this
/// call, could be a port handed out earlier whose broker has not bound it yet, and another
/// test's "is it listening?" check would connect to it, return, and have its test's first
/// connection refused (seen once in CI, in `quotas.rs`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("a free port");
        let port = socket.local_addr().expect("its local address").port();
        drop(socket);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether a listener accepts connections on `addr` now.
///
/// A connection whose local address is its peer's does not count: while nothing listens
/// on a port in the ephemeral range, a connect can pick that very port as its source and
/// connect to itself (TCP simultaneous open). A harness that took that for "listening" let
/// a test run against a broker that had not bound its port yet.
pub fn accepts(addr: SocketAddr, timeout: Duration) -> bool {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s.local_addr().ok() != s.peer_addr().ok(),
        Err(_) => false,
    }
}

/// Waits until something accepts connections on `addr`; panics after `timeout`.
pub fn wait_listening(addr: SocketAddr, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !accepts(addr, Duration::from_millis(100)) {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `STROM_LOG` filter for child processes (default `warn`).
pub fn log_filter() -> String {
    std::env::var("STROM_LOG").unwrap_or_else(|_| "warn".into())
}

/// A `strom server` process on a free port, killed (and its data removed) on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker with extra `--set` settings (e.g. `schema.registry.listeners`), applied after
    /// the harness's own (a free `listeners` port, a temporary `log.dirs`, no initial
    /// rebalance delay, no topic auto-creation), so they may override them.
    pub fn start_with(extra: &[(&str, &str)]) -> Broker {
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
        cmd.env("STROM_LOG", log_filter())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start strom");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr, "strom", Duration::from_secs(30));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("strom exited ({status}) instead of serving on port {port}");
        }
        Broker {
            child,
            port,
            _tmp: tmp,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn admin(b: &str) -> Admin {
    Admin::new(ClientConfig::new(b)).await.unwrap()
}

/// Creates `name` with `partitions` partitions (replication 1) and waits for their leaders.
pub async fn create_topic(b: &str, name: &str, partitions: i32) {
    let admin = admin(b).await;
    for (n, r) in admin
        .create_topics(&[NewTopic::new(name, partitions, 1)], false)
        .await
        .unwrap()
    {
        r.unwrap_or_else(|e| panic!("create {n}: {e}"));
    }
    wait_for_leaders(&admin, name, partitions).await;
}

/// Waits until `name` has `partitions` partitions, each with a leader.
pub async fn wait_for_leaders(admin: &Admin, name: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(t) = admin.describe_topics(&[name.to_owned()]).await {
            if t[0].partitions.len() == partitions as usize
                && t[0].partitions.iter().all(|p| p.leader >= 0)
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "topic {name} has no leaders");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number of partitions of `topic`, waiting up to `timeout` for it to exist.
pub async fn partition_count(b: &str, topic: &str, timeout: Duration) -> i32 {
    let admin = admin(b).await;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(t) = admin.describe_topics(&[topic.to_owned()]).await {
            if !t[0].partitions.is_empty() {
                return t[0].partitions.len() as i32;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A record to produce: key, value, timestamp, partition (None: by key).
pub type In = (Option<Vec<u8>>, Option<Vec<u8>>, i64, Option<i32>);

/// A keyed string record at `ts`, partitioned by key.
pub fn kv(k: &str, v: &str, ts: i64) -> In {
    (
        Some(k.as_bytes().to_vec()),
        Some(v.as_bytes().to_vec()),
        ts,
        None,
    )
}

/// Produces `records` in order with strom-client and waits for every acknowledgement.
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

/// How [`read`] reads a topic.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    /// `isolation.level=read_committed`.
    pub committed: bool,
    /// The partitions to read; `None`: all of them, waiting for the topic to exist.
    pub partitions: Option<i32>,
    /// How long to wait for `done` in all.
    pub timeout: Duration,
    /// How long to go on reading after `done`, to catch records beyond the expected ones
    /// (duplicates).
    pub settle: Duration,
}

impl Read {
    pub fn new(timeout: Duration) -> Read {
        Read {
            committed: false,
            partitions: None,
            timeout,
            settle: Duration::ZERO,
        }
    }

    pub fn committed(mut self, yes: bool) -> Read {
        self.committed = yes;
        self
    }

    pub fn partitions(mut self, n: i32) -> Read {
        self.partitions = Some(n);
        self
    }

    pub fn settle(mut self, d: Duration) -> Read {
        self.settle = d;
        self
    }
}

/// Reads `topic` from the beginning, assigned (no group), until `done(records)` holds or the
/// timeout passes, then `settle` longer.
pub async fn read(
    b: &str,
    topic: &str,
    how: Read,
    mut done: impl FnMut(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + how.timeout;
    let mut c = ConsumerConfig::new(b);
    c.set("auto.offset.reset", "earliest").unwrap();
    c.set("fetch.max.wait.ms", "100").unwrap();
    if how.committed {
        c.set("isolation.level", "read_committed").unwrap();
    }
    let mut consumer = Consumer::new(c).await.unwrap();
    let n = match how.partitions {
        Some(n) => n,
        None => partition_count(b, topic, how.timeout).await,
    };
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(&tps);
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    let settle_end = Instant::now() + how.settle;
    while Instant::now() < settle_end {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

/// Bytes as a string (empty for null).
pub fn s(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_new_and_nothing_listens_on_it() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            assert!(!accepts(addr, Duration::from_millis(200)), "{addr} accepts");
        }
    }
}
