//! The admin client: topics (create, delete, list, describe, add partitions), configs
//! (describe, incremental alter), consumer groups (list, describe, delete, offsets), the
//! cluster description and DeleteRecords. Per-item failures come back per item.

use std::collections::{BTreeMap, HashMap};

use strom_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use strom_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use strom_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use strom_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use strom_protocol::kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, IncrementalAlterConfigsRequest, ListGroupsRequest,
};
use strom_protocol::ErrorCode;

use crate::client::{BrokerInfo, Client, TopicInfo};
use crate::config::ClientConfig;
use crate::consumer::group_codec;
use crate::error::{Error, Result};
use crate::ops::CommittedOffset;
use crate::util::{group_id, sb, topic_name};
use crate::TopicPartition;

/// Timeout the broker gets for admin operations.
const OPERATION_TIMEOUT_MS: i32 = 30_000;

/// A topic to create; -1 partitions / replication factor = the broker's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }
}

/// What a config resource names (DescribeConfigs resource types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    Group(String),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::Group(g) => (32, g.clone()),
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
    pub read_only: bool,
    pub is_sensitive: bool,
}

/// The KIP-226 config source names.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// An IncrementalAlterConfigs operation (KIP-339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub assignment: Vec<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// Admin operations over a `Client`.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

fn per_item(code: i16, msg: Option<String>, what: impl FnOnce() -> String) -> Result<()> {
    Error::check(code, || match msg {
        // The broker's message usually names the item already.
        Some(m) if !m.is_empty() => m,
        _ => what(),
    })
}

impl Admin {
    pub async fn new(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            client: Client::connect(config).await?,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Admin requests go to the controller when metadata names one (Kafka forwards anyway).
    pub(crate) fn controller_id(&self) -> Option<i32> {
        self.controller()
    }

    fn controller(&self) -> Option<i32> {
        let md = self.client.metadata();
        md.brokers
            .contains_key(&md.controller_id)
            .then_some(md.controller_id)
    }

    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<()>)>> {
        let resp = self
            .client
            .send(self.controller(), ApiKey::CreateTopics, |_| {
                let mut req = CreateTopicsRequest::default();
                req.timeout_ms = OPERATION_TIMEOUT_MS;
                req.validate_only = validate_only;
                req.topics = topics
                    .iter()
                    .map(|t| {
                        let mut c = CreatableTopic::default();
                        c.name = topic_name(&t.name);
                        c.num_partitions = t.partitions;
                        c.replication_factor = t.replication_factor;
                        c.configs = t
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                let mut cfg = CreatableTopicConfig::default();
                                cfg.name = sb(k);
                                cfg.value = Some(sb(v));
                                cfg
                            })
                            .collect();
                        c
                    })
                    .collect();
                req
            })
            .await?;
        Ok(resp
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let r = per_item(t.error_code, t.error_message.map(|m| m.to_string()), || {
                    format!("topic '{name}'")
                });
                (name, r)
            })
            .collect())
    }

    pub async fn delete_topics(&self, names: &[String]) -> Result<Vec<(String, Result<()>)>> {
        let resp = self
            .client
            .send(self.controller(), ApiKey::DeleteTopics, |_| {
                let mut req = DeleteTopicsRequest::default();
                req.timeout_ms = OPERATION_TIMEOUT_MS;
                req.topic_names = names.iter().map(|n| topic_name(n)).collect();
                req
            })
            .await?;
        Ok(resp
            .responses
            .into_iter()
            .map(|r| {
                let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
                let res = per_item(r.error_code, r.error_message.map(|m| m.to_string()), || {
                    format!("topic '{name}'")
                });
                (name, res)
            })
            .collect())
    }

    /// Every topic (internal ones only when asked), sorted by name.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicInfo>> {
        let md = self
            .client
            .retry("Metadata", || self.client.refresh_metadata(None, false))
            .await?;
        Ok(md
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .cloned()
            .collect())
    }

    /// Describes topics; an unknown one is an UNKNOWN_TOPIC_OR_PARTITION error.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>> {
        let md = self.client.refresh_metadata(Some(names), false).await?;
        names
            .iter()
            .map(|n| {
                let t = md.topic(n).cloned().ok_or_else(|| {
                    Error::kafka(ErrorCode::UnknownTopicOrPartition, format!("topic '{n}'"))
                })?;
                match t.error {
                    Some(code) => Err(Error::kafka(code, format!("topic '{n}'"))),
                    None => Ok(t),
                }
            })
            .collect()
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let resp = self
            .client
            .send(self.controller(), ApiKey::CreatePartitions, |_| {
                let mut req = CreatePartitionsRequest::default();
                req.timeout_ms = OPERATION_TIMEOUT_MS;
                let mut t = CreatePartitionsTopic::default();
                t.name = topic_name(topic);
                t.count = total;
                t.assignments = None;
                req.topics = vec![t];
                req
            })
            .await?;
        for r in resp.results {
            per_item(r.error_code, r.error_message.map(|m| m.to_string()), || {
                format!("topic '{topic}'")
            })?;
        }
        self.client.invalidate_metadata();
        Ok(())
    }

    /// Configs of a resource (all of them for `keys: None`), sorted by name.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: Option<&[String]>,
    ) -> Result<Vec<ConfigEntry>> {
        let (rtype, rname) = resource.wire();
        let node = match resource {
            ConfigResource::Broker(id) => Some(*id),
            _ => None,
        };
        let resp = self
            .client
            .send(node, ApiKey::DescribeConfigs, |_| {
                let mut req = DescribeConfigsRequest::default();
                let mut r = DescribeConfigsResource::default();
                r.resource_type = rtype;
                r.resource_name = sb(&rname);
                r.configuration_keys = keys.map(|ks| ks.iter().map(|k| sb(k)).collect());
                req.resources = vec![r];
                req.include_synonyms = false;
                req.include_documentation = false;
                req
            })
            .await?;
        let mut out = Vec::new();
        for r in resp.results {
            per_item(r.error_code, r.error_message.map(|m| m.to_string()), || {
                format!("configs of {rname}")
            })?;
            for c in r.configs {
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: config_source_name(c.config_source),
                    read_only: c.read_only,
                    is_sensitive: c.is_sensitive,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// IncrementalAlterConfigs: set, delete, append or subtract individual keys.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[(String, AlterOp, Option<String>)],
    ) -> Result<()> {
        let (rtype, rname) = resource.wire();
        let node = match resource {
            ConfigResource::Broker(id) => Some(*id),
            _ => self.controller(),
        };
        let resp = self
            .client
            .send(node, ApiKey::IncrementalAlterConfigs, |_| {
                let mut req = IncrementalAlterConfigsRequest::default();
                let mut r = AlterConfigsResource::default();
                r.resource_type = rtype;
                r.resource_name = sb(&rname);
                r.configs = ops
                    .iter()
                    .map(|(k, op, v)| {
                        let mut c = AlterableConfig::default();
                        c.name = sb(k);
                        c.config_operation = *op as i8;
                        c.value = v.as_deref().map(sb);
                        c
                    })
                    .collect();
                req.resources = vec![r];
                req
            })
            .await?;
        for r in resp.responses {
            per_item(r.error_code, r.error_message.map(|m| m.to_string()), || {
                format!("configs of {rname}")
            })?;
        }
        Ok(())
    }

    /// DescribeCluster, or Metadata where the broker does not serve it.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let resp = self
            .client
            .send(None, ApiKey::DescribeCluster, |_| {
                let mut req = DescribeClusterRequest::default();
                req.endpoint_type = 1;
                req
            })
            .await;
        match resp {
            Ok(r) => {
                Error::check(r.error_code, || "DescribeCluster".into())?;
                Ok(ClusterDescription {
                    cluster_id: r.cluster_id.to_string(),
                    controller_id: r.controller_id.0,
                    brokers: r
                        .brokers
                        .into_iter()
                        .map(|b| BrokerInfo {
                            node_id: b.broker_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.map(|r| r.to_string()),
                        })
                        .collect(),
                })
            }
            Err(Error::UnsupportedVersion { .. }) => {
                let md = self.client.refresh_metadata(Some(&[]), false).await?;
                Ok(ClusterDescription {
                    cluster_id: md.cluster_id.clone().unwrap_or_default(),
                    controller_id: md.controller_id,
                    brokers: md.brokers.values().cloned().collect(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Moves log start offsets forward; returns the new low watermarks.
    pub async fn delete_records(
        &self,
        before: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, o) in before {
            self.client.topic_metadata(&tp.topic, false).await?;
            let leader = self
                .client
                .metadata()
                .leader(tp)
                .ok_or_else(|| Error::kafka(ErrorCode::LeaderNotAvailable, tp.to_string()))?;
            by_leader.entry(leader).or_default().push((tp.clone(), *o));
        }
        let mut out = HashMap::new();
        for (leader, items) in by_leader {
            let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
            for (tp, o) in &items {
                by_topic
                    .entry(tp.topic.clone())
                    .or_default()
                    .push((tp.partition, *o));
            }
            let resp = self
                .client
                .send(Some(leader), ApiKey::DeleteRecords, |_| {
                    let mut req = DeleteRecordsRequest::default();
                    req.timeout_ms = OPERATION_TIMEOUT_MS;
                    req.topics = by_topic
                        .iter()
                        .map(|(t, ps)| {
                            let mut dt = DeleteRecordsTopic::default();
                            dt.name = topic_name(t);
                            dt.partitions = ps
                                .iter()
                                .map(|(p, o)| {
                                    let mut dp = DeleteRecordsPartition::default();
                                    dp.partition_index = *p;
                                    dp.offset = *o;
                                    dp
                                })
                                .collect();
                            dt
                        })
                        .collect();
                    req
                })
                .await?;
            for t in resp.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    Error::check(p.error_code, || format!("DeleteRecords {tp}"))?;
                    out.insert(tp, p.low_watermark);
                }
            }
        }
        Ok(out)
    }

    /// ListGroups on every broker, merged and sorted.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let md = self.client.refresh_metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for node in md.brokers.keys() {
            let resp = self
                .client
                .send(Some(*node), ApiKey::ListGroups, |_| {
                    ListGroupsRequest::default()
                })
                .await?;
            Error::check(resp.error_code, || format!("ListGroups on node {node}"))?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// DescribeGroups at each group's coordinator.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for g in groups {
            let node = self.client.coordinator(g).await?;
            let resp = self
                .client
                .send(Some(node), ApiKey::DescribeGroups, |_| {
                    let mut req = DescribeGroupsRequest::default();
                    req.groups = vec![group_id(g)];
                    req
                })
                .await;
            let resp = self.client.coordinator_result(g, resp)?;
            for d in resp.groups {
                Error::check(d.error_code, || format!("group '{g}'"))?;
                let consumer = d.protocol_type.as_str() == "consumer";
                out.push(GroupDescription {
                    group_id: d.group_id.0.to_string(),
                    state: d.group_state.to_string(),
                    protocol_type: d.protocol_type.to_string(),
                    protocol: d.protocol_data.to_string(),
                    members: d
                        .members
                        .into_iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: if consumer {
                                group_codec::decode_assignment(m.member_assignment)
                                    .unwrap_or_default()
                            } else {
                                Vec::new()
                            },
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    pub async fn delete_groups(&self, groups: &[String]) -> Result<Vec<(String, Result<()>)>> {
        let mut out = Vec::new();
        for g in groups {
            let node = self.client.coordinator(g).await?;
            let resp = self
                .client
                .send(Some(node), ApiKey::DeleteGroups, |_| {
                    let mut req = DeleteGroupsRequest::default();
                    req.groups_names = vec![group_id(g)];
                    req
                })
                .await;
            let resp = self.client.coordinator_result(g, resp)?;
            for r in resp.results {
                let name = r.group_id.0.to_string();
                out.push((
                    name.clone(),
                    Error::check(r.error_code, || format!("group '{name}'")),
                ));
            }
        }
        Ok(out)
    }

    /// The group's committed offsets.
    pub async fn list_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        self.client.fetch_committed(group, None).await
    }

    /// Sets a group's committed offsets (the group must be empty, as in Kafka).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        self.client.commit_offsets(group, -1, "", offsets).await
    }
}
