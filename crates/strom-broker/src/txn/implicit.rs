//! Transaction protocol v2's partition add at write time (KIP-890 part 2): a partition leader
//! given a transactional Produce v12 (or a group coordinator given TxnOffsetCommit v5) adds
//! the partition to the producer's transaction itself before writing. The transaction's
//! coordinator is asked in-process when it is this broker, else with AddPartitionsToTxn v5
//! (the broker-to-broker batched form) over the inter-broker listener.
//!
//! Partitions a remote coordinator added are remembered per (producer id, epoch): under v2
//! every end bumps the epoch, so one (id, epoch) is one transaction, and once it ends its
//! markers (carrying the bumped epoch) fence that epoch at the partition's log anyway.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use strom_protocol::ErrorCode;

use super::log::TxnLog;
use super::records::partition_for;
use super::state::TopicPartition;
use super::TXN_STATE_TOPIC;
use crate::broker::Broker;

/// The AddPartitionsToTxn version brokers send each other.
const BROKER_VERSION: i16 = 5;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Producers remembered before the memory of remote adds is cleared.
const MAX_REMEMBERED: usize = 10_000;

/// Partitions a remote coordinator added, per producer id: (epoch, partitions).
#[derive(Default)]
pub struct RemoteAdds(Mutex<HashMap<i64, (i16, BTreeSet<TopicPartition>)>>);

impl RemoteAdds {
    fn missing(&self, producer: (i64, i16), partitions: &[TopicPartition]) -> Vec<TopicPartition> {
        let known = self.0.lock();
        match known.get(&producer.0) {
            Some((epoch, added)) if *epoch == producer.1 => partitions
                .iter()
                .filter(|p| !added.contains(*p))
                .cloned()
                .collect(),
            _ => partitions.to_vec(),
        }
    }

    fn remember(&self, producer: (i64, i16), partitions: &[TopicPartition]) {
        let mut known = self.0.lock();
        if known.len() >= MAX_REMEMBERED && !known.contains_key(&producer.0) {
            known.clear();
        }
        let entry = known
            .entry(producer.0)
            .or_insert_with(|| (producer.1, BTreeSet::new()));
        if entry.0 != producer.1 {
            *entry = (producer.1, BTreeSet::new());
        }
        entry.1.extend(partitions.iter().cloned());
    }
}

/// Adds `partitions` to the ongoing transaction of `transactional_id` (starting one if none
/// is open), or with `verify_only` checks they are already in it (KIP-890 part 1).
pub(crate) async fn add_to_txn(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: Vec<TopicPartition>,
    verify_only: bool,
) -> Result<(), ErrorCode> {
    if partitions.is_empty() {
        return Ok(());
    }
    match add_here(
        broker,
        transactional_id,
        producer,
        partitions.clone(),
        verify_only,
    )
    .await
    {
        Err(ErrorCode::NotCoordinator) if broker.config().is_quorum_over_network() => {
            let remote = broker.txns().remote_adds();
            let missing = if verify_only {
                partitions
            } else {
                remote.missing(producer, &partitions)
            };
            if missing.is_empty() {
                return Ok(());
            }
            let broker2 = broker.clone();
            let id = transactional_id.to_owned();
            let sent = missing.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                ask_coordinator(&broker2, &id, producer, &sent, verify_only)
            })
            .await
            .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable));
            if outcome.is_ok() && !verify_only {
                remote.remember(producer, &missing);
            }
            outcome
        }
        other => other,
    }
}

/// `add_to_txn` at this broker's coordinator; NOT_COORDINATOR if the id is not served here.
pub(crate) async fn add_here(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: Vec<TopicPartition>,
    verify_only: bool,
) -> Result<(), ErrorCode> {
    broker
        .txns()
        .check_coordinator(broker.as_ref(), transactional_id)?;
    let done = tokio::task::block_in_place(|| {
        if verify_only {
            partitions.iter().try_for_each(|p| {
                broker
                    .txns()
                    .verify_offsets(transactional_id, producer.0, producer.1, p)
            })
        } else {
            broker.txns().add_partitions(
                broker.as_ref(),
                transactional_id,
                producer.0,
                producer.1,
                &partitions,
            )
        }
    });
    match done {
        Ok(()) if !verify_only => broker.txn_write_replicated(transactional_id).await,
        other => other,
    }
}

/// AddPartitionsToTxn v5 to the broker leading the transactional id's partition of
/// `__transaction_state`; the first error of any partition is the answer.
fn ask_coordinator(
    broker: &Broker,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
    verify_only: bool,
) -> Result<(), ErrorCode> {
    let count = broker.txn_partitions()?;
    let index = partition_for(transactional_id, count);
    let leader = broker
        .image()
        .topic(TXN_STATE_TOPIC)
        .and_then(|t| t.partitions.get(&index))
        .map_or(-1, |p| p.leader);
    if leader < 0 {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    let (host, port) = broker
        .inter_broker_endpoint(leader)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (topic, p) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*p);
    }
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(StrBytes::from_string(transactional_id.to_owned()));
    txn.producer_id = ProducerId(producer.0);
    txn.producer_epoch = producer.1;
    txn.verify_only = verify_only;
    txn.topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            let mut t = AddPartitionsToTxnTopic::default();
            t.name = TopicName(StrBytes::from_string(topic.to_owned()));
            t.partitions = indexes;
            t
        })
        .collect();
    let mut request = AddPartitionsToTxnRequest::default();
    request.transactions = vec![txn];
    let response: AddPartitionsToTxnResponse = crate::inter_broker::call(
        broker.outbound(),
        &host,
        port,
        ApiKey::AddPartitionsToTxn,
        BROKER_VERSION,
        broker.node_id(),
        &request,
        CALL_TIMEOUT,
    )
    .map_err(|e| {
        tracing::warn!(leader, error = %e, "AddPartitionsToTxn to the coordinator failed");
        ErrorCode::CoordinatorNotAvailable
    })?;
    if response.error_code != 0 {
        return Err(error_of(response.error_code));
    }
    let first_error = response
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .flat_map(|t| &t.results_by_partition)
        .map(|p| p.partition_error_code)
        .find(|c| *c != 0);
    match first_error {
        Some(code) => Err(error_of(code)),
        None => Ok(()),
    }
}

fn error_of(code: i16) -> ErrorCode {
    ErrorCode::try_from_code(code).unwrap_or(ErrorCode::UnknownServerError)
}

/// The error a Produce gets when its partitions could not be added to (or verified in) the
/// transaction: what the client retries becomes NOT_ENOUGH_REPLICAS (every client retries
/// it; Kafka converts the same errors), fencing is INVALID_PRODUCER_EPOCH, an unknown
/// producer or a partition outside the transaction INVALID_TXN_STATE.
pub(crate) fn produce_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::ConcurrentTransactions
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator
        | ErrorCode::RequestTimedOut
        | ErrorCode::NotEnoughReplicas => ErrorCode::NotEnoughReplicas,
        ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch => {
            ErrorCode::InvalidProducerEpoch
        }
        ErrorCode::InvalidProducerIdMapping | ErrorCode::InvalidTxnState => {
            ErrorCode::InvalidTxnState
        }
        other => other,
    }
}
