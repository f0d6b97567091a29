//! The REST proxy's read and admin endpoints: clusters, brokers, topics (list, create,
//! delete), partitions, topic configs, consumer groups, their consumers and lags. Each reads
//! the cluster live through strom-client's admin API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::admin::{
    AlterOp, ClusterDescription, ConfigEntry, ConfigResource, GroupDescription,
};
use strom_client::{NewTopic, TopicInfo, TopicPartition};

use super::error::{RestError, RestResult};
use super::{base_url, list};
use crate::Console;

type Shared = Arc<Console>;

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

/// The cluster, checked against the id in the URL.
async fn cluster_of(c: &Console, id: &str) -> RestResult<ClusterDescription> {
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

async fn describe_topic(c: &Console, topic: &str) -> RestResult<TopicInfo> {
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

fn parse_partition(topic: &str, s: &str) -> RestResult<i32> {
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

/// Whose configs: a topic's or a broker's (kind, URL path, CRN part and the owner field).
enum Owner<'a> {
    Topic(&'a str),
    Broker(i32),
}

fn config_json(base: &str, cluster: &str, owner: &Owner<'_>, e: &ConfigEntry) -> Value {
    let (kind, path, crn, field, id) = match owner {
        Owner::Topic(t) => (
            "KafkaTopicConfig",
            format!("topics/{t}"),
            format!("topic={t}"),
            "topic_name",
            json!(t),
        ),
        Owner::Broker(b) => (
            "KafkaBrokerConfig",
            format!("brokers/{b}"),
            format!("broker={b}"),
            "broker_id",
            json!(b),
        ),
    };
    let mut v = json!({
        "kind": kind,
        "metadata": {
            "self": format!("{base}/v3/clusters/{cluster}/{path}/configs/{}", e.name),
            "resource_name": format!("crn:///kafka={cluster}/{crn}/config={}", e.name),
        },
        "cluster_id": cluster,
        "name": e.name,
        "value": if e.is_sensitive { None } else { e.value.clone() },
        "is_default": e.source == "DEFAULT_CONFIG",
        "is_read_only": e.read_only,
        "is_sensitive": e.is_sensitive,
        "source": e.source,
        "synonyms": [],
    });
    if let Value::Object(o) = &mut v {
        o.insert(field.into(), id);
    }
    v
}

async fn topic_configs(c: &Console, topic: &str) -> RestResult<Vec<ConfigEntry>> {
    describe_topic(c, topic).await?;
    c.admin()
        .describe_configs(&ConfigResource::Topic(topic.to_owned()), None)
        .await
        .map_err(|e| RestError::from_client(e, Some(topic), None))
}

pub async fn list_topic_configs(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let configs = topic_configs(&c, &topic).await?;
    let base = base_url(&headers, &c);
    let data = configs
        .iter()
        .map(|e| config_json(&base, &cluster, &Owner::Topic(&topic), e))
        .collect();
    Ok(ok(list(
        "KafkaTopicConfigList",
        format!("{base}/v3/clusters/{cluster}/topics/{topic}/configs"),
        data,
    )))
}

pub async fn get_topic_config(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, topic, name)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let configs = topic_configs(&c, &topic).await?;
    let e = configs
        .iter()
        .find(|e| e.name == name)
        .ok_or(RestError::ConfigNotFound(name))?;
    Ok(ok(config_json(
        &base_url(&headers, &c),
        &cluster,
        &Owner::Topic(&topic),
        e,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigValue {
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterConfigs {
    data: Vec<AlterConfig>,
    #[serde(default)]
    validate_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterConfig {
    name: String,
    #[serde(default)]
    value: Option<String>,
    /// `SET` (default) or `DELETE`.
    #[serde(default)]
    operation: Option<String>,
}

async fn alter_topic_configs(
    c: &Console,
    topic: &str,
    ops: &[(String, AlterOp, Option<String>)],
) -> RestResult<Response> {
    describe_topic(c, topic).await?;
    c.admin()
        .alter_configs(&ConfigResource::Topic(topic.to_owned()), ops)
        .await
        .map_err(|e| RestError::from_client(e, Some(topic), None))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// PUT /topics/{t}/configs/{name} `{"value": ...}`: 204.
pub async fn put_topic_config(
    State(c): State<Shared>,
    Path((cluster, topic, name)): Path<(String, String, String)>,
    body: Bytes,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let v: ConfigValue = serde_json::from_slice(&body)
        .map_err(|e| RestError::BadRequest(format!("Unrecognized request body: {e}")))?;
    let value = v
        .value
        .ok_or_else(|| RestError::BadRequest(format!("config '{name}' needs a value")))?;
    alter_topic_configs(&c, &topic, &[(name, AlterOp::Set, Some(value))]).await
}

/// DELETE /topics/{t}/configs/{name}: back to the default, 204.
pub async fn reset_topic_config(
    State(c): State<Shared>,
    Path((cluster, topic, name)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    alter_topic_configs(&c, &topic, &[(name, AlterOp::Delete, None)]).await
}

/// POST /topics/{t}/configs:alter `{"data": [{"name", "value", "operation"}]}`: 204.
pub async fn batch_alter_topic_configs(
    State(c): State<Shared>,
    Path((cluster, topic)): Path<(String, String)>,
    body: Bytes,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let req: AlterConfigs = serde_json::from_slice(&body)
        .map_err(|e| RestError::BadRequest(format!("Unrecognized request body: {e}")))?;
    let mut ops = Vec::with_capacity(req.data.len());
    for a in req.data {
        let op = match a
            .operation
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("SET") => AlterOp::Set,
            Some("DELETE") => AlterOp::Delete,
            Some(other) => {
                return Err(RestError::BadRequest(format!(
                    "operation '{other}' of config '{}' is not SET or DELETE",
                    a.name
                )))
            }
        };
        if op == AlterOp::Set && a.value.is_none() {
            return Err(RestError::BadRequest(format!(
                "config '{}' needs a value",
                a.name
            )));
        }
        ops.push((a.name, op, a.value));
    }
    if req.validate_only {
        describe_topic(&c, &topic).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    alter_topic_configs(&c, &topic, &ops).await
}

fn parse_broker(s: &str) -> RestResult<i32> {
    s.parse()
        .map_err(|_| RestError::BadRequest(format!("broker_id '{s}' is not a number")))
}

async fn broker_configs(
    c: &Console,
    cluster: &str,
    broker: &str,
) -> RestResult<(i32, Vec<ConfigEntry>)> {
    let d = cluster_of(c, cluster).await?;
    let id = parse_broker(broker)?;
    if !d.brokers.iter().any(|b| b.node_id == id) {
        return Err(RestError::BrokerNotFound(id));
    }
    let configs = c
        .admin()
        .describe_configs(&ConfigResource::Broker(id), None)
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    Ok((id, configs))
}

pub async fn list_broker_configs(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, broker)): Path<(String, String)>,
) -> RestResult<Response> {
    let (id, configs) = broker_configs(&c, &cluster, &broker).await?;
    let base = base_url(&headers, &c);
    let data = configs
        .iter()
        .map(|e| config_json(&base, &cluster, &Owner::Broker(id), e))
        .collect();
    Ok(ok(list(
        "KafkaBrokerConfigList",
        format!("{base}/v3/clusters/{cluster}/brokers/{id}/configs"),
        data,
    )))
}

pub async fn get_broker_config(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, broker, name)): Path<(String, String, String)>,
) -> RestResult<Response> {
    let (id, configs) = broker_configs(&c, &cluster, &broker).await?;
    let e = configs
        .iter()
        .find(|e| e.name == name)
        .ok_or(RestError::ConfigNotFound(name))?;
    Ok(ok(config_json(
        &base_url(&headers, &c),
        &cluster,
        &Owner::Broker(id),
        e,
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

/// `Stable` -> `STABLE`, `PreparingRebalance` -> `PREPARING_REBALANCE`.
fn state_name(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    if out.is_empty() {
        "UNKNOWN".into()
    } else {
        out
    }
}

async fn describe_group(c: &Console, group: &str) -> RestResult<GroupDescription> {
    let d = c
        .admin()
        .describe_any_groups(&[group.to_owned()])
        .await
        .map_err(|e| match e.code() {
            Some(strom_client::KafkaCode::GroupIdNotFound) => {
                RestError::GroupNotFound(group.to_owned())
            }
            _ => RestError::from_client(e, None, None),
        })?
        .pop()
        .ok_or_else(|| RestError::GroupNotFound(group.to_owned()))?;
    if d.state == "Dead" {
        return Err(RestError::GroupNotFound(group.to_owned()));
    }
    Ok(d)
}

fn group_json(base: &str, cluster: &str, d: &GroupDescription, coordinator: i32) -> Value {
    let g = &d.group_id;
    let url = format!("{base}/v3/clusters/{cluster}/consumer-groups/{g}");
    json!({
        "kind": "KafkaConsumerGroup",
        "metadata": { "self": url, "resource_name": format!("crn:///kafka={cluster}/consumer-group={g}") },
        "cluster_id": cluster,
        "consumer_group_id": g,
        "is_simple": d.protocol_type.is_empty(),
        "partition_assignor": d.protocol,
        "state": state_name(&d.state),
        "coordinator": { "related": format!("{base}/v3/clusters/{cluster}/brokers/{coordinator}") },
        "consumer": { "related": format!("{url}/consumers") },
        "lag_summary": { "related": format!("{url}/lag-summary") },
    })
}

pub async fn list_groups(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> RestResult<Response> {
    let d = cluster_of(&c, &cluster).await?;
    let listings = c
        .admin()
        .list_groups()
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    let mut groups = Vec::with_capacity(listings.len());
    for l in listings {
        // A group deleted since the listing is left out.
        match describe_group(&c, &l.group_id).await {
            Ok(g) => groups.push(g),
            Err(RestError::GroupNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let base = base_url(&headers, &c);
    let data = groups
        .iter()
        .map(|g| group_json(&base, &cluster, g, d.controller_id))
        .collect();
    Ok(ok(list(
        "KafkaConsumerGroupList",
        format!("{base}/v3/clusters/{cluster}/consumer-groups"),
        data,
    )))
}

pub async fn get_group(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group)): Path<(String, String)>,
) -> RestResult<Response> {
    let d = cluster_of(&c, &cluster).await?;
    let g = describe_group(&c, &group).await?;
    Ok(ok(group_json(
        &base_url(&headers, &c),
        &cluster,
        &g,
        d.controller_id,
    )))
}

fn consumer_json(
    base: &str,
    cluster: &str,
    group: &str,
    m: &strom_client::admin::MemberDescription,
) -> Value {
    let url = format!(
        "{base}/v3/clusters/{cluster}/consumer-groups/{group}/consumers/{}",
        m.member_id
    );
    json!({
        "kind": "KafkaConsumer",
        "metadata": {
            "self": url,
            "resource_name": format!("crn:///kafka={cluster}/consumer-group={group}/consumer={}", m.member_id),
        },
        "cluster_id": cluster,
        "consumer_group_id": group,
        "consumer_id": m.member_id,
        "instance_id": m.group_instance_id,
        "client_id": m.client_id,
        "assignments": { "related": format!("{url}/assignments") },
    })
}

pub async fn list_consumers(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let g = describe_group(&c, &group).await?;
    let base = base_url(&headers, &c);
    let data = g
        .members
        .iter()
        .map(|m| consumer_json(&base, &cluster, &group, m))
        .collect();
    Ok(ok(list(
        "KafkaConsumerList",
        format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}/consumers"),
        data,
    )))
}

pub async fn get_consumer(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group, consumer)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let g = describe_group(&c, &group).await?;
    let m = g
        .members
        .iter()
        .find(|m| m.member_id == consumer)
        .ok_or_else(|| RestError::ConsumerNotFound {
            group: group.clone(),
            consumer: consumer.clone(),
        })?;
    Ok(ok(consumer_json(
        &base_url(&headers, &c),
        &cluster,
        &group,
        m,
    )))
}

/// GET .../consumers/{c}/assignments: the partitions the member owns.
pub async fn list_assignments(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group, consumer)): Path<(String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let g = describe_group(&c, &group).await?;
    let m = g
        .members
        .iter()
        .find(|m| m.member_id == consumer)
        .ok_or_else(|| RestError::ConsumerNotFound {
            group: group.clone(),
            consumer: consumer.clone(),
        })?;
    let base = base_url(&headers, &c);
    let url = format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}/consumers/{consumer}");
    let data = m
        .assignment
        .iter()
        .map(|tp| {
            let (t, p) = (&tp.topic, tp.partition);
            json!({
                "kind": "KafkaConsumerAssignment",
                "metadata": {
                    "self": format!("{url}/assignments/{t}/partitions/{p}"),
                    "resource_name": format!("crn:///kafka={cluster}/consumer-group={group}/consumer={consumer}/assignment={t}/partition={p}"),
                },
                "cluster_id": cluster,
                "consumer_group_id": group,
                "consumer_id": consumer,
                "topic_name": t,
                "partition_id": p,
                "partition": { "related": format!("{base}/v3/clusters/{cluster}/topics/{t}/partitions/{p}") },
                "lag": { "related": format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}/lags/{t}/partitions/{p}") },
            })
        })
        .collect();
    Ok(ok(list(
        "KafkaConsumerAssignmentList",
        format!("{url}/assignments"),
        data,
    )))
}

/// One partition's lag with its owner, if any.
struct Lag {
    tp: TopicPartition,
    current: i64,
    end: i64,
    owner: Option<(String, Option<String>, String)>,
}

/// The group's lags, live: committed offsets against end offsets, by topic and partition.
async fn lags(c: &Console, group: &str) -> RestResult<Vec<Lag>> {
    let g = describe_group(c, group).await?;
    let committed = c
        .admin()
        .list_group_offsets(group)
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    let tps: Vec<TopicPartition> = committed.keys().cloned().collect();
    let ends = crate::lag::poller::end_offsets(c.admin(), &tps).await;
    let mut owners = BTreeMap::new();
    for m in &g.members {
        for tp in &m.assignment {
            owners.insert(
                tp.clone(),
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.client_id.clone(),
                ),
            );
        }
    }
    Ok(committed
        .into_iter()
        .filter_map(|(tp, off)| {
            let end = *ends.get(&tp)?;
            Some(Lag {
                current: off.offset,
                end,
                owner: owners.get(&tp).cloned(),
                tp,
            })
        })
        .collect())
}

fn lag_json(base: &str, cluster: &str, group: &str, l: &Lag) -> Value {
    let (t, p) = (&l.tp.topic, l.tp.partition);
    let (consumer, instance, client) = l.owner.clone().unwrap_or_default();
    json!({
        "kind": "KafkaConsumerLag",
        "metadata": {
            "self": format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}/lags/{t}/partitions/{p}"),
            "resource_name": format!("crn:///kafka={cluster}/consumer-group={group}/lag={t}/partition={p}"),
        },
        "cluster_id": cluster,
        "consumer_group_id": group,
        "topic_name": t,
        "partition_id": p,
        "current_offset": l.current,
        "log_end_offset": l.end,
        "lag": (l.end - l.current).max(0),
        "consumer_id": consumer,
        "instance_id": instance,
        "client_id": client,
    })
}

pub async fn list_lags(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let ls = lags(&c, &group).await?;
    let base = base_url(&headers, &c);
    let data = ls
        .iter()
        .map(|l| lag_json(&base, &cluster, &group, l))
        .collect();
    Ok(ok(list(
        "KafkaConsumerLagList",
        format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}/lags"),
        data,
    )))
}

pub async fn get_lag(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group, topic, partition)): Path<(String, String, String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let p = parse_partition(&topic, &partition)?;
    let ls = lags(&c, &group).await?;
    let l = ls
        .iter()
        .find(|l| l.tp.topic == topic && l.tp.partition == p)
        .ok_or(RestError::PartitionNotFound {
            topic: topic.clone(),
            partition: p,
        })?;
    Ok(ok(lag_json(&base_url(&headers, &c), &cluster, &group, l)))
}

pub async fn lag_summary(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((cluster, group)): Path<(String, String)>,
) -> RestResult<Response> {
    cluster_of(&c, &cluster).await?;
    let ls = lags(&c, &group).await?;
    let base = base_url(&headers, &c);
    let lag = |l: &Lag| (l.end - l.current).max(0);
    let total: i64 = ls.iter().map(lag).sum();
    // The largest lag; the first partition (by topic, partition) on a tie.
    let max = ls.iter().fold(None, |best: Option<&Lag>, l| match best {
        Some(b) if lag(b) >= lag(l) => Some(b),
        _ => Some(l),
    });
    let url = format!("{base}/v3/clusters/{cluster}/consumer-groups/{group}");
    let (consumer, instance, client) = max.and_then(|m| m.owner.clone()).unwrap_or_default();
    Ok(ok(json!({
        "kind": "KafkaConsumerGroupLagSummary",
        "metadata": {
            "self": format!("{url}/lag-summary"),
            "resource_name": format!("crn:///kafka={cluster}/consumer-group={group}/lag-summary"),
        },
        "cluster_id": cluster,
        "consumer_group_id": group,
        "max_lag_consumer_id": consumer,
        "max_lag_instance_id": instance,
        "max_lag_client_id": client,
        "max_lag_topic_name": max.map_or("", |m| m.tp.topic.as_str()),
        "max_lag_partition_id": max.map_or(0, |m| m.tp.partition),
        "max_lag": max.map_or(0, lag),
        "total_lag": total,
        "max_lag_consumer": { "related": format!("{url}/consumers/{consumer}") },
        "max_lag_partition": {
            "related": max.map(|m| format!("{base}/v3/clusters/{cluster}/topics/{}/partitions/{}", m.tp.topic, m.tp.partition)),
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_states_are_screaming_snake_case() {
        assert_eq!(state_name("Stable"), "STABLE");
        assert_eq!(state_name("PreparingRebalance"), "PREPARING_REBALANCE");
        assert_eq!(state_name(""), "UNKNOWN");
    }
}
