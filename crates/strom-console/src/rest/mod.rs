//! Confluent REST Proxy v3 under `/v3/clusters`: the routes (`routes`), the resources it
//! reads and changes (`cluster`, `topics`, `configs`, `groups`), producing records
//! (`produce`) and its error shape (`error`). Resource objects carry Confluent's `kind`,
//! `metadata.self` (built from the request's `Host`) and `resource_name`
//! (`crn:///kafka=<cluster>/...`).

pub mod cluster;
pub mod configs;
pub mod error;
pub mod groups;
pub mod produce;
pub mod topics;

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

pub use error::{RestError, RestResult};

use crate::Console;

/// Largest request body accepted (a produce request with its records).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

type Shared = Arc<Console>;

pub(crate) fn routes() -> Router<Shared> {
    use cluster::*;
    use configs::*;
    use groups::*;
    use topics::*;
    Router::new()
        .route("/v3/clusters", get(list_clusters))
        .route("/v3/clusters/{cluster}", get(get_cluster))
        .route("/v3/clusters/{cluster}/brokers", get(list_brokers))
        .route("/v3/clusters/{cluster}/brokers/{broker}", get(get_broker))
        .route(
            "/v3/clusters/{cluster}/brokers/{broker}/configs",
            get(list_broker_configs),
        )
        .route(
            "/v3/clusters/{cluster}/brokers/{broker}/configs/{name}",
            get(get_broker_config),
        )
        .route(
            "/v3/clusters/{cluster}/topics",
            get(list_topics).post(create_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}",
            get(get_topic).delete(delete_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions",
            get(list_partitions),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}",
            get(get_partition),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}/replicas",
            get(list_replicas),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}/replicas/{broker}",
            get(get_replica),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/configs",
            get(list_topic_configs),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/configs:alter",
            post(batch_alter_topic_configs),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/configs/{name}",
            get(get_topic_config)
                .put(put_topic_config)
                .delete(reset_topic_config),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            post(produce::produce),
        )
        .route("/v3/clusters/{cluster}/consumer-groups", get(list_groups))
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}",
            get(get_group),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/consumers",
            get(list_consumers),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/consumers/{consumer}",
            get(get_consumer),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/consumers/{consumer}/assignments",
            get(list_assignments),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/lag-summary",
            get(lag_summary),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/lags",
            get(list_lags),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/lags/{topic}/partitions/{partition}",
            get(get_lag),
        )
}

/// The fallback of a standalone console: 404 in the v3 error shape.
pub async fn not_found() -> Response {
    RestError::NoSuchEndpoint.into_response()
}

/// The 405 of a standalone console, in the v3 error shape.
pub async fn method_not_allowed() -> Response {
    RestError::MethodNotAllowed.into_response()
}

/// A 200 with a JSON body.
pub(crate) fn ok_json(v: Value) -> Response {
    cluster::ok(v)
}

/// `http://<Host>` of the request, the prefix of every `self` and `related` link.
pub(crate) fn base_url(headers: &HeaderMap, console: &Console) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            console
                .config()
                .listener
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        });
    format!("http://{host}")
}

/// A list resource: `kind`, `metadata` (`self`, `next`: null) and `data`.
pub(crate) fn list(kind: &str, self_url: String, data: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "metadata": { "self": self_url, "next": null },
        "data": data,
    })
}
