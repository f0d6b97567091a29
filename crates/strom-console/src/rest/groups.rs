//! REST proxy v3: consumer groups of both protocols (classic, and KIP-848 through
//! ConsumerGroupDescribe), their consumers and assignments, and their lags read live
//! (committed offsets against end offsets).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use strom_client::admin::GroupDescription;
use strom_client::TopicPartition;

use super::cluster::{cluster_of, ok};
use super::error::{RestError, RestResult};
use super::topics::parse_partition;
use super::{base_url, list};
use crate::Console;

type Shared = Arc<Console>;

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
