//! The transaction state machine of Kafka's classic protocol (KIP-98) and of the v2 end
//! (KIP-890, `plan_end_v2`), pure: every operation validates against the current metadata of
//! one transactional id and returns the metadata to write to `__transaction_state`; only
//! `apply` (after the write) changes state. Time is `now_ms`.

use std::collections::{BTreeSet, HashMap};

use strom_protocol::ErrorCode;

pub type TopicPartition = (String, i32);

/// Kafka's `TransactionState`, with its wire/log status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn code(self) -> i8 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as i8
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }

    fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's metadata, as stored. Invariant: `partitions` is empty unless the
/// state is Ongoing or Prepare*; `start_ms` is -1 exactly when no transaction is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1 if unknown; not stored in the log), so a retried
    /// InitProducerId (KIP-360) gets the same answer.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Markers to write before a Prepare* state may become Complete*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<TopicPartition>,
}

/// What InitProducerId needs done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitPlan {
    /// Write this metadata, then answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// The previous epoch left a transaction open: write this PrepareAbort (epoch bumped),
    /// complete it, then plan again.
    AbortFirst(TxnMetadata),
}

/// Broker settings the machine enforces.
#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: idle ids (no open transaction) are then forgotten.
    pub id_expiration_ms: i64,
}

/// Every transactional id this coordinator owns.
#[derive(Debug)]
pub struct TxnManager {
    config: TxnConfig,
    txns: HashMap<String, TxnMetadata>,
    /// Producer id → its transactional id (produce-time verification).
    by_producer: HashMap<i64, String>,
    /// Transaction v2 ends whose epoch ran out: the producer id the transactional id moves
    /// to when the transaction completes (Kafka's `nextProducerId`; kept in memory only).
    next_ids: HashMap<String, i64>,
}

/// What a v2 EndTxn (KIP-890) needs done; both carry the (producer id, epoch) the client
/// continues with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPlan {
    /// Write this Prepare* metadata (epoch bumped), complete it, then answer.
    Write(TxnMetadata, (i64, i16)),
    /// A retry of an end that already happened: answer at once.
    Done((i64, i16)),
}

/// The highest usable epoch; at it a producer gets a new id (Kafka does the same).
const MAX_EPOCH: i16 = i16::MAX - 1;

impl TxnManager {
    pub fn new(config: TxnConfig) -> TxnManager {
        TxnManager {
            config,
            txns: HashMap::new(),
            by_producer: HashMap::new(),
            next_ids: HashMap::new(),
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn all(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    /// Installs metadata that was written (or replayed) to the log.
    pub fn apply(&mut self, md: TxnMetadata) {
        let last = self
            .txns
            .get(&md.transactional_id)
            .filter(|old| {
                old.producer_id == md.producer_id && old.producer_epoch < md.producer_epoch
            })
            .map(|old| old.producer_epoch);
        let mut md = md;
        if let Some(last) = last {
            md.last_producer_epoch = last;
        }
        if !md.state.is_preparing() {
            self.next_ids.remove(&md.transactional_id);
        }
        self.by_producer
            .insert(md.producer_id, md.transactional_id.clone());
        if let Some(old) = self.txns.insert(md.transactional_id.clone(), md) {
            let current = &self.txns[&old.transactional_id];
            if old.producer_id != current.producer_id {
                self.by_producer.remove(&old.producer_id);
            }
        }
    }

    /// InitProducerId with a transactional id. `expected` is the (id, epoch) a v3+ client
    /// sends to recover (KIP-360); `allocate` hands out a fresh producer id.
    pub fn plan_init(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<InitPlan, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let Some(current) = self.txns.get(transactional_id) else {
            if expected.is_some() {
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            return Ok(InitPlan::Ready(TxnMetadata {
                transactional_id: transactional_id.to_owned(),
                producer_id: allocate()?,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            }));
        };
        if let Some((pid, epoch)) = expected {
            let retry = pid == current.producer_id
                && epoch == current.last_producer_epoch
                && current.state == TxnState::Empty;
            if retry {
                return Ok(InitPlan::Ready(current.clone()));
            }
            if pid != current.producer_id || epoch != current.producer_epoch {
                return Err(ErrorCode::ProducerFenced);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                let mut md = bumped(current, allocate)?;
                md.state = TxnState::PrepareAbort;
                md.last_update_ms = now_ms;
                Ok(InitPlan::AbortFirst(md))
            }
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                let mut md = bumped(current, allocate)?;
                md.state = TxnState::Empty;
                md.timeout_ms = timeout_ms;
                md.partitions.clear();
                md.start_ms = -1;
                md.last_update_ms = now_ms;
                Ok(InitPlan::Ready(md))
            }
        }
    }

    /// The checks every request of a running producer passes (Kafka's order).
    fn producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&TxnMetadata, ErrorCode> {
        let md = self
            .txns
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if md.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if md.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(md)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when every partition is already in the
    /// ongoing transaction (nothing to write).
    pub fn plan_add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, ErrorCode> {
        let md = self.producer(transactional_id, producer_id, epoch)?;
        if md.state.is_preparing() || md.state == TxnState::PrepareEpochFence {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if md.state == TxnState::Dead {
            return Err(ErrorCode::InvalidTxnState);
        }
        let ongoing = md.state == TxnState::Ongoing;
        if ongoing && partitions.iter().all(|p| md.partitions.contains(p)) {
            return Ok(None);
        }
        let mut next = md.clone();
        if !ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// Whether a transactional write by (`producer_id`, `epoch`) to `partition` is allowed:
    /// the producer is current and the partition is in its ongoing transaction.
    /// Whether a transactional id of this coordinator uses `producer_id`.
    pub fn knows_producer(&self, producer_id: i64) -> bool {
        self.by_producer.contains_key(&producer_id)
    }

    pub fn verify_partition(
        &self,
        producer_id: i64,
        epoch: i16,
        partition: &TopicPartition,
    ) -> Result<(), ErrorCode> {
        let md = self
            .by_producer
            .get(&producer_id)
            .and_then(|id| self.txns.get(id))
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if epoch < md.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > md.producer_epoch
            || md.state != TxnState::Ongoing
            || !md.partitions.contains(partition)
        {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn. `Ok(None)`: a retry of an end that already completed (answer success).
    pub fn plan_end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, ErrorCode> {
        let md = self.producer(transactional_id, producer_id, epoch)?;
        match (md.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = md.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms;
                Ok(Some(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(ErrorCode::ConcurrentTransactions),
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// EndTxn v5+ (transaction protocol v2, KIP-890 part 2): every end bumps the producer
    /// epoch, so the markers carry the new epoch and fence whatever the old one still sends.
    /// When the epoch is used up the markers take the last epoch and the transactional id
    /// moves to a new producer id (epoch 0) on completion. An abort is also accepted with no
    /// transaction open (the client cannot know whether a produce added a partition); a
    /// retry from the epoch just before the bump gets the same answer again.
    pub fn plan_end_v2(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<EndPlan, ErrorCode> {
        let md = self
            .txns
            .get(transactional_id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let retry = md.last_producer_epoch >= 0
            && md.last_producer_epoch == epoch
            && i32::from(epoch) + 1 == i32::from(md.producer_epoch);
        if md.producer_epoch != epoch && !retry {
            return Err(ErrorCode::ProducerFenced);
        }
        let current = (md.producer_id, md.producer_epoch);
        let state = md.state;
        if retry {
            return match (state, commit) {
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                    Ok(EndPlan::Done(current))
                }
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    Err(ErrorCode::ConcurrentTransactions)
                }
                // The epoch moved on for another reason (a timeout aborted the
                // transaction, or another end): this producer is behind.
                _ => Err(ErrorCode::ProducerFenced),
            };
        }
        let prepare = match (state, commit) {
            (TxnState::Ongoing, true) => TxnState::PrepareCommit,
            (TxnState::Ongoing, false) => TxnState::PrepareAbort,
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) => {
                TxnState::PrepareAbort
            }
            (TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence, _) => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            _ => return Err(ErrorCode::InvalidTxnState),
        };
        let mut next = md.clone();
        if state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = prepare;
        next.last_producer_epoch = md.producer_epoch;
        next.producer_epoch = md.producer_epoch.saturating_add(1);
        next.last_update_ms = now_ms;
        let answer = if md.producer_epoch >= MAX_EPOCH {
            (allocate()?, 0)
        } else {
            (next.producer_id, next.producer_epoch)
        };
        Ok(EndPlan::Write(next, answer))
    }

    /// Remembers the producer id a v2 end with an exhausted epoch moves to (see
    /// `plan_end_v2`); taken when the transaction completes.
    pub fn set_next_producer_id(&mut self, transactional_id: &str, producer_id: i64) {
        self.next_ids
            .insert(transactional_id.to_owned(), producer_id);
    }

    /// The markers a Prepare* state still needs (also after a restart).
    pub fn completion(md: &TxnMetadata) -> Option<Completion> {
        md.state.is_preparing().then(|| Completion {
            transactional_id: md.transactional_id.clone(),
            producer_id: md.producer_id,
            producer_epoch: md.producer_epoch,
            commit: md.state == TxnState::PrepareCommit,
            partitions: md.partitions.clone(),
        })
    }

    /// After the markers are written: Complete* with no partitions.
    pub fn plan_complete(&self, transactional_id: &str, now_ms: i64) -> Option<TxnMetadata> {
        let md = self.txns.get(transactional_id)?;
        let state = match md.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let mut next = md.clone();
        next.state = state;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        if let Some(&pid) = self.next_ids.get(transactional_id) {
            next.producer_id = pid;
            next.producer_epoch = 0;
            next.last_producer_epoch = -1;
        }
        Some(next)
    }

    /// Ongoing transactions past their timeout, aborted with the epoch bumped so their
    /// producer is fenced (Kafka's `abortTimedOutTransactions`).
    pub fn plan_timeouts(&self, now_ms: i64) -> Vec<TxnMetadata> {
        let mut out: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|m| {
                m.state == TxnState::Ongoing
                    && m.start_ms.saturating_add(i64::from(m.timeout_ms)) <= now_ms
            })
            .map(|m| {
                let mut next = m.clone();
                if next.producer_epoch < MAX_EPOCH {
                    next.last_producer_epoch = next.producer_epoch;
                    next.producer_epoch += 1;
                }
                next.state = TxnState::PrepareAbort;
                next.last_update_ms = now_ms;
                next
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Transactional ids without an open transaction whose last update is older than
    /// `transactional.id.expiration.ms` (Kafka's expiration; their tombstones are written).
    pub fn expired_ids(&self, now_ms: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && m
                    .last_update_ms
                    .saturating_add(self.config.id_expiration_ms)
                    <= now_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        out.sort();
        out
    }

    /// Forgets a transactional id (its tombstone was written, or replayed).
    pub fn remove(&mut self, transactional_id: &str) {
        self.next_ids.remove(transactional_id);
        if let Some(md) = self.txns.remove(transactional_id) {
            self.by_producer.remove(&md.producer_id);
        }
    }

    /// The earliest time an ongoing transaction times out.
    pub fn next_timeout(&self) -> Option<i64> {
        self.txns
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .map(|m| m.start_ms.saturating_add(i64::from(m.timeout_ms)))
            .min()
    }
}

/// The same metadata one epoch later, or with a new producer id when the epoch is used up.
fn bumped(
    md: &TxnMetadata,
    allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
) -> Result<TxnMetadata, ErrorCode> {
    let mut next = md.clone();
    if md.producer_epoch >= MAX_EPOCH {
        next.producer_id = allocate()?;
        next.producer_epoch = 0;
        next.last_producer_epoch = -1;
    } else {
        next.producer_epoch += 1;
        next.last_producer_epoch = md.producer_epoch;
    }
    Ok(next)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
