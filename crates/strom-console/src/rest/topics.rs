//! REST proxy v3: topics (list, describe, create, delete), their partitions and replicas,
//! read live from the cluster's metadata.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{NewTopic, TopicInfo};

use super::cluster::{cluster_of, ok, parse_broker};
use super::error::{RestError, RestResult};
use super::{base_url, list};
use crate::Console;

type Shared = Arc<Console>;

fn topic_json(base: &str, cluster: &str, t: &TopicInfo) -> Value {
    let url = format!("{base}/v3/clusters/{cluster}/topics/{}", t.name);
    let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
    json!({
        "kind": "KafkaTopic",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={cluster}/topic={}", t.name) },
        "cluster_id": cluster,
        "topic_name": t.name,
        "is_internal": t.is_internal,
        "replication_factor": rf,
        "partitions_count": t.partitions.len(),
        "partitions": { "related": format!("{url}/partitions") },
        "configs": { "related": format!("{url}/configs") },
        "partition_reassignments": { "related": format!("{url}/partitions/-/reassignment") },
        "authorized_operations": [],
    })
}

pub(super) async fn describe_topic(c: &Console, topic: &str) -> RestResult<TopicInfo> {
    let mut ts = c
        .admin()
        .describe_topics(&[topic.to_owned()])
        .await
        .map_err(|e| RestError::from_client(e, Some(topic), None))?;
    ts.pop()
        .ok_or_else(|| RestError::TopicNotFound(topic.to_owned()))
}

pub async fn list_topics(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let topics = c
        .admin()
        .list_topics(true)
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    let base = base_url(&headers, &c);
    let data = topics
        .iter()
        .map(|t| topic_json(&base, &cluster, t))
        .collect();
    Ok(ok(list(
        "KafkaTopicList",
        format!("{base}/v3/clusters/{cluster}/topics"),
        data,
    )))
}

pub async fn get_topic(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let t = describe_topic(&c, &topic).await?;
    Ok(ok(topic_json(&base_url(&headers, &c), &cluster, &t)))
}

#[derive(Debug, Deserialize)]
struct CreateTopic {
    topic_name: String,
    #[serde(default)]
    partitions_count: Option<i32>,
    #[serde(default)]
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: Vec<ConfigKv>,
    #[serde(default)]
    validate_only: bool,
}

#[derive(Debug, Deserialize)]
struct ConfigKv {
    name: String,
    value: Option<String>,
}

/// POST /topics: 201 with the new topic (Confluent answers 201 Created).
pub async fn create_topic(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    body: Bytes,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let req: CreateTopic = serde_json::from_slice(&body)
        .map_err(|e| RestError::BadRequest(format!("Unrecognized request body: {e}")))?;
    if req.topic_name.is_empty() {
        return Err(RestError::BadRequest("topic_name must not be empty".into()));
    }
    let mut nt = NewTopic::new(
        &req.topic_name,
        req.partitions_count.unwrap_or(-1),
        req.replication_factor.unwrap_or(-1),
    );
    nt.configs = req
        .configs
        .into_iter()
        .filter_map(|kv| kv.value.map(|v| (kv.name, v)))
        .collect();
    let results = c
        .admin()
        .create_topics(&[nt], req.validate_only)
        .await
        .map_err(|e| RestError::from_client(e, Some(&req.topic_name), None))?;
    for (_, r) in results {
        r.map_err(|e| RestError::from_client(e, Some(&req.topic_name), None))?;
    }
    let base = base_url(&headers, &c);
    // The topic as created; the leaders may still be on their way.
    let t = match describe_topic(&c, &req.topic_name).await {
        Ok(t) if !req.validate_only => t,
        _ => TopicInfo {
            name: req.topic_name.clone(),
            topic_id: String::new(),
            is_internal: false,
            error: None,
            partitions: Vec::new(),
        },
    };
    let mut v = topic_json(&base, &cluster, &t);
    if let (Some(n), Value::Object(o)) = (req.partitions_count, &mut v) {
        o.insert("partitions_count".into(), json!(n));
    }
    if let (Some(rf), Value::Object(o)) = (req.replication_factor, &mut v) {
        o.insert("replication_factor".into(), json!(rf));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// DELETE /topics/{t}: 204 No Content.
pub async fn delete_topic(
    State(c): State<Shared>,
    Path((cluster, topic)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let results = c
        .admin()
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .map_err(|e| RestError::from_client(e, Some(&topic), None))?;
    for (_, r) in results {
        r.map_err(|e| RestError::from_client(e, Some(&topic), None))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn partition_json(
    base: &str,
    cluster: &str,
    topic: &str,
    p: &strom_client::PartitionInfo,
) -> Value {
    let url = format!(
        "{base}/v3/clusters/{cluster}/topics/{topic}/partitions/{}",
        p.partition
    );
    json!({
        "kind": "KafkaPartition",
        "metadata": {
            "self": url,
            "resource_name": format!("crn:///kafka={cluster}/topic={topic}/partition={}", p.partition),
        },
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": p.partition,
        "leader": { "related": format!("{url}/replicas/{}", p.leader) },
        "replicas": { "related": format!("{url}/replicas") },
        "reassignment": { "related": format!("{url}/reassignment") },
    })
}

pub async fn list_partitions(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let t = describe_topic(&c, &topic).await?;
    let base = base_url(&headers, &c);
    let data = t
        .partitions
        .iter()
        .map(|p| partition_json(&base, &cluster, &topic, p))
        .collect();
    Ok(ok(list(
        "KafkaPartitionList",
        format!("{base}/v3/clusters/{cluster}/topics/{topic}/partitions"),
        data,
    )))
}

pub(super) fn parse_partition(topic: &str, s: &str) -> RestResult<i32> {
    s.parse().map_err(|_| {
        RestError::BadRequest(format!(
            "partition_id '{s}' of topic '{topic}' is not a number"
        ))
    })
}

pub async fn get_partition(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic, partition)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let info = partition_info(&c, &topic, &partition).await?;
    Ok(ok(partition_json(
        &base_url(&headers, &c),
        &cluster,
        &topic,
        &info,
    )))
}

fn replica_json(
    base: &str,
    cluster: &str,
    topic: &str,
    p: &strom_client::PartitionInfo,
    broker: i32,
) -> Value {
    let part = p.partition;
    json!({
        "kind": "KafkaReplica",
        "metadata": {
            "self": format!("{base}/v3/clusters/{cluster}/topics/{topic}/partitions/{part}/replicas/{broker}"),
            "resource_name": format!("crn:///kafka={cluster}/topic={topic}/partition={part}/replica={broker}"),
        },
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": part,
        "broker_id": broker,
        "is_leader": p.leader == broker,
        "is_in_sync": p.isr.contains(&broker),
        "broker": { "related": format!("{base}/v3/clusters/{cluster}/brokers/{broker}") },
    })
}

async fn partition_info(
    c: &Console,
    topic: &str,
    partition: &str,
) -> RestResult<strom_client::PartitionInfo> {
    let p = parse_partition(topic, partition)?;
    let t = describe_topic(c, topic).await?;
    t.partitions
        .into_iter()
        .find(|i| i.partition == p)
        .ok_or_else(|| RestError::PartitionNotFound {
            topic: topic.to_owned(),
            partition: p,
        })
}

pub async fn list_replicas(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic, partition)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let p = partition_info(&c, &topic, &partition).await?;
    let base = base_url(&headers, &c);
    let data = p
        .replicas
        .iter()
        .map(|b| replica_json(&base, &cluster, &topic, &p, *b))
        .collect();
    Ok(ok(list(
        "KafkaReplicaList",
        format!(
            "{base}/v3/clusters/{cluster}/topics/{topic}/partitions/{}/replicas",
            p.partition
        ),
        data,
    )))
}

pub async fn get_replica(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic, partition, broker)): Path<(String, String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let p = partition_info(&c, &topic, &partition).await?;
    let id = parse_broker(&broker)?;
    if !p.replicas.contains(&id) {
        return Err(RestError::ReplicaNotFound {
            topic,
            partition: p.partition,
            broker: id,
        });
    }
    Ok(ok(replica_json(
        &base_url(&headers, &c),
        &cluster,
        &topic,
        &p,
        id,
    )))
}
