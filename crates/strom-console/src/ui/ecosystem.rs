//! The console's pages for the services beside the brokers: schemas (read from the Schema
//! Registry at `schema.registry.url`) and connectors (read from and paused, resumed or
//! restarted through a Connect worker's REST API at `connect.url`). Both are proxies with a
//! page size and a filter on the server; an unset service is a 404 naming the setting, and a
//! service's error comes back with its status and message.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use strom_schema::http_client::{request, Method};

use crate::rest::{RestError, RestResult};
use crate::Console;

type Shared = Arc<Console>;
type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// Percent-encodes a path segment (subject and connector names may hold anything).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One call to a service; its JSON answer, or its error as an upstream error.
async fn call(base: &str, method: Method, path: &str, service: &str) -> RestResult<Value> {
    let (status, body) = request(base, method, path, None).await.map_err(|e| {
        RestError::Upstream(StatusCode::BAD_GATEWAY, 50201, format!("{service}: {e}"))
    })?;
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            RestError::Upstream(
                StatusCode::BAD_GATEWAY,
                50202,
                format!("{service} answered something that is not JSON: {e}"),
            )
        })?
    };
    if !status.is_success() {
        let code = value["error_code"]
            .as_u64()
            .unwrap_or(u64::from(status.as_u16()));
        let message = value["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{service} answered HTTP {status}"));
        return Err(RestError::Upstream(status, code as u32, message));
    }
    Ok(value)
}

fn registry(c: &Console) -> RestResult<&str> {
    c.config().schema_registry_url.as_deref().ok_or_else(|| {
        RestError::NotConfigured(
            "No Schema Registry is configured (console.schema.registry.url)".into(),
        )
    })
}

fn connect(c: &Console) -> RestResult<&str> {
    c.config().connect_url.as_deref().ok_or_else(|| {
        RestError::NotConfigured("No Connect worker is configured (console.connect.url)".into())
    })
}

fn query(q: Params) -> RestResult<HashMap<String, String>> {
    q.map(|Query(q)| q)
        .map_err(|e| RestError::BadRequest(format!("bad query string: {}", e.body_text())))
}

/// `GET /api/console/schemas?filter=&offset=&limit=`: subjects with their latest version.
pub async fn schemas(State(c): State<Shared>, q: Params) -> RestResult<Response> {
    let q = query(q)?;
    let base = registry(&c)?;
    let (offset, limit) = super::api::page(&q)?;
    let filter = q
        .get("filter")
        .map(|f| f.trim().to_lowercase())
        .unwrap_or_default();
    let subjects = call(base, Method::GET, "/subjects", "the Schema Registry").await?;
    let mut names: Vec<String> = subjects
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .filter(|s| filter.is_empty() || s.to_lowercase().contains(&filter))
        .collect();
    names.sort();
    let total = names.len();
    let mut data = Vec::new();
    for subject in names.iter().skip(offset).take(limit) {
        let path = format!("/subjects/{}/versions/latest", segment(subject));
        let v = call(base, Method::GET, &path, "the Schema Registry").await?;
        data.push(json!({
            "subject": subject,
            "version": v["version"],
            "id": v["id"],
            "schema_type": v["schemaType"].as_str().unwrap_or("AVRO"),
        }));
    }
    Ok(crate::rest::ok_json(json!({
        "total": total, "offset": offset, "limit": limit, "data": data,
    })))
}

/// `GET /api/console/schemas/{subject}?version=`: a subject's versions, one version's
/// schema (the latest by default) and the subject's compatibility level.
pub async fn schema(
    State(c): State<Shared>,
    Path(subject): Path<String>,
    q: Params,
) -> RestResult<Response> {
    let q = query(q)?;
    let base = registry(&c)?;
    let version = q
        .get("version")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "latest".into());
    if version != "latest" && version.parse::<u32>().is_err() {
        return Err(RestError::BadRequest(format!(
            "version: '{version}' is not a version number or latest"
        )));
    }
    let s = segment(&subject);
    let versions = call(
        base,
        Method::GET,
        &format!("/subjects/{s}/versions"),
        "the Schema Registry",
    )
    .await?;
    let v = call(
        base,
        Method::GET,
        &format!("/subjects/{s}/versions/{version}"),
        "the Schema Registry",
    )
    .await?;
    let compatibility = call(
        base,
        Method::GET,
        &format!("/config/{s}?defaultToGlobal=true"),
        "the Schema Registry",
    )
    .await
    .ok()
    .and_then(|c| c["compatibilityLevel"].as_str().map(str::to_owned));
    Ok(crate::rest::ok_json(json!({
        "subject": subject,
        "versions": versions,
        "version": v["version"],
        "id": v["id"],
        "schema_type": v["schemaType"].as_str().unwrap_or("AVRO"),
        "schema": v["schema"],
        "references": v.get("references").cloned().unwrap_or(json!([])),
        "compatibility": compatibility,
    })))
}

/// `GET /api/console/connectors?filter=`: every connector of the worker with its state,
/// type, class and tasks.
pub async fn connectors(State(c): State<Shared>, q: Params) -> RestResult<Response> {
    let q = query(q)?;
    let base = connect(&c)?;
    let filter = q
        .get("filter")
        .map(|f| f.trim().to_lowercase())
        .unwrap_or_default();
    let all = call(
        base,
        Method::GET,
        "/connectors?expand=status&expand=info",
        "the Connect worker",
    )
    .await?;
    let mut data: Vec<Value> = all
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| filter.is_empty() || name.to_lowercase().contains(&filter))
        .map(|(name, c)| {
            let status = &c["status"];
            json!({
                "name": name,
                "type": status["type"],
                "state": status["connector"]["state"],
                "worker_id": status["connector"]["worker_id"],
                "class": c["info"]["config"]["connector.class"],
                "tasks": status["tasks"],
            })
        })
        .collect();
    data.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(crate::rest::ok_json(
        json!({ "total": data.len(), "data": data }),
    ))
}

/// `POST /api/console/connectors/{name}/{action}`: pause, resume or restart (with its tasks).
pub async fn connector_action(
    State(c): State<Shared>,
    Path((name, action)): Path<(String, String)>,
) -> RestResult<Response> {
    let base = connect(&c)?;
    let n = segment(&name);
    let (method, path) = match action.as_str() {
        "pause" => (Method::PUT, format!("/connectors/{n}/pause")),
        "resume" => (Method::PUT, format!("/connectors/{n}/resume")),
        "restart" => (
            Method::POST,
            format!("/connectors/{n}/restart?includeTasks=true"),
        ),
        other => {
            return Err(RestError::BadRequest(format!(
                "action: '{other}' is not pause, resume or restart"
            )))
        }
    };
    call(base, method, &path, "the Connect worker").await?;
    Ok(crate::rest::ok_json(
        json!({ "name": name, "action": action }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(segment("ünï"), "%C3%BCn%C3%AF");
    }
}
