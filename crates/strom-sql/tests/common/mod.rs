//! Test harness: the real `strom` broker and topic helpers from `strom-testkit`, plus what the
//! SQL tests add: a Strom SQL server in this process and raw HTTP/1.1 requests to it.

#![allow(dead_code, unused_imports)]

use std::time::{Duration, Instant};

use strom_client::ConsumerRecord;
pub use strom_testkit::{
    create_topic, free_port, produce, s, strom_bin, Broker as Server, In, Read,
};

/// Reads `topic` from the beginning (read_committed) until `n` records arrived, then
/// `settle` longer to catch any extra record, or until `timeout`.
pub async fn read_n(
    b: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<ConsumerRecord> {
    let how = Read::new(timeout).committed(true).settle(settle);
    strom_testkit::read(b, topic, how, |r| r.len() >= n).await
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
    let mut headers = vec![("Content-Type", "application/vnd.ksql.v1+json")];
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = strom_testkit::http::request(
        addr,
        method,
        path,
        &headers,
        body.unwrap_or(""),
        Duration::from_secs(60),
    )?;
    Ok((r.status, r.head, r.body))
}
