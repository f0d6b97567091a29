//! The coordinator's KIP-848 face: ConsumerGroupHeartbeat/Describe on the consumer groups
//! kept beside the classic ones under the same lock, and the rule that one group id is
//! either classic or consumer, never both.

use strom_metadata::broker_config::BrokerConfig;
use strom_protocol::ErrorCode;

use super::GroupCoordinator;
use crate::group::consumer::{
    assignor, ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest, HeartbeatResponse, TopicsView,
};
use crate::group::log::OffsetsLog;
use crate::group::GroupState;

impl ConsumerGroupConfig {
    /// The `group.consumer.*` settings of a broker configuration. Kafka's assignor class
    /// names are accepted for the short names.
    pub fn from_broker(config: &BrokerConfig) -> ConsumerGroupConfig {
        let int = |key: &str, default: i32| {
            config
                .value_and_source(key)
                .0
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(default)
        };
        let defaults = ConsumerGroupConfig::default();
        let mut assignors: Vec<String> = config
            .value_and_source("group.consumer.assignors")
            .0
            .unwrap_or_default()
            .split(',')
            .filter_map(|a| match a.trim() {
                n if n == assignor::UNIFORM || n.ends_with("UniformAssignor") => {
                    Some(assignor::UNIFORM.to_owned())
                }
                n if n == assignor::RANGE || n.ends_with("RangeAssignor") => {
                    Some(assignor::RANGE.to_owned())
                }
                _ => None,
            })
            .collect();
        assignors.dedup();
        if assignors.is_empty() {
            assignors = defaults.assignors;
        }
        ConsumerGroupConfig {
            session_timeout_ms: int("group.consumer.session.timeout.ms", 45_000),
            heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms", 5_000),
            max_size: usize::try_from(int("group.consumer.max.size", i32::MAX))
                .unwrap_or(1)
                .max(1),
            assignors,
        }
    }
}

impl GroupCoordinator {
    /// Uses these `group.consumer.*` settings (start-up).
    pub fn with_consumer_config(self, config: ConsumerGroupConfig) -> GroupCoordinator {
        self.inner.lock().consumer.config = config;
        self
    }

    /// ConsumerGroupHeartbeat. A classic group with members keeps its id
    /// (GROUP_ID_NOT_FOUND, as Kafka answers "not a consumer group"); an Empty classic group
    /// (e.g. one holding only offsets) may become a consumer group and keeps its offsets.
    pub fn consumer_heartbeat(
        &self,
        log: &dyn OffsetsLog,
        req: &HeartbeatRequest,
        topics: &TopicsView,
    ) -> Result<HeartbeatResponse, ErrorCode> {
        self.check_coordinator(log, &req.group_id)?;
        let now = self.now_ms();
        let result = {
            let mut inner = self.inner.lock();
            let classic_busy = inner
                .groups
                .group(&req.group_id)
                .is_some_and(|g| !matches!(g.state(), GroupState::Empty | GroupState::Dead));
            if classic_busy {
                return Err(ErrorCode::GroupIdNotFound);
            }
            let before = inner.consumer.record(&req.group_id);
            let new_id = || uuid::Uuid::new_v4().to_string();
            let result = inner.consumer.heartbeat(req, topics, new_id, now);
            // The new state is written before the member hears about it.
            let after = inner.consumer.record(&req.group_id);
            if after != before {
                if let Err(e) = self.append(log, &[after]) {
                    tracing::error!(error = ?e, "could not write a consumer group to __consumer_offsets");
                }
            }
            result
        };
        // A new member or a revocation may bring the next deadline forward.
        self.wake.notify_one();
        result
    }

    /// ConsumerGroupDescribe of one group: GROUP_ID_NOT_FOUND unless it is a consumer group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroup, ErrorCode> {
        self.inner
            .lock()
            .consumer
            .group(group_id)
            .cloned()
            .ok_or(ErrorCode::GroupIdNotFound)
    }

    /// OffsetFetch v9's check of a consumer-group member and its epoch (classic groups pass).
    pub fn check_consumer_member(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ErrorCode> {
        if member_id.is_empty() || member_epoch < 0 {
            // An admin or a simple consumer reads offsets without membership.
            return Ok(());
        }
        self.inner
            .lock()
            .consumer
            .validate_commit(group_id, member_id, member_epoch)
            .map(|_| ())
    }

    /// TxnOffsetCommit's check for consumer groups; `Ok(false)` for other groups.
    pub(in crate::group) fn check_consumer_txn_commit(
        &self,
        group_id: &str,
        auth: &crate::group::CommitAuth,
    ) -> Result<bool, ErrorCode> {
        self.inner.lock().consumer.validate_txn_commit(
            group_id,
            &auth.member_id,
            auth.generation_id,
        )
    }

    /// Whether `group_id` is a consumer (KIP-848) group.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.inner.lock().consumer.group(group_id).is_some()
    }

    /// ListGroups rows of consumer groups: (group id, state name).
    pub fn list_consumer(&self) -> Vec<(String, &'static str)> {
        let inner = self.inner.lock();
        let mut out: Vec<(String, &'static str)> = inner
            .consumer
            .groups()
            .map(|g| (g.group_id.clone(), g.state().name()))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strom_storage::SystemClock;
    use uuid::Uuid;

    use super::*;
    use crate::group::consumer::Assignment;
    use crate::group::log::MemoryLog;
    use crate::group::state::Protocol;
    use crate::group::{CommitAuth, GroupConfig, JoinRequest, OffsetCommit};

    fn topics() -> TopicsView {
        [("t".to_owned(), (Uuid::from_u128(9), 4))].into()
    }

    fn join(member: &str) -> HeartbeatRequest {
        HeartbeatRequest {
            group_id: "kg".into(),
            member_id: member.into(),
            rebalance_timeout_ms: 10_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..HeartbeatRequest::default()
        }
    }

    fn auth(member: &str, epoch: i32) -> CommitAuth {
        CommitAuth {
            generation_id: epoch,
            member_id: member.into(),
            group_instance_id: None,
            version_9_or_later: true,
        }
    }

    fn commit(offset: i64) -> Vec<((String, i32), OffsetCommit)> {
        let c = OffsetCommit {
            offset,
            leader_epoch: -1,
            metadata: None,
        };
        vec![(("t".into(), 0), c)]
    }

    #[tokio::test]
    async fn consumer_groups_check_epochs_keep_their_id_and_survive_a_restart() {
        let log = MemoryLog::new(50);
        let c = GroupCoordinator::new(GroupConfig::default(), Arc::new(SystemClock));
        let r = c
            .consumer_heartbeat(&log, &join("a"), &topics())
            .expect("join");
        assert_eq!(r.assignment.as_ref().map(|a| a.len()), Some(1));
        let stale = c.commit(&log, "kg", &auth("a", r.member_epoch + 1), -1, commit(5));
        assert_eq!(stale.err(), Some(ErrorCode::StaleMemberEpoch));
        let ok = c.commit(&log, "kg", &auth("a", r.member_epoch), -1, commit(5));
        assert_eq!(ok.map(|v| v.len()), Ok(1));
        assert_eq!(
            c.check_consumer_member("kg", "nobody", 3),
            Err(ErrorCode::UnknownMemberId)
        );

        // The id is taken: a classic JoinGroup is refused, and ListGroups says "consumer".
        let classic = JoinRequest {
            group_id: "kg".into(),
            member_id: String::new(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: bytes::Bytes::new(),
            }],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: false,
            supports_skip_assignment: false,
        };
        let refused = c.join(&log, classic).await;
        assert_eq!(refused.error, Some(ErrorCode::InconsistentGroupProtocol));
        assert!(c.list(&[], &[]).iter().all(|g| g.group_id != "kg"));
        assert_eq!(c.list_consumer(), vec![("kg".to_owned(), "Stable")]);

        // A restart reloads the group: the member goes on with its epoch and offsets.
        let restarted = GroupCoordinator::new(GroupConfig::default(), Arc::new(SystemClock));
        restarted.load(&log).expect("load");
        assert!(restarted.is_consumer_group("kg"));
        let mut beat = join("a");
        beat.member_epoch = r.member_epoch;
        beat.owned = r.assignment.clone();
        let again = restarted
            .consumer_heartbeat(&log, &beat, &topics())
            .expect("known after restart");
        assert_eq!(again.member_epoch, r.member_epoch);
        let fetched = restarted.fetch(&log, "kg", None).expect("fetch");
        assert_eq!(fetched[0].1.as_ref().map(|v| v.offset), Some(5));
    }
}
