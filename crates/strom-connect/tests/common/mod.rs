//! Test harness: the real `strom` broker binary on a free port (`STROM_BIN`, else the one
//! next to this test's target directory, built with `cargo build -p strom-cli` if missing, as
//! the other crates' tests do), topic helpers on strom-client, and a minimal HTTP/1.1 client
//! for the REST API.

#![allow(dead_code)]

pub mod dist;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as J;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, TopicPartition,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        assert!(
            cmd.status().expect("run cargo build").success(),
            "cargo build -p strom-cli failed"
        );
    }
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Broker {
    child: Child,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
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

pub async fn create_topic(b: &str, name: &str, partitions: i32) {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    for (n, r) in admin
        .create_topics(&[NewTopic::new(name, partitions, 1)], false)
        .await
        .unwrap()
    {
        r.unwrap_or_else(|e| panic!("create {n}: {e}"));
    }
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

/// Reads every partition of `topic` from the start until `want` records came or `timeout`.
pub async fn read_topic(
    b: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<ConsumerRecord> {
    let mut c = ConsumerConfig::new(b);
    c.set("auto.offset.reset", "earliest").unwrap();
    c.set("fetch.max.wait.ms", "100").unwrap();
    let mut consumer = Consumer::new(c).await.unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(&tps);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    // A little longer, to see records beyond `want` (duplicates).
    out.extend(consumer.poll(Duration::from_millis(300)).await.unwrap());
    out
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

/// An HTTP response: status, body text, and the body as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> J {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; the body (if any) is sent as JSON.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&J>) -> Resp {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to REST API");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
