//! Measuring aid for the cleaner: writes `MIB` MiB (default 256) of keyed batches of 100
//! records with `KEYS` distinct keys (default 10000) and `CODEC` (none|lz4|zstd, default
//! none), then times one clean and prints the throughput and the size before and after.

use std::sync::Arc;
use std::time::Instant;

use strom_protocol::compression::parse_codec;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{CleanerOptions, CleanupPolicy, LogConfig, PartitionLog, SystemClock};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (total, keys) = (env("MIB", 256) << 20, env("KEYS", 10_000));
    let codec_name = std::env::var("CODEC").unwrap_or_else(|_| "none".into());
    let codec = parse_codec(&codec_name).expect("CODEC is none, gzip, snappy, lz4 or zstd");
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 << 20,
        cleanup_policy: CleanupPolicy::parse("compact"),
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path().to_path_buf(), config, Arc::new(SystemClock)).unwrap();
    let value = vec![b'v'; 100];
    let mut written = 0usize;
    let mut n = 0usize;
    while written < total {
        let mut b = BatchBuilder::new(0);
        for _ in 0..100 {
            let key = format!("key-{:08}", (n * 7919) % keys);
            b.push(Some(key.as_bytes()), Some(&value), n as i64);
            n += 1;
        }
        let batch = b.build_compressed(codec).unwrap();
        written += batch.len();
        log.append(batch).unwrap();
    }
    // Roll so that everything is in closed segments (the log's last batch is kept whole).
    let mut c = log.config();
    c.segment_ms = 0;
    log.set_config(c);
    log.enforce_retention().unwrap();
    let before = log.size_bytes();
    let start = Instant::now();
    let stats = log.clean(&CleanerOptions::default()).unwrap().expect("due");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "codec={codec_name} records={n} keys={keys}: cleaned {:.0} MiB in {secs:.2} s = {:.0} MiB/s; \
         {} -> {} bytes, {} records removed, {} -> {} segments",
        stats.bytes_before as f64 / f64::from(1 << 20),
        stats.bytes_before as f64 / f64::from(1 << 20) / secs,
        before,
        log.size_bytes(),
        stats.records_removed,
        stats.segments_before,
        stats.segments_after,
    );
}
