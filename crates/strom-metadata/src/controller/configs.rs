//! AlterConfigs (replace every override of a resource) and IncrementalAlterConfigs (SET, DELETE,
//! APPEND, SUBTRACT per key, KIP-339) for topics, brokers and consumer groups.

use std::collections::BTreeMap;

use super::Controller;
use crate::broker_config_defs::{broker_config_def, is_dynamic_broker_config};
use crate::config_defs::{
    group_config_def, split_list, topic_config_def, validate_group_config, validate_topic_config,
    validate_value, ConfigType,
};
use crate::error::ControllerError;
use crate::image::is_internal;
use crate::records::{ConfigResource, MetadataRecord};

/// An IncrementalAlterConfigs operation (the protocol's `config_operation` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(i8)]
pub enum AlterConfigOp {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

impl TryFrom<i8> for AlterConfigOp {
    type Error = ControllerError;

    fn try_from(op: i8) -> Result<Self, ControllerError> {
        match op {
            0 => Ok(AlterConfigOp::Set),
            1 => Ok(AlterConfigOp::Delete),
            2 => Ok(AlterConfigOp::Append),
            3 => Ok(AlterConfigOp::Subtract),
            _ => Err(ControllerError::InvalidRequest {
                reason: format!("unknown config operation {op}"),
            }),
        }
    }
}

impl Controller {
    /// Legacy AlterConfigs: the given set becomes the resource's complete set of overrides;
    /// overrides not named are removed. `None` values are treated as absent.
    pub fn alter_configs(
        &mut self,
        resource: ConfigResource,
        configs: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let current = self.current_overrides(&resource)?;
        let mut wanted = BTreeMap::new();
        for (key, value) in configs {
            check_duplicate(wanted.contains_key(&key), &key)?;
            if let Some(value) = value {
                self.validate(&resource, &key, &value)?;
                wanted.insert(key, value);
            }
        }
        self.finish(resource, &current, wanted, validate_only)
    }

    /// IncrementalAlterConfigs: applies each `(key, op, value)` to the current overrides.
    /// DELETE reverts to the default; APPEND/SUBTRACT work on LIST configs, starting from the
    /// value in force (override or default).
    pub fn incremental_alter_configs(
        &mut self,
        resource: ConfigResource,
        ops: Vec<(String, AlterConfigOp, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let current = self.current_overrides(&resource)?;
        let mut wanted = current.clone();
        for (i, (key, op, value)) in ops.iter().enumerate() {
            check_duplicate(ops[..i].iter().any(|(k, _, _)| k == key), key)?;
            let config_type = self.config_type(&resource, key)?;
            let value = value.as_deref();
            match op {
                AlterConfigOp::Delete => {
                    wanted.remove(key);
                    continue;
                }
                AlterConfigOp::Set => {
                    let value = value.ok_or_else(|| null_value(key))?;
                    wanted.insert(key.clone(), value.trim().to_string());
                }
                AlterConfigOp::Append | AlterConfigOp::Subtract => {
                    if config_type != ConfigType::List {
                        return Err(ControllerError::InvalidConfig {
                            key: key.clone(),
                            reason: format!(
                                "Can't {op:?} to key {key} because its type is not LIST."
                            ),
                        });
                    }
                    let in_force = match wanted.get(key) {
                        Some(v) => v.clone(),
                        None => self.default_value(&resource, key),
                    };
                    let mut items: Vec<String> = split_list(&in_force)
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    for item in split_list(value.unwrap_or_default()) {
                        let present = items.iter().any(|i| i == item);
                        if *op == AlterConfigOp::Append && !present {
                            items.push(item.to_string());
                        } else if *op == AlterConfigOp::Subtract {
                            items.retain(|i| i != item);
                        }
                    }
                    wanted.insert(key.clone(), items.join(","));
                }
            }
            self.validate(&resource, key, &wanted[key])?;
        }
        self.finish(resource, &current, wanted, validate_only)
    }

    /// Overrides of an existing resource; unknown topic or unregistered broker is an error (a
    /// group's settings may be set before the group exists, as in Kafka).
    fn current_overrides(
        &self,
        resource: &ConfigResource,
    ) -> Result<BTreeMap<String, String>, ControllerError> {
        match resource {
            ConfigResource::Topic(name) => self
                .image
                .topic_config_overrides(name)
                .cloned()
                .ok_or_else(|| ControllerError::UnknownTopicOrPartition { name: name.clone() }),
            ConfigResource::Broker(id) if self.image.broker(*id).is_none() => {
                Err(ControllerError::BrokerNotRegistered { broker_id: *id })
            }
            ConfigResource::Broker(id) => Ok(self.image.broker_config_overrides(*id)),
            ConfigResource::Group(group) => Ok(self.image.group_config_overrides(group)),
        }
    }

    fn config_type(
        &self,
        resource: &ConfigResource,
        key: &str,
    ) -> Result<ConfigType, ControllerError> {
        let def = match resource {
            ConfigResource::Topic(_) => topic_config_def(key),
            ConfigResource::Broker(_) => broker_config_def(key),
            ConfigResource::Group(_) => group_config_def(key),
        };
        def.map(|d| d.config_type)
            .ok_or_else(|| ControllerError::InvalidConfig {
                key: key.to_string(),
                reason: format!("Unknown config name: {key}"),
            })
    }

    /// The value a key has with no override of its own on this resource.
    fn default_value(&self, resource: &ConfigResource, key: &str) -> String {
        match resource {
            ConfigResource::Topic(_) => self.effective_broker_config().topic_defaults().remove(key),
            ConfigResource::Broker(_) => {
                let (value, _) = self.config.value_and_source(key);
                value.map(str::to_string)
            }
            ConfigResource::Group(_) => {
                let broker_key = format!("group.{key}");
                let (value, _) = self.config.value_and_source(&broker_key);
                value.map(str::to_string)
            }
        }
        .unwrap_or_default()
    }

    fn validate(
        &self,
        resource: &ConfigResource,
        key: &str,
        value: &str,
    ) -> Result<(), ControllerError> {
        match resource {
            ConfigResource::Topic(_) => validate_topic_config(key, value),
            ConfigResource::Group(_) => validate_group_config(key, value),
            ConfigResource::Broker(_) => {
                let def = broker_config_def(key).ok_or_else(|| ControllerError::InvalidConfig {
                    key: key.to_string(),
                    reason: format!("Unknown broker config name: {key}"),
                })?;
                if !is_dynamic_broker_config(key) {
                    return Err(ControllerError::InvalidRequest {
                        reason: format!("Cannot update broker config {key} dynamically"),
                    });
                }
                validate_value(def, value).map_err(|reason| ControllerError::InvalidConfig {
                    key: key.to_string(),
                    reason,
                })
            }
        }
    }

    /// Checks the broker-level result as a whole, then commits the difference as records.
    fn finish(
        &mut self,
        resource: ConfigResource,
        current: &BTreeMap<String, String>,
        wanted: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        if let ConfigResource::Topic(name) = &resource {
            let policy = |m: &BTreeMap<String, String>| m.get("cleanup.policy").cloned();
            if is_internal(name) && policy(current) != policy(&wanted) {
                return Err(ControllerError::InvalidConfig {
                    key: "cleanup.policy".to_string(),
                    reason: format!(
                        "cleanup.policy of internal topic {name} cannot be changed: its \
                         coordinator relies on compaction"
                    ),
                });
            }
        }
        if let ConfigResource::Broker(_) = resource {
            self.config.with_dynamic_overrides(&wanted).map_err(|e| {
                ControllerError::InvalidRequest {
                    reason: e.to_string(),
                }
            })?;
        }
        let removed = current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| (k.clone(), None));
        let changed = wanted
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), Some(v.clone())));
        let records: Vec<_> = removed
            .chain(changed)
            .map(|(name, value)| MetadataRecord::Config {
                resource: resource.clone(),
                name,
                value,
            })
            .collect();
        if validate_only {
            return Ok(());
        }
        let mut records = records;
        let min_isr = |m: &BTreeMap<String, String>| m.get("min.insync.replicas").cloned();
        if min_isr(current) != min_isr(&wanted) {
            records.extend(self.clear_elr_records(&resource));
        }
        self.commit(records)
    }

    /// KIP-966: when `min.insync.replicas` changes on a topic its partitions' ELRs (and last
    /// known ELRs) are cleared; when it changes at the broker level, every partition's (Kafka's
    /// ClearElrRecord). Each cleared partition gets a new partition epoch.
    fn clear_elr_records(&self, resource: &ConfigResource) -> Vec<MetadataRecord> {
        let topic = match resource {
            ConfigResource::Topic(name) => Some(name.as_str()),
            ConfigResource::Broker(_) => None,
            ConfigResource::Group(_) => return Vec::new(),
        };
        let mut records = Vec::new();
        for t in self.image.topics() {
            if topic.is_some_and(|name| name != t.name) {
                continue;
            }
            for p in t.partitions.values() {
                if p.eligible_leader_replicas.is_empty() && p.last_known_elr.is_empty() {
                    continue;
                }
                let mut next = p.clone();
                next.eligible_leader_replicas.clear();
                next.last_known_elr.clear();
                next.partition_epoch += 1;
                records.push(next.to_record(t.topic_id));
            }
        }
        records
    }
}

fn check_duplicate(duplicate: bool, key: &str) -> Result<(), ControllerError> {
    if duplicate {
        return Err(ControllerError::InvalidRequest {
            reason: format!("Error due to duplicate config keys: {key}"),
        });
    }
    Ok(())
}

fn null_value(key: &str) -> ControllerError {
    ControllerError::InvalidConfig {
        key: key.to_string(),
        reason: format!("Null value not supported for: {key}"),
    }
}
