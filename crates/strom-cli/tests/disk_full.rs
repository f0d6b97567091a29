//! Disk full (issue 9): the real broker with its data on a small tmpfs that the test mounts.
//! Producing until the filesystem is full gets KAFKA_STORAGE_ERROR, never a torn batch or a
//! crash; consumers keep reading everything acknowledged; once space is freed the broker takes
//! writes again without a restart, and after a restart nothing acknowledged is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::Wire;
use common::{consume, create_topic, Server};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use strom_protocol::record_batch::builder::BatchBuilder;

const KAFKA_STORAGE_ERROR: i16 = 56;
const TOPIC: &str = "fills-the-disk";
const VALUE_BYTES: usize = 64 * 1024;
const LATE: &str = "created-while-full";

/// A tmpfs mounted on a temporary directory for the test's lifetime (the tests run as root,
/// as CI does); unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} ({status}): the disk-full test needs root (CI runs as root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// One record whose value is `index` repeated: its content is checked after the disk filled.
fn value(index: usize) -> Vec<u8> {
    let mut v = format!("{index:08}").into_bytes();
    v.resize(VALUE_BYTES, (index % 251) as u8);
    v
}

fn produce(wire: &mut Wire, index: usize) -> i16 {
    produce_to(wire, TOPIC, 0, index)
}

fn produce_to(wire: &mut Wire, topic: &str, partition: i32, index: usize) -> i16 {
    let mut batch = BatchBuilder::new(0);
    batch.push(None, Some(&value(index)), 1_700_000_000_000);
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(Bytes::from(batch.build())));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![data])]);
    let r: ProduceResponse = wire.call(ApiKey::Produce, 9, &req);
    r.responses[0].partition_responses[0].error_code
}

/// CreateTopics v7 of one topic; its error code.
fn create(wire: &mut Wire, topic: &str, partitions: i32) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let r: CreateTopicsResponse = wire.call(ApiKey::CreateTopics, 7, &req);
    r.topics[0].error_code
}

fn read_all(server: &Server, count: usize) {
    let got = consume(
        &server.bootstrap(),
        TOPIC,
        &[0],
        Offset::Beginning,
        count,
        Duration::from_secs(30),
        &[("fetch.max.bytes", "1048576")],
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert!(
            r.value.as_deref() == Some(&value(i)[..]),
            "record {i} differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_writes_keeps_reads_and_recovers_without_restart() {
    let fs = Tmpfs::mount("24m");
    // Space the test frees later, as an operator deleting old files would.
    let filler: PathBuf = fs.path().join("filler");
    std::fs::write(&filler, vec![7u8; 6 << 20]).unwrap();
    let data = fs.path().join("data");
    let mut server = Server::start(&[("log.dirs", &data.display().to_string())]);
    create_topic(
        &server.bootstrap(),
        TOPIC,
        1,
        &[("segment.bytes", "1048576")],
    )
    .await;

    let mut wire = Wire::connect(&server.bootstrap());
    let mut acked = 0usize;
    let code = loop {
        assert!(acked < 1000, "24 MiB never filled up");
        match produce(&mut wire, acked) {
            0 => acked += 1,
            code => break code,
        }
    };
    assert_eq!(code, KAFKA_STORAGE_ERROR, "after {acked} records");
    assert!(acked > 100, "only {acked} records fit");
    // Still full: still refused, and the broker is alive and serving reads.
    assert_eq!(produce(&mut wire, acked), KAFKA_STORAGE_ERROR);
    read_all(&server, acked);
    // A topic created now may be refused, or committed with logs that cannot be opened yet.
    let while_full = create(&mut wire, LATE, 4);

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match produce(&mut wire, acked) {
            0 => break,
            code => {
                assert_eq!(code, KAFKA_STORAGE_ERROR);
                assert!(Instant::now() < deadline, "writes did not resume");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    acked += 1;
    for _ in 0..10 {
        assert_eq!(produce(&mut wire, acked), 0);
        acked += 1;
    }
    read_all(&server, acked);

    // Either way, once space is back the topic becomes usable without a restart: created now
    // if it was refused, or (no other metadata change needed) its logs opened by the broker's
    // background retry.
    let created_now = (while_full != 0).then(|| create(&mut wire, LATE, 4));
    let deadline = Instant::now() + Duration::from_secs(15);
    while (0..4).any(|p| produce_to(&mut wire, LATE, p, 0) != 0) {
        assert!(
            Instant::now() < deadline,
            "{LATE} unusable after space returned (created while full: {while_full}, after: {created_now:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(wire);

    assert!(server.stop(), "clean shutdown after a full disk");
    server.restart();
    read_all(&server, acked);
}
