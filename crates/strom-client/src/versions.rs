//! The API versions this client implements, and the choice of one per request: the highest
//! version both the client and the broker (its ApiVersions answer) support.

use std::collections::HashMap;

use strom_protocol::kafka_protocol::messages::ApiKey;

use crate::error::{Error, Result};

/// `(api, min, max)` this client can encode and decode correctly.
const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 4, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::ElectLeaders, 1, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 2, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Transactions (KIP-98), classic protocol: v4+ of these belong to KIP-890's protocol v2.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    // Share groups (KIP-932), as Kafka 4.1 has them.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
];

/// A broker's advertised ranges, keyed by API key.
#[derive(Debug, Clone, Default)]
pub(crate) struct BrokerVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl BrokerVersions {
    pub(crate) fn new(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        Self {
            ranges: ranges
                .into_iter()
                .map(|(k, lo, hi)| (k, (lo, hi)))
                .collect(),
        }
    }

    /// The highest version of `api` both sides support.
    pub(crate) fn choose(&self, api: ApiKey) -> Result<i16> {
        let unsupported = || Error::UnsupportedVersion {
            api: format!("{api:?}"),
        };
        let &(_, cmin, cmax) = CLIENT_VERSIONS
            .iter()
            .find(|(k, _, _)| *k == api)
            .ok_or_else(unsupported)?;
        let &(bmin, bmax) = self.ranges.get(&(api as i16)).ok_or_else(unsupported)?;
        let (lo, hi) = (cmin.max(bmin), cmax.min(bmax));
        if lo > hi {
            return Err(unsupported());
        }
        Ok(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        let v = BrokerVersions::new([(0, 0, 13), (1, 4, 16), (3, 0, 3)]);
        assert_eq!(v.choose(ApiKey::Produce).unwrap(), 11);
        assert_eq!(v.choose(ApiKey::Fetch).unwrap(), 12);
        assert!(v.choose(ApiKey::Metadata).is_err(), "no overlap");
        assert!(v.choose(ApiKey::JoinGroup).is_err(), "not advertised");
    }
}
