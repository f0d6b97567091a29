//! The admin client's calls for KIP-848 consumer groups (`group.protocol=consumer`), which
//! DescribeGroups does not describe (Kafka answers GROUP_ID_NOT_FOUND for them):
//! ConsumerGroupDescribe, answered in the same `GroupDescription` shape as classic groups.

use strom_protocol::kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest};
use strom_protocol::ErrorCode;

use crate::admin::{Admin, GroupDescription, MemberDescription};
use crate::error::{Error, Result};
use crate::util::group_id;
use crate::TopicPartition;

impl Admin {
    /// ConsumerGroupDescribe at each group's coordinator. `protocol_type` is `consumer` and
    /// `protocol` the server-side assignor; each member's assignment is its current one.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for g in groups {
            let node = self.client().coordinator(g).await?;
            let resp = self
                .client()
                .send(Some(node), ApiKey::ConsumerGroupDescribe, |_| {
                    let mut req = ConsumerGroupDescribeRequest::default();
                    req.group_ids = vec![group_id(g)];
                    req
                })
                .await;
            let resp = self.client().coordinator_result(g, resp)?;
            for d in resp.groups {
                Error::check(d.error_code, || format!("group '{g}'"))?;
                out.push(GroupDescription {
                    group_id: d.group_id.0.to_string(),
                    state: d.group_state.to_string(),
                    protocol_type: "consumer".into(),
                    protocol: d.assignor_name.to_string(),
                    members: d
                        .members
                        .into_iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.instance_id.map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: m
                                .assignment
                                .topic_partitions
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(|p| {
                                        TopicPartition::new(t.topic_name.0.to_string(), *p)
                                    })
                                })
                                .collect(),
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// Describes groups of either protocol: DescribeGroups, and ConsumerGroupDescribe for a
    /// group it does not describe (a KIP-848 group). A group that exists in neither is
    /// GROUP_ID_NOT_FOUND, or (classic, as Kafka answers) state `Dead`.
    pub async fn describe_any_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            match self.describe_groups(std::slice::from_ref(g)).await {
                Ok(d) => out.extend(d),
                Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => out.extend(
                    self.describe_consumer_groups(std::slice::from_ref(g))
                        .await?,
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
