//! KIP-875's offsets endpoints on the worker: read a connector's offsets (source offsets from
//! the offset store, sink offsets from its consumer group), and alter or reset them while
//! the connector is STOPPED, as Kafka requires.

use std::collections::BTreeMap;

use serde_json::{json, Value as J};
use strom_client::{Admin, ClientConfig, TopicPartition};

use super::{TargetState, Worker};
use crate::connector::ConnectorType;
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};
use crate::runner::sink_group;

impl Worker {
    async fn type_of(&self, name: &str, must_be_stopped: bool) -> Result<ConnectorType> {
        self.with_entry(name, |e| {
            if must_be_stopped && e.target != TargetState::Stopped {
                return Err(ConnectError::BadRequest(format!(
                    "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
                )));
            }
            Ok(e.plugin.connector_type)
        })
        .await?
    }

    async fn admin(&self) -> Result<Admin> {
        Ok(Admin::new(ClientConfig::new(&self.config.bootstrap_servers)).await?)
    }

    /// `GET /connectors/{name}/offsets`.
    pub async fn offsets(&self, name: &str) -> Result<J> {
        let offsets: Vec<J> = match self.type_of(name, false).await? {
            ConnectorType::Source => self
                .offsets
                .list(name)
                .into_iter()
                .map(|(p, o)| json!({"partition": p, "offset": o}))
                .collect(),
            ConnectorType::Sink => {
                let committed = self
                    .admin()
                    .await?
                    .list_group_offsets(&sink_group(name))
                    .await?;
                committed
                    .into_iter()
                    .filter(|(_, c)| c.offset >= 0)
                    .map(|(tp, c)| {
                        json!({
                            "partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition},
                            "offset": {"kafka_offset": c.offset},
                        })
                    })
                    .collect()
            }
        };
        Ok(json!({ "offsets": offsets }))
    }

    /// `PATCH /connectors/{name}/offsets`: sets (or with a null offset, removes) offsets.
    pub async fn alter_offsets(&self, name: &str, body: &J) -> Result<J> {
        let kind = self.type_of(name, true).await?;
        let parsed = parse_offset_changes(body)?;
        match kind {
            ConnectorType::Source => {
                let plugin = self.with_entry(name, |e| e.plugin).await?;
                check_source_offsets(&plugin, &parsed)?;
                self.offsets.put(name, parsed).await?;
            }
            ConnectorType::Sink => {
                self.alter_sink_offsets(name, sink_offset_changes(parsed)?)
                    .await?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    }

    async fn alter_sink_offsets(
        &self,
        name: &str,
        changes: BTreeMap<TopicPartition, Option<i64>>,
    ) -> Result<()> {
        let admin = self.admin().await?;
        let group = sink_group(name);
        let mut committed: BTreeMap<TopicPartition, i64> = admin
            .list_group_offsets(&group)
            .await?
            .into_iter()
            .filter(|(_, c)| c.offset >= 0)
            .map(|(tp, c)| (tp, c.offset))
            .collect();
        let removes = changes.values().any(Option::is_none);
        for (tp, o) in changes {
            match o {
                Some(o) => {
                    committed.insert(tp, o);
                }
                None => {
                    committed.remove(&tp);
                }
            }
        }
        if removes {
            // No OffsetDelete in the client: drop the (empty) group and write back the rest.
            delete_group(&admin, &group).await?;
        }
        if !committed.is_empty() {
            admin.alter_group_offsets(&group, &committed).await?;
        }
        Ok(())
    }

    /// `DELETE /connectors/{name}/offsets`.
    pub async fn reset_offsets(&self, name: &str) -> Result<J> {
        match self.type_of(name, true).await? {
            ConnectorType::Source => self.offsets.remove_connector(name).await?,
            ConnectorType::Sink => {
                let admin = self.admin().await?;
                delete_group(&admin, &sink_group(name)).await?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    }
}

async fn delete_group(admin: &Admin, group: &str) -> Result<()> {
    for (_, r) in admin.delete_groups(&[group.to_owned()]).await? {
        match r {
            Ok(()) => {}
            // Nothing committed yet: nothing to delete.
            Err(e) if e.to_string().contains("GROUP_ID_NOT_FOUND") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A partition and its new offset (`None`: remove it), from a PATCH offsets body.
pub(crate) type OffsetChange = (JsonMap, Option<JsonMap>);

/// The `offsets` list of a `PATCH /connectors/{name}/offsets` body, with Kafka's messages
/// for what is missing or of the wrong type.
pub(crate) fn parse_offset_changes(body: &J) -> Result<Vec<OffsetChange>> {
    let entries = body
        .get("offsets")
        .and_then(J::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ConnectError::BadRequest("The offsets to be altered must be specified as a non-empty list of partition/offset pairs in the 'offsets' field".into()))?;
    entries
        .iter()
        .map(|e| {
            let partition = e
                .get("partition")
                .and_then(J::as_object)
                .cloned()
                .ok_or_else(|| {
                    ConnectError::BadRequest("Partitions must be specified as JSON objects".into())
                })?;
            let offset = match e.get("offset") {
                None | Some(J::Null) => None,
                Some(J::Object(o)) => Some(o.clone()),
                Some(_) => {
                    return Err(ConnectError::BadRequest(
                        "Offsets must be specified as JSON objects or null".into(),
                    ))
                }
            };
            Ok((partition, offset))
        })
        .collect()
}

/// The connector's own checks of altered source offsets (the file source has some).
pub(crate) fn check_source_offsets(
    plugin: &crate::plugins::ConnectorPlugin,
    changes: &[OffsetChange],
) -> Result<()> {
    if plugin.class == crate::file::FILE_SOURCE_CLASS {
        for (p, o) in changes {
            check_file_source_offset(p, o.as_ref())?;
        }
    }
    Ok(())
}

/// A sink connector's offset changes as Kafka topic-partitions and offsets (`None`: remove).
pub(crate) fn sink_offset_changes(
    changes: Vec<OffsetChange>,
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let mut out = BTreeMap::new();
    for (p, o) in changes {
        let tp = sink_partition(&p)?;
        let offset = match o {
            None => None,
            Some(o) => Some(o.get("kafka_offset").and_then(J::as_i64).filter(|v| *v >= 0).ok_or_else(|| {
                ConnectError::BadRequest("Kafka offsets must be specified as non-negative integers under the 'kafka_offset' key".into())
            })?),
        };
        out.insert(tp, offset);
    }
    Ok(out)
}

fn sink_partition(p: &JsonMap) -> Result<TopicPartition> {
    let topic = p.get("kafka_topic").and_then(J::as_str).ok_or_else(|| {
        ConnectError::BadRequest(
            "Kafka partitions must be specified with a 'kafka_topic' string key".into(),
        )
    })?;
    let partition = p
        .get("kafka_partition")
        .and_then(J::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            ConnectError::BadRequest("Kafka partitions must be specified with a non-negative 'kafka_partition' integer key".into())
        })?;
    Ok(TopicPartition::new(topic, partition))
}

/// The file source's own check of altered offsets (Kafka's `FileStreamSourceConnector.alterOffsets`).
fn check_file_source_offset(p: &JsonMap, o: Option<&JsonMap>) -> Result<()> {
    if !p.get("filename").is_some_and(J::is_string) {
        return Err(ConnectError::BadRequest(
            "Partition objects for this connector must contain the key 'filename'".into(),
        ));
    }
    if let Some(o) = o {
        if o.get("position").and_then(J::as_i64).is_none_or(|v| v < 0) {
            return Err(ConnectError::BadRequest(
                "The value for the 'position' key in the offset must be a non-negative integer"
                    .into(),
            ));
        }
    }
    Ok(())
}
