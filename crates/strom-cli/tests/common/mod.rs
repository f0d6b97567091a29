//! Test harness: starts the real `strom` binary on a free port with a temporary data
//! directory, and builds librdkafka clients (the reference client) pointed at it.

#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod faultnet;
pub mod groups;
pub mod http;
pub mod load;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

/// A running `strom server` process; killed when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    extra: Vec<(String, String)>,
    options: Options,
    _tmp: Option<tempfile::TempDir>,
}

/// How to run the process, beyond its settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// RLIMIT_NOFILE (soft and hard) of the server, set with `prlimit`.
    pub nofile: Option<u64>,
    /// STROM_LOG filter for this server (default: the test's STROM_LOG, else `warn`).
    pub log_filter: Option<String>,
    /// Write the server's log to a file readable with [`Server::log`] instead of stderr.
    pub capture_log: bool,
    /// The listener's name and security protocol (default PLAINTEXT): SSL, SASL_SSL, ...
    pub protocol: Option<&'static str>,
    /// More listeners after the first, as `NAME://host:port,...`.
    pub more_listeners: Option<String>,
}

pub use strom_testkit::free_port;

impl Server {
    /// Starts a server with a fresh data directory and `extra` settings (Kafka names).
    pub fn start(extra: &[(&str, &str)]) -> Server {
        Self::start_with(extra, Options::default())
    }

    /// Like [`Server::start`], run as `options` say.
    pub fn start_with(extra: &[(&str, &str)], options: Options) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let extra = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut server = Server {
            child: None,
            port: free_port(),
            data,
            extra,
            options,
            _tmp: Some(tmp),
        };
        server.spawn();
        server
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = match self.options.nofile {
            // prlimit execs the binary, so the child's pid is the server's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_strom"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_strom")),
        };
        let log_filter = self.options.log_filter.clone();
        cmd.arg("server")
            .arg("--set")
            .arg(format!(
                "listeners={}://127.0.0.1:{}{}",
                self.options.protocol.unwrap_or("PLAINTEXT"),
                self.port,
                self.options
                    .more_listeners
                    .as_deref()
                    .map(|m| format!(",{m}"))
                    .unwrap_or_default()
            ))
            .arg("--set")
            .arg(format!("log.dirs={}", self.data.display()))
            // Tests run many brokers at once: no default HTTP listener on :8080 (the HTTP
            // tests set http.listeners to a port of their own).
            .arg("--set")
            .arg("http.listeners=")
            .env(
                "STROM_LOG",
                log_filter
                    .or_else(|| std::env::var("STROM_LOG").ok())
                    .unwrap_or_else(|| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.options.capture_log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("server log file");
            cmd.stderr(file);
        }
        for (k, v) in &self.extra {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let mut child = cmd.spawn().expect("start strom");
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !strom_testkit::accepts(addr, Duration::from_millis(100)) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("strom exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "strom did not listen on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(child) => terminate(child, Duration::from_secs(20)),
            None => false,
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_file_name("server.log")
    }

    /// The server's log so far (with `Options::capture_log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }
}

/// SIGTERM to `child`, then waits up to `timeout` for it to exit (SIGKILL after that);
/// returns whether it exited successfully.
pub fn terminate(mut child: Child, timeout: Duration) -> bool {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("admin client")
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "20000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// A consumer without a group, reading by `assign()`.
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    c.set("group.id", "strom-test-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// An owned copy of a consumed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

pub fn to_record(m: &BorrowedMessage<'_>) -> Record {
    use rdkafka::message::Headers;
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Record {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        timestamp: m.timestamp().to_millis(),
        headers,
    }
}

/// Reads `count` records from the given partitions starting at `offset`, or panics after
/// `timeout` with what it got.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    offset: Offset,
    count: usize,
    timeout: Duration,
    extra: &[(&str, &str)],
) -> Vec<Record> {
    let consumer = consumer(bootstrap, extra);
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, offset).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + timeout;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} records from {topic} before the timeout",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(to_record(&m)),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

/// Runs `tests/python/<script>` (a kafka-python client; `scripts/test` installs kafka-python)
/// against `server` and asserts it exits 0 and prints `<ok_marker>`.
pub fn run_python_client(server: &Server, script: &str, ok_marker: &str) {
    let path = format!("{}/../../tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(&path)
        .arg(server.bootstrap())
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(ok_marker), "{stdout}");
}
