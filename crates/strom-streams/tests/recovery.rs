//! Fault tolerance against a real broker: state restored from the changelog after an
//! instance dies without committing or closing; two then three instances splitting and
//! re-splitting the tasks of one application; exactly-once under a crash loop, where the
//! committed output must equal the reference exactly (each count update once, in order).
//! "Dies" is `KafkaStreams::kill`: threads stop at once, nothing is committed, flushed or
//! closed, the group and transaction coordinators only learn of it by timeouts.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use strom_streams::{KafkaStreams, Materialized, StreamsBuilder, StreamsConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn count_topology(input: &str, output: &str, m: Materialized) -> strom_streams::Topology {
    let sb = StreamsBuilder::new();
    sb.stream::<String, String>(input)
        .group_by_key()
        .count(m)
        .unwrap()
        .to_stream()
        .to(output);
    sb.build().unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn keyed(n: usize, offset: usize, keys: usize) -> Vec<In> {
    (offset..offset + n)
        .map(|i| kv(&format!("k{}", i % keys), "x", 1_000 + i as i64))
        .collect()
}

fn reference(total: usize, keys: usize) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for i in 0..total {
        *m.entry(format!("k{}", i % keys)).or_insert(0) += 1;
    }
    m
}

#[test]
fn state_is_restored_from_the_changelog_after_a_kill() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "r-in", 2).await;
        create_topic(&b, "r-out", 2).await;
        let n1 = 20_000;
        produce(&b, "r-in", &keyed(n1, 0, 500)).await;
        let state1 = tempfile::tempdir().unwrap();
        let mut app = KafkaStreams::new(
            count_topology("r-in", "r-out", Materialized::persistent("counts")),
            config(&b, "r-app", state1.path()),
        );
        app.start().await.unwrap();
        wait_for("first run", Duration::from_secs(60), || {
            app.metrics().processed.load(Ordering::Relaxed) >= n1 as u64
        })
        .await;
        // commit.interval.ms is 200: this leaves time for the commit of the last records.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        tokio::task::spawn_blocking(move || app.kill()).await.unwrap();
        // A fresh state directory: everything comes back from the changelog.
        let state2 = tempfile::tempdir().unwrap();
        let mut app = KafkaStreams::new(
            count_topology("r-in", "r-out", Materialized::persistent("counts")),
            config(&b, "r-app", state2.path()),
        );
        let started = Instant::now();
        app.start().await.unwrap();
        wait_for("restore (after the killed member's session timeout)", Duration::from_secs(60), || {
            app.metrics().tasks_created.load(Ordering::Relaxed) >= 2
        })
        .await;
        let restored = app.metrics().restored_records.load(Ordering::Relaxed);
        let restore_ms = app.metrics().restore_ms.load(Ordering::Relaxed);
        println!(
            "restored {restored} changelog records in {restore_ms} ms (tasks running {} ms after start)",
            started.elapsed().as_millis()
        );
        assert!(restored >= 500, "restored {restored}");
        produce(&b, "r-in", &keyed(1_000, n1, 500)).await;
        let want = reference(n1 + 1_000, 500);
        wait_for("second run", Duration::from_secs(60), || {
            let Ok(store) = app.store("counts") else { return false };
            want.iter().all(|(k, v)| store.get::<String, i64>(k).ok().flatten() == Some(*v))
        })
        .await;
        tokio::task::spawn_blocking(move || app.close()).await.unwrap();
        // A clean close checkpoints the local store: reopening restores nothing.
        let mut app = KafkaStreams::new(
            count_topology("r-in", "r-out", Materialized::persistent("counts")),
            config(&b, "r-app", state2.path()),
        );
        app.start().await.unwrap();
        wait_for("reopen", Duration::from_secs(30), || {
            app.metrics().tasks_created.load(Ordering::Relaxed) >= 2
        })
        .await;
        assert_eq!(app.metrics().restored_records.load(Ordering::Relaxed), 0);
        let store = app.store("counts").unwrap();
        for (k, v) in &want {
            assert_eq!(store.get::<String, i64>(k).unwrap(), Some(*v));
        }
        tokio::task::spawn_blocking(move || app.close()).await.unwrap();
    });
}

fn owned(app: &KafkaStreams) -> usize {
    app.store("counts")
        .map(|s| s.partitions().len())
        .unwrap_or(0)
}

#[test]
fn two_then_three_instances_split_and_resplit_tasks() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "s-in", 6).await;
        create_topic(&b, "s-out", 6).await;
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let make = |i: usize| {
            KafkaStreams::new(
                count_topology("s-in", "s-out", Materialized::in_memory("counts")),
                config(&b, "s-app", dirs[i].path()),
            )
        };
        let mut a = make(0);
        a.start().await.unwrap();
        produce(&b, "s-in", &keyed(600, 0, 60)).await;
        wait_for("a owns all six", Duration::from_secs(30), || owned(&a) == 6).await;
        let mut bb = make(1);
        bb.start().await.unwrap();
        wait_for("a and b split 3/3", Duration::from_secs(30), || {
            owned(&a) == 3 && owned(&bb) == 3
        })
        .await;
        produce(&b, "s-in", &keyed(600, 600, 60)).await;
        let mut c = make(2);
        c.start().await.unwrap();
        wait_for("2/2/2", Duration::from_secs(30), || {
            owned(&a) == 2 && owned(&bb) == 2 && owned(&c) == 2
        })
        .await;
        produce(&b, "s-in", &keyed(600, 1200, 60)).await;
        let want = reference(1800, 60);
        let total = |apps: &[&KafkaStreams]| -> BTreeMap<String, i64> {
            let mut m = BTreeMap::new();
            for app in apps {
                if let Ok(s) = app.store("counts") {
                    for (k, v) in s.all::<String, i64>().unwrap_or_default() {
                        m.insert(k, v);
                    }
                }
            }
            m
        };
        wait_for(
            "three instances reach the reference",
            Duration::from_secs(30),
            || total(&[&a, &bb, &c]) == want,
        )
        .await;
        // b leaves cleanly: a and c take its tasks, restore them, and keep counting.
        tokio::task::spawn_blocking(move || bb.close())
            .await
            .unwrap();
        wait_for("3/3 after b left", Duration::from_secs(30), || {
            owned(&a) == 3 && owned(&c) == 3
        })
        .await;
        produce(&b, "s-in", &keyed(600, 1800, 60)).await;
        let want = reference(2400, 60);
        wait_for(
            "two instances reach the reference",
            Duration::from_secs(30),
            || total(&[&a, &c]) == want,
        )
        .await;
        // The output topic agrees (latest count per key).
        let got = read_until(&b, "s-out", false, Duration::from_secs(30), |r| {
            latest(r, i64v) == want
        })
        .await;
        assert_eq!(latest(&got, i64v), want);
        for app in [a, c] {
            assert!(app.error().is_none(), "{:?}", app.error());
            tokio::task::spawn_blocking(move || app.close())
                .await
                .unwrap();
        }
    });
}

fn eos_config(b: &str, dir: &std::path::Path) -> StreamsConfig {
    let mut c = config(b, "x-app", dir);
    c.set("processing.guarantee", "exactly_once_v2").unwrap();
    c.set("commit.interval.ms", "100").unwrap();
    c
}

#[test]
fn exactly_once_under_a_crash_loop() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "x-in", 4).await;
        create_topic(&b, "x-out", 4).await;
        let (total, keys) = (3_000usize, 40usize);
        // Input flows for the whole test, in small batches.
        let bp = b.clone();
        let producer = tokio::spawn(async move {
            for batch in 0..30 {
                produce(&bp, "x-in", &keyed(total / 30, batch * total / 30, keys)).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        });
        let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        let topo = || count_topology("x-in", "x-out", Materialized::persistent("counts"));
        let mut steady = KafkaStreams::new(topo(), eos_config(&b, dirs[0].path()));
        steady.start().await.unwrap();
        for dir in &dirs[1..4] {
            let mut victim = KafkaStreams::new(topo(), eos_config(&b, dir.path()));
            victim.start().await.unwrap();
            wait_for("the victim to own tasks", Duration::from_secs(40), || {
                victim.metrics().processed.load(Ordering::Relaxed) > 0
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::task::spawn_blocking(move || victim.kill())
                .await
                .unwrap();
        }
        producer.await.unwrap();
        let want = reference(total, keys);
        let got = read_until(&b, "x-out", true, Duration::from_secs(120), |r| {
            latest(r, i64v) == want
        })
        .await;
        // Each key's committed updates are exactly 1, 2, ..., n: nothing lost, nothing twice.
        let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in &got {
            per_key.entry(s(&r.key)).or_default().push(i64v(&r.value));
        }
        for (k, n) in &want {
            let seq = per_key.get(k).cloned().unwrap_or_default();
            assert_eq!(seq, (1..=*n).collect::<Vec<_>>(), "updates of {k}");
        }
        assert!(steady.error().is_none(), "{:?}", steady.error());
        tokio::task::spawn_blocking(move || steady.close())
            .await
            .unwrap();
    });
}

/// Interactive queries across instances: each instance answers for the keys it holds, and
/// `metadata_for_key` names the `application.server` of the instance holding any key.
#[test]
fn any_instance_tells_which_instance_holds_a_key() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "q-in", 4).await;
        create_topic(&b, "q-out", 4).await;
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let make = |i: usize| {
            let mut c = config(&b, "q-app", dirs[i].path());
            c.set("application.server", &format!("host-{i}:808{i}"))
                .unwrap();
            KafkaStreams::new(
                count_topology("q-in", "q-out", Materialized::in_memory("counts")),
                c,
            )
        };
        let (mut a, mut bb) = (make(0), make(1));
        a.start().await.unwrap();
        bb.start().await.unwrap();
        produce(&b, "q-in", &keyed(400, 0, 40)).await;
        let want = reference(400, 40);
        wait_for("2/2 and all counted", Duration::from_secs(30), || {
            owned(&a) == 2 && owned(&bb) == 2 && {
                let mut m = BTreeMap::new();
                for app in [&a, &bb] {
                    m.extend(app.store("counts").unwrap().all::<String, i64>().unwrap());
                }
                m == want
            }
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        'retry: loop {
            assert!(
                Instant::now() < deadline,
                "metadata never matched the stores"
            );
            for k in want.keys() {
                let holder = if a
                    .store("counts")
                    .unwrap()
                    .get::<String, i64>(k)
                    .unwrap()
                    .is_some()
                {
                    "host-0:8080"
                } else {
                    "host-1:8081"
                };
                for app in [&a, &bb] {
                    if app.metadata_for_key("counts", k).await.unwrap().as_deref() != Some(holder) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'retry;
                    }
                }
            }
            break;
        }
        for app in [a, bb] {
            tokio::task::spawn_blocking(move || app.close())
                .await
                .unwrap();
        }
    });
}

/// Standby replicas: with `num.standby.replicas=1` each instance keeps the other's
/// persistent stores warm; when one is killed, the survivor takes its tasks over and
/// restores only what its standby had not applied yet, not the whole changelog.
#[test]
fn a_standby_replica_makes_failover_restore_short() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "sb-in", 2).await;
        create_topic(&b, "sb-out", 2).await;
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let make = |i: usize| {
            let mut c = config(&b, "sb-app", dirs[i].path());
            c.set("num.standby.replicas", "1").unwrap();
            KafkaStreams::new(count_topology("sb-in", "sb-out", Materialized::persistent("counts")), c)
        };
        let (mut a, mut bb) = (make(0), make(1));
        a.start().await.unwrap();
        bb.start().await.unwrap();
        wait_for("1/1", Duration::from_secs(30), || owned(&a) == 1 && owned(&bb) == 1).await;
        let n = 10_000;
        produce(&b, "sb-in", &keyed(n, 0, 200)).await;
        let total = |f: &dyn Fn(&strom_streams::Metrics) -> u64| f(a.metrics()) + f(bb.metrics());
        wait_for("processing and both standbys", Duration::from_secs(60), || {
            total(&|m| m.processed.load(Ordering::Relaxed)) >= n as u64
                && total(&|m| m.standby_applied.load(Ordering::Relaxed)) >= n as u64
        })
        .await;
        let before = bb.metrics().restored_records.load(Ordering::Relaxed);
        tokio::task::spawn_blocking(move || a.kill()).await.unwrap();
        wait_for("b takes both tasks", Duration::from_secs(40), || owned(&bb) == 2).await;
        let restored = bb.metrics().restored_records.load(Ordering::Relaxed) - before;
        println!("failover restored {restored} changelog records (the changelog of the moved task has about {})", n / 2);
        assert!(restored < (n / 10) as u64, "restored {restored}: the standby was not used");
        let want = reference(n, 200);
        let store = bb.store("counts").unwrap();
        let all: BTreeMap<String, i64> = store.all::<String, i64>().unwrap().into_iter().collect();
        assert_eq!(all, want);
        tokio::task::spawn_blocking(move || bb.close()).await.unwrap();
    });
}
