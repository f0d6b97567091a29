//! Property test of compaction against a model: random plain and transactional appends,
//! commits, aborts, rolls, cleans, clock moves and unclean reopens. After every step the
//! read_committed view of the log (markers skipped, aborted data filtered by the aborted
//! index, nothing at or past the LSO) holds only records written at those offsets, and the
//! latest record of every key, except tombstones whose delete horizon passed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use proptest::prelude::*;
use strom_protocol::compression::decompress_batch;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};
use strom_protocol::record_batch::{validate_batch, BatchSplitter, RecordBatchHeader, Validation};
use strom_storage::{
    AbortedTxn, CleanerOptions, CleanupPolicy, Clock, LogConfig, ManualClock, PartitionLog,
};

const T0: i64 = 1_000_000;

/// `(offset, key, value)`; `None` value = tombstone.
type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

/// Records to append: (key index, value or tombstone).
type Spec = Vec<(u8, Option<u16>)>;

#[derive(Debug, Clone)]
enum Op {
    Append(Spec),
    /// A transactional batch of producer 1..=3 (opens its transaction if none is open).
    TxnAppend(i64, Spec),
    /// Ends producer's open transaction: commit (true) or abort.
    End(i64, bool),
    Roll,
    Clean,
    Advance(u16),
    Reopen,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop::collection::vec((0u8..10, prop::option::weighted(0.85, any::<u16>())), 1..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => spec().prop_map(Op::Append),
        3 => (1i64..=3, spec()).prop_map(|(p, s)| Op::TxnAppend(p, s)),
        2 => (1i64..=3, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        1 => Just(Op::Roll),
        2 => Just(Op::Clean),
        1 => (0u16..1500).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 500,
        index_interval_bytes: 100,
        cleanup_policy: CleanupPolicy::parse("compact"),
        min_cleanable_dirty_ratio: 0.2,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config(), clock.clone()).unwrap()
}

fn records_of(spec: &Spec) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    spec.iter()
        .map(|(k, v)| {
            (
                format!("k{k}").into_bytes(),
                v.map(|v| format!("v{v}").into_bytes()),
            )
        })
        .collect()
}

fn batch(recs: &[(Vec<u8>, Option<Vec<u8>>)], producer: Option<(i64, i32)>, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    if let Some((pid, seq)) = producer {
        b.producer = Some((pid, 0, seq));
        b.attributes = 0x10;
    }
    for (k, v) in recs {
        b.push(Some(k), v.as_deref(), ts);
    }
    b.build()
}

/// The read_committed view of the whole log, checking batch order and CRCs on the way.
fn committed_view(log: &PartitionLog) -> Vec<Rec> {
    let lso = log
        .first_unstable_offset()
        .unwrap_or_else(|| log.log_end_offset());
    let aborted: Vec<AbortedTxn> = log.aborted_transactions(0, i64::MAX);
    let is_aborted = |pid: i64, offset: i64| {
        aborted
            .iter()
            .any(|t| t.producer_id == pid && t.first_offset <= offset && offset <= t.last_offset)
    };
    let mut out: Vec<Rec> = Vec::new();
    let (mut offset, mut last_end) = (log.log_start_offset(), -1);
    loop {
        let Some(slice) = log.read(offset, 4096, None).unwrap().slice else {
            break;
        };
        let bytes = slice.read_to_bytes().unwrap();
        for b in BatchSplitter::new(&bytes, usize::MAX) {
            let h = validate_batch(b.unwrap(), Validation::Stored).unwrap();
            assert!(h.base_offset() > last_end, "batches out of order");
            (last_end, offset) = (h.last_offset(), h.last_offset() + 1);
            if h.is_control()
                || (h.is_transactional() && is_aborted(h.producer_id(), h.base_offset()))
            {
                continue;
            }
            let plain = decompress_batch(h.bytes()).unwrap();
            for r in RecordBatchHeader::parse(&plain).unwrap().records() {
                let r = r.unwrap();
                if r.offset < lso {
                    let key = r.key.expect("keyed").to_vec();
                    out.push((r.offset, key, r.value.map(<[u8]>::to_vec)));
                }
            }
        }
    }
    out
}

fn latest(recs: &[Rec], below: i64) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    recs.iter()
        .filter(|r| r.0 < below)
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// What has been written, as the model knows it.
#[derive(Default)]
struct Model {
    /// Plain records and records of committed transactions.
    visible: Vec<Rec>,
    /// Records of each producer's open transaction.
    open: HashMap<i64, Vec<Rec>>,
    /// Every data record ever appended.
    written: Vec<Rec>,
    next_seq: HashMap<i64, i32>,
}

impl Model {
    fn append(&mut self, log: &PartitionLog, spec: &Spec, pid: Option<i64>, now: i64) {
        let recs = records_of(spec);
        let producer = pid.map(|p| (p, *self.next_seq.get(&p).unwrap_or(&0)));
        let base = log.append(batch(&recs, producer, now)).unwrap().base_offset;
        let recs: Vec<Rec> = recs
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| (base + i as i64, k, v))
            .collect();
        self.written.extend(recs.iter().cloned());
        match pid {
            None => self.visible.extend(recs),
            Some(p) => {
                *self.next_seq.entry(p).or_default() += recs.len() as i32;
                self.open.entry(p).or_default().extend(recs);
            }
        }
    }

    fn end(&mut self, log: &PartitionLog, pid: i64, commit: bool, now: i64) {
        let Some(recs) = self.open.remove(&pid) else {
            return;
        };
        let kind = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        log.append(marker_batch(pid, 0, kind, 0, now)).unwrap();
        if commit {
            self.visible.extend(recs);
            self.visible.sort_by_key(|r| r.0);
        }
    }
}

fn roll(log: &PartitionLog, clock: &ManualClock) {
    let mut c = log.config();
    c.segment_ms = 1;
    log.set_config(c);
    clock.advance(1);
    log.enforce_retention().unwrap();
    log.set_config(config());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_committed_view_keeps_the_latest_value_per_key(ops in prop::collection::vec(op(), 1..70)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let mut log = open(dir.path(), &clock);
        let mut model = Model::default();
        for op in ops {
            let now = clock.now_ms();
            match op {
                Op::Append(spec) => model.append(&log, &spec, None, now),
                Op::TxnAppend(pid, spec) => model.append(&log, &spec, Some(pid), now),
                Op::End(pid, commit) => model.end(&log, pid, commit, now),
                Op::Roll => roll(&log, &clock),
                Op::Clean => {
                    log.clean(&CleanerOptions::default()).unwrap();
                }
                Op::Advance(ms) => clock.advance(i64::from(ms)),
                Op::Reopen => {
                    drop(log);
                    log = open(dir.path(), &clock);
                }
            }
            let lso = log.first_unstable_offset().unwrap_or_else(|| log.log_end_offset());
            let model_lso = model.open.values().filter_map(|r| r.first().map(|r| r.0)).min();
            prop_assert_eq!(lso, model_lso.unwrap_or_else(|| log.log_end_offset()));
            let view = committed_view(&log);
            for r in &view {
                prop_assert!(model.written.contains(r), "{:?} was never written there", r);
            }
            let expected = latest(&model.visible, lso);
            let seen = latest(&view, lso);
            for (key, want) in &expected {
                match seen.get(key) {
                    Some(got) => prop_assert_eq!(got, want, "key {:?}", key),
                    None => prop_assert!(want.1.is_none(), "live key {:?} lost", key),
                }
            }
            for key in seen.keys() {
                prop_assert!(expected.contains_key(key), "key {:?} is not visible in the model", key);
            }
        }
    }
}
