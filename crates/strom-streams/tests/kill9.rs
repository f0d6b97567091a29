//! Exactly-once under a crash loop of real processes: instances of the `count_app` example
//! are killed with SIGKILL (kill -9) repeatedly while input flows; the output topic read
//! with read_committed must equal the reference exactly: each key's counts 1, 2, ..., n,
//! nothing lost and nothing twice. Every restart restores the counts from the changelog.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn count_app() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let bin = profile_dir.join("examples").join("count_app");
    if !bin.exists() {
        let target = profile_dir.parent().expect("target dir");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "-p",
                "strom-streams",
                "--example",
                "count_app",
                "--target-dir",
            ])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build");
        assert!(status.success(), "cargo build --example count_app failed");
    }
    bin
}

fn spawn(b: &str, state: &std::path::Path) -> Child {
    Command::new(count_app())
        .args([b, "k9-app", "k9-in", "k9-out"])
        .arg(format!("state.dir={}", state.display()))
        .args([
            "processing.guarantee=exactly_once_v2",
            "consumer.session.timeout.ms=6000",
            "consumer.heartbeat.interval.ms=300",
            "consumer.fetch.max.wait.ms=100",
        ])
        .env("STROM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start count_app")
}

#[test]
fn exactly_once_when_instances_are_killed_with_sigkill() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start();
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    rt.block_on(async {
        create_topic(&b, "k9-in", 4).await;
        create_topic(&b, "k9-out", 4).await;
        let (total, keys) = (2_400usize, 30usize);
        let bp = b.clone();
        let producer = tokio::spawn(async move {
            for batch in 0..24 {
                let recs: Vec<In> = (batch * 100..(batch + 1) * 100)
                    .map(|i| kv(&format!("k{}", i % keys), "x", 1_000 + i as i64))
                    .collect();
                produce(&bp, "k9-in", &recs).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        // Two instances; every 3 s one of them is killed -9 and replaced (on the same
        // state directory: no checkpoint was written, so it restores from the changelog).
        let dirs: Vec<PathBuf> = (0..2).map(|i| state.path().join(format!("i{i}"))).collect();
        let mut procs: Vec<Child> = dirs.iter().map(|d| spawn(&b, d)).collect();
        for round in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let i = round % 2;
            procs[i].kill().unwrap(); // SIGKILL
            procs[i].wait().unwrap();
            procs[i] = spawn(&b, &dirs[i]);
        }
        producer.await.unwrap();
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for i in 0..total {
            *want.entry(format!("k{}", i % keys)).or_default() += 1;
        }
        let got = read_until(&b, "k9-out", true, Duration::from_secs(120), |r| {
            latest(r, i64v) == want
        })
        .await;
        let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in &got {
            per_key.entry(s(&r.key)).or_default().push(i64v(&r.value));
        }
        for (k, n) in &want {
            assert_eq!(
                per_key.get(k).cloned().unwrap_or_default(),
                (1..=*n).collect::<Vec<_>>(),
                "updates of {k}"
            );
        }
        for mut p in procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    });
}
