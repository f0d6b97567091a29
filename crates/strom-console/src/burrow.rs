//! Burrow's HTTP API (v3) over the lag monitor: clusters, consumers, topics, a consumer's
//! offsets and its evaluated status. Every answer carries `error`, `message` and `request`
//! (`url`, `host`) as Burrow's do; errors are `{"error": true, "message": ...}` with a 4xx/5xx.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::lag::{Entry, GroupReport, PartitionReport, PartitionStatus};
use crate::Console;

type Shared = Arc<Console>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/burrow/admin", get(|| async { "GOOD" }))
        .route("/v3/kafka", get(clusters))
        .route("/v3/kafka/{cluster}", get(cluster))
        .route("/v3/kafka/{cluster}/consumer", get(consumers))
        .route(
            "/v3/kafka/{cluster}/consumer/{group}",
            get(consumer).delete(remove_consumer),
        )
        .route("/v3/kafka/{cluster}/consumer/{group}/status", get(status))
        .route("/v3/kafka/{cluster}/consumer/{group}/lag", get(lag))
        .route("/v3/kafka/{cluster}/topic", get(topics))
        .route("/v3/kafka/{cluster}/topic/{topic}", get(topic))
}

/// A Burrow answer: `fields` plus `error`, `message` and `request`.
fn answer(c: &Console, uri: &Uri, status: StatusCode, message: &str, fields: Value) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), json!(!status.is_success()));
    body.insert("message".into(), json!(message));
    if let Value::Object(f) = fields {
        body.extend(f);
    }
    body.insert(
        "request".into(),
        json!({ "url": uri.path(), "host": c.hostname() }),
    );
    (status, Json(Value::Object(body))).into_response()
}

fn error(c: &Console, uri: &Uri, status: StatusCode, message: &str) -> Response {
    answer(c, uri, status, message, json!({}))
}

/// The cluster check every `/v3/kafka/{cluster}/...` request starts with: the 404 to answer
/// for a cluster this console does not watch.
fn unknown_cluster(c: &Console, uri: &Uri, cluster: &str) -> Option<Response> {
    (cluster != c.config().cluster_name)
        .then(|| error(c, uri, StatusCode::NOT_FOUND, "cluster not found"))
}

async fn clusters(State(c): State<Shared>, uri: Uri) -> Response {
    let clusters = json!({ "clusters": [c.config().cluster_name] });
    answer(&c, &uri, StatusCode::OK, "cluster list returned", clusters)
}

async fn cluster(State(c): State<Shared>, uri: Uri, Path(cluster): Path<String>) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    let servers: Vec<&str> = c.config().bootstrap.split(',').map(str::trim).collect();
    let module = json!({
        "module": {
            "class-name": "kafka",
            "servers": servers,
            "client-profile": { "name": "strom-client", "client-id": "strom-console" },
            "offset-refresh": c.config().lag.poll_interval.as_secs(),
            "topic-refresh": c.config().lag.poll_interval.as_secs(),
        }
    });
    answer(
        &c,
        &uri,
        StatusCode::OK,
        "cluster module detail returned",
        module,
    )
}

async fn consumers(State(c): State<Shared>, uri: Uri, Path(cluster): Path<String>) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    let groups: Vec<String> = {
        let s = c.lag_store().lock().unwrap_or_else(|p| p.into_inner());
        s.groups().map(str::to_owned).collect()
    };
    answer(
        &c,
        &uri,
        StatusCode::OK,
        "consumer list returned",
        json!({ "consumers": groups }),
    )
}

fn entry_json(e: &Entry) -> Value {
    json!({ "offset": e.offset, "timestamp": e.timestamp_ms, "observedAt": e.timestamp_ms, "lag": e.lag })
}

fn partition_json(p: &PartitionReport) -> Value {
    json!({
        "topic": p.tp.topic,
        "partition": p.tp.partition,
        "owner": p.owner,
        "client_id": p.client_id,
        "status": p.status.name(),
        "start": entry_json(&p.start),
        "end": entry_json(&p.end),
        "current_lag": p.current_lag,
        "complete": p.complete,
    })
}

/// The `status` object; `all` lists every partition (`/lag`), else only those not OK.
pub fn status_json(cluster: &str, r: &GroupReport, all: bool) -> Value {
    let partitions: Vec<Value> = r
        .partitions
        .iter()
        .filter(|p| all || p.status != PartitionStatus::Ok)
        .map(partition_json)
        .collect();
    json!({
        "cluster": cluster,
        "group": r.group,
        "status": r.status.name(),
        "complete": r.complete,
        "partitions": partitions,
        "partition_count": r.partitions.len(),
        "maxlag": r.max_lag().map(partition_json),
        "totallag": r.total_lag,
    })
}

async fn consumer(
    State(c): State<Shared>,
    uri: Uri,
    Path((cluster, group)): Path<(String, String)>,
) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    let Some(r) = c.group_report(&group) else {
        return error(&c, &uri, StatusCode::NOT_FOUND, "consumer group not found");
    };
    let mut topics: Map<String, Value> = Map::new();
    for p in &r.partitions {
        let list = topics
            .entry(p.tp.topic.clone())
            .or_insert_with(|| json!([]));
        // Partitions are tracked only once ListOffsets found them, so they are >= 0.
        let Ok(index) = usize::try_from(p.tp.partition) else {
            continue;
        };
        if let Value::Array(a) = list {
            while a.len() <= index {
                a.push(Value::Null);
            }
            a[index] = json!({
                "offsets": p.entries.iter().map(entry_json).collect::<Vec<_>>(),
                "owner": p.owner,
                "client_id": p.client_id,
                "current-lag": p.current_lag,
            });
        }
    }
    answer(
        &c,
        &uri,
        StatusCode::OK,
        "consumer detail returned",
        json!({ "topics": topics }),
    )
}

async fn remove_consumer(
    State(c): State<Shared>,
    uri: Uri,
    Path((cluster, group)): Path<(String, String)>,
) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    let removed = c
        .lag_store()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&group);
    if removed {
        answer(
            &c,
            &uri,
            StatusCode::OK,
            "consumer group removed",
            json!({}),
        )
    } else {
        error(&c, &uri, StatusCode::NOT_FOUND, "consumer group not found")
    }
}

async fn group_status(c: Shared, uri: Uri, cluster: String, group: String, all: bool) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    match c.group_report(&group) {
        Some(r) => answer(
            &c,
            &uri,
            StatusCode::OK,
            "consumer status returned",
            json!({ "status": status_json(&cluster, &r, all) }),
        ),
        None => error(&c, &uri, StatusCode::NOT_FOUND, "consumer group not found"),
    }
}

async fn status(
    State(c): State<Shared>,
    uri: Uri,
    Path((cluster, group)): Path<(String, String)>,
) -> Response {
    group_status(c, uri, cluster, group, false).await
}

async fn lag(
    State(c): State<Shared>,
    uri: Uri,
    Path((cluster, group)): Path<(String, String)>,
) -> Response {
    group_status(c, uri, cluster, group, true).await
}

async fn topics(State(c): State<Shared>, uri: Uri, Path(cluster): Path<String>) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    match c.admin().list_topics(true).await {
        Ok(ts) => {
            let names: Vec<String> = ts.into_iter().map(|t| t.name).collect();
            answer(
                &c,
                &uri,
                StatusCode::OK,
                "topic list returned",
                json!({ "topics": names }),
            )
        }
        Err(e) => error(&c, &uri, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn topic(
    State(c): State<Shared>,
    uri: Uri,
    Path((cluster, topic)): Path<(String, String)>,
) -> Response {
    if let Some(r) = unknown_cluster(&c, &uri, &cluster) {
        return r;
    }
    let Ok(info) = c
        .admin()
        .describe_topics(std::slice::from_ref(&topic))
        .await
    else {
        return error(&c, &uri, StatusCode::NOT_FOUND, "topic not found");
    };
    let tps: Vec<strom_client::TopicPartition> = info[0]
        .partitions
        .iter()
        .map(|p| strom_client::TopicPartition::new(&topic, p.partition))
        .collect();
    let ends = crate::lag::poller::end_offsets(c.admin(), &tps).await;
    let offsets: Vec<i64> = tps
        .iter()
        .map(|tp| ends.get(tp).copied().unwrap_or(-1))
        .collect();
    answer(
        &c,
        &uri,
        StatusCode::OK,
        "topic offsets returned",
        json!({ "offsets": offsets }),
    )
}
