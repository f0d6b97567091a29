//! ShareFetch (key 78), v1 (Kafka 4.1's): a share-group member's fetch. It opens, updates
//! or closes the member's share session, applies the acknowledgements it carries, then
//! acquires records of the session's partitions (`share::partition`), waiting up to
//! `max_wait_ms` for some.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, NodeEndpoint, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, GroupId, ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ShareFetch, 1, 1);

/// How often a waiting fetch looks again (new records, expired locks).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One partition's answer, before it is put on the wire.
#[derive(Default)]
struct Answer {
    error: Option<ErrorCode>,
    ack_error: Option<ErrorCode>,
    acknowledged: bool,
    records: Option<Bytes>,
    acquired: Vec<crate::share::partition::Acquired>,
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ShareFetchRequest = decode(&SPEC, header, body)?;
    let mut response = ShareFetchResponse::default();
    let top_error = |mut response: ShareFetchResponse, code: ErrorCode| {
        response.error_code = code.code();
        respond(&SPEC, header, &response)
    };
    let (group_id, member_id) = match share_member(
        broker,
        header,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(ids) => ids,
        Err(code) => return top_error(response, code),
    };
    let shares = broker.shares();
    response.acquisition_lock_timeout_ms =
        i32::try_from(shares.lock_duration_ms(&group_id)).unwrap_or(i32::MAX);
    let image = broker.image();
    let mut answers: BTreeMap<(Uuid, i32), Answer> = BTreeMap::new();
    let mut add = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            add.push((topic.topic_id, p.partition_index));
            answers
                .entry((topic.topic_id, p.partition_index))
                .or_default();
        }
    }
    let forget: Vec<(Uuid, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let epoch = request.share_session_epoch;
    let session = crate::broker::off_runtime(|| {
        shares.session(broker, &group_id, &member_id, epoch, &add, &forget)
    });
    let session = match session {
        Ok(s) => s,
        Err(code) => return top_error(response, code),
    };
    // Acknowledgements first: they may free records this fetch then acquires.
    let mut readable: Vec<(String, Uuid, i32)> = Vec::new();
    for topic in &request.topics {
        let name = image.topic_by_id(topic.topic_id).map(|t| t.name.clone());
        for p in &topic.partitions {
            let answer = answers
                .get_mut(&(topic.topic_id, p.partition_index))
                .expect("entered above");
            let Some(name) = &name else {
                answer.error = Some(ErrorCode::UnknownTopicId);
                continue;
            };
            if !header.authorized(broker, AclOperation::Read, ResourceType::Topic, name) {
                answer.error = Some(ErrorCode::TopicAuthorizationFailed);
                continue;
            }
            if !p.acknowledgement_batches.is_empty() {
                let batches: Vec<(i64, i64, Vec<i8>)> = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                    .collect();
                let code = crate::broker::off_runtime(|| {
                    shares.acknowledge(
                        broker,
                        &group_id,
                        &member_id,
                        topic.topic_id,
                        p.partition_index,
                        &batches,
                    )
                });
                answer.ack_error = code.err();
                answer.acknowledged = true;
            }
        }
    }
    if epoch == -1 {
        // The final fetch of a closing member: acknowledgements only, then its locks go.
        crate::broker::off_runtime(|| {
            shares.release_session(broker, &group_id, &member_id, &session)
        });
    } else {
        for (topic_id, partition) in &session {
            let Some(topic) = image.topic_by_id(*topic_id) else {
                answers.entry((*topic_id, *partition)).or_default().error =
                    Some(ErrorCode::UnknownTopicId);
                continue;
            };
            let known = answers
                .get(&(*topic_id, *partition))
                .is_some_and(|a| a.error.is_some());
            if known {
                continue;
            }
            if header.authorized(broker, AclOperation::Read, ResourceType::Topic, &topic.name) {
                readable.push((topic.name.clone(), *topic_id, *partition));
            }
        }
    }
    let max_records = usize::try_from(request.max_records.max(1)).unwrap_or(500);
    let max_bytes = usize::try_from(request.max_bytes.max(1)).unwrap_or(1 << 20);
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    loop {
        let mut records_left = max_records;
        let mut bytes_left = max_bytes;
        let mut any = false;
        for (name, topic_id, partition) in &readable {
            if records_left == 0 || bytes_left == 0 {
                break;
            }
            let fetched = crate::broker::off_runtime(|| {
                shares.fetch(
                    broker,
                    &group_id,
                    &member_id,
                    name,
                    *topic_id,
                    *partition,
                    records_left,
                    bytes_left,
                )
            });
            let answer = answers.entry((*topic_id, *partition)).or_default();
            match fetched {
                Ok(f) if !f.acquired.is_empty() => {
                    let count: i64 = f
                        .acquired
                        .iter()
                        .map(|a| a.last_offset - a.first_offset + 1)
                        .sum();
                    records_left = records_left.saturating_sub(count as usize);
                    bytes_left = bytes_left.saturating_sub(f.records.len());
                    answer.records = Some(f.records);
                    answer.acquired = f.acquired;
                    any = true;
                }
                Ok(_) => {}
                Err(code) => {
                    answer.error = Some(code);
                    any = true;
                }
            }
        }
        if any || readable.is_empty() || Instant::now() >= deadline {
            break;
        }
        let ready = readable.iter().any(|(name, topic_id, partition)| {
            shares.has_acquirable(broker, &group_id, name, *topic_id, *partition)
        });
        if !ready {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(POLL_INTERVAL);
            tokio::time::sleep(wait).await;
        } else {
            // Records could be acquired but were not (a race with another member): look
            // again after a moment.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Instant::now() >= deadline {
            // One last look happens on the next pass only if time remains.
            break;
        }
    }
    let mut leaders = std::collections::BTreeSet::new();
    let mut topics: BTreeMap<Uuid, ShareFetchableTopicResponse> = BTreeMap::new();
    for ((topic_id, partition), answer) in answers {
        let requested = add.contains(&(topic_id, partition));
        if !requested && answer.error.is_none() && answer.records.is_none() && !answer.acknowledged
        {
            continue;
        }
        let mut data = PartitionData::default();
        data.partition_index = partition;
        data.error_code = answer.error.map_or(0, |c| c.code());
        data.acknowledge_error_code = answer.ack_error.map_or(0, |c| c.code());
        data.records = Some(answer.records.unwrap_or_default());
        data.acquired_records = answer
            .acquired
            .iter()
            .map(|a| {
                let mut r = AcquiredRecords::default();
                r.first_offset = a.first_offset;
                r.last_offset = a.last_offset;
                r.delivery_count = a.delivery_count;
                r
            })
            .collect();
        let leader = image
            .topic_by_id(topic_id)
            .and_then(|t| t.partitions.get(&partition));
        data.current_leader.leader_id = leader.map_or(-1, |p| p.leader);
        data.current_leader.leader_epoch = leader.map_or(-1, |p| p.leader_epoch);
        if answer.error == Some(ErrorCode::NotLeaderOrFollower) {
            if let Some(p) = leader {
                leaders.insert(p.leader);
            }
        }
        topics
            .entry(topic_id)
            .or_insert_with(|| {
                let mut t = ShareFetchableTopicResponse::default();
                t.topic_id = topic_id;
                t
            })
            .partitions
            .push(data);
    }
    response.responses = topics.into_values().collect();
    response.node_endpoints = leaders
        .iter()
        .filter_map(|id| image.broker(*id))
        .filter_map(|b| Some((b, b.endpoint(&header.listener)?)))
        .map(|(b, (host, port))| {
            let mut e = NodeEndpoint::default();
            e.node_id = BrokerId(b.broker_id);
            e.host = StrBytes::from_string(host.to_owned());
            e.port = i32::from(port);
            e.rack = b.rack.clone().map(StrBytes::from_string);
            e
        })
        .collect();
    respond(&SPEC, header, &response)
}

/// The group and member ids of a ShareFetch or ShareAcknowledge, once the principal may read
/// the group: INVALID_REQUEST when either is missing or empty, GROUP_AUTHORIZATION_FAILED
/// when reading the group is denied.
pub(super) fn share_member(
    broker: &Broker,
    header: &RequestContext,
    group_id: Option<&GroupId>,
    member_id: Option<&StrBytes>,
) -> Result<(String, String), ErrorCode> {
    let group_id = group_id.map(|g| g.0.to_string()).unwrap_or_default();
    let member_id = member_id.map(|m| m.to_string()).unwrap_or_default();
    if group_id.is_empty() || member_id.is_empty() {
        return Err(ErrorCode::InvalidRequest);
    }
    if !header.authorized(broker, AclOperation::Read, ResourceType::Group, &group_id) {
        return Err(ErrorCode::GroupAuthorizationFailed);
    }
    Ok((group_id, member_id))
}
