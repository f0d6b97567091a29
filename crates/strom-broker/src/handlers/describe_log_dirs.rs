//! DescribeLogDirs (key 35), v1–4: this broker's log directory and the size of each partition
//! it hosts (`kafka-log-dirs.sh --describe`). Each broker answers for itself, as in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeLogDirs, 1, 4);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeLogDirsRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Describe) {
        let mut response = DescribeLogDirsResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    // None: every partition; else only the named ones.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    // log dir -> topic -> partitions
    let mut by_dir: BTreeMap<std::path::PathBuf, BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        broker
            .replicas()
            .roots()
            .iter()
            .map(|r| (r.clone(), BTreeMap::new()))
            .collect();
    for partition in broker.replicas().all() {
        if let Some(wanted) = &wanted {
            let named = wanted
                .get(&partition.topic)
                .is_some_and(|ps| ps.contains(&partition.index));
            if !named {
                continue;
            }
        }
        let mut p = DescribeLogDirsPartition::default();
        p.partition_index = partition.index;
        p.partition_size = i64::try_from(partition.log.size_bytes()).unwrap_or(i64::MAX);
        // No replica moves between log dirs yet (no future replicas).
        p.offset_lag = 0;
        p.is_future_key = false;
        let root = partition
            .log
            .dir()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        by_dir
            .entry(root)
            .or_default()
            .entry(partition.topic.clone())
            .or_default()
            .push(p);
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = by_dir
        .into_iter()
        .map(|(root, by_topic)| {
            let mut result = DescribeLogDirsResult::default();
            result.log_dir = StrBytes::from_string(root.display().to_string());
            result.topics = by_topic
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    let mut t = DescribeLogDirsTopic::default();
                    t.name = TopicName(StrBytes::from_string(name));
                    t.partitions = partitions;
                    t
                })
                .collect();
            // Disk capacity is not measured yet: -1 is Kafka's "unknown".
            result.total_bytes = -1;
            result.usable_bytes = -1;
            result
        })
        .collect();
    respond(&SPEC, header, &response)
}
