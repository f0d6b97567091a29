//! Partition-log micro-benchmarks: append throughput (1 KiB / 16 KiB batches, no fsync and one
//! flush per MiB; 1 KiB from 2 and 4 threads at once), sequential reads from the page cache,
//! and recovery of a 1 GiB active segment after an unclean shutdown. Results and the `dd`
//! baseline are in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{LogConfig, PartitionLog, SystemClock};

const MIB: usize = 1 << 20;

/// An uncompressed batch of exactly `size` bytes or a little less, made of 1 KiB-ish records
/// (so a 16 KiB batch holds 16 records, like a producer's linger batch).
fn batch_of(size: usize) -> BytesMut {
    let records = (size / 1024).max(1);
    let mut b = BatchBuilder::new(0);
    let overhead = 61 + records * 12;
    let value = vec![b'x'; (size - overhead) / records];
    for i in 0..records {
        b.push(None, Some(&value), 1_700_000_000_000 + i as i64);
    }
    b.build()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config, Arc::new(SystemClock)).unwrap()
}

/// Appends `iters` batches, fsyncing every `flush_every` bytes (0 = never). Old segments are
/// dropped between samples so the disk does not fill up.
fn append_loop(log: &PartitionLog, batch: &BytesMut, iters: u64, flush_every: usize) -> Duration {
    let mut since_flush = 0;
    let start = Instant::now();
    for _ in 0..iters {
        black_box(log.append(batch.clone()).unwrap());
        since_flush += batch.len();
        if flush_every > 0 && since_flush >= flush_every {
            log.flush().unwrap();
            since_flush = 0;
        }
    }
    if flush_every > 0 {
        log.flush().unwrap();
    }
    let elapsed = start.elapsed();
    log.delete_records(-1).unwrap();
    elapsed
}

/// Appends on this thread while another one fsyncs every MiB; time until all is durable.
fn append_with_flusher(log: &PartitionLog, batch: &BytesMut, iters: u64) -> Duration {
    let appended = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut flushed = 0;
            while !done.load(Ordering::Acquire) {
                let now = appended.load(Ordering::Acquire);
                if now - flushed >= MIB as u64 {
                    log.flush().unwrap();
                    flushed = now;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        for _ in 0..iters {
            black_box(log.append(batch.clone()).unwrap());
            appended.fetch_add(batch.len() as u64, Ordering::Release);
        }
        done.store(true, Ordering::Release);
    });
    log.flush().unwrap();
    let elapsed = start.elapsed();
    log.delete_records(-1).unwrap();
    elapsed
}

/// `threads` threads append `iters` batches between them to one log, as concurrent produce
/// requests to one partition do (an append that finds the log busy is written with the next
/// holder's write).
fn append_concurrent(log: &PartitionLog, batch: &BytesMut, iters: u64, threads: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..n {
                    black_box(log.append(batch.clone()).unwrap());
                }
            });
        }
    });
    let elapsed = start.elapsed();
    log.delete_records(-1).unwrap();
    elapsed
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for size in [1024usize, 16 * 1024] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        for (name, flush_every) in [("no_fsync", 0usize), ("flush_per_mib", MIB)] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), config());
            group.bench_with_input(BenchmarkId::new(name, size), &batch, |b, batch| {
                b.iter_custom(|iters| append_loop(&log, batch, iters, flush_every))
            });
            log.delete().unwrap();
        }
    }
    // Durable throughput when the fsync overlaps appends, as in the broker: a flusher thread
    // calls `flush()` whenever 1 MiB is unflushed (the fsync runs outside the partition lock).
    for size in [1024usize, 16 * 1024] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config());
        group.bench_with_input(
            BenchmarkId::new("flush_per_mib_concurrent", size),
            &batch,
            |b, batch| b.iter_custom(|iters| append_with_flusher(&log, batch, iters)),
        );
        log.delete().unwrap();
    }
    // Several threads appending 1 KiB batches to one partition, no fsync.
    let batch = batch_of(1024);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    for threads in [2u64, 4] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config());
        group.bench_with_input(
            BenchmarkId::new(format!("no_fsync_{threads}_threads"), 1024),
            &batch,
            |b, batch| b.iter_custom(|iters| append_concurrent(&log, batch, iters, threads)),
        );
        log.delete().unwrap();
    }
    // 64 batches of 1 KiB handed over in one call: what a broker gets by coalescing produce
    // requests for one partition (one pwrite instead of 64).
    let mut many = BytesMut::new();
    for _ in 0..64 {
        many.extend_from_slice(&batch_of(1024));
    }
    group.throughput(Throughput::Bytes(many.len() as u64));
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    group.bench_with_input(
        BenchmarkId::new("no_fsync_64_per_call", 1024),
        &many,
        |b, many| b.iter_custom(|iters| append_loop(&log, many, iters, 0)),
    );
    log.delete().unwrap();
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in [1024usize, 16 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config());
        let batch = batch_of(size);
        while log.size_bytes() < 512 << 20 {
            log.append(batch.clone()).unwrap();
        }
        // Write the setup data back now so background writeback does not compete with reads.
        log.flush().unwrap();
        let end = log.log_end_offset();
        group.throughput(Throughput::Bytes(MIB as u64));
        let mut offset = 0;
        group.bench_function(BenchmarkId::new("sequential_1mib_fetches", size), |b| {
            b.iter(|| {
                let r = log.read(offset, MIB, None).unwrap();
                let bytes = r.slice.unwrap().read_to_bytes().unwrap();
                // Next fetch starts after the last batch returned, as a consumer would.
                let last = strom_protocol::record_batch::BatchSplitter::new(&bytes, usize::MAX)
                    .last()
                    .unwrap()
                    .unwrap();
                let next = strom_protocol::record_batch::RecordBatchHeader::parse(last)
                    .unwrap()
                    .last_offset()
                    + 1;
                offset = if next >= end { 0 } else { next };
                black_box(bytes.len())
            })
        });
        log.delete().unwrap();
    }
    group.finish();
}

fn bench_recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for size in [1024usize, 16 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 2 << 30,
            ..config()
        };
        let log = open(dir.path(), config.clone());
        let batch = batch_of(size);
        while log.size_bytes() < 1 << 30 {
            log.append(batch.clone()).unwrap();
        }
        log.flush().unwrap();
        let end = log.log_end_offset();
        drop(log); // no close: no clean-shutdown marker, so open scans the whole segment
        group.throughput(Throughput::Bytes(1 << 30));
        group.bench_function(BenchmarkId::new("unclean_open_1gib_segment", size), |b| {
            b.iter(|| {
                let log = open(dir.path(), config.clone());
                assert_eq!(log.log_end_offset(), end);
                log
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_append, bench_read, bench_recovery);
criterion_main!(benches);
