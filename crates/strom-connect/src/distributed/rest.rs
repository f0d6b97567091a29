//! The REST API of a distributed worker: the connector routes of `crate::rest` (same paths,
//! bodies, status codes), answered from this worker's view of the config and status topics.
//! Writes go to the leader, as in Kafka: a worker that does not lead forwards the request to
//! the leader's advertised URL (adding `forward=false`, so a stale leader answers 409 rather
//! than forwarding again); the leader validates it and writes the config topic. A task
//! restart goes to the worker running the task. Plugin, validation and logger routes are
//! `crate::rest`'s own, over a worker with no connectors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value as J};
use strom_client::{Admin, ClientConfig, TopicPartition};

use super::{http, store, Herder};
use crate::config::Props;
use crate::connector::ConnectorType;
use crate::error::{ConnectError, Result};
use crate::offsets::OffsetStore;
use crate::rest::{
    body_json, config_of, created, flag, ok, query_pairs, reply, task_id, App, Loggers,
};
use crate::runner::sink_group;
use crate::worker::offsets_api::{
    check_source_offsets, parse_offset_changes, sink_offset_changes, OffsetChange,
};
use crate::worker::{check_connector_name, TargetState, Worker};

/// How long a write waits for a leader to be known (a rebalance to finish).
const LEADER_WAIT: Duration = Duration::from_secs(20);

type H = Arc<Herder>;

fn error(status: u16, message: &str) -> Response {
    reply(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error_code": status, "message": message}),
    )
}

/// The router of a distributed worker.
pub fn router(h: H) -> Router {
    // Plugins, validation and loggers need no connector state: the standalone router serves
    // them over an empty worker (its offsets file is never written: it runs nothing).
    let mut props = h.worker.props.clone();
    let unused = std::env::temp_dir().join(format!(
        "strom-connect-{}-{}.unused-offsets",
        std::process::id(),
        h.worker_id.replace([':', '/'], "_")
    ));
    props.insert(
        "offset.storage.file.filename".into(),
        unused.display().to_string(),
    );
    let fallback = crate::worker::WorkerConfig::from_props(props)
        .and_then(|c| Worker::with_plugins(c, h.worker_id.clone(), h.plugins.clone()))
        .map(|worker| {
            crate::rest::router(Arc::new(App {
                worker,
                loggers: Loggers::new("INFO", None),
            }))
        });
    let r = Router::new()
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(connector_info).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(connector_config).put(put_config),
        )
        .route("/connectors/{name}/status", get(connector_status))
        .route("/connectors/{name}/tasks", get(task_configs))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .method_not_allowed_fallback(|| async { ConnectError::MethodNotAllowed.into_response() })
        .with_state(h);
    match fallback {
        Ok(f) => r.fallback_service(f),
        Err(e) => {
            tracing::warn!("plugin and logger endpoints unavailable: {e}");
            r.fallback(|| async { ConnectError::NoSuchEndpoint.into_response() })
        }
    }
}

/// `Some(answer)` unless this worker leads the group: then the caller does the write itself.
async fn via_leader(h: &Herder, method: &Method, uri: &Uri, body: &Bytes) -> Option<Response> {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let may_forward = flag(&uri.query().map(str::to_owned), "forward", true);
    loop {
        let l = h.leadership();
        if l.is_leader {
            return None;
        }
        if let Some(url) = l.leader_url.filter(|u| *u != h.url) {
            if !may_forward {
                return Some(error(
                    409,
                    "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
                ));
            }
            let path = match uri.query() {
                Some(q) => format!("{}?{q}&forward=false", uri.path()),
                None => format!("{}?forward=false", uri.path()),
            };
            match http::send(&url, method.as_str(), &path, body).await {
                Ok(a) if a.status != 409 || tokio::time::Instant::now() > deadline => {
                    return Some(relay(a))
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("forwarding to the leader {url}: {e}"),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Some(error(
                409,
                "Cannot complete request momentarily due to no known leader URL, likely because a rebalance was underway.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn relay(a: http::Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, a.body).into_response();
    for (k, v) in a.headers {
        if k == "content-type" || k == "location" {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(name, value);
            }
        }
    }
    resp
}

macro_rules! leader_only {
    ($h:expr, $method:expr, $uri:expr, $body:expr) => {
        if let Some(resp) = via_leader(&$h, &$method, &$uri, &$body).await {
            return resp;
        }
    };
}

fn connector_type(h: &Herder, config: &Props) -> Option<ConnectorType> {
    h.plugins
        .connector_for(config)
        .ok()
        .map(|(p, _)| p.connector_type)
}

fn info_json(h: &Herder, name: &str) -> Result<J> {
    let view = h.view();
    let config = view
        .connectors
        .get(name)
        .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
    let n = view.tasks.get(name).map_or(0, Vec::len);
    let tasks: Vec<J> = (0..n)
        .map(|i| json!({"connector": name, "task": i}))
        .collect();
    Ok(json!({
        "name": name,
        "config": config,
        "tasks": tasks,
        "type": connector_type(h, config).map_or("unknown", ConnectorType::name),
    }))
}

/// A status record as the REST API shows it (without the generation, trace only if set).
fn shown(v: &J) -> serde_json::Map<String, J> {
    let mut m = serde_json::Map::new();
    m.insert("state".into(), v["state"].clone());
    if let Some(t) = v.get("trace").filter(|t| !t.is_null()) {
        m.insert("trace".into(), t.clone());
    }
    m.insert("worker_id".into(), v["worker_id"].clone());
    m
}

fn unassigned(h: &Herder) -> J {
    json!({"state": "UNASSIGNED", "worker_id": h.worker_id})
}

fn status_json(h: &Herder, name: &str) -> Result<J> {
    let view = h.view();
    let config = view
        .connectors
        .get(name)
        .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
    let statuses = h.statuses();
    let connector = statuses
        .get(&format!("status-connector-{name}"))
        .map(|v| J::Object(shown(v)))
        .unwrap_or_else(|| unassigned(h));
    let n = view.tasks.get(name).map_or(0, Vec::len);
    let tasks: Vec<J> = (0..n)
        .map(|i| {
            let mut m = statuses
                .get(&format!("status-task-{name}-{i}"))
                .map(shown)
                .unwrap_or_else(|| unassigned(h).as_object().cloned().unwrap_or_default());
            m.insert("id".into(), json!(i));
            J::Object(m)
        })
        .collect();
    Ok(json!({
        "name": name,
        "connector": connector,
        "tasks": tasks,
        "type": connector_type(h, config).map_or("unknown", ConnectorType::name),
    }))
}

async fn list_connectors(State(h): State<H>, RawQuery(q): RawQuery) -> Response {
    let mut status = false;
    let mut info = false;
    for (k, v) in query_pairs(&q) {
        if k == "expand" {
            match v.as_str() {
                "status" => status = true,
                "info" => info = true,
                _ => {}
            }
        }
    }
    let names: Vec<String> = h.view().connectors.keys().cloned().collect();
    if !(status || info) {
        return reply(StatusCode::OK, json!(names));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut m = serde_json::Map::new();
        if status {
            if let Ok(s) = status_json(&h, &name) {
                m.insert("status".into(), s);
            }
        }
        if info {
            if let Ok(i) = info_json(&h, &name) {
                m.insert("info".into(), i);
            }
        }
        out.insert(name, J::Object(m));
    }
    reply(StatusCode::OK, J::Object(out))
}

/// Kafka's checks of a connector config, then the exactly-once settings (KIP-618).
fn check_config(h: &Herder, name: &str, config: &mut Props) -> Result<()> {
    check_connector_name(name, config)?;
    let v = h.plugins.validate_connector_config(config)?;
    let mut errors = v.errors();
    let source = connector_type(h, config) == Some(ConnectorType::Source);
    match config.get("exactly.once.support").map(|s| s.trim()) {
        None | Some("") | Some("requested") => {}
        Some("required") if source && !h.dist.exactly_once => errors.push(
            "exactly.once.support: This worker does not have exactly-once source support enabled (exactly.once.source.support=enabled)".into(),
        ),
        Some("required") => {}
        Some(other) => errors.push(format!(
            "exactly.once.support: Invalid value {other}: must be one of requested, required"
        )),
    }
    match config.get("transaction.boundary").map(|s| s.trim()) {
        None | Some("") | Some("poll") => {}
        Some(other) => errors.push(format!(
            "transaction.boundary: Invalid value {other}: Strom supports the poll boundary only"
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::config::invalid_config_error(&errors))
    }
}

/// Writes a connector config (the leader); returns whether it was created and its info.
async fn put_connector(
    h: &Herder,
    name: &str,
    mut config: Props,
    initial: TargetState,
    allow_update: bool,
) -> Result<(bool, J)> {
    check_config(h, name, &mut config)?;
    h.sync_config().await?;
    let exists = h.view().connectors.contains_key(name);
    if exists && !allow_update {
        return Err(ConnectError::ConnectorExists(name.to_owned()));
    }
    let mut records = Vec::new();
    if !exists {
        records.push(store::target_record(name, Some(initial)));
    }
    records.push(store::connector_record(name, Some(&config)));
    h.write_config(records).await?;
    Ok((!exists, info_json(h, name)?))
}

async fn create_connector(State(h): State<H>, method: Method, uri: Uri, body: Bytes) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        let req = body_json(&body)?;
        let name = req
            .get("name")
            .and_then(J::as_str)
            .ok_or_else(|| ConnectError::BadRequest("Connector name must be specified".into()))?
            .to_owned();
        let config = config_of(req.get("config").unwrap_or(&J::Null))?;
        let initial = match req.get("initial_state") {
            None | Some(J::Null) => TargetState::Started,
            Some(s) => s
                .as_str()
                .and_then(TargetState::parse_initial)
                .ok_or_else(|| {
                    ConnectError::BadRequest(format!(
                        "Invalid initial state {s}; must be one of RUNNING, PAUSED, STOPPED"
                    ))
                })?,
        };
        let (_, info) = put_connector(&h, &name, config, initial, false).await?;
        Ok::<_, ConnectError>((name, info))
    };
    match r.await {
        Ok((name, info)) => created(&name, info),
        Err(e) => e.into_response(),
    }
}

async fn connector_info(State(h): State<H>, Path(name): Path<String>) -> Response {
    ok(info_json(&h, &name))
}

async fn connector_config(State(h): State<H>, Path(name): Path<String>) -> Response {
    ok(h.view()
        .connectors
        .get(&name)
        .map(|c| json!(c))
        .ok_or(ConnectError::ConnectorNotFound(name)))
}

async fn put_config(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        let config = config_of(&body_json(&body)?)?;
        put_connector(&h, &name, config, TargetState::Started, true).await
    };
    match r.await {
        Ok((true, info)) => created(&name, info),
        Ok((false, info)) => reply(StatusCode::OK, info),
        Err(e) => e.into_response(),
    }
}

async fn delete_connector(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        h.sync_config().await?;
        if !h.view().connectors.contains_key(&name) {
            return Err(ConnectError::ConnectorNotFound(name.clone()));
        }
        h.write_config(vec![
            store::connector_record(&name, None),
            store::target_record(&name, None),
        ])
        .await?;
        let prefix = format!("status-task-{name}-");
        let gone: Vec<(String, Option<Vec<u8>>)> = h
            .statuses()
            .into_iter()
            .filter(|(k, v)| {
                *k == format!("status-connector-{name}")
                    || k.strip_prefix(&prefix)
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                    || (k.starts_with("topic-") && v["topic"]["connector"] == json!(name))
            })
            .map(|(k, _)| (k, None))
            .collect();
        h.write_status(gone).await
    };
    match r.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn connector_status(State(h): State<H>, Path(name): Path<String>) -> Response {
    ok(status_json(&h, &name))
}

async fn task_configs(State(h): State<H>, Path(name): Path<String>) -> Response {
    let view = h.view();
    if !view.connectors.contains_key(&name) {
        return ConnectError::ConnectorNotFound(name).into_response();
    }
    let tasks: Vec<J> = view
        .tasks
        .get(&name)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| json!({"id": {"connector": name, "task": i}, "config": c}))
        .collect();
    reply(StatusCode::OK, J::Array(tasks))
}

async fn task_status(State(h): State<H>, Path((name, task)): Path<(String, String)>) -> Response {
    let r = (|| {
        let t = task_id(&task)?;
        let n = h.view().tasks.get(&name).map_or(0, Vec::len);
        let s = h
            .statuses()
            .get(&format!("status-task-{name}-{t}"))
            .filter(|_| usize::try_from(t).is_ok_and(|i| i < n))
            .map(shown)
            .ok_or_else(|| ConnectError::TaskStatusNotFound {
                connector: name.clone(),
                task: t,
            })?;
        let mut s = s;
        s.insert("id".into(), json!(t));
        Ok(J::Object(s))
    })();
    ok(r)
}

async fn restart_task(
    State(h): State<H>,
    Path((name, task)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let r = async {
        let t = task_id(&task)?;
        let unknown = || ConnectError::UnknownTask {
            connector: name.clone(),
            task: t,
        };
        let view = h.view();
        if !view.connectors.contains_key(&name) {
            return Err(ConnectError::ConnectorNotFound(name.clone()));
        }
        let i = usize::try_from(t)
            .ok()
            .filter(|i| *i < view.tasks.get(&name).map_or(0, Vec::len))
            .ok_or_else(unknown)?;
        let owner = h
            .statuses()
            .get(&format!("status-task-{name}-{i}"))
            .and_then(|s| s["worker_id"].as_str().map(str::to_owned))
            .ok_or_else(unknown)?;
        if owner == h.worker_id {
            h.restart_task(&name, i).await?;
            return Ok(None);
        }
        if !flag(&uri.query().map(str::to_owned), "forward", true) {
            return Err(unknown());
        }
        let path = format!("{}?forward=false", uri.path());
        let a = http::send(&format!("http://{owner}/"), method.as_str(), &path, &body).await?;
        Ok(Some(relay(a)))
    };
    match r.await {
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some(resp)) => resp,
        Err(e) => e.into_response(),
    }
}

fn topic_keys(h: &Herder, name: &str) -> Vec<(String, String)> {
    h.statuses()
        .into_iter()
        .filter(|(k, v)| k.starts_with("topic-") && v["topic"]["connector"] == json!(name))
        .filter_map(|(k, v)| Some((k, v["topic"]["name"].as_str()?.to_owned())))
        .collect()
}

async fn topics(State(h): State<H>, Path(name): Path<String>) -> Response {
    if !h.view().connectors.contains_key(&name) {
        return ConnectError::ConnectorNotFound(name).into_response();
    }
    let mut topics: Vec<String> = topic_keys(&h, &name).into_iter().map(|(_, t)| t).collect();
    topics.sort();
    topics.dedup();
    reply(StatusCode::OK, json!({ name: { "topics": topics } }))
}

async fn reset_topics(State(h): State<H>, Path(name): Path<String>) -> Response {
    if !h.view().connectors.contains_key(&name) {
        return ConnectError::ConnectorNotFound(name).into_response();
    }
    let gone = topic_keys(&h, &name)
        .into_iter()
        .map(|(k, _)| (k, None))
        .collect();
    match h.write_status(gone).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn set_target(
    h: H,
    name: String,
    method: Method,
    uri: Uri,
    body: Bytes,
    target: TargetState,
) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        h.sync_config().await?;
        if !h.view().connectors.contains_key(&name) {
            return Err(ConnectError::ConnectorNotFound(name.clone()));
        }
        h.write_config(vec![store::target_record(&name, Some(target))])
            .await
    };
    match r.await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn pause(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    set_target(h, name, method, uri, body, TargetState::Paused).await
}

async fn resume(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    set_target(h, name, method, uri, body, TargetState::Started).await
}

async fn stop(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    set_target(h, name, method, uri, body, TargetState::Stopped).await
}

async fn restart(
    State(h): State<H>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    leader_only!(h, method, uri, body);
    let include_tasks = flag(&q, "includeTasks", false);
    let only_failed = flag(&q, "onlyFailed", false);
    let r = async {
        h.sync_config().await?;
        let mut status = status_json(&h, &name)?;
        if h.view().target(&name) != TargetState::Stopped {
            h.write_config(vec![store::restart_record(
                &name,
                include_tasks,
                only_failed,
            )])
            .await?;
            let failed = |s: &J| s["state"] == json!("FAILED");
            if !only_failed || failed(&status["connector"]) {
                status["connector"]["state"] = json!("RESTARTING");
            }
            if include_tasks {
                for t in status["tasks"].as_array_mut().into_iter().flatten() {
                    if !only_failed || failed(t) {
                        t["state"] = json!("RESTARTING");
                    }
                }
            }
        }
        Ok::<_, ConnectError>(status)
    };
    match r.await {
        Ok(s) if include_tasks || only_failed => reply(StatusCode::ACCEPTED, s),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn admin(h: &Herder) -> Result<Admin> {
    Ok(Admin::new(ClientConfig::new(&h.worker.bootstrap_servers)).await?)
}

/// The connector's type; with `must_be_stopped`, KIP-875's check for altering offsets.
fn type_of(h: &Herder, name: &str, must_be_stopped: bool) -> Result<ConnectorType> {
    let view = h.view();
    let config = view
        .connectors
        .get(name)
        .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
    if must_be_stopped && view.target(name) != TargetState::Stopped {
        return Err(ConnectError::BadRequest(format!(
            "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
        )));
    }
    connector_type(h, config)
        .ok_or_else(|| ConnectError::BadRequest(format!("Connector {name} has no known type")))
}

async fn offsets(State(h): State<H>, Path(name): Path<String>) -> Response {
    let r = async {
        let list: Vec<J> = match type_of(&h, &name, false)? {
            ConnectorType::Source => {
                h.offsets().tail.read_to_end().await?;
                h.offsets()
                    .list(&name)
                    .into_iter()
                    .map(|(p, o)| json!({"partition": p, "offset": o}))
                    .collect()
            }
            ConnectorType::Sink => admin(&h)
                .await?
                .list_group_offsets(&sink_group(&name))
                .await?
                .into_iter()
                .filter(|(_, c)| c.offset >= 0)
                .map(|(tp, c)| {
                    json!({
                        "partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition},
                        "offset": {"kafka_offset": c.offset},
                    })
                })
                .collect(),
        };
        Ok(json!({ "offsets": list }))
    };
    ok(r.await)
}

async fn delete_group(admin: &Admin, group: &str) -> Result<()> {
    for (_, r) in admin.delete_groups(&[group.to_owned()]).await? {
        match r {
            Ok(()) => {}
            Err(e) if e.to_string().contains("GROUP_ID_NOT_FOUND") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn alter_sink(h: &Herder, name: &str, changes: Vec<OffsetChange>) -> Result<()> {
    let changes = sink_offset_changes(changes)?;
    let admin = admin(h).await?;
    let group = sink_group(name);
    let mut committed: BTreeMap<TopicPartition, i64> = admin
        .list_group_offsets(&group)
        .await?
        .into_iter()
        .filter(|(_, c)| c.offset >= 0)
        .map(|(tp, c)| (tp, c.offset))
        .collect();
    let mut removes = false;
    for (tp, offset) in changes {
        match offset {
            None => {
                removes = true;
                committed.remove(&tp);
            }
            Some(v) => {
                committed.insert(tp, v);
            }
        }
    }
    if removes {
        delete_group(&admin, &group).await?;
    }
    if !committed.is_empty() {
        admin.alter_group_offsets(&group, &committed).await?;
    }
    Ok(())
}

async fn alter_offsets(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        let kind = type_of(&h, &name, true)?;
        let changes = parse_offset_changes(&body_json(&body)?)?;
        match kind {
            ConnectorType::Source => {
                let config = h.view().connectors.get(&name).cloned().unwrap_or_default();
                if let Ok((plugin, _)) = h.plugins.connector_for(&config) {
                    check_source_offsets(&plugin, &changes)?;
                }
                h.offsets().put(&name, changes).await?
            }
            ConnectorType::Sink => alter_sink(&h, &name, changes).await?,
        }
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    };
    ok(r.await)
}

async fn reset_offsets(
    State(h): State<H>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    leader_only!(h, method, uri, body);
    let r = async {
        match type_of(&h, &name, true)? {
            ConnectorType::Source => {
                h.offsets().tail.read_to_end().await?;
                h.offsets().remove_connector(&name).await?
            }
            ConnectorType::Sink => delete_group(&admin(&h).await?, &sink_group(&name)).await?,
        }
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    };
    ok(r.await)
}
