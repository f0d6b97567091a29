//! Measuring aid for many partitions (issue 20): creates `N` partition logs (default 20000)
//! under `DIR` (default a temporary directory in the current one), one record in every
//! `EVERY`-th (default 100), then times on `THREADS` threads (default 8, the broker's
//! `num.recovery.threads.per.data.dir`): a close for the log-dir marker (plus one `sync`),
//! an open after it (`dir_clean`), and an open after the logs were dropped unclosed (kill -9).
//! Only the storage layer: no metadata, no roles. Run it under `strace -c -f` or `perf`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{HandleCache, LogConfig, PartitionLog, StdFs, SystemClock};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `work` on every index below `n`, on `threads` threads.
fn parallel<T: Send>(n: usize, threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out = parking_lot::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = work(i);
                out.lock().push((i, r));
            });
        }
    });
    let mut out = out.into_inner();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn main() {
    let (n, every, threads) = (env("N", 20_000), env("EVERY", 100), env("THREADS", 8));
    let tmp = tempfile::tempdir_in(".").unwrap();
    let root = std::env::var("DIR").map_or_else(|_| tmp.path().to_path_buf(), PathBuf::from);
    let cache = HandleCache::new(4096);
    let open = |i: usize, clean: bool| {
        PartitionLog::open_in(
            root.join(format!("t{:05}-{}", i / 100, i % 100)),
            LogConfig::default(),
            Arc::new(SystemClock),
            Arc::new(StdFs),
            cache.clone(),
            clean,
        )
        .unwrap()
    };
    let t = Instant::now();
    let logs = parallel(n, threads, |i| {
        let log = open(i, false);
        if i % every == 0 {
            let mut b = BatchBuilder::new(0);
            b.push(Some(b"k"), Some(b"value"), 1_000);
            log.append(b.build()).unwrap();
        }
        log
    });
    println!("created {n} logs in {:.2} s", t.elapsed().as_secs_f64());
    let close = |logs: Vec<PartitionLog>| {
        let t = Instant::now();
        let logs = parking_lot::Mutex::new(logs);
        parallel(n, threads, |_| {
            let log = logs.lock().pop().unwrap();
            log.close_for_log_dir_marker().unwrap();
        });
        let closed = t.elapsed().as_secs_f64();
        // syncfs(2), as the broker does before writing its marker.
        let status = std::process::Command::new("sync")
            .arg("-f")
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        (closed, t.elapsed().as_secs_f64())
    };
    let (closed, synced) = close(logs);
    println!("first close: {closed:.2} s, with the syncfs {synced:.2} s");
    for round in 0..2 {
        let t = Instant::now();
        let logs = parallel(n, threads, |i| open(i, true));
        println!(
            "round {round}: open after a clean close: {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let (closed, synced) = close(logs);
        println!("round {round}: close: {closed:.2} s, with the syncfs {synced:.2} s");
        let logs = parallel(n, threads, |i| open(i, true));
        drop(logs); // kill -9: nothing closed, no marker
        let t = Instant::now();
        let logs = parallel(n, threads, |i| open(i, false));
        println!(
            "round {round}: open after kill -9: {:.2} s",
            t.elapsed().as_secs_f64()
        );
        close(logs);
    }
}
