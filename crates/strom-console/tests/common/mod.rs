//! Test harness: the real `strom` broker from `strom-testkit`; serves the console in-process
//! on another port, and speaks raw HTTP/1.1 to it with hyper (whole bodies, and chunked
//! request bodies for the streamed produce mode).

#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use strom_console::{Console, ConsoleConfig};
pub use strom_testkit::{admin, create_topic, free_port, wait_for_leaders, Broker as Server};

/// The console served on a free local port; `base` is `http://127.0.0.1:<port>`.
pub struct ConsoleServer {
    pub console: Arc<Console>,
    pub base: String,
    pub addr: String,
}

pub async fn serve_console(config: ConsoleConfig) -> ConsoleServer {
    let console = Console::start(config).await.expect("console starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = strom_console::router(console.clone())
        .fallback(strom_console::rest::not_found)
        .method_not_allowed_fallback(strom_console::rest::method_not_allowed);
    tokio::spawn(async move { axum::serve(listener, app).await });
    ConsoleServer {
        console,
        base: format!("http://{addr}"),
        addr,
    }
}

async fn send(addr: &str, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

/// One request with a whole body; the status and the body as text.
pub async fn http(addr: &str, method: Method, path: &str, body: Option<&str>) -> (u16, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap();
    let resp = send(addr, req).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// `http` with the body parsed as JSON.
pub async fn http_json(addr: &str, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = http(addr, method, path, body).await;
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    (status, v)
}

pub async fn get(addr: &str, path: &str) -> (u16, Value) {
    http_json(addr, Method::GET, path, None).await
}

/// A request whose body is sent in chunks as the test goes (Transfer-Encoding: chunked).
pub struct Streaming {
    sender: Option<http_body_util::channel::Sender<Bytes>>,
    pub response: Response<Incoming>,
    buffered: Vec<u8>,
}

pub async fn streaming_post(addr: &str, path: &str) -> Streaming {
    let (sender, body) = Channel::<Bytes>::new(16);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut conn_sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post(path)
        .header("host", addr)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = conn_sender.send_request(req).await.unwrap();
    Streaming {
        sender: Some(sender),
        response,
        buffered: Vec::new(),
    }
}

impl Streaming {
    pub async fn send(&mut self, chunk: &str) {
        self.sender
            .as_mut()
            .expect("the request body is still open")
            .send(Frame::data(Bytes::from(chunk.to_owned())))
            .await
            .unwrap();
    }

    /// Ends the request body.
    pub fn finish(&mut self) {
        self.sender = None;
    }

    /// The next JSON value of the response (reports are concatenated JSON).
    pub async fn next_report(&mut self) -> Option<Value> {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buffered).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buffered.drain(..used);
                    return Some(v);
                }
                Some(Err(e)) if !e.is_eof() => panic!("bad report stream: {e}"),
                _ => {}
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.response.frame())
                .await
                .expect("a report within 20 s")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffered.extend_from_slice(&data);
            }
        }
    }
}

/// Replaces what changes from run to run (times, the host name) so bodies compare exactly.
pub fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "timestamp" | "observedAt" if x.is_number() => *x = Value::from(0),
                    "host" if x.is_string() => *x = Value::from("HOST"),
                    _ => normalize(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GET with extra request headers; the status, the response headers and the body.
pub async fn get_with_headers(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, String) {
    let mut req = Request::get(path).header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(addr, req.body(Full::new(Bytes::new())).unwrap()).await;
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, h, String::from_utf8(bytes.to_vec()).unwrap())
}

/// A producer on `b` (acks all, flushed by the caller through the delivery futures).
pub async fn producer(b: &str) -> strom_client::Producer {
    strom_client::Producer::new(strom_client::ProducerConfig::new(b))
        .await
        .unwrap()
}

/// A request with a body and extra headers; the status and the body as text.
pub async fn request_with_headers(
    addr: &str,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(
        addr,
        req.body(Full::new(Bytes::from(body.to_owned()))).unwrap(),
    )
    .await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// A Schema Registry on this broker, in-process, with two versions of `ui-orders-value`
/// (the second adds a field); its URL.
pub async fn start_registry(b: &str) -> String {
    use strom_registry::http_client::{request, Method};
    let url = format!("http://127.0.0.1:{}", free_port());
    let config = strom_registry::RegistryConfig::new(b, &url);
    tokio::spawn(async move {
        if let Err(e) = strom_registry::run(config, std::future::pending()).await {
            panic!("registry: {e}");
        }
    });
    eventually("the registry up", Duration::from_secs(30), async || {
        request(&url, Method::GET, "/subjects", None)
            .await
            .ok()
            .filter(|(s, _)| s.is_success())
            .map(|_| ())
    })
    .await;
    for fields in [
        r#"[{"name":"id","type":"long"}]"#,
        r#"[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]"#,
    ] {
        let schema = format!(r#"{{"type":"record","name":"Order","fields":{fields}}}"#);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, answer) = request(
            &url,
            Method::POST,
            "/subjects/ui-orders-value/versions",
            Some(body.into()),
        )
        .await
        .unwrap();
        assert!(status.is_success(), "register: {status} {answer:?}");
    }
    url
}

/// A standalone Connect worker on this broker, in-process, running a file source `ui-file`;
/// its REST URL and the running worker.
pub async fn start_connect(
    b: &str,
    dir: &std::path::Path,
) -> (String, strom_connect::standalone::Standalone) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(dir.join("in.txt"), "one\ntwo\n").unwrap();
    let props = |pairs: &[(&str, String)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let worker = props(&[
        ("bootstrap.servers", b.to_owned()),
        ("listeners", url.clone()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
    ]);
    let source = props(&[
        ("name", "ui-file".into()),
        ("connector.class", "FileStreamSource".into()),
        ("file", dir.join("in.txt").display().to_string()),
        ("topic", "ui-connect".into()),
    ]);
    let running = strom_connect::standalone::Standalone::start(worker, vec![source], None)
        .await
        .expect("the Connect worker starts");
    (url, running)
}
