//! The REST API of Confluent Schema Registry on axum: routes, query parameters, request
//! bodies and responses (`application/vnd.schemaregistry.v1+json`, errors as
//! `{"error_code", "message"}`). Writes on a secondary instance are forwarded to the primary.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::election::{Election, Primary};
use crate::error::{RegistryError, Result};
use crate::http_client::{self, CONTENT_TYPE};
use crate::model::{CompatibilityLevel, Mode};
use crate::service::{Registry, SchemaRequest, VersionId};

/// Largest request body accepted (schemas are JSON text; Confluent's default is similar).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How long a forwarded write waits for an unreachable primary to be replaced.
const FORWARD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct App {
    pub registry: Registry,
    pub election: Election,
}

type Shared = Arc<App>;
type Params = Query<HashMap<String, String>>;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        reply(
            status,
            json!({ "error_code": code, "message": self.to_string() }),
        )
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

fn ok(r: Result<Value>) -> Response {
    match r {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn body_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| RegistryError::MalformedRequest(format!("Unrecognized request body: {e}")))
}

fn parse_id(s: &str) -> Result<i32> {
    s.parse()
        .map_err(|_| RegistryError::SchemaNotFound(s.to_owned()))
}

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/schemas", get(list_schemas))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/config",
            get(global_config).put(put_config).delete(delete_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(global_mode).put(put_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode).put(put_mode).delete(delete_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .fallback(|| async { RegistryError::NoSuchEndpoint.into_response() })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

async fn schema_types() -> Response {
    reply(StatusCode::OK, json!(["JSON", "PROTOBUF", "AVRO"]))
}

/// `offset` (default 0) and `limit` (default -1: all) of Confluent's listing endpoints.
fn paging(q: &HashMap<String, String>) -> Result<(usize, i64)> {
    let number = |name: &str, default: i64| -> Result<i64> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                RegistryError::MalformedRequest(format!("'{name}' must be a number, not '{v}'"))
            }),
        }
    };
    let offset = number("offset", 0)?;
    Ok((usize::try_from(offset).unwrap_or(0), number("limit", -1)?))
}

/// A list answer paged by `offset` and `limit`.
fn paged(v: Value, q: &HashMap<String, String>) -> Result<Value> {
    let (offset, limit) = paging(q)?;
    Ok(match v {
        Value::Array(items) => {
            let rest = items.into_iter().skip(offset);
            match usize::try_from(limit) {
                Ok(n) => Value::Array(rest.take(n).collect()),
                Err(_) => Value::Array(rest.collect()),
            }
        }
        other => other,
    })
}

async fn list_schemas(State(app): State<Shared>, Query(q): Params) -> Response {
    let prefix = q.get("subjectPrefix").map(String::as_str).unwrap_or("");
    ok(paging(&q).map(|(offset, limit)| {
        app.registry.list_schemas(
            prefix,
            flag(&q, "deleted"),
            flag(&q, "latestOnly"),
            offset,
            limit,
        )
    }))
}

async fn schema_by_id(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    let format = q.get("format").map(String::as_str);
    ok(parse_id(&id).and_then(|id| {
        app.registry
            .schema_by_id(id, format, flag(&q, "fetchMaxId"))
    }))
}

async fn schema_text_by_id(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| app.registry.schema_text_by_id(id)) {
        Ok(text) => raw_schema(text),
        Err(e) => e.into_response(),
    }
}

/// The `/schema` endpoints return the schema itself as the body.
fn raw_schema(text: String) -> Response {
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

async fn subjects_of_id(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    ok(parse_id(&id)
        .and_then(|id| app.registry.subjects_of_id(id, flag(&q, "deleted")))
        .and_then(|v| paged(v, &q)))
}

async fn versions_of_id(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    ok(parse_id(&id)
        .and_then(|id| app.registry.versions_of_id(id, flag(&q, "deleted")))
        .and_then(|v| paged(v, &q)))
}

async fn subjects(State(app): State<Shared>, Query(q): Params) -> Response {
    let prefix = q.get("subjectPrefix").map(String::as_str).unwrap_or("");
    // confluent-kafka's Python client spells it `deleted_only`.
    let deleted_only = flag(&q, "deletedOnly") || flag(&q, "deleted_only");
    ok(paging(&q).map(|(offset, limit)| {
        app.registry
            .subjects(prefix, flag(&q, "deleted"), deleted_only, offset, limit)
    }))
}

async fn versions(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Response {
    ok(app
        .registry
        .versions(&subject, flag(&q, "deleted"))
        .and_then(|v| paged(v, &q)))
}

async fn version(
    State(app): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let format = q.get("format").map(String::as_str);
    ok(VersionId::parse(&version).and_then(|v| {
        app.registry
            .version(&subject, v, flag(&q, "deleted"), format)
    }))
}

async fn version_schema(
    State(app): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match VersionId::parse(&version).and_then(|v| app.registry.version_schema_text(&subject, v)) {
        Ok(text) => raw_schema(text),
        Err(e) => e.into_response(),
    }
}

async fn referenced_by(
    State(app): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    ok(VersionId::parse(&version).and_then(|v| app.registry.referenced_by(&subject, v)))
}

async fn lookup(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    ok(body_json::<SchemaRequest>(&body).and_then(|req| {
        app.registry
            .lookup(&subject, &req, flag(&q, "normalize"), flag(&q, "deleted"))
    }))
}

async fn compatibility(
    State(app): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let result = VersionId::parse(&version).and_then(|v| {
        let req = body_json::<SchemaRequest>(&body)?;
        app.registry
            .check_compatibility(&subject, Some(v), &req, flag(&q, "normalize"))
    });
    compatibility_reply(result, flag(&q, "verbose"))
}

async fn compatibility_all(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let result = body_json::<SchemaRequest>(&body).and_then(|req| {
        app.registry
            .check_compatibility(&subject, None, &req, flag(&q, "normalize"))
    });
    compatibility_reply(result, flag(&q, "verbose"))
}

fn compatibility_reply(result: Result<Vec<String>>, verbose: bool) -> Response {
    ok(result.map(|messages| {
        let mut out = json!({ "is_compatible": messages.is_empty() });
        if verbose {
            out["messages"] = json!(messages);
        }
        out
    }))
}

async fn global_config(State(app): State<Shared>) -> Response {
    ok(app.registry.config(None, true))
}

async fn subject_config(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Response {
    ok(app
        .registry
        .config(Some(&subject), flag(&q, "defaultToGlobal")))
}

async fn global_mode(State(app): State<Shared>) -> Response {
    ok(app.registry.mode(None, true))
}

async fn subject_mode(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Response {
    ok(app
        .registry
        .mode(Some(&subject), flag(&q, "defaultToGlobal")))
}

// ---- writes: served by the primary, forwarded by the others ----

/// `Some(response)` when this instance is not the primary: the request went to the primary
/// and its answer is relayed as is.
async fn forwarded(app: &App, method: &Method, uri: &Uri, body: &Bytes) -> Option<Response> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let deadline = std::time::Instant::now() + FORWARD_WAIT;
    loop {
        let url = match app.election.primary().await {
            Ok(Primary::Me) => return None,
            Ok(Primary::Other(url)) => url,
            Err(e) => return Some(e.into_response()),
        };
        match http_client::request(&url, method.clone(), path, Some(body.clone())).await {
            Ok((status, body)) => {
                let mut resp = (status, body).into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                return Some(resp);
            }
            // Nothing was sent: the primary just died and the group has not moved the role
            // yet (it does after the session timeout). Ask again.
            Err(e)
                if e.starts_with(http_client::CONNECT_FAILED)
                    && std::time::Instant::now() < deadline =>
            {
                app.election.forget_primary();
                tracing::debug!(%url, error = %e, "primary unreachable; waiting for the group");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                app.election.forget_primary();
                return Some(RegistryError::Forward(format!("{url}: {e}")).into_response());
            }
        }
    }
}

async fn register(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let req = match body_json::<SchemaRequest>(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(resp) = forwarded(&app, &method, &uri, &body).await {
        return resp;
    }
    ok(app
        .registry
        .register(&subject, req, flag(&q, "normalize"))
        .await)
}

async fn delete_subject(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    method: Method,
    uri: Uri,
) -> Response {
    if let Some(resp) = forwarded(&app, &method, &uri, &Bytes::new()).await {
        return resp;
    }
    ok(app
        .registry
        .delete_subject(&subject, flag(&q, "permanent"))
        .await)
}

async fn delete_version(
    State(app): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    method: Method,
    uri: Uri,
) -> Response {
    let v = match VersionId::parse(&version) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if let Some(resp) = forwarded(&app, &method, &uri, &Bytes::new()).await {
        return resp;
    }
    ok(app
        .registry
        .delete_version(&subject, v, flag(&q, "permanent"))
        .await)
}

#[derive(serde::Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

async fn put_config(
    State(app): State<Shared>,
    subject: Option<Path<String>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let level = body_json::<ConfigBody>(&body).and_then(|b| {
        b.compatibility
            .or(b.compatibility_level)
            .ok_or(RegistryError::InvalidCompatibilityLevel)
            .and_then(|l| CompatibilityLevel::parse(&l))
    });
    let level = match level {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    if let Some(resp) = forwarded(&app, &method, &uri, &body).await {
        return resp;
    }
    let subject = subject.map(|Path(s)| s);
    ok(app.registry.set_config(subject.as_deref(), level).await)
}

async fn delete_config(
    State(app): State<Shared>,
    subject: Option<Path<String>>,
    method: Method,
    uri: Uri,
) -> Response {
    if let Some(resp) = forwarded(&app, &method, &uri, &Bytes::new()).await {
        return resp;
    }
    let subject = subject.map(|Path(s)| s);
    ok(app.registry.delete_config(subject.as_deref()).await)
}

#[derive(serde::Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

async fn put_mode(
    State(app): State<Shared>,
    subject: Option<Path<String>>,
    Query(q): Params,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mode = body_json::<ModeBody>(&body)
        .and_then(|b| b.mode.ok_or(RegistryError::InvalidMode))
        .and_then(|m| Mode::parse(&m));
    let mode = match mode {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    if let Some(resp) = forwarded(&app, &method, &uri, &body).await {
        return resp;
    }
    let subject = subject.map(|Path(s)| s);
    ok(app
        .registry
        .set_mode(subject.as_deref(), mode, flag(&q, "force"))
        .await)
}

async fn delete_mode(
    State(app): State<Shared>,
    Path(subject): Path<String>,
    method: Method,
    uri: Uri,
) -> Response {
    if let Some(resp) = forwarded(&app, &method, &uri, &Bytes::new()).await {
        return resp;
    }
    ok(app.registry.delete_mode(&subject).await)
}
