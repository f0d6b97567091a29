//! Classic consumer-group membership (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) with
//! the embedded "consumer" protocol: subscription and assignment encoded as
//! ConsumerProtocolSubscription / ConsumerProtocolAssignment (version prefix + body).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_protocol::kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use strom_protocol::kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTp;
use strom_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use strom_protocol::kafka_protocol::protocol::{Decodable, Encodable};
use strom_protocol::ErrorCode;

use super::assignor::{self, MemberSubscription};
use super::config::{Assignor, ConsumerConfig};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::util::{group_id, sb, topic_name};
use crate::TopicPartition;

/// The version of ConsumerProtocolSubscription we send (v1 carries owned partitions).
const SUBSCRIPTION_VERSION: i16 = 1;

pub(crate) fn encode_subscription(topics: &[String], owned: &[TopicPartition]) -> Bytes {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = topics.iter().map(|t| sb(t)).collect();
    s.user_data = None;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    s.owned_partitions = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut o = OwnedTp::default();
            o.topic = topic_name(t);
            o.partitions = ps;
            o
        })
        .collect();
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    // Encoding a struct we built with valid fields cannot fail.
    s.encode(&mut buf, SUBSCRIPTION_VERSION)
        .expect("subscription encodes");
    buf.freeze()
}

pub(crate) fn decode_subscription(mut data: Bytes) -> Result<MemberSubscription> {
    let bad = |e: String| Error::Protocol {
        api: "ConsumerProtocolSubscription".into(),
        reason: e,
    };
    if data.len() < 2 {
        return Err(bad("truncated".into()));
    }
    let version = data.get_i16().clamp(0, 3);
    let s =
        ConsumerProtocolSubscription::decode(&mut data, version).map_err(|e| bad(e.to_string()))?;
    Ok(MemberSubscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned: s
            .owned_partitions
            .iter()
            .flat_map(|o| {
                o.partitions
                    .iter()
                    .map(|p| TopicPartition::new(o.topic.0.to_string(), *p))
            })
            .collect(),
    })
}

pub(crate) fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let mut a = ConsumerProtocolAssignment::default();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    a.assigned_partitions = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut x = AssignedTp::default();
            x.topic = topic_name(t);
            x.partitions = ps;
            x
        })
        .collect();
    a.user_data = None;
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    a.encode(&mut buf, 1).expect("assignment encodes");
    buf.freeze()
}

pub(crate) fn decode_assignment(mut data: Bytes) -> Result<Vec<TopicPartition>> {
    if data.len() < 2 {
        return Ok(Vec::new()); // an empty assignment (e.g. a member with nothing)
    }
    let version = data.get_i16().clamp(0, 3);
    let a =
        ConsumerProtocolAssignment::decode(&mut data, version).map_err(|e| Error::Protocol {
            api: "ConsumerProtocolAssignment".into(),
            reason: e.to_string(),
        })?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
        })
        .collect())
}

/// Identity of this member in the current generation; shared with the heartbeat task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Generation {
    pub(crate) generation_id: i32,
    pub(crate) member_id: String,
    pub(crate) protocol: Option<String>,
}

/// Group state the consumer keeps between polls.
pub(crate) struct Membership {
    pub(crate) group: String,
    pub(crate) generation: Arc<Mutex<Generation>>,
    pub(crate) rejoin: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Membership {
    pub(crate) fn new(group: String) -> Self {
        Self {
            group,
            generation: Arc::new(Mutex::new(Generation {
                generation_id: -1,
                ..Generation::default()
            })),
            rejoin: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
        }
    }

    pub(crate) fn current(&self) -> Generation {
        self.generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn cooperative(&self) -> bool {
        self.current().protocol.as_deref() == Some(Assignor::CooperativeSticky.name())
    }

    /// Joins (or rejoins) and syncs; returns the new assignment.
    pub(crate) async fn join(
        &mut self,
        client: &Client,
        config: &ConsumerConfig,
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>> {
        self.stop_heartbeat();
        let group = self.group.clone();
        loop {
            let node = client.coordinator(&group).await?;
            let member_id = self.current().member_id;
            let metadata = encode_subscription(topics, owned);
            let resp = client
                .send(Some(node), ApiKey::JoinGroup, |_| {
                    let mut req = JoinGroupRequest::default();
                    req.group_id = group_id(&group);
                    req.session_timeout_ms = config.session_timeout.as_millis() as i32;
                    req.rebalance_timeout_ms = config.max_poll_interval.as_millis() as i32;
                    req.member_id = sb(&member_id);
                    req.group_instance_id = config.group_instance_id.as_deref().map(sb);
                    req.protocol_type = sb("consumer");
                    req.reason = None;
                    req.protocols = config
                        .assignors
                        .iter()
                        .map(|a| {
                            let mut p = JoinGroupRequestProtocol::default();
                            p.name = sb(a.name());
                            p.metadata = metadata.clone();
                            p
                        })
                        .collect();
                    req
                })
                .await;
            let resp = client.coordinator_result(&group, resp)?;
            match ErrorCode::try_from_code(resp.error_code) {
                None => {}
                Some(ErrorCode::MemberIdRequired) => {
                    self.set(|g| g.member_id = resp.member_id.to_string());
                    continue;
                }
                Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration) => {
                    self.set(|g| {
                        *g = Generation {
                            generation_id: -1,
                            ..Generation::default()
                        }
                    });
                    continue;
                }
                Some(code) => {
                    let r = Err(Error::kafka(code, format!("JoinGroup '{group}'")));
                    return client.coordinator_result(&group, r);
                }
            }
            let protocol = resp.protocol_name.as_ref().map(|p| p.to_string());
            let generation_id = resp.generation_id;
            let my_id = resp.member_id.to_string();
            self.set(|g| {
                g.generation_id = generation_id;
                g.member_id = my_id.clone();
                g.protocol = protocol.clone();
            });
            let assignments = if resp.leader == resp.member_id {
                let members: Result<BTreeMap<String, MemberSubscription>> = resp
                    .members
                    .iter()
                    .map(|m| {
                        Ok((
                            m.member_id.to_string(),
                            decode_subscription(m.metadata.clone())?,
                        ))
                    })
                    .collect();
                lead(client, protocol.as_deref(), &members?).await?
            } else {
                Vec::new()
            };
            let sync = client
                .send(Some(node), ApiKey::SyncGroup, |_| {
                    let mut req = SyncGroupRequest::default();
                    req.group_id = group_id(&group);
                    req.generation_id = generation_id;
                    req.member_id = sb(&my_id);
                    req.group_instance_id = config.group_instance_id.as_deref().map(sb);
                    req.protocol_type = Some(sb("consumer"));
                    req.protocol_name = protocol.as_deref().map(sb);
                    req.assignments = assignments;
                    req
                })
                .await;
            let sync = client.coordinator_result(&group, sync)?;
            match ErrorCode::try_from_code(sync.error_code) {
                None => {}
                Some(ErrorCode::RebalanceInProgress) => continue,
                Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration) => {
                    self.set(|g| {
                        *g = Generation {
                            generation_id: -1,
                            ..Generation::default()
                        }
                    });
                    continue;
                }
                Some(code) => return Err(Error::kafka(code, format!("SyncGroup '{group}'"))),
            }
            let assignment = decode_assignment(sync.assignment)?;
            self.rejoin.store(false, Ordering::Release);
            self.start_heartbeat(
                client.clone(),
                config.heartbeat_interval,
                config.group_instance_id.clone(),
            );
            return Ok(assignment);
        }
    }

    fn set(&self, f: impl FnOnce(&mut Generation)) {
        f(&mut self.generation.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn start_heartbeat(
        &mut self,
        client: Client,
        interval: std::time::Duration,
        instance: Option<String>,
    ) {
        let group = self.group.clone();
        let generation = self.generation.clone();
        let rejoin = self.rejoin.clone();
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let g = generation.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let r = async {
                    let node = client.coordinator(&group).await?;
                    client
                        .send(Some(node), ApiKey::Heartbeat, |_| {
                            let mut req = HeartbeatRequest::default();
                            req.group_id = group_id(&group);
                            req.generation_id = g.generation_id;
                            req.member_id = sb(&g.member_id);
                            req.group_instance_id = instance.as_deref().map(sb);
                            req
                        })
                        .await
                }
                .await;
                match r.map(|resp| ErrorCode::try_from_code(resp.error_code)) {
                    Ok(None) => {}
                    Ok(Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable))
                    | Err(_) => {
                        client.invalidate_coordinator(&group);
                    }
                    Ok(Some(code)) => {
                        if matches!(
                            code,
                            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId
                        ) {
                            let mut g = generation.lock().unwrap_or_else(|e| e.into_inner());
                            g.member_id.clear();
                            g.generation_id = -1;
                        }
                        // REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...: rejoin on next poll.
                        rejoin.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        }));
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// LeaveGroup (v3+ by member list) so the group rebalances without waiting for a timeout.
    pub(crate) async fn leave(&mut self, client: &Client, instance: Option<&str>) -> Result<()> {
        self.stop_heartbeat();
        let g = self.current();
        if g.member_id.is_empty() {
            return Ok(());
        }
        let node = client.coordinator(&self.group).await?;
        let group = self.group.clone();
        let conn = client.connection_for(Some(node)).await?;
        let version = conn.version(ApiKey::LeaveGroup)?;
        let mut req = LeaveGroupRequest::default();
        req.group_id = group_id(&group);
        if version >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = sb(&g.member_id);
            m.group_instance_id = instance.map(sb);
            m.reason = None;
            req.members = vec![m];
        } else {
            req.member_id = sb(&g.member_id);
        }
        let resp = conn.send(&req, version).await?;
        self.set(|g| {
            *g = Generation {
                generation_id: -1,
                ..Generation::default()
            }
        });
        Error::check(resp.error_code, || format!("LeaveGroup '{group}'"))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

/// As leader: runs the chosen assignor over every member's subscription.
async fn lead(
    client: &Client,
    protocol: Option<&str>,
    members: &BTreeMap<String, MemberSubscription>,
) -> Result<Vec<SyncGroupRequestAssignment>> {
    let mut topics: Vec<String> = members
        .values()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    topics.sort();
    topics.dedup();
    let md = client.refresh_metadata(Some(&topics), false).await?;
    let partitions: BTreeMap<String, i32> = topics
        .iter()
        .filter_map(|t| {
            md.topic(t)
                .map(|info| (t.clone(), info.partitions.len() as i32))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let assignor = protocol
        .and_then(Assignor::from_name)
        .unwrap_or(Assignor::Range);
    let result = match assignor {
        Assignor::Range => assignor::range(members, &partitions),
        Assignor::CooperativeSticky => assignor::cooperative_sticky(members, &partitions),
    };
    Ok(result
        .into_iter()
        .map(|(member, tps)| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = sb(&member);
            a.assignment = encode_assignment(&tps);
            a
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let owned = vec![TopicPartition::new("t", 1), TopicPartition::new("t", 0)];
        let s =
            decode_subscription(encode_subscription(&["t".into(), "u".into()], &owned)).unwrap();
        assert_eq!(s.topics, vec!["t", "u"]);
        assert_eq!(s.owned.len(), 2);
        let a = decode_assignment(encode_assignment(&owned)).unwrap();
        assert_eq!(a, owned);
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
    }
}
