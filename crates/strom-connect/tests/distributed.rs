//! Distributed mode with real processes: three `strom connect distributed` workers of one
//! group and Kafka's VerifiableSource with three tasks (each counts 0..PER_TASK). The tasks
//! spread over the workers; one worker is killed with SIGKILL and its tasks move to the
//! others; REST writes sent to any worker (so also to ones that do not lead) take effect;
//! the two survivors are stopped and three fresh workers resume from the committed source
//! offsets; every sequence number arrives, at least once (duplicates counted and bounded) or,
//! with exactly-once support, exactly once in read_committed; a last restart of every worker
//! after the end produces nothing again. The at-least-once run uses the eager protocol
//! (`connect.protocol=eager`), the exactly-once run the incremental cooperative one, where
//! the survivors' tasks must stay where they were when the killed worker's move.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::dist::{read_until, WorkerProc};
use common::*;
use serde_json::{json, Value as J};
use strom_client::ConsumerRecord;

const TASKS: usize = 3;
const PER_TASK: i64 = 2000;
const TOPIC: &str = "counts";
const PARTITIONS: i32 = 3;
/// Records per second per task.
const THROUGHPUT: i64 = 250;

fn worker_props(b: &str, group: &str, eos: bool, eager: bool) -> Vec<(&'static str, String)> {
    let json = "org.apache.kafka.connect.json.JsonConverter".to_owned();
    vec![
        ("bootstrap.servers", b.to_owned()),
        ("group.id", group.to_owned()),
        ("config.storage.topic", format!("{group}-configs")),
        ("offset.storage.topic", format!("{group}-offsets")),
        ("status.storage.topic", format!("{group}-status")),
        ("config.storage.replication.factor", "1".into()),
        ("offset.storage.replication.factor", "1".into()),
        ("status.storage.replication.factor", "1".into()),
        ("offset.storage.partitions", "5".into()),
        ("status.storage.partitions", "3".into()),
        ("session.timeout.ms", "2000".into()),
        ("heartbeat.interval.ms", "300".into()),
        ("rebalance.timeout.ms", "10000".into()),
        ("offset.flush.interval.ms", "300".into()),
        ("key.converter", json.clone()),
        ("key.converter.schemas.enable", "false".into()),
        ("value.converter", json),
        ("value.converter.schemas.enable", "false".into()),
        (
            "exactly.once.source.support",
            if eos { "enabled" } else { "disabled" }.into(),
        ),
        ("plugin.path", "/opt/ignored".into()),
        (
            "connect.protocol",
            if eager { "eager" } else { "compatible" }.into(),
        ),
    ]
}

/// Sends a REST write, retrying while a rebalance makes the group answer 409.
async fn write(w: &WorkerProc, method: &str, path: &str, body: Option<&J>) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http(w.addr, method, path, body).await;
        if r.status != 409 || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Task states and worker ids, once the connector has all its tasks.
async fn task_states(w: &WorkerProc) -> Option<Vec<(String, String)>> {
    let r = http(w.addr, "GET", "/connectors/counter/status", None).await;
    if r.status != 200 {
        return None;
    }
    let s = r.json();
    let tasks: Vec<(String, String)> = s["tasks"]
        .as_array()?
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap_or("").to_owned(),
                t["worker_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (tasks.len() == TASKS).then_some(tasks)
}

/// Waits until every task is in `state` on one of `on` (worker ids); returns their owners.
async fn all_tasks(w: &WorkerProc, state: &str, on: &[String], what: &str) -> Vec<String> {
    wait_for(what, Duration::from_secs(30), async || {
        let t = task_states(w).await?;
        t.iter()
            .all(|(s, id)| s == state && on.contains(id))
            .then(|| t.into_iter().map(|(_, id)| id).collect())
    })
    .await
}

/// (task → sequence numbers received, with repeats).
fn by_task(records: &[ConsumerRecord]) -> BTreeMap<i64, Vec<i64>> {
    let mut out: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in records {
        let num = |b: &Option<bytes::Bytes>| -> i64 {
            std::str::from_utf8(b.as_deref().expect("key and value"))
                .unwrap()
                .parse()
                .unwrap()
        };
        out.entry(num(&r.key)).or_default().push(num(&r.value));
    }
    out
}

fn complete(records: &[ConsumerRecord]) -> bool {
    let t = by_task(records);
    t.len() == TASKS
        && t.values()
            .all(|s| s.iter().collect::<BTreeSet<_>>().len() as i64 == PER_TASK)
}

/// (lost, duplicated) records against 0..PER_TASK for every task.
fn lost_and_duplicated(records: &[ConsumerRecord]) -> (i64, i64) {
    let t = by_task(records);
    let mut lost = 0;
    let mut dups = 0;
    for task in 0..TASKS as i64 {
        let seen = t.get(&task).cloned().unwrap_or_default();
        let distinct: BTreeSet<i64> = seen.iter().copied().collect();
        assert!(
            distinct.iter().all(|s| (0..PER_TASK).contains(s)),
            "task {task} sent a sequence number outside 0..{PER_TASK}"
        );
        lost += PER_TASK - distinct.len() as i64;
        dups += seen.len() as i64 - distinct.len() as i64;
    }
    (lost, dups)
}

async fn scenario(eos: bool, eager: bool) {
    let started = Instant::now();
    let mode = match (eos, eager) {
        (true, true) => "exactly-once, eager",
        (true, false) => "exactly-once, cooperative",
        (false, true) => "at-least-once, eager",
        (false, false) => "at-least-once, cooperative",
    };
    let broker = common::dist::fast_groups_broker();
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, PARTITIONS).await;
    let dir = tempfile::tempdir().unwrap();
    let group = if eos { "dist-eos" } else { "dist-alo" };
    let props = worker_props(&b, group, eos, eager);
    let mut workers: Vec<WorkerProc> = (0..3)
        .map(|i| WorkerProc::start(dir.path(), &format!("w{i}"), &props))
        .collect();
    let ids: Vec<String> = workers.iter().map(WorkerProc::id).collect();

    let mut config = json!({
        "connector.class": "VerifiableSource",
        "tasks.max": TASKS.to_string(),
        "topic": TOPIC,
        "throughput": THROUGHPUT.to_string(),
        "max.messages": PER_TASK.to_string(),
    });
    if eos {
        config["exactly.once.support"] = json!("required");
        config["transaction.boundary"] = json!("poll");
    }
    // Creating through the second worker: forwarded unless it leads.
    let r = write(
        &workers[1],
        "POST",
        "/connectors",
        Some(&json!({"name": "counter", "config": config})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["name"], "counter");
    // Every worker answers reads from its view of the config topic.
    for w in &workers {
        let names = wait_for(
            "the connector on every worker",
            Duration::from_secs(10),
            async || {
                let r = http(w.addr, "GET", "/connectors", None).await;
                (r.json() == json!(["counter"])).then_some(())
            },
        );
        names.await;
    }
    let owners = all_tasks(&workers[2], "RUNNING", &ids, "three RUNNING tasks").await;
    let spread: BTreeSet<&String> = owners.iter().collect();
    assert_eq!(
        spread.len(),
        3,
        "tasks spread over the three workers: {owners:?}"
    );

    // Let records flow, then kill the worker running task 0.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = ids.iter().position(|id| *id == owners[0]).unwrap();
    workers[victim].kill9();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let alive: Vec<String> = survivors.iter().map(|i| ids[*i].clone()).collect();
    let moved = all_tasks(
        &workers[survivors[0]],
        "RUNNING",
        &alive,
        "the killed worker's task on a survivor",
    )
    .await;
    eprintln!(
        "[{mode}] tasks moved off the killed worker in {:?}: {moved:?}",
        killed_at.elapsed()
    );
    if !eager {
        // Incremental cooperative: the survivors' tasks stayed where they were.
        for (before, after) in owners.iter().zip(&moved) {
            if *before != ids[victim] {
                assert_eq!(before, after, "{owners:?} → {moved:?}");
            }
        }
    }

    // A write through each survivor: at least one of them does not lead.
    let r = write(
        &workers[survivors[0]],
        "PUT",
        "/connectors/counter/pause",
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    all_tasks(&workers[survivors[1]], "PAUSED", &alive, "paused tasks").await;
    let r = write(
        &workers[survivors[1]],
        "PUT",
        "/connectors/counter/resume",
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    all_tasks(&workers[survivors[0]], "RUNNING", &alive, "resumed tasks").await;

    // Stop every worker and start three new ones: they resume from the committed offsets.
    for i in &survivors {
        workers[*i].terminate();
    }
    let mut fresh: Vec<WorkerProc> = (3..6)
        .map(|i| WorkerProc::start(dir.path(), &format!("w{i}"), &props))
        .collect();
    let fresh_ids: Vec<String> = fresh.iter().map(WorkerProc::id).collect();
    // As the new workers join one by one, the tasks end up one on each.
    wait_for(
        "tasks spread over the new workers",
        Duration::from_secs(30),
        async || {
            let t = task_states(&fresh[0]).await?;
            let owners: BTreeSet<&String> = t.iter().map(|(_, id)| id).collect();
            (t.iter()
                .all(|(s, id)| s == "RUNNING" && fresh_ids.contains(id))
                && owners.len() == 3)
                .then_some(())
        },
    )
    .await;

    let records = read_until(
        &b,
        TOPIC,
        PARTITIONS,
        eos,
        Duration::from_secs(60),
        complete,
    )
    .await;
    let (lost, dups) = lost_and_duplicated(&records);
    eprintln!(
        "[{mode}] {} records read (read_committed: {eos}) for {} expected: {lost} lost, {dups} duplicated",
        records.len(),
        TASKS as i64 * PER_TASK
    );
    if eos {
        // What read_uncommitted sees besides: records of transactions the kill aborted.
        let raw = read_until(&b, TOPIC, PARTITIONS, false, Duration::from_secs(10), |r| {
            r.len() >= records.len()
        })
        .await;
        let (raw_lost, raw_dups) = lost_and_duplicated(&raw);
        eprintln!(
            "[{mode}] read_uncommitted: {} records, {raw_lost} lost, {raw_dups} duplicated (aborted)",
            raw.len()
        );
        assert_eq!(raw_lost, 0);
    }
    assert_eq!(lost, 0, "every source record arrives");
    if eos {
        assert_eq!(dups, 0, "exactly once");
    } else {
        // At least once: only what the killed worker sent after its last offset commit
        // (offset.flush.interval.ms = 300 ms) comes again; two seconds of one task bound it
        // (a loaded machine delays commits).
        assert!(dups <= 2 * THROUGHPUT, "{dups} duplicates");
    }
    // The committed offsets are at each task's last record.
    let r = http(fresh[1].addr, "GET", "/connectors/counter/offsets", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut committed: Vec<(i64, i64)> = r.json()["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"]["id"].as_i64().unwrap(),
                o["offset"]["seqno"].as_i64().unwrap(),
            )
        })
        .collect();
    committed.sort();
    let want: Vec<(i64, i64)> = (0..TASKS as i64).map(|t| (t, PER_TASK - 1)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = http(fresh[1].addr, "GET", "/connectors/counter/offsets", None).await;
        committed = r.json()["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["partition"]["id"].as_i64().unwrap(),
                    o["offset"]["seqno"].as_i64().unwrap(),
                )
            })
            .collect();
        committed.sort();
    }
    assert_eq!(committed, want);

    // Restarting every worker after the end re-reads nothing.
    for w in &mut fresh {
        w.terminate();
    }
    let last: Vec<WorkerProc> = (6..9)
        .map(|i| WorkerProc::start(dir.path(), &format!("w{i}"), &props))
        .collect();
    let last_ids: Vec<String> = last.iter().map(WorkerProc::id).collect();
    all_tasks(
        &last[2],
        "RUNNING",
        &last_ids,
        "tasks after the last restart",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let again = read_until(&b, TOPIC, PARTITIONS, eos, Duration::from_secs(5), |r| {
        r.len() >= records.len()
    })
    .await;
    assert_eq!(
        again.len(),
        records.len(),
        "no record is produced again after a restart at the end"
    );
    eprintln!("[{mode}] scenario took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_at_least_once_survive_a_kill_and_a_full_restart() {
    scenario(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_exactly_once_survive_a_kill_and_a_full_restart() {
    scenario(true, false).await;
}
