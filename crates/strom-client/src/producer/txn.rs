//! The producer's identity and transactions (KIP-98, classic protocol): InitProducerId
//! (fresh, or KIP-360 recovery with the current id and epoch), AddPartitionsToTxn before a
//! partition's first record, AddOffsetsToTxn + TxnOffsetCommit, and EndTxn. The coordinator
//! is found with FindCoordinator key type 1; fencing becomes [`Error::ProducerFenced`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use strom_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use strom_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest,
    InitProducerIdRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
};
use strom_protocol::ErrorCode;

use crate::client::{Client, KEY_GROUP, KEY_TRANSACTION};
use crate::error::{Error, Result};
use crate::util::{group_id, sb, topic_name};
use crate::TopicPartition;

/// A consumer's group identity, for offsets committed inside a transaction (KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a group without a live member (generation -1), as Java's
    /// `new ConsumerGroupMetadata(groupId)`.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Where a transactional producer is in Java's state machine (reduced to what callers see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `init_transactions` not called yet.
    Uninitialized,
    Ready,
    InTransaction,
    /// Fenced or otherwise unusable: only close remains.
    Fatal,
}

#[derive(Debug)]
pub(crate) struct TxnInner {
    pub(crate) phase: Phase,
    /// Partitions added to the ongoing transaction.
    pub(crate) partitions: BTreeSet<TopicPartition>,
    /// AddOffsetsToTxn succeeded: the coordinator has the transaction even with no partition.
    pub(crate) offsets_added: bool,
    /// The first failure of a record in this transaction: commit refuses, abort clears it.
    pub(crate) abortable: Option<Error>,
    pub(crate) fatal: Option<Error>,
}

/// Transaction state of a producer with `transactional.id`.
#[derive(Debug)]
pub(crate) struct Txn {
    pub(crate) id: String,
    pub(crate) timeout_ms: i32,
    pub(crate) inner: Mutex<TxnInner>,
}

impl Txn {
    pub(crate) fn new(id: String, timeout_ms: i32) -> Self {
        Self {
            id,
            timeout_ms,
            inner: Mutex::new(TxnInner {
                phase: Phase::Uninitialized,
                partitions: BTreeSet::new(),
                offsets_added: false,
                abortable: None,
                fatal: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, TxnInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ok when a transaction is open and healthy (sending into it is allowed).
    pub(crate) fn check_open(&self) -> Result<()> {
        let g = self.lock();
        if let Some(e) = &g.fatal {
            return Err(e.clone());
        }
        if g.phase != Phase::InTransaction {
            return Err(Error::TransactionState(format!(
                "no transaction in progress ({:?}); call begin_transaction",
                g.phase
            )));
        }
        match &g.abortable {
            Some(e) => Err(Error::TransactionAborted(e.to_string())),
            None => Ok(()),
        }
    }

    /// Records a failure: fencing is fatal, anything else makes the transaction abortable.
    pub(crate) fn note_failure(&self, err: &Error) {
        let mut g = self.lock();
        if matches!(err, Error::ProducerFenced(_)) {
            g.phase = Phase::Fatal;
            g.fatal.get_or_insert_with(|| err.clone());
        } else if g.phase == Phase::InTransaction {
            g.abortable.get_or_insert_with(|| err.clone());
        }
    }

    /// Runs `op` against the transaction coordinator, retrying retriable errors and
    /// re-finding the coordinator when it moved.
    async fn call<T, F, Fut>(&self, client: &Client, what: &str, op: F) -> Result<T>
    where
        F: Fn(i32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        client
            .retry(what, || async {
                let node = client.find_coordinator(KEY_TRANSACTION, &self.id).await?;
                let r = op(node).await;
                if let Err(e) = &r {
                    if e.invalidates_metadata() {
                        client.invalidate_coordinator_of(KEY_TRANSACTION, &self.id);
                    }
                }
                r.map_err(|e| fenced(e, &self.id))
            })
            .await
    }
}

/// PRODUCER_FENCED / INVALID_PRODUCER_EPOCH as the typed error.
fn fenced(e: Error, id: &str) -> Error {
    match e.code() {
        Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch) => {
            Error::ProducerFenced(format!("transactional.id '{id}': {e}"))
        }
        _ => e,
    }
}

/// InitProducerId: without `txn`, at any broker; with it, at its coordinator. `current` is
/// the id and epoch being recovered (KIP-360, v3+), `None` for a fresh producer.
pub(crate) async fn init_producer_id(
    client: &Client,
    txn: Option<&Txn>,
    current: Option<(i64, i16)>,
) -> Result<(i64, i16)> {
    let make = |version: i16| {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = txn.map(|t| TransactionalId(sb(&t.id)));
        req.transaction_timeout_ms = txn.map_or(60_000, |t| t.timeout_ms);
        if let (Some((id, epoch)), true) = (current, version >= 3) {
            req.producer_id = ProducerId(id);
            req.producer_epoch = epoch;
        } else {
            req.producer_id = ProducerId(-1);
            req.producer_epoch = -1;
        }
        req
    };
    let once = |node: Option<i32>| async move {
        let resp = client.send(node, ApiKey::InitProducerId, make).await?;
        Error::check(resp.error_code, || "InitProducerId".into())?;
        Ok((resp.producer_id.0, resp.producer_epoch))
    };
    match txn {
        None => client.retry("InitProducerId", || once(None)).await,
        Some(t) => t.call(client, "InitProducerId", |n| once(Some(n))).await,
    }
}

/// AddPartitionsToTxn (v0–3) for `partitions` not yet in the transaction.
pub(crate) async fn add_partitions(
    client: &Client,
    txn: &Txn,
    ids: (i64, i16),
    partitions: &[TopicPartition],
) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    txn.call(client, "AddPartitionsToTxn", |node| {
        let by_topic = &by_topic;
        async move {
            let resp = client
                .send(Some(node), ApiKey::AddPartitionsToTxn, |_| {
                    let mut req = AddPartitionsToTxnRequest::default();
                    req.v3_and_below_transactional_id = TransactionalId(sb(&txn.id));
                    req.v3_and_below_producer_id = ProducerId(ids.0);
                    req.v3_and_below_producer_epoch = ids.1;
                    req.v3_and_below_topics = by_topic
                        .iter()
                        .map(|(t, parts)| {
                            let mut topic = AddPartitionsToTxnTopic::default();
                            topic.name = topic_name(t);
                            topic.partitions = parts.clone();
                            topic
                        })
                        .collect();
                    req
                })
                .await?;
            Error::check(resp.error_code, || "AddPartitionsToTxn".into())?;
            // OPERATION_NOT_ATTEMPTED marks partitions skipped because another one failed.
            let mut worst: Option<Error> = None;
            for t in resp.results_by_topic_v3_and_below {
                for p in t.results_by_partition {
                    if let Err(e) = Error::check(p.partition_error_code, || {
                        format!("AddPartitionsToTxn {}-{}", t.name.0, p.partition_index)
                    }) {
                        if worst.is_none() || e.code() != Some(ErrorCode::OperationNotAttempted) {
                            worst = Some(e);
                        }
                    }
                }
            }
            worst.map_or(Ok(()), Err)
        }
    })
    .await
}

/// AddOffsetsToTxn at the transaction coordinator, then TxnOffsetCommit at the group's.
pub(crate) async fn send_offsets(
    client: &Client,
    txn: &Txn,
    ids: (i64, i16),
    offsets: &BTreeMap<TopicPartition, i64>,
    group: &ConsumerGroupMetadata,
) -> Result<()> {
    txn.call(client, "AddOffsetsToTxn", |node| async move {
        let resp = client
            .send(Some(node), ApiKey::AddOffsetsToTxn, |_| {
                let mut req = AddOffsetsToTxnRequest::default();
                req.transactional_id = TransactionalId(sb(&txn.id));
                req.producer_id = ProducerId(ids.0);
                req.producer_epoch = ids.1;
                req.group_id = group_id(&group.group_id);
                req
            })
            .await?;
        Error::check(resp.error_code, || "AddOffsetsToTxn".into())
    })
    .await?;
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, off) in offsets {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *off));
    }
    let by_topic = &by_topic;
    client
        .retry("TxnOffsetCommit", || async {
            let node = client.find_coordinator(KEY_GROUP, &group.group_id).await?;
            let r = txn_offset_commit(client, txn, ids, node, by_topic, group).await;
            if let Err(e) = &r {
                if e.invalidates_metadata() {
                    client.invalidate_coordinator_of(KEY_GROUP, &group.group_id);
                }
            }
            r.map_err(|e| fenced(e, &txn.id))
        })
        .await
}

async fn txn_offset_commit(
    client: &Client,
    txn: &Txn,
    ids: (i64, i16),
    node: i32,
    by_topic: &BTreeMap<&str, Vec<(i32, i64)>>,
    group: &ConsumerGroupMetadata,
) -> Result<()> {
    let resp = client
        .send(Some(node), ApiKey::TxnOffsetCommit, |_| {
            let mut req = TxnOffsetCommitRequest::default();
            req.transactional_id = TransactionalId(sb(&txn.id));
            req.group_id = group_id(&group.group_id);
            req.producer_id = ProducerId(ids.0);
            req.producer_epoch = ids.1;
            req.generation_id = group.generation_id;
            req.member_id = sb(&group.member_id);
            req.group_instance_id = group.group_instance_id.as_deref().map(sb);
            req.topics = by_topic
                .iter()
                .map(|(t, parts)| {
                    let mut topic = TxnOffsetCommitRequestTopic::default();
                    topic.name = topic_name(t);
                    topic.partitions = parts
                        .iter()
                        .map(|(p, off)| {
                            let mut part = TxnOffsetCommitRequestPartition::default();
                            part.partition_index = *p;
                            part.committed_offset = *off;
                            part.committed_leader_epoch = -1;
                            part
                        })
                        .collect();
                    topic
                })
                .collect();
            req
        })
        .await?;
    for t in resp.topics {
        for p in t.partitions {
            Error::check(p.error_code, || {
                format!("TxnOffsetCommit {}-{}", t.name.0, p.partition_index)
            })?;
        }
    }
    Ok(())
}

/// EndTxn: commit or abort the ongoing transaction.
pub(crate) async fn end_txn(
    client: &Client,
    txn: &Txn,
    ids: (i64, i16),
    commit: bool,
) -> Result<()> {
    txn.call(client, "EndTxn", |node| async move {
        let resp = client
            .send(Some(node), ApiKey::EndTxn, |_| {
                let mut req = EndTxnRequest::default();
                req.transactional_id = TransactionalId(sb(&txn.id));
                req.producer_id = ProducerId(ids.0);
                req.producer_epoch = ids.1;
                req.committed = commit;
                req
            })
            .await?;
        Error::check(resp.error_code, || {
            format!("EndTxn({})", if commit { "commit" } else { "abort" })
        })
    })
    .await
}
