//! Kafka Connect's REST API on axum: the same paths, bodies and status codes, errors as
//! `{"error_code": <status>, "message": ...}`. Every route calls one `Worker` method.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value as J};

use crate::config::Props;
use crate::error::{ConnectError, Result};
use crate::worker::{TargetState, Worker};

/// Largest request body accepted (connector configs are small JSON documents).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Applies a logger level change to the process (the CLI passes one that reloads its
/// `tracing` filter); arguments are the logger name and the log4j level.
pub type LevelHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Logger levels set through `/admin/loggers` (Kafka's log4j loggers, by name).
pub struct Loggers {
    /// logger → (level, last modified in epoch ms; `None` for the initial root level).
    levels: Mutex<BTreeMap<String, (String, Option<i64>)>>,
    hook: Option<LevelHook>,
}

impl std::fmt::Debug for Loggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loggers").finish()
    }
}

impl Loggers {
    /// The root logger at `root_level`; `hook` applies changes to the process.
    pub fn new(root_level: &str, hook: Option<LevelHook>) -> Loggers {
        let mut levels = BTreeMap::new();
        levels.insert("root".to_owned(), (root_level.to_owned(), None));
        Loggers {
            levels: Mutex::new(levels),
            hook,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Option<i64>)>> {
        self.levels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the REST API serves.
#[derive(Debug)]
pub struct App {
    pub worker: Arc<Worker>,
    pub loggers: Loggers,
}

type Shared = Arc<App>;

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let status = self.status();
        reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({ "error_code": status, "message": self.to_string() }),
        )
    }
}

pub(crate) fn reply(status: StatusCode, body: J) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn ok(r: Result<J>) -> Response {
    match r {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

fn empty(status: StatusCode, r: Result<()>) -> Response {
    match r {
        Ok(()) => status.into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) fn body_json(body: &Bytes) -> Result<J> {
    serde_json::from_slice(body)
        .map_err(|e| ConnectError::BadRequest(format!("Request body is not valid JSON: {e}")))
}

/// A JSON object of strings (a connector config); other value types are written as text.
pub(crate) fn config_of(v: &J) -> Result<Props> {
    let obj = v
        .as_object()
        .ok_or_else(|| ConnectError::BadRequest("Connector config must be a JSON object".into()))?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let text = match v {
                J::String(s) => s.clone(),
                J::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect())
}

/// The query as (key, value) pairs, keeping repeated keys (`expand=status&expand=info`).
pub(crate) fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

pub(crate) fn flag(q: &Option<String>, name: &str, default: bool) -> bool {
    query_pairs(q)
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.eq_ignore_ascii_case("true"))
        .unwrap_or(default)
}

/// The routes of Kafka Connect's REST API over `app`.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(root))
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
        .route("/connector-plugins", get(plugins))
        .route(
            "/connector-plugins/{plugin}/config",
            get(plugin_definitions),
        )
        .route("/connector-plugins/{plugin}/config/validate", put(validate))
        .route("/admin/loggers", get(loggers))
        .route("/admin/loggers/{logger}", get(logger).put(set_logger))
        .fallback(|| async { ConnectError::NoSuchEndpoint.into_response() })
        .method_not_allowed_fallback(|| async { ConnectError::MethodNotAllowed.into_response() })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

async fn root(State(app): State<Shared>) -> Response {
    let cluster = async {
        let admin = strom_client::Admin::new(strom_client::ClientConfig::new(
            &app.worker.config().bootstrap_servers,
        ))
        .await?;
        Ok::<_, strom_client::Error>(admin.describe_cluster().await?.cluster_id)
    };
    match cluster.await {
        Ok(id) => reply(
            StatusCode::OK,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": "strom",
                "kafka_cluster_id": id,
            }),
        ),
        Err(e) => ConnectError::from(e).into_response(),
    }
}

async fn list_connectors(State(app): State<Shared>, RawQuery(q): RawQuery) -> Response {
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
    if status || info {
        reply(StatusCode::OK, app.worker.expanded(status, info).await)
    } else {
        reply(StatusCode::OK, json!(app.worker.names().await))
    }
}

pub(crate) fn created(name: &str, body: J) -> Response {
    let mut resp = reply(StatusCode::CREATED, body);
    let location = format!("/connectors/{name}");
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn create_connector(State(app): State<Shared>, body: Bytes) -> Response {
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
        let (_, info) = app
            .worker
            .put_connector(&name, config, initial, false)
            .await?;
        Ok::<_, ConnectError>((name, info))
    };
    match r.await {
        Ok((name, info)) => created(&name, info),
        Err(e) => e.into_response(),
    }
}

async fn connector_info(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.info(&name).await)
}

async fn delete_connector(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    empty(StatusCode::NO_CONTENT, app.worker.delete(&name).await)
}

async fn connector_config(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.connector_config(&name).await.map(|c| json!(c)))
}

async fn put_config(State(app): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let r = async {
        let config = config_of(&body_json(&body)?)?;
        app.worker
            .put_connector(&name, config, TargetState::Started, true)
            .await
    };
    match r.await {
        Ok((true, info)) => created(&name, info),
        Ok((false, info)) => reply(StatusCode::OK, info),
        Err(e) => e.into_response(),
    }
}

async fn connector_status(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.status(&name).await)
}

async fn task_configs(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.task_configs(&name).await)
}

/// A task id from the path; not a number is no route at all (Jersey's 404).
pub(crate) fn task_id(task: &str) -> Result<i32> {
    task.parse().map_err(|_| ConnectError::NoSuchEndpoint)
}

async fn task_status(
    State(app): State<Shared>,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    let r = async { app.worker.task_status(&name, task_id(&task)?).await };
    ok(r.await)
}

async fn restart_task(
    State(app): State<Shared>,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    let r = async { app.worker.restart_task(&name, task_id(&task)?).await };
    empty(StatusCode::NO_CONTENT, r.await)
}

async fn topics(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.topics(&name).await)
}

async fn reset_topics(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    empty(StatusCode::OK, app.worker.reset_topics(&name).await)
}

async fn pause(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    empty(
        StatusCode::ACCEPTED,
        app.worker.set_target(&name, TargetState::Paused).await,
    )
}

async fn resume(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    empty(
        StatusCode::ACCEPTED,
        app.worker.set_target(&name, TargetState::Started).await,
    )
}

async fn stop(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    empty(
        StatusCode::ACCEPTED,
        app.worker.set_target(&name, TargetState::Stopped).await,
    )
}

async fn restart(
    State(app): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let include_tasks = flag(&q, "includeTasks", false);
    let only_failed = flag(&q, "onlyFailed", false);
    match app.worker.restart(&name, include_tasks, only_failed).await {
        Ok(Some(status)) => reply(StatusCode::ACCEPTED, status),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn offsets(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.offsets(&name).await)
}

async fn alter_offsets(
    State(app): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let r = async { app.worker.alter_offsets(&name, &body_json(&body)?).await };
    ok(r.await)
}

async fn reset_offsets(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    ok(app.worker.reset_offsets(&name).await)
}

async fn plugins(State(app): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let list = app
        .worker
        .plugins()
        .plugin_list(flag(&q, "connectorsOnly", true));
    reply(StatusCode::OK, J::Array(list))
}

async fn plugin_definitions(State(app): State<Shared>, Path(plugin): Path<String>) -> Response {
    ok(app.worker.plugins().plugin_config(&plugin).map(J::Array))
}

async fn validate(State(app): State<Shared>, Path(plugin): Path<String>, body: Bytes) -> Response {
    let plugins = app.worker.plugins();
    let r = async {
        let mut config = config_of(&body_json(&body)?)?;
        let requested = plugins
            .find_connector(&plugin)
            .ok_or_else(|| ConnectError::PluginNotFound(plugin.clone()))?;
        match config.get("connector.class") {
            None => {
                config.insert("connector.class".into(), plugin.clone());
            }
            Some(c) if plugins.find_connector(c).map(|p| p.class) != Some(requested.class) => {
                return Err(ConnectError::BadRequest(format!(
                    "Included connector type {c} does not match request type {plugin}"
                )))
            }
            Some(_) => {}
        }
        Ok(plugins.validate_connector_config(&config)?.to_json())
    };
    ok(r.await)
}

const LEVELS: [&str; 7] = ["OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

async fn loggers(State(app): State<Shared>) -> Response {
    let levels = app.loggers.lock();
    let body: serde_json::Map<String, J> = levels
        .iter()
        .map(|(k, (l, t))| (k.clone(), json!({"level": l, "last_modified": t})))
        .collect();
    reply(StatusCode::OK, J::Object(body))
}

async fn logger(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let levels = app.loggers.lock();
    // An unset logger has its nearest ancestor's level, as in log4j.
    let mut probe = name.as_str();
    loop {
        if let Some((l, t)) = levels.get(probe) {
            return reply(StatusCode::OK, json!({"level": l, "last_modified": t}));
        }
        match probe.rfind('.') {
            Some(i) => probe = &probe[..i],
            None => break,
        }
    }
    match levels.get("root") {
        Some((l, _)) => reply(StatusCode::OK, json!({"level": l, "last_modified": null})),
        None => ConnectError::NoSuchEndpoint.into_response(),
    }
}

async fn set_logger(State(app): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let r = (|| {
        let req = body_json(&body)?;
        let level = req.get("level").and_then(J::as_str).ok_or_else(|| {
            ConnectError::BadRequest(
                "Desired 'level' parameter was not specified in request.".into(),
            )
        })?;
        let level = level.to_ascii_uppercase();
        if !LEVELS.contains(&level.as_str()) {
            return Err(ConnectError::BadRequest(format!(
                "Invalid log level '{level}'."
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut levels = app.loggers.lock();
        let prefix = format!("{name}.");
        let mut changed: Vec<String> = levels
            .keys()
            .filter(|k| name == "root" || k.starts_with(&prefix))
            .cloned()
            .collect();
        if !changed.contains(&name) {
            changed.push(name.clone());
        }
        changed.sort();
        for k in &changed {
            levels.insert(k.clone(), (level.clone(), Some(now)));
        }
        drop(levels);
        if let Some(hook) = &app.loggers.hook {
            hook(&name, &level);
        }
        Ok(json!(changed))
    })();
    ok(r)
}
