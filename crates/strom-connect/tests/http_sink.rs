//! The HTTP sink against a real HTTP server started by the test (axum on a free port) that
//! records each request's method, path, headers and body: exact bodies and batch
//! boundaries, headers, BASIC and bearer auth, retries after 503s, and a permanently
//! failing endpoint: the task FAILED with nothing lost (a restart delivers everything), or
//! with `errors.tolerance=all` the failing records in the dead-letter queue.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::any;
use axum::Router;
use common::*;
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
    status: u16,
}

#[derive(Default)]
struct Server {
    seen: Mutex<Vec<Seen>>,
    /// Requests to /a answered 503 so far (the first two are).
    a_failures: Mutex<u32>,
    /// /c answers 500 while this is set.
    c_down: Mutex<bool>,
}

impl Server {
    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    fn ok_bodies(&self, path: &str) -> Vec<String> {
        self.seen(path)
            .into_iter()
            .filter(|s| s.status == 200)
            .map(|s| s.body)
            .collect()
    }
}

async fn handle(
    State(s): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let path = uri.path().to_owned();
    let status = match path.as_str() {
        "/a" => {
            let mut f = s.a_failures.lock().unwrap();
            if *f < 2 {
                *f += 1;
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
        "/c" if *s.c_down.lock().unwrap() => StatusCode::INTERNAL_SERVER_ERROR,
        "/d" if body.contains("poison") => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    s.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path,
        headers,
        body,
        status: status.as_u16(),
    });
    (status, "{}".to_owned())
}

async fn start_server() -> (Arc<Server>, SocketAddr) {
    let state = Arc::new(Server::default());
    let app = Router::new()
        .route("/{*path}", any(handle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, addr)
}

async fn start_worker(b: &str, dir: &std::path::Path) -> Standalone {
    let props: Props = [
        ("bootstrap.servers", b.to_owned()),
        ("listeners", "http://127.0.0.1:0".to_owned()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "100".to_owned()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Standalone::start(props, Vec::new(), None).await.unwrap()
}

async fn produce(b: &str, topic: &str, values: &[String]) {
    let p = Producer::new(ProducerConfig::new(b)).await.unwrap();
    for v in values {
        let rec = ProducerRecord::new(topic).value(v.clone().into_bytes());
        p.send(rec).await.unwrap().await.unwrap();
    }
}

async fn create(addr: SocketAddr, name: &str, config: serde_json::Value) {
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": name, "config": config})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

fn header<'a>(s: &'a Seen, name: &str) -> &'a str {
    s.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", s.headers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_headers_auth_and_retries() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "orders", 1).await;
    create_topic(&b, "events", 1).await;
    let (server, http_addr) = start_server().await;
    // Everything is in the topics before the connectors start, so each sink's first poll
    // gets all of it and the batch boundaries are fixed by batch.max.size.
    let orders: Vec<String> = (0..7).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
    produce(&b, "orders", &orders).await;
    let events: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
    produce(&b, "events", &events).await;

    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    create(
        w.addr,
        "orders-http",
        json!({
            "connector.class": "io.confluent.connect.http.HttpSinkConnector",
            "topics": "orders",
            "http.api.url": format!("http://{http_addr}/a"),
            "batch.max.size": "3",
            "headers": "X-Env:prod|X-Source: strom",
            "auth.type": "BASIC",
            "connection.user": "alice",
            "connection.password": "pw",
            "max.retries": "5",
            "retry.backoff.ms": "50",
        }),
    )
    .await;
    create(
        w.addr,
        "events-http",
        json!({
            "connector.class": "HttpSink",
            "topics": "events",
            "http.api.url": format!("http://{http_addr}/b"),
            "request.method": "PUT",
            "request.body.format": "string",
            "batch.max.size": "2",
            "batch.prefix": "<",
            "batch.suffix": ">",
            "batch.separator": ";",
            "headers": "Authorization:Bearer tok123",
        }),
    )
    .await;

    wait_for("all batches", Duration::from_secs(30), async || {
        (server.ok_bodies("/a").len() == 3 && server.ok_bodies("/b").len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        server.ok_bodies("/a"),
        vec![
            r#"[{"id":0},{"id":1},{"id":2}]"#,
            r#"[{"id":3},{"id":4},{"id":5}]"#,
            r#"[{"id":6}]"#,
        ]
    );
    // The first batch was refused twice with 503 and sent again, unchanged.
    let a = server.seen("/a");
    assert_eq!(
        a.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![503, 503, 200, 200, 200]
    );
    assert!(a[..3].iter().all(|s| s.body == a[2].body));
    for s in &a {
        assert_eq!(s.method, "POST");
        assert_eq!(header(s, "authorization"), "Basic YWxpY2U6cHc=");
        assert_eq!(header(s, "x-env"), "prod");
        assert_eq!(header(s, "x-source"), "strom");
        assert_eq!(header(s, "content-type"), "application/json");
    }
    assert_eq!(server.ok_bodies("/b"), vec!["<e0;e1>", "<e2;e3>", "<e4>"]);
    for s in server.seen("/b") {
        assert_eq!(s.method, "PUT");
        assert_eq!(header(&s, "authorization"), "Bearer tok123");
        assert_eq!(header(&s, "content-type"), "text/plain; charset=utf-8");
    }
    // No more requests than those.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.seen("/a").len(), 5);
    assert_eq!(server.seen("/b").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_fails_the_task_without_loss_or_fills_the_dlq() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "pay", 1).await;
    create_topic(&b, "mixed", 1).await;
    let (server, http_addr) = start_server().await;
    *server.c_down.lock().unwrap() = true;
    let pay: Vec<String> = (0..4).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    produce(&b, "pay", &pay).await;
    produce(
        &b,
        "mixed",
        &[
            "\"ok-1\"".to_owned(),
            "\"poison\"".to_owned(),
            "\"ok-2\"".to_owned(),
        ],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    create(
        w.addr,
        "strict",
        json!({
            "connector.class": "HttpSink",
            "topics": "pay",
            "http.api.url": format!("http://{http_addr}/c"),
            "batch.max.size": "10",
            "max.retries": "2",
            "retry.backoff.ms": "20",
        }),
    )
    .await;
    create(
        w.addr,
        "tolerant",
        json!({
            "connector.class": "HttpSink",
            "topics": "mixed",
            "http.api.url": format!("http://{http_addr}/d"),
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "http-dlq",
            "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true",
        }),
    )
    .await;

    let failed = wait_for(
        "the strict task to fail",
        Duration::from_secs(20),
        async || {
            let s = http(w.addr, "GET", "/connectors/strict/status", None)
                .await
                .json();
            (s["tasks"][0]["state"] == "FAILED").then_some(s)
        },
    )
    .await;
    let trace = failed["tasks"][0]["trace"].as_str().unwrap();
    assert!(
        trace.starts_with("Tolerance exceeded in error handler: stage TASK_PUT with class HttpSink failed: HTTP 500 Internal Server Error from "),
        "{trace}"
    );
    assert!(trace.ends_with("(after 3 attempts)"), "{trace}");
    // One batch, sent three times (the first try and two retries), never accepted.
    let c = server.seen("/c");
    assert_eq!(c.len(), 3);
    assert!(c
        .iter()
        .all(|s| s.status == 500 && s.body == r#"[{"n":0},{"n":1},{"n":2},{"n":3}]"#));

    // Nothing was committed: once the endpoint is back, a restart delivers every record.
    *server.c_down.lock().unwrap() = false;
    let r = http(w.addr, "POST", "/connectors/strict/tasks/0/restart", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    wait_for("the redelivery", Duration::from_secs(20), async || {
        (!server.ok_bodies("/c").is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        server.ok_bodies("/c"),
        vec![r#"[{"n":0},{"n":1},{"n":2},{"n":3}]"#]
    );

    // errors.tolerance=all: the refused record (400: not retried) goes to the DLQ with
    // Kafka's context headers; the others get through and the task runs on.
    let dlq = read_topic(&b, "http-dlq", 1, 1, Duration::from_secs(20)).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value.as_deref(), Some(&b"\"poison\""[..]));
    let h = |k: &str| {
        dlq[0]
            .headers
            .iter()
            .find(|(hk, _)| hk == k)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(h("__connect.errors.stage").as_deref(), Some("TASK_PUT"));
    assert_eq!(h("__connect.errors.topic").as_deref(), Some("mixed"));
    assert_eq!(h("__connect.errors.offset").as_deref(), Some("1"));
    assert_eq!(server.ok_bodies("/d"), vec![r#"["ok-1"]"#, r#"["ok-2"]"#]);
    assert_eq!(server.seen("/d").len(), 3);
    let s = http(w.addr, "GET", "/connectors/tolerant/status", None)
        .await
        .json();
    assert_eq!(s["tasks"][0]["state"], "RUNNING", "{s}");
}
