//! kill -9 under load: with the durable settings (`log.flush.interval.messages=1`, fsync on
//! every append; `log.flush.before.ack.enable=true`, group commit), every acknowledged message
//! is there after a restart. The checker counts acknowledged messages missing afterwards.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{consume, create_topic, producer, Server};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    kill_9_under_load(&[("log.flush.interval.messages", "1")], "all", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_keeps_every_acknowledged_message_across_kill_9_with_acks_1() {
    kill_9_under_load(&[("log.flush.before.ack.enable", "true")], "1", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_keeps_every_acknowledged_message_across_kill_9_with_acks_all() {
    kill_9_under_load(&[("log.flush.before.ack.enable", "true")], "all", 4).await;
}

/// Producers on `partitions` partitions with `acks`, the broker killed in the middle; after a
/// restart every acknowledged message is read back.
async fn kill_9_under_load(durable: &[(&str, &str)], acks: &str, partitions: u32) {
    let mut settings = vec![("log.segment.bytes", "1048576")];
    settings.extend_from_slice(durable);
    let mut server = Server::start(&settings);
    let b = server.bootstrap();
    create_topic(&b, "crash", partitions as i32, &[]).await;
    let p = producer(
        &b,
        &[
            ("acks", acks),
            ("message.timeout.ms", "3000"),
            ("retries", "0"),
            ("enable.idempotence", "false"),
        ],
    );
    let acked: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..4u32 {
        let p = p.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(6) {
                let value = format!("{i:010}-{}", "p".repeat(300));
                let record: FutureRecord<'_, str, str> = FutureRecord::to("crash")
                    .partition((i % partitions) as i32)
                    .payload(&value);
                match p.send(record, Duration::from_secs(3)).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(i);
                    }
                    Err(_) => return,
                }
                i += 4;
            }
        }));
    }
    // Let the load run, then crash the broker in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load ran before the crash ({} acked)",
        acked.len()
    );
    server.restart();
    let consumer = common::consumer(&b, &[]);
    let mut total = 0;
    for partition in 0..partitions as i32 {
        let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
            &consumer,
            "crash",
            partition,
            Duration::from_secs(10),
        )
        .unwrap();
        total += high as usize;
    }
    assert!(
        total >= acked.len(),
        "log end offsets {total} < {} acknowledged",
        acked.len()
    );
    let all: Vec<i32> = (0..partitions as i32).collect();
    let got = consume(
        &b,
        "crash",
        &all,
        Offset::Beginning,
        total,
        Duration::from_secs(30),
        &[],
    );
    let present: HashSet<u32> = got
        .iter()
        .map(|r| {
            let v = r.value.as_ref().unwrap();
            std::str::from_utf8(&v[..10]).unwrap().parse().unwrap()
        })
        .collect();
    let missing: Vec<&u32> = acked.iter().filter(|i| !present.contains(i)).collect();
    eprintln!(
        "{durable:?} acks={acks}: {} acknowledged before kill -9, {} lost",
        acked.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // And the log takes appends again after recovery.
    let p = producer(&b, &[("acks", "all")]);
    let record: FutureRecord<'_, str, str> =
        FutureRecord::to("crash").partition(0).payload("after");
    p.send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}
