//! REST proxy v3: the cluster and its brokers (with their configs). `cluster_of` checks the
//! cluster id of every `/v3/clusters/{id}/...` request.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use strom_client::admin::ClusterDescription;

use super::error::{RestError, RestResult};
use super::{base_url, list};
use crate::Console;

type Shared = Arc<Console>;

pub(crate) fn ok(v: Value) -> Response {
    (axum::http::StatusCode::OK, Json(v)).into_response()
}

/// The cluster, checked against the id in the URL.
pub(super) async fn cluster_of(c: &Console, id: &str) -> RestResult<ClusterDescription> {
    let d = c
        .admin()
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    if d.cluster_id == id {
        Ok(d)
    } else {
        Err(RestError::ClusterNotFound(id.to_owned()))
    }
}

fn cluster_json(base: &str, d: &ClusterDescription) -> Value {
    let id = &d.cluster_id;
    let url = format!("{base}/v3/clusters/{id}");
    json!({
        "kind": "KafkaCluster",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={id}") },
        "cluster_id": id,
        "controller": { "related": format!("{url}/brokers/{}", d.controller_id) },
        "acls": { "related": format!("{url}/acls") },
        "brokers": { "related": format!("{url}/brokers") },
        "broker_configs": { "related": format!("{url}/broker-configs") },
        "consumer_groups": { "related": format!("{url}/consumer-groups") },
        "topics": { "related": format!("{url}/topics") },
        "partition_reassignments": { "related": format!("{url}/topics/-/partitions/-/reassignment") },
    })
}

pub async fn list_clusters(State(c): State<Shared>, headers: HeaderMap) -> RestResult<Response> {
    let d = c
        .admin()
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    let base = base_url(&headers, &c);
    Ok(ok(list(
        "KafkaClusterList",
        format!("{base}/v3/clusters"),
        vec![cluster_json(&base, &d)],
    )))
}

pub async fn get_cluster(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> RestResult<Response> {
    let d = cluster_of(&c, &cluster).await?;
    Ok(ok(cluster_json(&base_url(&headers, &c), &d)))
}

fn broker_json(base: &str, cluster: &str, b: &strom_client::BrokerInfo) -> Value {
    let url = format!("{base}/v3/clusters/{cluster}/brokers/{}", b.node_id);
    json!({
        "kind": "KafkaBroker",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={cluster}/broker={}", b.node_id) },
        "cluster_id": cluster,
        "broker_id": b.node_id,
        "host": b.host,
        "port": b.port,
        "rack": b.rack,
        "configs": { "related": format!("{url}/configs") },
        "partition_replicas": { "related": format!("{url}/partition-replicas") },
    })
}

pub async fn list_brokers(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> RestResult<Response> {
    let d = cluster_of(&c, &cluster).await?;
    let base = base_url(&headers, &c);
    let mut brokers = d.brokers.clone();
    brokers.sort_by_key(|b| b.node_id);
    let data = brokers
        .iter()
        .map(|b| broker_json(&base, &cluster, b))
        .collect();
    Ok(ok(list(
        "KafkaBrokerList",
        format!("{base}/v3/clusters/{cluster}/brokers"),
        data,
    )))
}

pub async fn get_broker(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, broker)): Path<(String, String)>,
) -> RestResult<Response> {
    let d = cluster_of(&c, &cluster).await?;
    let id = parse_broker(&broker)?;
    let b = d
        .brokers
        .iter()
        .find(|b| b.node_id == id)
        .ok_or(RestError::BrokerNotFound(id))?;
    Ok(ok(broker_json(&base_url(&headers, &c), &cluster, b)))
}

pub(super) fn parse_broker(s: &str) -> RestResult<i32> {
    s.parse()
        .map_err(|_| RestError::BadRequest(format!("broker_id '{s}' is not a number")))
}
