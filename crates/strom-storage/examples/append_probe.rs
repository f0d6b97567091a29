//! Profiling aid: appends `MIB` MiB of `SIZE`-byte batches (env vars, defaults 2048 and 16384)
//! to a fresh log in `DIR` (default: a temp dir) and prints the throughput of each 256 MiB.

use std::sync::Arc;
use std::time::Instant;

use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{LogConfig, PartitionLog, SystemClock};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (total, size) = (env("MIB", 2048) << 20, env("SIZE", 16384));
    let records = (size / 1024).max(1);
    let mut b = BatchBuilder::new(0);
    let value = vec![b'x'; (size - 61 - records * 12) / records];
    for i in 0..records {
        b.push(None, Some(&value), i as i64);
    }
    let batch = b.build();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 256 << 20,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path().to_path_buf(), config, Arc::new(SystemClock)).unwrap();
    let (mut written, mut window, mut t) = (0usize, 0usize, Instant::now());
    while written < total {
        log.append(batch.clone()).unwrap();
        written += batch.len();
        window += batch.len();
        if window >= 256 << 20 {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:>6} MiB: {:.0} MiB/s",
                written >> 20,
                (window >> 20) as f64 / secs
            );
            (window, t) = (0, Instant::now());
        }
    }
    log.delete().unwrap();
}
