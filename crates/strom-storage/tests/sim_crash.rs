//! Crash consistency on the simulated disk: random sequences of appends (plain and
//! idempotent), flushes, background flushes of rolled segments, DeleteRecords, retention,
//! truncation, clean closes and crashes, with segments small enough to roll every few appends. A crash drops all
//! that was not fsynced (file data, optionally torn at sector boundaries, and directory
//! entries). After every crash and reopen: each batch acknowledged as durable (below the
//! flushed offset the log reported, which in durable mode is every acknowledged append) is
//! there byte for byte, every batch served is valid and one the model appended, offsets are
//! contiguous, and appends work again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use proptest::prelude::*;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::{set_base_offset, validate_batch, BatchSplitter, Validation};
use strom_storage::{Clock, Fs, LogConfig, ManualClock, PartitionLog, SimFs};

const PRODUCER_ID: i64 = 42;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
    },
    Produce {
        records: usize,
    },
    Flush,
    FlushRolled,
    DeleteRecords {
        at: u16,
    },
    /// Retention by size (`retention.bytes`), deleting whole old segments.
    Retention {
        retention_bytes: i64,
    },
    /// A follower's truncation after a leader change.
    Truncate {
        at: u16,
    },
    Close,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..4, 0usize..300).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        4 => (1usize..4).prop_map(|records| Op::Produce { records }),
        2 => Just(Op::Flush),
        2 => Just(Op::FlushRolled),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (1_000i64..6_000).prop_map(|retention_bytes| Op::Retention { retention_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Close),
        3 => Just(Op::Crash),
    ]
}

/// A batch the model appended: the bytes as stored and its idempotent sequence range.
#[derive(Debug, Clone)]
struct ModelBatch {
    last: i64,
    bytes: Vec<u8>,
    seq: Option<(i32, i32)>,
}

struct Harness {
    fs: Arc<SimFs>,
    dir: PathBuf,
    config: LogConfig,
    clock: Arc<ManualClock>,
    log: PartitionLog,
    /// By base offset.
    batches: BTreeMap<i64, ModelBatch>,
    log_start: i64,
    /// Every batch below this was acknowledged as durable.
    durable_end: i64,
    /// The log end offset the model expects.
    log_end: i64,
    /// Distinguishes the values of every record ever written.
    counter: u64,
}

fn open(fs: &Arc<SimFs>, dir: &Path, config: &LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    let fs: Arc<dyn Fs> = fs.clone();
    PartitionLog::open_with_fs(dir.to_path_buf(), config.clone(), clock.clone(), fs)
        .expect("a log reopens after any crash")
}

impl Harness {
    fn new(seed: u64, tear: bool, durable: bool) -> Self {
        let fs = Arc::new(SimFs::new(seed));
        fs.set_tearing(tear);
        let dir = PathBuf::from("/data/topic-0");
        let config = LogConfig {
            segment_bytes: 1500,
            index_interval_bytes: 200,
            retention_ms: -1,
            flush_messages: if durable { 1 } else { u64::MAX },
            ..LogConfig::default()
        };
        let clock = Arc::new(ManualClock::new(1_000_000));
        let log = open(&fs, &dir, &config, &clock);
        Self {
            fs,
            dir,
            config,
            clock,
            log,
            batches: BTreeMap::new(),
            log_start: 0,
            durable_end: 0,
            log_end: 0,
            counter: 0,
        }
    }

    fn next_seq(&self) -> i32 {
        self.batches
            .values()
            .rev()
            .find_map(|b| b.seq)
            .map_or(0, |(_, last)| last + 1)
    }

    fn build(&mut self, records: usize, value_len: usize, seq: Option<i32>) -> BytesMut {
        let mut b = BatchBuilder::new(0);
        b.producer = seq.map(|s| (PRODUCER_ID, 0, s));
        for _ in 0..records {
            self.counter += 1;
            let value: Vec<u8> = (0..value_len)
                .map(|i| (self.counter as usize + i) as u8)
                .collect();
            let key = self.counter.to_string();
            b.push(Some(key.as_bytes()), Some(&value), self.clock.now_ms());
        }
        b.build()
    }

    fn append(&mut self, sent: BytesMut, seq: Option<(i32, i32)>) {
        let expected_base = self.log_end;
        let info = self.log.append(sent.clone()).expect("append");
        assert!(!info.duplicate);
        assert_eq!(info.base_offset, expected_base, "offsets are contiguous");
        let mut bytes = sent.to_vec();
        set_base_offset(&mut bytes, info.base_offset).unwrap();
        self.batches.insert(
            info.base_offset,
            ModelBatch {
                last: info.last_offset,
                bytes,
                seq,
            },
        );
        self.log_end = info.last_offset + 1;
        if self.config.flush_messages == 1 {
            assert_eq!(
                self.log.visible_end_offset(),
                info.last_offset + 1,
                "durable mode: an acknowledged append is flushed and visible"
            );
        }
    }

    /// Whatever the log says is flushed counts as acknowledged durable from now on.
    fn note_flushed(&mut self) {
        self.durable_end = self.durable_end.max(self.log.flushed_offset());
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Append { records, value_len } => {
                let sent = self.build(records, value_len, None);
                self.append(sent, None);
            }
            Op::Produce { records } => {
                let seq = self.next_seq();
                let sent = self.build(records, 20, Some(seq));
                self.append(sent, Some((seq, seq + records as i32 - 1)));
            }
            Op::Flush => {
                self.log.flush().expect("flush");
                assert_eq!(self.log.flushed_offset(), self.log_end);
            }
            Op::FlushRolled => self.log.flush_rolled().expect("flush_rolled"),
            Op::DeleteRecords { at } => {
                let span = (self.log_end - self.log_start + 1) as u64;
                let at = self.log_start + (u64::from(at) % span) as i64;
                let start = self.log.delete_records(at).expect("delete_records");
                self.log_start = start;
            }
            Op::Retention { retention_bytes } => {
                let mut config = self.config.clone();
                config.retention_bytes = retention_bytes;
                self.log.set_config(config);
                self.log.enforce_retention().expect("retention");
                self.log.set_config(self.config.clone());
                self.log_start = self.log.log_start_offset();
            }
            Op::Truncate { at } => {
                let span = (self.log_end - self.log_start + 1) as u64;
                let at = self.log_start + (u64::from(at) % span) as i64;
                self.log.truncate_to(at).expect("truncate_to");
                let old_end = std::mem::replace(&mut self.log_end, self.log.log_end_offset());
                if at >= old_end {
                    assert_eq!(
                        self.log_end, old_end,
                        "nothing at or past the end to remove"
                    );
                } else if at <= self.log_start {
                    // Nothing readable is left: the log restarts empty at `at`.
                    assert_eq!(self.log_end, at);
                    self.batches.clear();
                } else {
                    // The whole batch holding `at` goes, and everything after it.
                    self.batches.retain(|_, b| b.last < at);
                    if let Some((_, b)) = self.batches.iter().next_back() {
                        assert_eq!(self.log_end, b.last + 1);
                    }
                }
                self.log_start = self.log.log_start_offset();
                self.durable_end = self.durable_end.min(self.log_end);
            }
            Op::Close => {
                self.log.close().expect("close");
                self.durable_end = self.log_end;
                self.log = open(&self.fs, &self.dir, &self.config, &self.clock);
                self.check_after_reopen();
            }
            Op::Crash => {
                // Power loss under the running log (its handles die), then a new process.
                self.fs.crash();
                self.log = open(&self.fs, &self.dir, &self.config, &self.clock);
                self.check_after_reopen();
            }
        }
        self.note_flushed();
    }

    /// The reopened log against the model, then the model cut to what survived.
    fn check_after_reopen(&mut self) {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        assert!(
            end >= self.durable_end,
            "acknowledged data lost: log end {end} < durable end {}",
            self.durable_end
        );
        assert!(
            start <= self.log_start,
            "log start {start} passed {}",
            self.log_start
        );
        // Every batch served: valid, contiguous, and exactly one the model appended.
        let mut offset = start;
        let mut expected_base = None;
        while offset < end {
            let slice = self
                .log
                .read(offset, 4096, None)
                .expect("read")
                .slice
                .expect("data below the log end");
            let bytes = slice.read_to_bytes().unwrap();
            for batch in BatchSplitter::new(&bytes, usize::MAX) {
                let batch = batch.expect("whole batches only");
                let h = validate_batch(batch, Validation::Stored).expect("no corrupt batch served");
                if let Some(b) = expected_base {
                    assert_eq!(h.base_offset(), b, "offsets are contiguous");
                }
                let model = self
                    .batches
                    .get(&h.base_offset())
                    .unwrap_or_else(|| panic!("batch at {} was never appended", h.base_offset()));
                assert_eq!(
                    batch,
                    &model.bytes[..],
                    "batch at {} differs",
                    h.base_offset()
                );
                expected_base = Some(h.last_offset() + 1);
                offset = h.last_offset() + 1;
            }
        }
        assert_eq!(offset, end);
        // Acknowledged batches at or above the log start are all there (checked above by
        // walking up to `end >= durable_end`). The model forgets what did not survive.
        self.batches.retain(|_, b| b.last < end);
        self.log_start = start;
        self.log_end = end;
        self.durable_end = self.durable_end.min(end).max(self.log.flushed_offset());
        // Appends work again.
        let sent = self.build(1, 10, None);
        self.append(sent, None);
    }
}

fn run(seed: u64, tear: bool, durable: bool, ops: Vec<Op>) {
    let mut h = Harness::new(seed, tear, durable);
    for op in ops {
        h.apply(op);
    }
    h.apply(Op::Crash);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_data_survives_any_crash(
        seed in any::<u64>(),
        tear in any::<bool>(),
        durable in any::<bool>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(seed, tear, durable, ops);
    }
}
