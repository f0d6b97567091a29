//! The share-partition state machine (KIP-932), kept by the leader of a data partition for
//! each share group reading it. Offsets below `start_offset` are done; offsets at or past
//! `end_offset` were never delivered; in between, each record is Available (to be
//! redelivered), Acquired (locked to one member until a deadline), Acknowledged or
//! Archived. An offset in the window without an entry had no record (a compacted gap or a
//! control batch) and counts as Archived.
//!
//! Pure logic over offsets and a clock value: the broker feeds it the batch bounds it reads
//! from the log, so it is unit-tested without one.

use std::collections::BTreeMap;

/// Kafka's acknowledge types (ShareFetch/ShareAcknowledge `AcknowledgeTypes`).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;

/// Most records of one share partition in flight (Available or Acquired) at once:
/// Kafka's `group.share.partition.max.record.locks`.
pub const MAX_IN_FLIGHT: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    /// The persisted code (Kafka's RecordState ids: 0 available, 2 acknowledged, 4 archived).
    pub fn code(self) -> i8 {
        match self {
            // An acquisition does not survive a restart: the record is redelivered.
            RecordState::Available | RecordState::Acquired => 0,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<RecordState> {
        match code {
            0 => Some(RecordState::Available),
            2 => Some(RecordState::Acknowledged),
            4 => Some(RecordState::Archived),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub state: RecordState,
    pub delivery_count: i16,
    /// The member holding the acquisition lock (Acquired only).
    pub owner: Option<String>,
    /// When the lock expires, in clock milliseconds (Acquired only).
    pub deadline_ms: i64,
}

/// One run of acquired offsets, as ShareFetch's `AcquiredRecords`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// Why an acknowledgement was refused (INVALID_RECORD_STATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecordState(pub String);

/// The settings one share partition runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lock_duration_ms: i64,
    pub delivery_count_limit: i16,
}

/// One share group's state of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    pub start_offset: i64,
    pub end_offset: i64,
    /// Offsets in `[start_offset, end_offset)` that held a record.
    pub records: BTreeMap<i64, InFlight>,
}

/// A log batch's offsets, as the acquisition sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBounds {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Transaction markers are never delivered.
    pub control: bool,
}

impl SharePartition {
    /// A share partition whose first record to deliver is `offset`.
    pub fn starting_at(offset: i64) -> SharePartition {
        SharePartition {
            start_offset: offset,
            end_offset: offset,
            records: BTreeMap::new(),
        }
    }

    /// The lowest offset a fetch must read from: the first record waiting for redelivery,
    /// else the first never delivered.
    pub fn next_fetch_offset(&self) -> i64 {
        self.records
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map(|(o, _)| *o)
            .unwrap_or(self.end_offset)
    }

    /// Records Available or Acquired.
    pub fn in_flight(&self) -> usize {
        self.records
            .values()
            .filter(|r| matches!(r.state, RecordState::Available | RecordState::Acquired))
            .count()
    }

    /// Whether a fetch could acquire something now, given the partition's high watermark.
    pub fn has_acquirable(&self, high_watermark: i64) -> bool {
        self.records
            .values()
            .any(|r| r.state == RecordState::Available)
            || (self.end_offset < high_watermark && self.in_flight() < MAX_IN_FLIGHT)
    }

    /// The log lost records below `log_start` (retention, DeleteRecords): they are gone.
    pub fn truncate_below(&mut self, log_start: i64) -> bool {
        if self.start_offset >= log_start {
            return false;
        }
        self.records = self.records.split_off(&log_start);
        self.start_offset = log_start;
        self.end_offset = self.end_offset.max(log_start);
        true
    }

    /// Acquisition locks past their deadline: the record becomes Available again, or
    /// Archived once it was delivered `delivery_count_limit` times. Returns whether any
    /// record changed.
    pub fn expire_locks(&mut self, now_ms: i64, limits: &Limits) -> bool {
        let mut changed = false;
        for record in self.records.values_mut() {
            if record.state == RecordState::Acquired && record.deadline_ms <= now_ms {
                record.release(limits);
                changed = true;
            }
        }
        if changed {
            self.advance_start();
        }
        changed
    }

    /// Acquires, for `member`, records from the log batches `batches` (in offset order,
    /// read from `next_fetch_offset()`), at most `max_records` and none at or past
    /// `high_watermark`. Returns the acquired runs; which batches they lie in is for the
    /// caller to keep.
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[BatchBounds],
        high_watermark: i64,
        max_records: usize,
        now_ms: i64,
        limits: &Limits,
    ) -> Vec<Acquired> {
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut push = |offset: i64, delivery_count: i16| match acquired.last_mut() {
            Some(run) if run.last_offset + 1 == offset && run.delivery_count == delivery_count => {
                run.last_offset = offset
            }
            _ => acquired.push(Acquired {
                first_offset: offset,
                last_offset: offset,
                delivery_count,
            }),
        };
        let mut count = 0usize;
        let mut in_flight = self.in_flight();
        'batches: for batch in batches {
            if batch.control {
                // Markers are not records to deliver; past the window they are skipped.
                if batch.last_offset >= self.end_offset && batch.last_offset < high_watermark {
                    self.end_offset = batch.last_offset + 1;
                }
                continue;
            }
            let first = batch.base_offset.max(self.start_offset);
            for offset in first..=batch.last_offset {
                if count >= max_records || offset >= high_watermark {
                    break 'batches;
                }
                if offset < self.end_offset {
                    let Some(record) = self.records.get_mut(&offset) else {
                        continue;
                    };
                    if record.state != RecordState::Available {
                        continue;
                    }
                    record.acquire(member, now_ms, limits);
                    push(offset, record.delivery_count);
                } else {
                    if in_flight >= MAX_IN_FLIGHT {
                        break 'batches;
                    }
                    // Offsets skipped between batches (compaction) had no record.
                    self.end_offset = offset + 1;
                    let mut record = InFlight {
                        state: RecordState::Available,
                        delivery_count: 0,
                        owner: None,
                        deadline_ms: 0,
                    };
                    record.acquire(member, now_ms, limits);
                    push(offset, record.delivery_count);
                    self.records.insert(offset, record);
                    in_flight += 1;
                }
                count += 1;
            }
        }
        self.advance_start();
        acquired
    }

    /// Applies one acknowledgement batch of `member`: `types` holds one type for the whole
    /// range or one per offset. All or nothing: on an error nothing changes.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first_offset: i64,
        last_offset: i64,
        types: &[i8],
        limits: &Limits,
    ) -> Result<(), InvalidRecordState> {
        let len = last_offset - first_offset + 1;
        if len <= 0 || types.is_empty() || (types.len() != 1 && types.len() as i64 != len) {
            return Err(InvalidRecordState(format!(
                "acknowledgement {first_offset}..={last_offset} with {} types",
                types.len()
            )));
        }
        let type_of = |offset: i64| {
            if types.len() == 1 {
                types[0]
            } else {
                types[(offset - first_offset) as usize]
            }
        };
        for offset in first_offset..=last_offset {
            let kind = type_of(offset);
            if !(ACK_GAP..=ACK_REJECT).contains(&kind) {
                return Err(InvalidRecordState(format!("acknowledge type {kind}")));
            }
            match self.records.get(&offset) {
                Some(r)
                    if r.state == RecordState::Acquired && r.owner.as_deref() == Some(member) => {}
                // A gap the client reports where the log had no record.
                None if kind == ACK_GAP && offset < self.end_offset => {}
                _ => {
                    return Err(InvalidRecordState(format!(
                        "offset {offset} is not acquired by this member"
                    )))
                }
            }
        }
        for offset in first_offset..=last_offset {
            let Some(record) = self.records.get_mut(&offset) else {
                continue;
            };
            match type_of(offset) {
                ACK_ACCEPT => record.settle(RecordState::Acknowledged),
                ACK_RELEASE => record.release(limits),
                // Reject, and a gap where the client saw no record: never delivered again.
                _ => record.settle(RecordState::Archived),
            }
        }
        self.advance_start();
        Ok(())
    }

    /// Releases every lock `member` holds (it left the group, or closed its session).
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> bool {
        let mut changed = false;
        for record in self.records.values_mut() {
            if record.state == RecordState::Acquired && record.owner.as_deref() == Some(member) {
                record.release(limits);
                changed = true;
            }
        }
        if changed {
            self.advance_start();
        }
        changed
    }

    /// Moves the start offset past the leading records that are done.
    fn advance_start(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            match entry.get().state {
                RecordState::Acknowledged | RecordState::Archived => {
                    entry.remove();
                }
                _ => break,
            }
        }
        self.start_offset = self
            .records
            .keys()
            .next()
            .copied()
            .unwrap_or(self.end_offset);
    }
}

impl InFlight {
    fn acquire(&mut self, member: &str, now_ms: i64, limits: &Limits) {
        self.state = RecordState::Acquired;
        self.delivery_count = self.delivery_count.saturating_add(1);
        self.owner = Some(member.to_owned());
        self.deadline_ms = now_ms.saturating_add(limits.lock_duration_ms);
    }

    /// Back to Available, or Archived once delivered as often as allowed.
    fn release(&mut self, limits: &Limits) {
        let state = if self.delivery_count >= limits.delivery_count_limit {
            RecordState::Archived
        } else {
            RecordState::Available
        };
        self.settle(state);
    }

    fn settle(&mut self, state: RecordState) {
        self.state = state;
        self.owner = None;
        self.deadline_ms = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        lock_duration_ms: 1_000,
        delivery_count_limit: 3,
    };

    fn batch(base: i64, last: i64) -> BatchBounds {
        BatchBounds {
            base_offset: base,
            last_offset: last,
            control: false,
        }
    }

    fn run(first: i64, last: i64, count: i16) -> Acquired {
        Acquired {
            first_offset: first,
            last_offset: last,
            delivery_count: count,
        }
    }

    #[test]
    fn records_go_to_one_member_at_a_time() {
        let mut sp = SharePartition::starting_at(0);
        let got = sp.acquire("a", &[batch(0, 9)], 10, 4, 0, &LIMITS);
        assert_eq!(got, vec![run(0, 3, 1)]);
        // The next member gets the records after them, not the same ones.
        assert_eq!(sp.next_fetch_offset(), 4);
        let got = sp.acquire("b", &[batch(0, 9)], 10, 100, 0, &LIMITS);
        assert_eq!(got, vec![run(4, 9, 1)]);
        assert!(sp
            .acquire("c", &[batch(0, 9)], 10, 100, 0, &LIMITS)
            .is_empty());
        assert!(!sp.has_acquirable(10));
        // Nothing past the high watermark.
        let got = sp.acquire("c", &[batch(10, 19)], 12, 100, 0, &LIMITS);
        assert_eq!(got, vec![run(10, 11, 1)]);
    }

    #[test]
    fn accepted_records_advance_the_start_offset() {
        let mut sp = SharePartition::starting_at(5);
        sp.acquire("a", &[batch(0, 9)], 10, 100, 0, &LIMITS);
        assert_eq!(sp.start_offset, 5);
        sp.acknowledge("a", 5, 6, &[ACK_ACCEPT], &LIMITS).unwrap();
        assert_eq!(sp.start_offset, 7);
        // Acknowledged out of order: the start waits for 7.
        sp.acknowledge("a", 8, 9, &[ACK_ACCEPT], &LIMITS).unwrap();
        assert_eq!(sp.start_offset, 7);
        assert_eq!(sp.records[&8].state, RecordState::Acknowledged);
        sp.acknowledge("a", 7, 7, &[ACK_REJECT], &LIMITS).unwrap();
        assert_eq!(sp.start_offset, 10);
        assert!(sp.records.is_empty());
    }

    #[test]
    fn only_the_holder_may_acknowledge_and_only_once() {
        let mut sp = SharePartition::starting_at(0);
        sp.acquire("a", &[batch(0, 3)], 4, 100, 0, &LIMITS);
        assert!(sp.acknowledge("b", 0, 0, &[ACK_ACCEPT], &LIMITS).is_err());
        sp.acknowledge("a", 0, 0, &[ACK_ACCEPT], &LIMITS).unwrap();
        assert!(sp.acknowledge("a", 0, 0, &[ACK_ACCEPT], &LIMITS).is_err());
        // All or nothing: 1 is acquired, 4 is not, so 1 stays acquired.
        assert!(sp.acknowledge("a", 1, 4, &[ACK_ACCEPT], &LIMITS).is_err());
        assert_eq!(sp.records[&1].state, RecordState::Acquired);
        // Per-offset types must match the range.
        assert!(sp
            .acknowledge("a", 1, 3, &[ACK_ACCEPT, ACK_REJECT], &LIMITS)
            .is_err());
        sp.acknowledge("a", 1, 3, &[ACK_ACCEPT, ACK_REJECT, ACK_RELEASE], &LIMITS)
            .unwrap();
        assert_eq!(sp.records[&3].state, RecordState::Available);
        assert_eq!(sp.start_offset, 3);
    }

    #[test]
    fn released_and_expired_records_are_redelivered_with_a_higher_count() {
        let mut sp = SharePartition::starting_at(0);
        sp.acquire("a", &[batch(0, 3)], 4, 100, 0, &LIMITS);
        sp.acknowledge("a", 1, 1, &[ACK_RELEASE], &LIMITS).unwrap();
        assert_eq!(sp.next_fetch_offset(), 1);
        let got = sp.acquire("b", &[batch(0, 3)], 4, 100, 10, &LIMITS);
        assert_eq!(got, vec![run(1, 1, 2)]);
        // "a" dies holding 0, 2 and 3: the lock expires at 1000.
        assert!(!sp.expire_locks(999, &LIMITS));
        assert!(sp.expire_locks(1_000, &LIMITS));
        let got = sp.acquire("b", &[batch(0, 3)], 4, 100, 1_000, &LIMITS);
        assert_eq!(got, vec![run(0, 0, 2), run(2, 3, 2)]);
        // b's own lock on 1 (taken at 10) expires at 1010.
        assert!(sp.expire_locks(1_010, &LIMITS));
        assert_eq!(sp.records[&1].state, RecordState::Available);
    }

    #[test]
    fn the_delivery_count_limit_archives_a_poison_record() {
        let mut sp = SharePartition::starting_at(0);
        for delivery in 1..=LIMITS.delivery_count_limit {
            let got = sp.acquire("a", &[batch(0, 1)], 2, 1, i64::from(delivery), &LIMITS);
            assert_eq!(got, vec![run(0, 0, delivery)]);
            sp.acknowledge("a", 0, 0, &[ACK_RELEASE], &LIMITS).unwrap();
        }
        // Delivered three times: archived, and the start moved past it.
        assert!(!sp.records.contains_key(&0));
        assert_eq!(sp.start_offset, 1);
        let got = sp.acquire("a", &[batch(0, 1)], 2, 10, 10, &LIMITS);
        assert_eq!(got, vec![run(1, 1, 1)]);
        // A lock running out on the last allowed delivery archives too.
        let mut sp = SharePartition::starting_at(0);
        for now in [0, 1_000, 2_000] {
            assert_eq!(sp.acquire("a", &[batch(0, 0)], 1, 1, now, &LIMITS).len(), 1);
            sp.expire_locks(now + 1_000, &LIMITS);
        }
        assert_eq!(sp.start_offset, 1);
        assert!(sp
            .acquire("a", &[batch(0, 0)], 1, 1, 5_000, &LIMITS)
            .is_empty());
    }

    #[test]
    fn gaps_and_markers_are_skipped() {
        let mut sp = SharePartition::starting_at(0);
        let marker = BatchBounds {
            base_offset: 2,
            last_offset: 2,
            control: true,
        };
        // 0..=1, a marker at 2, then compaction left 5..=6.
        let got = sp.acquire("a", &[batch(0, 1), marker, batch(5, 6)], 7, 100, 0, &LIMITS);
        assert_eq!(got, vec![run(0, 1, 1), run(5, 6, 1)]);
        sp.acknowledge("a", 0, 1, &[ACK_ACCEPT], &LIMITS).unwrap();
        assert_eq!(sp.start_offset, 5);
        // The client may report offsets without a record as gaps.
        sp.acknowledge(
            "a",
            3,
            6,
            &[ACK_GAP, ACK_GAP, ACK_ACCEPT, ACK_ACCEPT],
            &LIMITS,
        )
        .unwrap();
        assert_eq!(sp.start_offset, 7);
    }

    #[test]
    fn a_member_leaving_releases_its_locks_and_retention_drops_records() {
        let mut sp = SharePartition::starting_at(0);
        sp.acquire("a", &[batch(0, 4)], 5, 2, 0, &LIMITS);
        sp.acquire("b", &[batch(0, 4)], 5, 100, 0, &LIMITS);
        assert!(sp.release_member("a", &LIMITS));
        assert_eq!(sp.records[&0].state, RecordState::Available);
        assert_eq!(sp.records[&2].owner.as_deref(), Some("b"));
        assert!(sp.truncate_below(3));
        assert_eq!(sp.start_offset, 3);
        assert_eq!(sp.records.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
    }
}
