//! REST proxy v3: topic and broker configs: read (DescribeConfigs) and, for topics, changed
//! one at a time or in a batch (IncrementalAlterConfigs).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::admin::{AlterOp, ConfigEntry, ConfigResource};

use super::cluster::{cluster_of, ok, parse_broker};
use super::error::{RestError, RestResult};
use super::topics::describe_topic;
use super::{base_url, list};
use crate::Console;

type Shared = Arc<Console>;

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
