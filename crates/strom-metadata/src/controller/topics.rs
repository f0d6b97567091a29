//! CreateTopics, DeleteTopics and CreatePartitions: Kafka's validation rules against the image,
//! replica placement, and the records each operation commits.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Controller;
use crate::config_defs::{describe_topic_configs, validate_topic_config, DescribedConfig};
use crate::error::ControllerError;
use crate::image::{is_internal, MetadataImage, CLUSTER_METADATA_TOPIC};
use crate::records::{ConfigResource, MetadataRecord};

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;
/// Most partitions one operation may create (bounds the records of one batch, as Kafka's
/// controller bounds records per user operation).
pub const MAX_PARTITIONS_PER_OPERATION: i32 = 10_000;
/// `max.broker.partitions` (KIP-578's name): most partition replicas one broker may host.
const MAX_BROKER_PARTITIONS: &str = "max.broker.partitions";

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateTopicRequest {
    pub name: String,
    /// -1: use `num.partitions` (or the manual assignment).
    pub num_partitions: i32,
    /// -1: use `default.replication.factor` (or the manual assignment).
    pub replication_factor: i16,
    /// Manual placement `(partition, replica broker ids)`; empty = let the controller place.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value is refused as in Kafka.
    pub configs: Vec<(String, Option<String>)>,
}

/// The result of creating one topic (what CreateTopics v5+ returns).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Every topic config with its value and source. Not sent when the request was forwarded:
    /// the forwarding node describes them itself ([`crate::describe_topic_configs`]).
    #[serde(skip)]
    pub configs: Vec<DescribedConfig>,
}

impl CreateTopicRequest {
    /// A request for `name` with the broker's defaults: `num.partitions`,
    /// `default.replication.factor`, controller placement and no config overrides.
    pub fn with_defaults(name: impl Into<String>) -> CreateTopicRequest {
        CreateTopicRequest {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![],
            configs: vec![],
        }
    }
}

impl Controller {
    /// Creates topics; one result per request entry, in order. All accepted topics are
    /// committed in one batch. With `validate_only`, nothing is committed.
    pub fn create_topics(
        &mut self,
        requests: Vec<CreateTopicRequest>,
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, ControllerError>> {
        let mut seen = BTreeMap::new();
        for r in &requests {
            *seen.entry(r.name.clone()).or_insert(0) += 1;
        }
        let mut working = (*self.image).clone();
        let mut records = Vec::new();
        let mut results: Vec<_> = requests
            .iter()
            .map(|request| {
                if seen[&request.name] > 1 {
                    return Err(ControllerError::InvalidRequest {
                        reason: format!("topic '{}' appears more than once", request.name),
                    });
                }
                let (topic_records, created) = self.plan_create_topic(&working, request)?;
                working = working.apply_all(&topic_records);
                records.extend(topic_records);
                Ok(created)
            })
            .collect();
        if !validate_only {
            if let Err(e) = self.commit(records) {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.clone());
                }
            }
        }
        results
    }

    /// Deletes topics by name; one result (the deleted topic's id) per name, in order.
    pub fn delete_topics(&mut self, names: Vec<String>) -> Vec<Result<Uuid, ControllerError>> {
        let mut records = Vec::new();
        let mut results: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if !self.config.delete_topic_enable() {
                    return Err(ControllerError::TopicDeletionDisabled);
                }
                if names.iter().enumerate().any(|(j, n)| n == name && j != i) {
                    return Err(ControllerError::InvalidRequest {
                        reason: format!("topic '{name}' appears more than once"),
                    });
                }
                let topic = self.image.topic(name).ok_or_else(|| unknown_topic(name))?;
                if is_internal(name) {
                    return Err(ControllerError::InvalidTopic {
                        reason: format!("Cannot delete internal topic {name}"),
                    });
                }
                records.push(MetadataRecord::RemoveTopic {
                    topic_id: topic.topic_id,
                });
                Ok(topic.topic_id)
            })
            .collect();
        if let Err(e) = self.commit(records) {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        }
        results
    }

    /// Grows topic `name` to `new_total_count` partitions. `assignments` gives the replicas of
    /// each new partition in order; empty = let the controller place them.
    pub fn create_partitions(
        &mut self,
        name: &str,
        new_total_count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let topic = self.image.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if new_total_count < current {
            return Err(invalid_partitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {new_total_count}."
            )));
        }
        if new_total_count == current {
            return Err(invalid_partitions(format!(
                "Topic already has {current} partitions."
            )));
        }
        let added = new_total_count - current;
        if added > MAX_PARTITIONS_PER_OPERATION {
            return Err(too_many_partitions(added));
        }
        let rf = topic.replication_factor();
        let replica_sets = if assignments.is_empty() {
            place_replicas(&self.image, current, added, rf)?
        } else {
            if assignments.len() as i32 != added {
                return Err(invalid_assignment(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                )));
            }
            for replicas in &assignments {
                check_replica_set(&self.image, replicas, Some(rf as usize))?;
            }
            assignments
        };
        self.check_broker_partitions(&self.image, &replica_sets)?;
        let topic_id = topic.topic_id;
        let records = replica_sets
            .into_iter()
            .zip(current..)
            .map(|(replicas, partition)| partition_record(topic_id, partition, replicas))
            .collect();
        if validate_only {
            return Ok(());
        }
        self.commit(records)
    }

    /// Validates one topic against `image` and returns the records that create it.
    fn plan_create_topic(
        &self,
        image: &MetadataImage,
        request: &CreateTopicRequest,
    ) -> Result<(Vec<MetadataRecord>, CreatedTopic), ControllerError> {
        let name = request.name.as_str();
        if name == CLUSTER_METADATA_TOPIC {
            return Err(ControllerError::InvalidRequest {
                reason: format!(
                    "Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."
                ),
            });
        }
        validate_topic_name(name)?;
        if image.topic(name).is_some() {
            return Err(ControllerError::TopicAlreadyExists {
                name: name.to_string(),
            });
        }
        if let Some(other) = image.topics().find(|t| collides(&t.name, name)) {
            return Err(ControllerError::InvalidTopic {
                reason: format!(
                    "Topic '{name}' collides with existing topic: {}",
                    other.name
                ),
            });
        }
        let replica_sets = self.plan_replicas(image, request)?;
        self.check_broker_partitions(image, &replica_sets)?;
        let overrides = check_create_configs(&request.configs)?;
        let topic_id = Uuid::new_v4();
        let num_partitions = replica_sets.len() as i32;
        let replication_factor = replica_sets[0].len() as i16;
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            topic_id,
        }];
        records.extend(
            replica_sets
                .into_iter()
                .zip(0..)
                .map(|(replicas, partition)| partition_record(topic_id, partition, replicas)),
        );
        records.extend(overrides.iter().map(|(key, value)| MetadataRecord::Config {
            resource: ConfigResource::Topic(name.to_string()),
            name: key.clone(),
            value: Some(value.clone()),
        }));
        let created = CreatedTopic {
            name: name.to_string(),
            topic_id,
            num_partitions,
            replication_factor,
            configs: describe_topic_configs(&overrides, &self.effective_broker_config()),
        };
        Ok((records, created))
    }

    /// Refuses an operation that would put more than `max.broker.partitions` partition
    /// replicas on one broker: each costs open files and memory, and a typo in a partition
    /// count must not take the broker down.
    fn check_broker_partitions(
        &self,
        image: &MetadataImage,
        new_replica_sets: &[Vec<i32>],
    ) -> Result<(), ControllerError> {
        let limit: usize = self
            .config
            .value_and_source(MAX_BROKER_PARTITIONS)
            .0
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        let mut added: BTreeMap<i32, usize> = BTreeMap::new();
        for broker in new_replica_sets.iter().flatten() {
            *added.entry(*broker).or_default() += 1;
        }
        for (broker, new) in added {
            let hosted = image
                .topics()
                .flat_map(|t| t.partitions.values())
                .filter(|p| p.replicas.contains(&broker))
                .count();
            if hosted + new > limit {
                return Err(invalid_partitions(format!(
                    "Broker {broker} hosts {hosted} partitions; {new} more would exceed \
                     {MAX_BROKER_PARTITIONS}={limit}."
                )));
            }
        }
        Ok(())
    }

    /// The replica list of each partition, from the manual assignment or by placement.
    fn plan_replicas(
        &self,
        image: &MetadataImage,
        request: &CreateTopicRequest,
    ) -> Result<Vec<Vec<i32>>, ControllerError> {
        if !request.assignments.is_empty() {
            if request.replication_factor != -1 {
                return Err(ControllerError::InvalidReplicationFactor {
                    reason: "A manual partition assignment was specified, but replication factor was not set to -1.".into(),
                });
            }
            if request.num_partitions != -1 {
                return Err(invalid_partitions(
                    "A manual partition assignment was specified, but numPartitions was not set to -1.".into(),
                ));
            }
            return manual_assignment(image, &request.assignments);
        }
        let num_partitions = match request.num_partitions {
            -1 => self.config.num_partitions(),
            n if n <= 0 => {
                return Err(invalid_partitions(
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ))
            }
            n => n,
        };
        if num_partitions > MAX_PARTITIONS_PER_OPERATION {
            return Err(too_many_partitions(num_partitions));
        }
        let rf = match request.replication_factor {
            -1 => i16::try_from(self.config.default_replication_factor()).unwrap_or(i16::MAX),
            rf if rf <= 0 => {
                return Err(ControllerError::InvalidReplicationFactor {
                    reason: "Replication factor must be larger than 0.".into(),
                })
            }
            rf => rf,
        };
        place_replicas(image, 0, num_partitions, rf)
    }
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let reason = if name.is_empty() {
        "Topic name is illegal, it can't be empty".to_string()
    } else if name == "." || name == ".." {
        "Topic name cannot be \".\" or \"..\"".to_string()
    } else if name.len() > MAX_TOPIC_NAME_LENGTH {
        format!("Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}")
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        format!("Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'")
    } else {
        return Ok(());
    };
    Err(ControllerError::InvalidTopic { reason })
}

/// Whether two different names map to the same metric name ('.' and '_' are interchangeable).
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.len() == b.len() && a.replace('.', "_") == b.replace('.', "_")
}

fn manual_assignment(
    image: &MetadataImage,
    assignments: &[(i32, Vec<i32>)],
) -> Result<Vec<Vec<i32>>, ControllerError> {
    if assignments.len() as i32 > MAX_PARTITIONS_PER_OPERATION {
        return Err(too_many_partitions(assignments.len() as i32));
    }
    let by_partition: BTreeMap<i32, &Vec<i32>> = assignments.iter().map(|(p, r)| (*p, r)).collect();
    let consecutive = by_partition.len() == assignments.len()
        && by_partition.keys().copied().eq(0..assignments.len() as i32);
    if !consecutive {
        return Err(invalid_assignment(
            "The partition indexes of the manual assignment must be unique and consecutive from 0."
                .into(),
        ));
    }
    let first_len = by_partition[&0].len();
    by_partition
        .values()
        .map(|replicas| {
            check_replica_set(image, replicas, Some(first_len))?;
            Ok((*replicas).clone())
        })
        .collect()
}

/// A replica list must be non-empty, without duplicates, of registered brokers, and (when
/// `expected_len` is given) as long as the other partitions' lists.
fn check_replica_set(
    image: &MetadataImage,
    replicas: &[i32],
    expected_len: Option<usize>,
) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(invalid_assignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for &broker in replicas {
        if !seen.insert(broker) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        if image.broker(broker).is_none() {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
    }
    match expected_len {
        Some(n) if n != replicas.len() => Err(invalid_assignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {n} replica(s).",
            replicas.len()
        ))),
        _ => Ok(()),
    }
}

/// Rack-aware, striped placement over the registered, unfenced brokers. The brokers are ordered so that
/// racks alternate (rack A's first broker, rack B's first, ..., rack A's second, ...; a broker
/// without a rack is a rack of its own), partition `p`'s leader is the broker at `(p + topics)`
/// in that order, and each follower is the next broker in the order whose rack the partition
/// does not use yet (any next broker once every rack is used). Leaders and replicas spread
/// evenly, no two replicas share a rack while racks allow it, and the result is deterministic
/// given the image.
fn place_replicas(
    image: &MetadataImage,
    first_partition: i32,
    count: i32,
    rf: i16,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let brokers = rack_alternating_brokers(image);
    if rf as usize > brokers.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            reason: format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            ),
        });
    }
    let n = brokers.len();
    let racks: BTreeSet<&str> = brokers.iter().map(|(_, rack)| rack.as_str()).collect();
    let offset = image.topic_count();
    Ok((first_partition..first_partition + count)
        .map(|p| {
            let start = (p as usize + offset) % n;
            let mut chosen: Vec<usize> = vec![start];
            let mut used_racks: BTreeSet<&str> = BTreeSet::from([brokers[start].1.as_str()]);
            while chosen.len() < rf as usize {
                let all_racks_used = used_racks.len() == racks.len();
                let next = (1..n)
                    .map(|step| (start + step) % n)
                    .find(|i| {
                        !chosen.contains(i)
                            && (all_racks_used || !used_racks.contains(brokers[*i].1.as_str()))
                    })
                    .expect("rf <= broker count leaves a broker to choose");
                used_racks.insert(brokers[next].1.as_str());
                chosen.push(next);
            }
            chosen.into_iter().map(|i| brokers[i].0).collect()
        })
        .collect())
}

/// The registered brokers as (id, rack) with racks alternating; within a rack by broker id.
fn rack_alternating_brokers(image: &MetadataImage) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in image.unfenced_brokers() {
        let rack = b
            .rack
            .clone()
            .unwrap_or_else(|| format!("\0broker-{}", b.broker_id));
        by_rack.entry(rack).or_default().push(b.broker_id);
    }
    let mut out = Vec::new();
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for round in 0..deepest {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(round) {
                out.push((*id, rack.clone()));
            }
        }
    }
    out
}

/// Checks CreateTopics configs and returns them as the overrides map.
fn check_create_configs(
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, ControllerError> {
    let mut overrides = BTreeMap::new();
    for (key, value) in configs {
        let value = value
            .as_ref()
            .ok_or_else(|| ControllerError::InvalidConfig {
                key: key.clone(),
                reason: format!("Null value not supported for topic configs: {key}"),
            })?;
        validate_topic_config(key, value)?;
        if overrides.insert(key.clone(), value.clone()).is_some() {
            return Err(ControllerError::InvalidRequest {
                reason: format!("config '{key}' appears more than once"),
            });
        }
    }
    Ok(overrides)
}

fn partition_record(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        isr: replicas.clone(),
        leader: replicas[0],
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        eligible_leader_replicas: vec![],
        last_known_elr: vec![],
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

fn unknown_topic(name: &str) -> ControllerError {
    ControllerError::UnknownTopicOrPartition {
        name: name.to_string(),
    }
}

fn invalid_partitions(reason: String) -> ControllerError {
    ControllerError::InvalidPartitions { reason }
}

fn invalid_assignment(reason: String) -> ControllerError {
    ControllerError::InvalidReplicaAssignment { reason }
}

fn too_many_partitions(n: i32) -> ControllerError {
    invalid_partitions(format!(
        "{n} partitions exceed the limit of {MAX_PARTITIONS_PER_OPERATION} per operation."
    ))
}
