//! The producer's background task: closes lingering batches, drains ready ones into one
//! Produce request per leader, and settles each partition's result (complete, retry, fail).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use strom_protocol::kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, TransactionalId,
};
use strom_protocol::ErrorCode;

use super::accumulator::Batch;
use super::Shared;
use crate::error::Error;
use crate::util::topic_name;

/// How long the sender sleeps when nothing is due (it is woken on every new batch).
const IDLE_WAIT: Duration = Duration::from_millis(100);

pub(super) async fn run(s: Arc<Shared>) {
    loop {
        // KIP-360: once nothing is in flight, a non-transactional producer takes a new
        // identity; until then nothing new is drained (its sequences would be wrong).
        let resetting = s.reset.load(Ordering::Acquire) && s.txn.is_none();
        if resetting && s.lock().in_flight() == 0 {
            if let Err(e) = s.reinitialize().await {
                tracing::warn!(%e, "producer re-initialisation failed; retrying");
                let _ =
                    tokio::time::timeout(s.client.config().retry_backoff, s.wake.notified()).await;
            }
            continue;
        }
        if s.reset.load(Ordering::Acquire) && s.txn.is_some() {
            // In a transaction the sequences stay broken until abort_transaction
            // re-initialises: what is queued can only fail (the transaction is abortable).
            let queued = s.lock().take_all();
            for batch in queued {
                let err = Error::TransactionAborted(format!(
                    "{}: an earlier batch lost this producer's sequence state",
                    batch.tp
                ));
                settle_failed(&s, batch, err);
            }
        }
        let params = s.batch_params();
        let closing = s.closing.load(Ordering::Acquire);
        let force = closing || s.flushing.load(Ordering::Acquire) > 0;
        let md = s.client.metadata();
        let (by_node, failed, missing, expired, next_due) = {
            let mut acc = s.lock();
            let next_due = acc.close_due(s.config.linger, force);
            let expired = acc.expire(s.config.delivery_timeout);
            let (by_node, failed, missing) = if resetting {
                Default::default()
            } else {
                acc.drain(
                    |tp| md.leader(tp),
                    s.config.max_in_flight,
                    params,
                    s.idempotent,
                )
            };
            (by_node, failed, missing, expired, next_due)
        };
        for (batch, err) in failed {
            settle_failed(&s, batch, err);
        }
        for batch in expired {
            let err = Error::Timeout {
                what: format!("delivery to {}", batch.tp),
                ms: s.config.delivery_timeout.as_millis() as u64,
            };
            settle_failed(&s, batch, err);
        }
        if missing {
            s.client.invalidate_metadata();
            let client = s.client.clone();
            let topics: Vec<String> = md.topics.keys().cloned().collect();
            tokio::spawn(async move {
                let _ = client.refresh_metadata(Some(&topics), false).await;
            });
        }
        for (node, batches) in by_node {
            send_to_node(&s, node, batches).await;
        }
        if closing && s.lock().is_idle() {
            for batch in s.lock().take_all() {
                settle_failed(&s, batch, Error::Closed("producer"));
            }
            return;
        }
        let wait = match next_due {
            Some(due) => due.saturating_duration_since(Instant::now()),
            None if missing => s.client.config().retry_backoff,
            None => IDLE_WAIT,
        };
        let _ = tokio::time::timeout(wait, s.wake.notified()).await;
    }
}

fn settle_failed(s: &Shared, batch: Batch, err: Error) {
    s.note_failure(&err);
    let n = batch.record_count();
    let permits = batch.fail(err);
    s.finished(n, permits);
}

/// Puts one Produce request for `batches` on the leader's socket now (so per-partition
/// sequences leave in order) and settles the response in a task of its own.
async fn send_to_node(s: &Arc<Shared>, node: i32, batches: Vec<Batch>) {
    let mut by_topic: HashMap<&str, Vec<PartitionProduceData>> = HashMap::new();
    for b in &batches {
        let mut p = PartitionProduceData::default();
        p.index = b.tp.partition;
        p.records = b.built.clone();
        by_topic.entry(b.tp.topic.as_str()).or_default().push(p);
    }
    let mut req = ProduceRequest::default();
    req.transactional_id = s
        .txn
        .as_ref()
        .map(|t| TransactionalId(crate::util::sb(&t.id)));
    req.acks = s.config.acks;
    req.timeout_ms = s.config.request_timeout_ms;
    req.topic_data = by_topic
        .into_iter()
        .map(|(t, parts)| {
            let mut td = TopicProduceData::default();
            td.name = topic_name(t);
            td.partition_data = parts;
            td
        })
        .collect();
    let started: Result<_, Error> = async {
        let conn = s.client.connection_for(Some(node)).await?;
        let version = conn.version(ApiKey::Produce)?;
        if s.config.acks == 0 {
            conn.send_no_response(&req, version)?;
            return Ok(None);
        }
        Ok(Some((conn.clone(), conn.start(&req, version)?)))
    }
    .await;
    let s = s.clone();
    match started {
        Ok(None) => {
            for b in batches {
                settle(&s, b, Ok((-1, -1)));
            }
            s.wake.notify_one();
        }
        Ok(Some((conn, response))) => {
            tokio::spawn(async move {
                match response.await {
                    Ok(resp) => settle_response(&s, batches, resp),
                    Err(e) => {
                        s.client.drop_connection(Some(node), &conn).await;
                        for b in batches {
                            settle(&s, b, Err(e.clone()));
                        }
                    }
                }
                s.wake.notify_one();
            });
        }
        Err(e) => {
            for b in batches {
                settle(&s, b, Err(e.clone()));
            }
            s.wake.notify_one();
        }
    }
}

/// `(error code, base offset, log append time, error message)` of one partition.
type PartitionResult = (i16, i64, i64, Option<String>);

fn settle_response(s: &Shared, batches: Vec<Batch>, resp: ProduceResponse) {
    let mut results: HashMap<(String, i32), PartitionResult> = HashMap::new();
    for t in resp.responses {
        for p in t.partition_responses {
            results.insert(
                (t.name.0.to_string(), p.index),
                (
                    p.error_code,
                    p.base_offset,
                    p.log_append_time_ms,
                    p.error_message.map(|m| m.to_string()),
                ),
            );
        }
    }
    for b in batches {
        let key = (b.tp.topic.clone(), b.tp.partition);
        let outcome = match results.remove(&key) {
            None => Err(Error::Protocol {
                api: "Produce".into(),
                reason: format!("no result for {}", b.tp),
            }),
            Some((0, base, lat, _)) => Ok((base, lat)),
            Some((code, _, _, msg)) => match ErrorCode::try_from_code(code) {
                // The broker already has this batch (a retry of one that was written).
                Some(ErrorCode::DuplicateSequenceNumber) => Ok((-1, -1)),
                code => Err(Error::kafka(
                    code.unwrap_or(ErrorCode::UnknownServerError),
                    match msg {
                        Some(m) => format!("{}: {m}", b.tp),
                        None => b.tp.to_string(),
                    },
                )),
            },
        };
        settle(s, b, outcome);
    }
}

/// Completes, retries or fails one batch.
fn settle(s: &Shared, batch: Batch, outcome: Result<(i64, i64), Error>) {
    s.lock().done(&batch.tp);
    let outcome = outcome.map_err(|e| match e.code() {
        Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch) if s.txn.is_some() => {
            Error::ProducerFenced(format!("{}: {e}", batch.tp))
        }
        _ => e,
    });
    match outcome {
        Err(e) if s.idempotent && sequence_broken(s, &batch, &e) => {
            tracing::warn!(tp = %batch.tp, %e, "produce: sequence state lost; re-initialising");
            s.reset.store(true, Ordering::Release);
            settle_failed(s, batch, e);
        }
        Ok((base, log_append_time)) => {
            s.lock().acked(&batch);
            let n = batch.record_count();
            let permits = batch.complete(base, log_append_time);
            s.finished(n, permits);
        }
        Err(e)
            if retriable(&e)
                && batch.created.elapsed() < s.config.delivery_timeout
                && !(s.txn.is_some() && s.reset.load(Ordering::Acquire)) =>
        {
            tracing::debug!(tp = %batch.tp, %e, "produce: retrying batch");
            if e.invalidates_metadata() {
                s.client.invalidate_metadata();
            }
            s.lock().requeue(batch);
        }
        Err(e) => settle_failed(s, batch, e),
    }
}

/// Whether `e` leaves this producer's sequence numbers unusable (KIP-360): the broker lost
/// the producer (UNKNOWN_PRODUCER_ID), has a gap before the first unacknowledged batch, or a
/// sent batch timed out so whether it was written is unknown.
fn sequence_broken(s: &Shared, batch: &Batch, e: &Error) -> bool {
    match e.code() {
        Some(ErrorCode::UnknownProducerId) => true,
        Some(ErrorCode::OutOfOrderSequenceNumber) => s.lock().is_first_unacked(batch),
        _ => {
            batch.base_sequence.is_some()
                && e.is_retriable()
                && batch.created.elapsed() >= s.config.delivery_timeout
        }
    }
}

/// Retriable errors, plus OUT_OF_ORDER_SEQUENCE_NUMBER that follows a retried earlier batch.
fn retriable(e: &Error) -> bool {
    e.is_retriable() || e.code() == Some(ErrorCode::OutOfOrderSequenceNumber)
}
