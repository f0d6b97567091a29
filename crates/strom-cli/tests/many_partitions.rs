//! Many partitions under a small open-files bound (issue 20): segment files open lazily and
//! close when the bound (`log.open.files.max`) is reached, so a few hundred partitions, each
//! with several segments, produce, fetch, survive kill -9 and recover with the broker's
//! descriptors staying under the bound plus its sockets and metadata files.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{consume, create_topic, producer, Server};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

const TOPICS: usize = 3;
const PARTITIONS: i32 = 100;
const RECORDS: usize = 12;
const OPEN_FILES_MAX: usize = 16;
/// Descriptors the broker holds besides segment files: listener, epoll and event fds, the
/// metadata log, the data-dir locks, stdio, and a few client connections.
const FIXED_FDS: usize = 48;

fn topic(t: usize) -> String {
    format!("many-{t}")
}

fn value(t: usize, p: i32, i: usize) -> String {
    format!("{}-{p:03}-{i:02}-{}", topic(t), "v".repeat(90))
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("the broker's /proc entry")
        .count()
}

/// Every partition's records, in offset order, as (offset, value).
fn read_all(b: &str, upto: usize) -> BTreeMap<(usize, i32), Vec<(i64, String)>> {
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let mut out: BTreeMap<(usize, i32), Vec<(i64, String)>> = BTreeMap::new();
    for t in 0..TOPICS {
        let got = consume(
            b,
            &topic(t),
            &all,
            Offset::Beginning,
            PARTITIONS as usize * upto,
            Duration::from_secs(60),
            &[],
        );
        for r in got {
            let v = String::from_utf8(r.value.expect("a value")).unwrap();
            out.entry((t, r.partition)).or_default().push((r.offset, v));
        }
    }
    for records in out.values_mut() {
        records.sort();
    }
    out
}

fn expected(upto: usize) -> BTreeMap<(usize, i32), Vec<(i64, String)>> {
    let mut out = BTreeMap::new();
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            let records = (0..upto).map(|i| (i as i64, value(t, p, i))).collect();
            out.insert((t, p), records);
        }
    }
    out
}

async fn produce(b: &str, range: std::ops::Range<usize>) {
    let p = producer(b, &[("acks", "all"), ("linger.ms", "5")]);
    for i in range {
        let mut sends = Vec::new();
        for t in 0..TOPICS {
            for part in 0..PARTITIONS {
                let (p, name, v) = (p.clone(), topic(t), value(t, part, i));
                sends.push(tokio::spawn(async move {
                    let record: FutureRecord<'_, str, str> =
                        FutureRecord::to(&name).partition(part).payload(&v);
                    p.send(record, Duration::from_secs(30))
                        .await
                        .map_err(|(e, _)| e)
                        .expect("acknowledged")
                }));
            }
        }
        // One record per partition per round, so offsets follow the rounds.
        for send in sends {
            let delivery = send.await.unwrap();
            assert_eq!(delivery.offset, i as i64);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_partitions_under_a_small_open_files_bound_survive_kill_9() {
    let bound = OPEN_FILES_MAX.to_string();
    let mut server = Server::start(&[("log.open.files.max", bound.as_str())]);
    let b = server.bootstrap();
    for t in 0..TOPICS {
        // An index entry per batch and a roll every third one: several segments each.
        let configs = [("index.interval.bytes", "0"), ("segment.index.bytes", "24")];
        create_topic(&b, &topic(t), PARTITIONS, &configs).await;
    }
    produce(&b, 0..RECORDS - 2).await;
    let fds = open_fds(&server);
    assert!(
        fds <= OPEN_FILES_MAX + FIXED_FDS,
        "{fds} descriptors open for {} partitions",
        TOPICS * PARTITIONS as usize
    );
    assert_eq!(read_all(&b, RECORDS - 2), expected(RECORDS - 2));

    // A crash: every acknowledged record is there after recovery, and the recovered logs
    // take appends at the right offsets.
    server.kill9();
    server.restart();
    assert_eq!(read_all(&b, RECORDS - 2), expected(RECORDS - 2));
    produce(&b, RECORDS - 2..RECORDS).await;
    assert_eq!(read_all(&b, RECORDS), expected(RECORDS));
    let fds = open_fds(&server);
    assert!(
        fds <= OPEN_FILES_MAX + FIXED_FDS,
        "{fds} descriptors open after recovery"
    );

    // A clean stop and start trusts the files (the log dir's marker) and reads the same.
    assert!(server.stop(), "clean shutdown");
    server.restart();
    assert_eq!(read_all(&b, RECORDS), expected(RECORDS));
}
