//! One round of fetching: partitions grouped by leader, one sessionless Fetch (session id 0,
//! epoch -1) per leader, all in flight at once; responses parsed in the background task.

use std::collections::{BTreeMap, HashMap};

use strom_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::kafka_protocol::messages::{ApiKey, FetchRequest};
use strom_protocol::ErrorCode;

use super::config::ConsumerConfig;
use super::records::{parse, Parsed};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::util::topic_name;
use crate::TopicPartition;

/// The result for one partition of one fetch.
#[derive(Debug)]
pub(crate) struct FetchOutcome {
    pub(crate) tp: TopicPartition,
    pub(crate) fetch_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) result: Result<Parsed>,
}

/// A fetch round running in the background.
pub(crate) struct InFlight {
    handle: tokio::task::JoinHandle<Result<Vec<FetchOutcome>>>,
}

impl InFlight {
    pub(crate) async fn wait(&mut self) -> Result<Vec<FetchOutcome>> {
        (&mut self.handle)
            .await
            .unwrap_or_else(|e| Err(Error::InvalidArgument(format!("fetch task failed: {e}"))))
    }

    pub(crate) fn abort(self) {
        self.handle.abort();
    }
}

pub(crate) fn start(
    client: Client,
    config: ConsumerConfig,
    wanted: Vec<(TopicPartition, i64)>,
) -> InFlight {
    InFlight {
        handle: tokio::spawn(async move { fetch_all(client, config, wanted).await }),
    }
}

async fn fetch_all(
    client: Client,
    config: ConsumerConfig,
    wanted: Vec<(TopicPartition, i64)>,
) -> Result<Vec<FetchOutcome>> {
    let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
    let mut out = Vec::new();
    for (tp, offset) in wanted {
        if client.metadata().leader(&tp).is_none() {
            client.topic_metadata(&tp.topic, false).await?;
        }
        match client.metadata().leader(&tp) {
            Some(leader) => by_leader.entry(leader).or_default().push((tp, offset)),
            None => {
                client.invalidate_metadata();
                out.push(FetchOutcome {
                    tp: tp.clone(),
                    fetch_offset: offset,
                    high_watermark: -1,
                    result: Err(Error::kafka(ErrorCode::LeaderNotAvailable, tp.to_string())),
                });
            }
        }
    }
    let tasks: Vec<_> = by_leader
        .into_iter()
        .map(|(leader, items)| {
            let (client, config) = (client.clone(), config.clone());
            tokio::spawn(async move { fetch_one(&client, &config, leader, items).await })
        })
        .collect();
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => out.extend(v),
            Ok(Err(e)) if e.is_retriable() => {
                client.invalidate_metadata();
                tokio::time::sleep(client.config().retry_backoff).await;
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::InvalidArgument(format!("fetch task failed: {e}"))),
        }
    }
    Ok(out)
}

async fn fetch_one(
    client: &Client,
    config: &ConsumerConfig,
    leader: i32,
    items: Vec<(TopicPartition, i64)>,
) -> Result<Vec<FetchOutcome>> {
    let offsets: HashMap<TopicPartition, i64> = items.iter().cloned().collect();
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, o) in &items {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *o));
    }
    let resp = client
        .send(Some(leader), ApiKey::Fetch, |_| {
            let mut req = FetchRequest::default();
            req.cluster_id = None;
            req.replica_id = (-1).into();
            req.max_wait_ms = config.fetch_max_wait.as_millis() as i32;
            req.min_bytes = config.fetch_min_bytes;
            req.max_bytes = config.fetch_max_bytes;
            req.isolation_level = config.isolation_level;
            req.session_id = 0;
            req.session_epoch = -1;
            req.rack_id = crate::util::sb("");
            req.topics = by_topic
                .iter()
                .map(|(t, parts)| {
                    let mut ft = FetchTopic::default();
                    ft.topic = topic_name(t);
                    ft.partitions = parts
                        .iter()
                        .map(|(p, o)| {
                            let mut fp = FetchPartition::default();
                            fp.partition = *p;
                            fp.current_leader_epoch = -1;
                            fp.fetch_offset = *o;
                            fp.last_fetched_epoch = -1;
                            fp.log_start_offset = -1;
                            fp.partition_max_bytes = config.max_partition_fetch_bytes;
                            fp
                        })
                        .collect();
                    ft
                })
                .collect();
            req
        })
        .await?;
    Error::check(resp.error_code, || format!("Fetch from node {leader}"))?;
    let mut out = Vec::new();
    for t in resp.responses {
        for p in t.partitions {
            let tp = TopicPartition::new(t.topic.0.to_string(), p.partition_index);
            let Some(&fetch_offset) = offsets.get(&tp) else {
                continue;
            };
            let result = match Error::check(p.error_code, || format!("Fetch {tp}")) {
                Err(e) => {
                    if e.invalidates_metadata() {
                        client.invalidate_metadata();
                    }
                    Err(e)
                }
                Ok(()) => {
                    let aborted: Vec<(i64, i64)> = p
                        .aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect();
                    let data = p.records.unwrap_or_default();
                    parse(&tp, &data, fetch_offset, &aborted)
                }
            };
            out.push(FetchOutcome {
                tp,
                fetch_offset,
                high_watermark: p.high_watermark,
                result,
            });
        }
    }
    Ok(out)
}
