//! OffsetFetch (key 9), v1–9: committed offsets of one group (v1–7) or several (v8+,
//! KIP-709), for listed partitions or, with null topics (v2+), every committed partition.
//! No committed offset reads as -1 with no error; with `require_stable` (v7+, KIP-447) a
//! partition with offsets staged by an open transaction gets UNSTABLE_OFFSET_COMMIT.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::records::OffsetCommitValue;
use crate::group::TopicPartition;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::OffsetFetch, 1, 9);

/// One topic's answer: (partition, committed offset if any, partition error).
type TopicOffsets = (
    String,
    Vec<(i32, Option<OffsetCommitValue>, Option<ErrorCode>)>,
);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: OffsetFetchRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let require_stable = version >= 7 && request.require_stable;
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default();
                // v9 (KIP-848): a member of a consumer group sends its id and epoch.
                let member = match &g.member_id {
                    Some(id) if version >= 9 => {
                        broker
                            .groups()
                            .check_consumer_member(&g.group_id.0, id, g.member_epoch)
                    }
                    _ => Ok(()),
                };
                match member
                    .and_then(|()| fetch(broker, header, &g.group_id.0, wanted, require_stable))
                {
                    Ok(topics) => out.topics = topics.into_iter().map(topic_v8).collect(),
                    Err(e) => out.error_code = e.code(),
                }
                out.group_id = g.group_id;
                out
            })
            .collect();
        return respond(&SPEC, header, &response);
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match fetch(
        broker,
        header,
        &request.group_id.0,
        wanted.clone(),
        require_stable,
    ) {
        Ok(topics) => {
            response.topics = topics
                .into_iter()
                .map(|t| topic_v1(t, version, None))
                .collect()
        }
        // v1 has no group-level error: each listed partition carries it.
        Err(e) if version < 2 => {
            let listed = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(name, partitions)| {
                    (
                        name,
                        partitions.into_iter().map(|p| (p, None, None)).collect(),
                    )
                });
            response.topics = listed.map(|t| topic_v1(t, version, Some(e))).collect();
        }
        Err(e) => response.error_code = e.code(),
    }
    respond(&SPEC, header, &response)
}

/// The committed offsets of `wanted` (`None`: all), grouped by topic in request order.
/// Needs DESCRIBE on the group; topics the principal may not describe are left out of "all"
/// and answered TOPIC_AUTHORIZATION_FAILED when named, as Kafka does.
fn fetch(
    broker: &Broker,
    header: &RequestContext,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<TopicOffsets>, ErrorCode> {
    if group_id.is_empty() {
        return Err(ErrorCode::InvalidGroupId);
    }
    if !header.authorized(
        broker,
        AclOperation::Describe,
        ResourceType::Group,
        group_id,
    ) {
        return Err(ErrorCode::GroupAuthorizationFailed);
    }
    let mut described: std::collections::HashMap<String, bool> = Default::default();
    let mut may_describe = |topic: &str| {
        *described.entry(topic.to_owned()).or_insert_with(|| {
            header.authorized(broker, AclOperation::Describe, ResourceType::Topic, topic)
        })
    };
    let partitions: Option<Vec<TopicPartition>> = wanted.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p)))
            .collect()
    });
    let offsets = broker
        .groups()
        .fetch(broker, group_id, partitions.as_deref())?;
    let mut topics: Vec<TopicOffsets> = Vec::new();
    for ((topic, partition), value) in offsets {
        if !may_describe(&topic) {
            if wanted.is_some() {
                let entry = (partition, None, Some(ErrorCode::TopicAuthorizationFailed));
                match topics.iter_mut().find(|(name, _)| *name == topic) {
                    Some((_, ps)) => ps.push(entry),
                    None => topics.push((topic, vec![entry])),
                }
            }
            continue;
        }
        let unstable = require_stable
            && broker
                .groups()
                .has_pending_txn_offset(group_id, &(topic.clone(), partition));
        let entry = if unstable {
            (partition, None, Some(ErrorCode::UnstableOffsetCommit))
        } else {
            (partition, value, None)
        };
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, ps)) => ps.push(entry),
            None => topics.push((topic, vec![entry])),
        }
    }
    Ok(topics)
}

fn topic_v1(
    (name, partitions): TopicOffsets,
    version: i16,
    error: Option<ErrorCode>,
) -> OffsetFetchResponseTopic {
    let mut out = OffsetFetchResponseTopic::default();
    out.name = TopicName(StrBytes::from_string(name));
    out.partitions = partitions
        .into_iter()
        .map(|(index, value, partition_error)| {
            let mut p = OffsetFetchResponsePartition::default();
            p.partition_index = index;
            p.committed_offset = value.as_ref().map_or(-1, |v| v.offset);
            if version >= 5 {
                p.committed_leader_epoch = value.as_ref().map_or(-1, |v| v.leader_epoch);
            }
            p.metadata = Some(StrBytes::from_string(
                value.map(|v| v.metadata).unwrap_or_default(),
            ));
            p.error_code = error.or(partition_error).map_or(0, |e| e.code());
            p
        })
        .collect();
    out
}

fn topic_v8((name, partitions): TopicOffsets) -> OffsetFetchResponseTopics {
    let mut out = OffsetFetchResponseTopics::default();
    out.name = TopicName(StrBytes::from_string(name));
    out.partitions = partitions
        .into_iter()
        .map(|(index, value, partition_error)| {
            let mut p = OffsetFetchResponsePartitions::default();
            p.error_code = partition_error.map_or(0, |e| e.code());
            p.partition_index = index;
            p.committed_offset = value.as_ref().map_or(-1, |v| v.offset);
            p.committed_leader_epoch = value.as_ref().map_or(-1, |v| v.leader_epoch);
            p.metadata = Some(StrBytes::from_string(
                value.map(|v| v.metadata).unwrap_or_default(),
            ));
            p
        })
        .collect();
    out
}
