//! Test harness: starts the real `strom` binary (built from this workspace) on a free port
//! with a temporary data directory, and produces and reads topics with strom-client.

#![allow(dead_code)]

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

/// Reads `topic` from the beginning (read_committed) until `n` records arrived, then
/// `settle` longer to catch any extra record, or until `timeout`.
pub async fn read_n(
    b: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<ConsumerRecord> {
    let mut c = ConsumerConfig::new(b);
    c.set("auto.offset.reset", "earliest").unwrap();
    c.set("fetch.max.wait.ms", "100").unwrap();
    c.set("isolation.level", "read_committed").unwrap();
    let mut consumer = Consumer::new(c).await.unwrap();
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    let deadline = Instant::now() + timeout;
    let parts = loop {
        if let Ok(t) = admin.describe_topics(&[topic.to_owned()]).await {
            if !t[0].partitions.is_empty() {
                break t[0].partitions.len() as i32;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tps: Vec<TopicPartition> = (0..parts).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(&tps);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    let settle_end = Instant::now() + settle;
    while Instant::now() < settle_end {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

/// Logs of the in-process SQL server to stderr, filtered by `STROM_LOG` (default warn).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("STROM_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
}

/// A Strom SQL server running in this process on a free port, against `bootstrap`.
pub struct SqlServer {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<strom_sql::Result<()>>>,
}

impl SqlServer {
    pub async fn start(
        bootstrap: &str,
        service_id: &str,
        state: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> SqlServer {
        let port = free_port();
        let mut props: Vec<(String, String)> = vec![
            ("listeners".into(), format!("http://127.0.0.1:{port}")),
            ("bootstrap.servers".into(), bootstrap.into()),
            ("ksql.service.id".into(), service_id.into()),
            ("ksql.streams.state.dir".into(), state.display().to_string()),
            ("ksql.streams.commit.interval.ms".into(), "200".into()),
            (
                "ksql.streams.consumer.session.timeout.ms".into(),
                "6000".into(),
            ),
            (
                "ksql.streams.consumer.heartbeat.interval.ms".into(),
                "300".into(),
            ),
            (
                "ksql.streams.consumer.fetch.max.wait.ms".into(),
                "50".into(),
            ),
        ];
        for (k, v) in extra {
            props.push((k.to_string(), v.to_string()));
        }
        let cfg = strom_sql::server::ServerConfig::from_props(&props).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(strom_sql::server::run(cfg, async move {
            let _ = rx.await;
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _, _)) = http_try(port, "GET", "/healthcheck", None, None) {
                break;
            }
            assert!(!task.is_finished(), "the SQL server stopped at start");
            assert!(Instant::now() < deadline, "the SQL server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SqlServer {
            port,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server cleanly: its queries commit and stop.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// POST /ksql; the status and the parsed JSON body.
    pub fn ksql(&self, sql: &str, props: serde_json::Value) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"ksql": sql, "streamsProperties": props}).to_string();
        let (code, _, b) = http(self.port, "POST", "/ksql", Some(&body), None);
        let j = serde_json::from_str(&b).unwrap_or_else(|e| panic!("not JSON ({e}): {b}"));
        (code, j)
    }

    /// Runs statements that must succeed.
    pub fn ok(&self, sql: &str) -> serde_json::Value {
        let (code, j) = self.ksql(sql, serde_json::json!({}));
        assert_eq!(code, 200, "{sql}: {j}");
        j
    }
}

impl Drop for SqlServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// One HTTP/1.1 request over a plain socket, as any ksqlDB client sends it; returns the
/// status, the headers and the body (chunked transfer decoded).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    accept: Option<&str>,
) -> (u16, String, String) {
    http_try(port, method, path, body, accept).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn http_try(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    accept: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/vnd.ksql.v1+json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = accept {
        req.push_str(&format!("Accept: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((code, head.to_owned(), body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Bytes as a string (empty for null).
pub fn s(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}
