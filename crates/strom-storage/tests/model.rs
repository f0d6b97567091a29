//! Model test: random sequences of append / idempotent append and retry / read / truncate /
//! DeleteRecords / retention / clean and unclean reopen, with small segments so rolls happen
//! constantly, checked against an in-memory Vec of batches.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use proptest::prelude::*;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::{set_base_offset, BatchSplitter, RecordBatchHeader};
use strom_storage::{Clock, LogConfig, LogError, ManualClock, PartitionLog};

const PRODUCER_ID: i64 = 77;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
    },
    Produce {
        records: usize,
    },
    RetryLastProduce,
    Read {
        at: u16,
        max_bytes: usize,
    },
    ReadOutOfRange,
    Truncate {
        at: u16,
    },
    DeleteRecords {
        at: u16,
    },
    Retention {
        advance_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    },
    Flush,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..150).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        3 => (1usize..4).prop_map(|records| Op::Produce { records }),
        1 => Just(Op::RetryLastProduce),
        4 => (any::<u16>(), 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::ReadOutOfRange),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (0i64..5_000, -1i64..3_000, -1i64..3_000).prop_map(|(advance_ms, retention_ms, retention_bytes)| Op::Retention { advance_ms, retention_ms, retention_bytes }),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    last: i64,
    /// Stored bytes (base offset already rewritten).
    bytes: Vec<u8>,
    /// `(epoch, first seq, last seq)` for idempotent batches.
    seq: Option<(i32, i32)>,
    /// The bytes as the producer sent them (for retries).
    sent: Vec<u8>,
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn pick(&self, at: u16) -> i64 {
        let span = (self.log_end - self.log_start + 1) as u64;
        self.log_start + (u64::from(at) % span) as i64
    }
    fn next_seq(&self) -> i32 {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.seq)
            .map_or(0, |(_, last)| last + 1)
    }
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    config: LogConfig,
    log: PartitionLog,
    model: Model,
}

fn open(dir: &Path, config: &LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config.clone(), clock.clone()).unwrap()
}

fn build(records: usize, value_len: usize, ts: i64, producer: Option<i32>) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.producer = producer.map(|seq| (PRODUCER_ID, 0, seq));
    let value = vec![b'm'; value_len];
    for i in 0..records {
        b.push(
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            ts + i as i64,
        );
    }
    b.build()
}

impl Harness {
    fn append(&mut self, sent: BytesMut, seq: Option<(i32, i32)>) {
        let info = self.log.append(sent.clone()).unwrap();
        assert!(!info.duplicate);
        assert_eq!(info.base_offset, self.model.log_end);
        let mut bytes = sent.to_vec();
        set_base_offset(&mut bytes, info.base_offset).unwrap();
        self.model.batches.push(ModelBatch {
            base: info.base_offset,
            last: info.last_offset,
            bytes,
            seq,
            sent: sent.to_vec(),
        });
        self.model.log_end = info.last_offset + 1;
    }

    fn check_read(&self, offset: i64, max_bytes: usize) {
        let r = self.log.read(offset, max_bytes, None).unwrap();
        assert_eq!(
            (r.log_start_offset, r.log_end_offset),
            (self.model.log_start, self.model.log_end)
        );
        let Some(slice) = r.slice else {
            assert_eq!(
                offset, self.model.log_end,
                "no data returned below the log end"
            );
            return;
        };
        let bytes = slice.read_to_bytes().unwrap();
        let first = self
            .model
            .batches
            .iter()
            .position(|b| b.last >= offset)
            .expect("model has the batch");
        let mut n = 0;
        for (i, got) in BatchSplitter::new(&bytes, usize::MAX).enumerate() {
            assert_eq!(
                got.unwrap(),
                &self.model.batches[first + i].bytes[..],
                "batch {i} of read at {offset}"
            );
            n += 1;
        }
        assert!(n >= 1);
        assert!(
            n == 1 || bytes.len() <= max_bytes,
            "read {} bytes for max {max_bytes}",
            bytes.len()
        );
    }

    fn check_all(&self) {
        assert_eq!(self.log.log_end_offset(), self.model.log_end);
        assert_eq!(self.log.log_start_offset(), self.model.log_start);
        let mut offset = self.model.log_start;
        while offset < self.model.log_end {
            self.check_read(offset, 4096);
            let r = self.log.read(offset, 4096, None).unwrap();
            let bytes = r.slice.unwrap().read_to_bytes().unwrap();
            let last = BatchSplitter::new(&bytes, usize::MAX)
                .last()
                .unwrap()
                .unwrap();
            offset = RecordBatchHeader::parse(last).unwrap().last_offset() + 1;
        }
    }

    fn apply(&mut self, op: Op) {
        let m = &mut self.model;
        match op {
            Op::Append { records, value_len } => {
                let sent = build(records, value_len, self.clock.now_ms(), None);
                self.append(sent, None);
            }
            Op::Produce { records } => {
                let seq = self.model.next_seq();
                let sent = build(records, 10, self.clock.now_ms(), Some(seq));
                self.append(sent, Some((seq, seq + records as i32 - 1)));
            }
            Op::RetryLastProduce => {
                let recent: Vec<&ModelBatch> = m
                    .batches
                    .iter()
                    .filter(|b| b.seq.is_some())
                    .rev()
                    .take(5)
                    .collect();
                if let Some(b) = recent.first().filter(|b| b.base >= m.log_start) {
                    let info = self.log.append(BytesMut::from(&b.sent[..])).unwrap();
                    assert!(
                        info.duplicate,
                        "retry of [{}, {}] was not recognised",
                        b.base, b.last
                    );
                    assert_eq!((info.base_offset, info.last_offset), (b.base, b.last));
                }
            }
            Op::Read { at, max_bytes } => {
                let offset = m.pick(at);
                self.check_read(offset, max_bytes);
            }
            Op::ReadOutOfRange => {
                let err = self.log.read(m.log_end + 1, 100, None).unwrap_err();
                assert!(matches!(err, LogError::OffsetOutOfRange { .. }));
                if m.log_start > 0 {
                    assert!(self.log.read(m.log_start - 1, 100, None).is_err());
                }
            }
            Op::Truncate { at } => {
                let offset = m.pick(at);
                self.log.truncate_to(offset).unwrap();
                if offset < m.log_end {
                    if offset <= m.log_start {
                        m.batches.clear();
                        m.log_start = offset;
                        m.log_end = offset;
                    } else {
                        // The whole batch holding `offset` goes; the log ends where it began.
                        let cut = m
                            .batches
                            .iter()
                            .find(|b| b.last >= offset)
                            .expect("offset < log end");
                        m.log_end = cut.base;
                        m.batches.retain(|b| b.last < offset);
                        m.log_start = m.log_start.min(m.log_end);
                    }
                }
            }
            Op::DeleteRecords { at } => {
                let offset = m.pick(at);
                let start = self.log.delete_records(offset).unwrap();
                m.log_start = m.log_start.max(offset);
                assert_eq!(start, m.log_start);
            }
            Op::Retention {
                advance_ms,
                retention_ms,
                retention_bytes,
            } => {
                self.clock.advance(advance_ms);
                let config = LogConfig {
                    retention_ms,
                    retention_bytes,
                    ..self.config.clone()
                };
                self.log.set_config(config);
                self.log.enforce_retention().unwrap();
                self.log.set_config(self.config.clone());
                let start = self.log.log_start_offset();
                assert!(start >= m.log_start && start <= m.log_end);
                assert!(
                    start == m.log_start
                        || start == m.log_end
                        || m.batches.iter().any(|b| b.base == start),
                    "log start {start} is not a batch boundary"
                );
                m.log_start = start;
                if retention_bytes >= 0 {
                    let active_and_one = self.config.segment_bytes * 2;
                    assert!(self.log.size_bytes() <= retention_bytes as u64 + active_and_one);
                }
            }
            Op::Flush => self.log.flush().unwrap(),
            Op::Reopen { clean } => {
                if clean {
                    self.log.close().unwrap();
                }
                self.log = open(self.dir.path(), &self.config, &self.clock);
                self.check_all();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        segment_bytes in 800u64..3_000,
        index_interval_bytes in 0u64..600,
        segment_index_bytes in prop_oneof![Just(10u64 << 20), 16u64..64],
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = LogConfig { segment_bytes, index_interval_bytes, segment_index_bytes, retention_ms: -1, ..LogConfig::default() };
        let log = open(dir.path(), &config, &clock);
        let mut h = Harness { dir, clock, config, log, model: Model::default() };
        for op in ops {
            h.apply(op);
        }
        h.check_all();
    }
}
