//! The ksqlDB REST API on axum: `/ksql` (statements), `/query` (push and pull queries as a
//! chunked JSON array, PRINT as text lines), `/query-stream` (the newer API: a header line,
//! then one JSON array per row, HTTP/1.1 chunked or HTTP/2 streams), `/info`,
//! `/healthcheck`, `/status`. One port serves HTTP/1.1 and HTTP/2 cleartext with prior
//! knowledge (as ksqlDB's clients open it): axum::serve tells them apart by the preface.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::{schema_string, Engine, EngineConfig, QueryStream, RowSource};
use crate::{Result, SqlError};

/// The version this server reports in /info: the ksqlDB REST API it follows.
pub const KSQL_VERSION: &str = "0.29.0";

/// `strom sql server --config FILE`: ksqlDB's server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `listeners` (default `http://127.0.0.1:8088`).
    pub listener: String,
    pub bootstrap: String,
    pub service_id: String,
    pub schema_registry_url: Option<String>,
    /// Rows a push query buffers for a slow client before dropping it (default 10 000).
    pub push_buffer_rows: usize,
    pub state_dir: std::path::PathBuf,
    pub streams: Vec<(String, String)>,
}

impl ServerConfig {
    /// Reads a Java properties file (`key=value` or `key: value`, `#`/`!` comments).
    pub fn from_file(path: &Path) -> Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SqlError::server(format!("cannot read {}: {e}", path.display())))?;
        let mut props = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
                continue;
            }
            let (k, v) = l
                .split_once('=')
                .or_else(|| l.split_once(':'))
                .ok_or_else(|| {
                    SqlError::server(format!(
                        "{}:{}: expected key=value, got '{l}'",
                        path.display(),
                        n + 1
                    ))
                })?;
            props.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        ServerConfig::from_props(&props)
    }

    pub fn from_props(props: &[(String, String)]) -> Result<ServerConfig> {
        let mut c = ServerConfig {
            listener: "http://127.0.0.1:8088".into(),
            bootstrap: "localhost:9092".into(),
            service_id: "default_".into(),
            schema_registry_url: None,
            push_buffer_rows: 10_000,
            state_dir: std::env::temp_dir().join("strom-sql"),
            streams: Vec::new(),
        };
        let mut state_dir = None;
        for (k, v) in props {
            match k.as_str() {
                "listeners" => {
                    c.listener = v.split(',').next().unwrap_or_default().trim().to_owned()
                }
                "bootstrap.servers" | "ksql.streams.bootstrap.servers" => c.bootstrap = v.clone(),
                "ksql.service.id" => c.service_id = v.clone(),
                "ksql.schema.registry.url" => c.schema_registry_url = Some(v.clone()),
                "ksql.query.push.buffer.rows" => {
                    c.push_buffer_rows = v.trim().parse().map_err(|_| {
                        SqlError::server(format!("ksql.query.push.buffer.rows: not a number: {v}"))
                    })?
                }
                "ksql.streams.state.dir" => state_dir = Some(std::path::PathBuf::from(v)),
                _ => {
                    if let Some(s) = k.strip_prefix("ksql.streams.") {
                        c.streams.push((s.to_owned(), v.clone()));
                    } else {
                        tracing::info!("ignoring setting {k}");
                    }
                }
            }
        }
        c.state_dir = state_dir.unwrap_or_else(|| c.state_dir.join(&c.service_id));
        Ok(c)
    }

    /// `host:port` of the listener.
    pub fn bind_addr(&self) -> Result<String> {
        let l = self.listener.trim();
        let rest = l.strip_prefix("http://").ok_or_else(|| {
            SqlError::server(format!(
                "listeners: only http:// listeners are supported, got '{l}'"
            ))
        })?;
        Ok(rest.trim_end_matches('/').to_owned())
    }
}

#[derive(Clone)]
struct App {
    engine: Arc<Engine>,
    /// Turns true at shutdown: open push queries end so the server can stop.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Starts the engine (replaying the command topic) and serves until `shutdown` resolves.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.bind_addr()?)
        .await
        .map_err(|e| SqlError::server(format!("cannot listen on {}: {e}", cfg.listener)))?;
    let engine = Engine::start(EngineConfig {
        bootstrap: cfg.bootstrap.clone(),
        service_id: cfg.service_id.clone(),
        state_dir: cfg.state_dir.clone(),
        streams: cfg.streams.clone(),
        schema_registry_url: cfg.schema_registry_url.clone(),
        push_buffer_rows: cfg.push_buffer_rows,
    })
    .await?;
    tracing::info!(
        "Strom SQL (service id {}) listening on {}",
        cfg.service_id,
        cfg.listener
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = router_with_stop(engine.clone(), stop_rx);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await
        .map_err(SqlError::server);
    engine.shutdown().await;
    served
}

/// The REST API's routes; open push queries end when `stop` turns true (or its sender
/// is gone).
pub fn router_with_stop(engine: Arc<Engine>, stop: tokio::sync::watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/ksql", post(ksql))
        .route("/query", post(query))
        .route("/query-stream", post(query_stream))
        .route("/info", get(info))
        .route("/healthcheck", get(health))
        .route("/status", get(status))
        .route("/status/{kind}/{entity}/{action}", get(status_of))
        .with_state(App { engine, stop })
}

fn error_response(code: StatusCode, err: &SqlError, text: Option<&str>) -> Response {
    let error_code = match err {
        SqlError::Server(_) => 50000,
        _ => 40001,
    };
    let mut body = json!({
        "@type": if text.is_some() { "statement_error" } else { "generic_error" },
        "error_code": error_code,
        "message": err.to_string(),
    });
    if let Some(t) = text {
        body["statementText"] = json!(t);
        body["entities"] = json!([]);
    }
    (code, axum::Json(body)).into_response()
}

fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"@type": "generic_error", "error_code": 40000, "message": msg})),
    )
        .into_response()
}

/// String-valued properties of a request (`streamsProperties` / `properties`).
fn props_of(v: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    v.and_then(|p| p.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_body(body: &Bytes) -> std::result::Result<serde_json::Value, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(&format!("Invalid JSON in request: {e}"))))
}

async fn ksql(State(app): State<App>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(text) = req.get("ksql").and_then(|v| v.as_str()) else {
        return bad_request("The request needs a \"ksql\" field with the statements");
    };
    let props = props_of(req.get("streamsProperties"));
    let (entities, err) = app.engine.execute(text, &props).await;
    match err {
        None => (
            StatusCode::OK,
            axum::Json(serde_json::Value::Array(entities)),
        )
            .into_response(),
        Some((e, stmt)) => {
            let code = match e {
                SqlError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut r = error_response(code, &e, Some(&stmt));
            if !entities.is_empty() {
                // Statements before the failing one did run: say so, as ksqlDB does.
                let b = json!({
                    "@type": "statement_error", "error_code": 40001,
                    "message": e.to_string(), "statementText": stmt, "entities": entities
                });
                r = (code, axum::Json(b)).into_response();
            }
            r
        }
    }
}

/// A response body fed by a channel (chunked transfer encoding on HTTP/1.1).
struct ChanBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Resolves at shutdown (or when the stop sender is gone).
async fn until_stop(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Feeds a query's rows to `tx` as `line(row)` until the limit, the end of a pull query,
/// or the client leaving (the send fails); the transient query stops when `qs` drops.
async fn pump(
    mut qs: QueryStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::Sender<Bytes>,
    line: impl Fn(&[crate::types::Value]) -> String + Send,
    finish: Option<&'static str>,
    error: impl Fn(&str) -> String + Send,
) {
    let limit = qs.limit.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut rows = std::mem::replace(&mut qs.rows, RowSource::Done(Vec::new()));
    match &mut rows {
        RowSource::Done(v) => {
            for r in v.iter() {
                if sent >= limit || tx.send(Bytes::from(line(r))).await.is_err() {
                    return;
                }
                sent += 1;
            }
        }
        RowSource::Live(rx) => {
            while sent < limit {
                if qs.overflowed.load(std::sync::atomic::Ordering::Relaxed) {
                    let m = "The client is too slow: the push query's row buffer is full (ksql.query.push.buffer.rows), so the query was stopped.";
                    let _ = tx.send(Bytes::from(error(m))).await;
                    return;
                }
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => {
                            if tx.send(Bytes::from(line(&r))).await.is_err() {
                                return;
                            }
                            sent += 1;
                        }
                        None => break,
                    },
                    _ = tx.closed() => return,
                    _ = until_stop(&mut stop) => return,
                }
            }
        }
        RowSource::Print(rx) => {
            while sent < limit {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(l) => {
                            if tx.send(Bytes::from(format!("{l}\n"))).await.is_err() {
                                return;
                            }
                            // The format header line does not count as a record.
                            if !l.starts_with("Key format:") {
                                sent += 1;
                            }
                        }
                        None => break,
                    },
                    _ = tx.closed() => return,
                    _ = until_stop(&mut stop) => return,
                }
            }
            return;
        }
    }
    if let Some(f) = finish {
        let _ = tx.send(Bytes::from(f)).await;
    }
    drop(qs);
}

async fn query(State(app): State<App>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(text) = req.get("ksql").and_then(|v| v.as_str()) else {
        return bad_request("The request needs a \"ksql\" field with the query");
    };
    let props = props_of(req.get("streamsProperties"));
    let qs = match app.engine.query(text, &props).await {
        Ok(q) => q,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e, Some(text)),
    };
    let (tx, rx) = mpsc::channel(64);
    if matches!(qs.rows, RowSource::Print(_)) {
        tokio::spawn(pump(
            qs,
            app.stop.clone(),
            tx,
            |_| String::new(),
            None,
            |m| format!("{m}\n"),
        ));
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::new(ChanBody(rx)))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let cols: Vec<(String, crate::types::SqlType)> = qs.columns.clone();
    let header_line = json!({"header": {"queryId": qs.id, "schema": schema_string(&cols)}});
    let _ = tx.send(Bytes::from(format!("[{header_line},\n"))).await;
    let finish = if qs.limit.is_some() {
        "{\"finalMessage\":\"Limit Reached\"}]\n"
    } else {
        "{\"finalMessage\":\"Query Completed\"}]\n"
    };
    tokio::spawn(pump(
        qs,
        app.stop.clone(),
        tx,
        |r| {
            let cols: Vec<serde_json::Value> = r.iter().map(|v| v.to_rest_json()).collect();
            format!("{},\n", json!({"row": {"columns": cols}}))
        },
        Some(finish),
        |m| format!("{}]\n", json!({"errorMessage": generic_error(m)})),
    ));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(ChanBody(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn query_stream(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(text) = req.get("sql").and_then(|v| v.as_str()) else {
        return bad_request("The request needs a \"sql\" field with the query");
    };
    let props = props_of(req.get("properties"));
    let qs = match app.engine.query(text, &props).await {
        Ok(q) => q,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e, None),
    };
    if matches!(qs.rows, RowSource::Print(_)) {
        return bad_request("PRINT is served by /query");
    }
    // `application/json` asks for one JSON array; the default is the delimited format.
    let json_array = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let header_obj = json!({
        "queryId": qs.id,
        "columnNames": qs.columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
        "columnTypes": qs.columns.iter().map(|c| c.1.to_string()).collect::<Vec<_>>(),
    });
    let (tx, rx) = mpsc::channel(64);
    let (first, sep_end, ctype): (String, Option<&'static str>, &str) = if json_array {
        (format!("[{header_obj}"), Some("]"), "application/json")
    } else {
        (
            format!("{header_obj}\n"),
            None,
            "application/vnd.ksqlapi.delimited.v1",
        )
    };
    let _ = tx.send(Bytes::from(first)).await;
    tokio::spawn(pump(
        qs,
        app.stop.clone(),
        tx,
        move |r| {
            let row = serde_json::Value::Array(r.iter().map(|v| v.to_rest_json()).collect());
            if json_array {
                format!(",{row}")
            } else {
                format!("{row}\n")
            }
        },
        sep_end,
        move |m| {
            if json_array {
                format!(",{}]", generic_error(m))
            } else {
                format!("{}\n", generic_error(m))
            }
        },
    ));
    Response::builder()
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::new(ChanBody(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// ksqlDB's error object for a failure after the response started.
fn generic_error(message: &str) -> serde_json::Value {
    json!({"@type": "generic_error", "error_code": 50000, "message": message})
}

async fn info(State(app): State<App>) -> Response {
    axum::Json(json!({
        "KsqlServerInfo": {
            "version": KSQL_VERSION,
            "kafkaClusterId": app.engine.cfg.bootstrap,
            "ksqlServiceId": app.engine.cfg.service_id,
            "serverStatus": "RUNNING"
        }
    }))
    .into_response()
}

async fn health(State(app): State<App>) -> Response {
    let _ = app.engine.query_count().await;
    axum::Json(json!({
        "isHealthy": true,
        "details": {
            "metastore": {"isHealthy": true},
            "kafka": {"isHealthy": true},
            "commandRunner": {"isHealthy": true}
        }
    }))
    .into_response()
}

async fn status(State(app): State<App>) -> Response {
    let all = app.engine.command_statuses().await;
    let map: serde_json::Map<String, serde_json::Value> =
        all.into_iter().map(|(k, (st, _))| (k, json!(st))).collect();
    axum::Json(json!({ "commandStatuses": map })).into_response()
}

/// `/status/<type>/<entity>/<action>`: one command's status and message.
async fn status_of(
    State(app): State<App>,
    axum::extract::Path((kind, entity, action)): axum::extract::Path<(String, String, String)>,
) -> Response {
    let id = format!("{kind}/{entity}/{action}");
    match app.engine.command_statuses().await.get(&id) {
        Some((st, msg)) => axum::Json(json!({"status": st, "message": msg})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"@type": "generic_error", "error_code": 40400, "message": format!("Command not found: {id}")})),
        )
            .into_response(),
    }
}
