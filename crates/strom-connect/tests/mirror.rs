//! MirrorMaker 2's job with two real Strom brokers: the mirror source copies a topic with
//! its partition count and configs, every record equal (partition, offset order, key, value,
//! headers, timestamp); a topic created later is picked up; a config changed later follows;
//! the checkpoint connector translates a consumer group's committed offsets and commits them
//! on the target, where a consumer of that group resumes without losing a record; the
//! heartbeat connector writes MM2's heartbeats; a restarted mirror resumes from its committed
//! source offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_connect::config::parse_properties;
use strom_connect::mirror::wire::{Checkpoint, Heartbeat};
use strom_connect::standalone::Standalone;

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 100;
/// The group's committed position on the source, per partition.
const COMMITTED: i64 = 45;
const LAG_MAX: i64 = 10;

async fn create_with_config(b: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    let mut nt = NewTopic::new(name, partitions, 1);
    nt.configs = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (n, r) in admin.create_topics(&[nt], false).await.unwrap() {
        r.unwrap_or_else(|e| panic!("create {n}: {e}"));
    }
    wait_for("leaders", Duration::from_secs(10), async || {
        let t = admin.describe_topics(&[name.to_owned()]).await.ok()?;
        (t[0].partitions.len() == partitions as usize
            && t[0].partitions.iter().all(|p| p.leader >= 0))
        .then_some(())
    })
    .await;
}

/// Records `range` of each partition: keyed, with headers (a binary one, a null one, a repeated
/// key) and set timestamps; one tombstone and one null key.
async fn produce(b: &str, topic: &str, partitions: i32, range: std::ops::Range<i64>) {
    let producer = Producer::new(ProducerConfig::new(b)).await.unwrap();
    let mut acks = Vec::new();
    for p in 0..partitions {
        for i in range.clone() {
            let mut r = ProducerRecord::new(topic)
                .partition(p)
                .timestamp(1_600_000_000_000 + i * 1000 + i64::from(p))
                .header("trace", Some(Bytes::from(format!("t-{p}-{i}"))))
                .header("bin", Some(Bytes::from(vec![0xff, 0x00, p as u8, i as u8])))
                .header("none", None)
                .header("trace", Some(Bytes::from_static(b"again")));
            if i != 7 {
                r = r.key(format!("k-{p}-{i}"));
            }
            if i != 13 {
                r = r.value(format!("v-{p}-{i}"));
            }
            acks.push(producer.send(r).await.unwrap());
        }
    }
    for a in acks {
        a.await.unwrap();
    }
    producer.close().await;
}

type Row = (
    i32,
    i64,
    Option<Bytes>,
    Option<Bytes>,
    Vec<(String, Option<Bytes>)>,
    i64,
);

fn rows(records: &[ConsumerRecord]) -> Vec<Row> {
    let mut out: Vec<Row> = records
        .iter()
        .map(|r| {
            (
                r.partition,
                r.offset,
                r.key.clone(),
                r.value.clone(),
                r.headers.clone(),
                r.timestamp,
            )
        })
        .collect();
    out.sort_by_key(|r| (r.0, r.1));
    out
}

async fn topic_config(b: &str, topic: &str, key: &str) -> Option<String> {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    admin
        .describe_configs(
            &ConfigResource::Topic(topic.to_owned()),
            Some(&[key.to_owned()]),
        )
        .await
        .ok()?
        .into_iter()
        .find(|e| e.name == key)
        .and_then(|e| e.value)
}

async fn partitions_of(b: &str, topic: &str) -> Option<usize> {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    let t = admin.describe_topics(&[topic.to_owned()]).await.ok()?;
    Some(t[0].partitions.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_topics_and_fails_a_group_over() {
    let source = Broker::start();
    let target = Broker::start();
    let (src, tgt) = (source.bootstrap(), target.bootstrap());

    create_with_config(&src, "orders", PARTITIONS, &[("retention.ms", "3600000")]).await;
    produce(&src, "orders", PARTITIONS, 0..PER_PARTITION).await;
    // Not mirrored: excluded by `topics` and by MM2's default internal-topic rule.
    create_topic(&src, "other", 1).await;
    create_topic(&src, "orders.internal", 1).await;

    // The group "app" read part of each partition on the source and committed.
    let mut cc = ConsumerConfig::new(&src);
    cc.set("group.id", "app").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    let commit: BTreeMap<TopicPartition, i64> = (0..PARTITIONS)
        .map(|p| (TopicPartition::new("orders", p), COMMITTED))
        .collect();
    c.commit_offsets(&commit).await.unwrap();
    c.close().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let worker = parse_properties(&format!(
        "bootstrap.servers={tgt}\n\
         key.converter=org.apache.kafka.connect.converters.ByteArrayConverter\n\
         value.converter=org.apache.kafka.connect.converters.ByteArrayConverter\n\
         offset.storage.file.filename={}\n\
         offset.flush.interval.ms=200\n\
         listeners=http://127.0.0.1:{}\n",
        dir.path().join("offsets").display(),
        free_port()
    ));
    let common = format!(
        "source.cluster.alias=east\ntarget.cluster.alias=west\n\
         source.cluster.bootstrap.servers={src}\ntarget.cluster.bootstrap.servers={tgt}\n\
         topics=orders.*, late\n"
    );
    let mirror = parse_properties(&format!(
        "name=mirror\nconnector.class=org.apache.kafka.connect.mirror.MirrorSourceConnector\n\
         tasks.max=2\n{common}refresh.topics.interval.seconds=1\n\
         sync.topic.configs.interval.seconds=1\noffset.lag.max={LAG_MAX}\n"
    ));
    let checkpoints = parse_properties(&format!(
        "name=checkpoints\nconnector.class=MirrorCheckpointConnector\ntasks.max=1\n{common}\
         groups=app\nemit.checkpoints.interval.seconds=1\nrefresh.groups.interval.seconds=1\n\
         sync.group.offsets.enabled=true\nsync.group.offsets.interval.seconds=1\n"
    ));
    let heartbeats = parse_properties(&format!(
        "name=heartbeats\nconnector.class=MirrorHeartbeat\n{common}emit.heartbeats.interval.seconds=1\n"
    ));
    let (worker_again, mirror_again) = (worker.clone(), mirror.clone());
    let running = Standalone::start(worker, vec![mirror, checkpoints, heartbeats], None)
        .await
        .unwrap();

    // The topic, its partition count and its config.
    wait_for("east.orders", Duration::from_secs(20), async || {
        (partitions_of(&tgt, "east.orders").await? == PARTITIONS as usize).then_some(())
    })
    .await;
    assert_eq!(
        topic_config(&tgt, "east.orders", "retention.ms")
            .await
            .as_deref(),
        Some("3600000")
    );
    let total = (PARTITIONS as i64 * PER_PARTITION) as usize;
    let want = rows(&read_topic(&src, "orders", PARTITIONS, total, Duration::from_secs(10)).await);
    assert_eq!(want.len(), total);
    let got = rows(
        &read_topic(
            &tgt,
            "east.orders",
            PARTITIONS,
            total,
            Duration::from_secs(30),
        )
        .await,
    );
    assert_eq!(got.len(), total, "every record once");
    assert!(
        got == want,
        "records differ: first target {:?}, first source {:?}",
        got.first(),
        want.first()
    );
    assert_eq!(partitions_of(&tgt, "east.other").await, None);
    assert_eq!(partitions_of(&tgt, "east.orders.internal").await, None);

    // A topic created later is picked up; a config changed later follows.
    create_with_config(&src, "late", 2, &[("retention.bytes", "1048576")]).await;
    produce(&src, "late", 2, 0..20).await;
    let want = rows(&read_topic(&src, "late", 2, 40, Duration::from_secs(10)).await);
    let got = rows(&read_topic(&tgt, "east.late", 2, 40, Duration::from_secs(30)).await);
    if got.len() != 40 {
        let st = http(running.addr, "GET", "/connectors/mirror/status", None).await;
        panic!("{} of 40 records mirrored; status {}", got.len(), st.body);
    }
    assert!(got == want, "records of the late topic differ");
    assert_eq!(
        topic_config(&tgt, "east.late", "retention.bytes")
            .await
            .as_deref(),
        Some("1048576")
    );
    Admin::new(ClientConfig::new(&src))
        .await
        .unwrap()
        .alter_configs(
            &ConfigResource::Topic("orders".into()),
            &[("retention.ms".into(), AlterOp::Set, Some("7200000".into()))],
        )
        .await
        .unwrap();
    wait_for("the config change", Duration::from_secs(20), async || {
        (topic_config(&tgt, "east.orders", "retention.ms")
            .await
            .as_deref()
            == Some("7200000"))
        .then_some(())
    })
    .await;

    // The group's offsets arrive translated on the target (within the sync distance).
    let admin = Admin::new(ClientConfig::new(&tgt)).await.unwrap();
    let synced = wait_for(
        "the group's offsets on the target",
        Duration::from_secs(30),
        async || {
            let o = admin.list_group_offsets("app").await.ok()?;
            let per: Vec<i64> = (0..PARTITIONS)
                .map(|p| {
                    o.get(&TopicPartition::new("east.orders", p))
                        .map_or(-1, |c| c.offset)
                })
                .collect();
            per.iter().all(|&x| x > COMMITTED - LAG_MAX).then_some(per)
        },
    )
    .await;
    assert!(
        synced.iter().all(|&x| x <= COMMITTED),
        "never ahead: {synced:?}"
    );

    // The checkpoints say the same, in MM2's format.
    let cps = read_topic(
        &tgt,
        "east.checkpoints.internal",
        1,
        3,
        Duration::from_secs(10),
    )
    .await;
    let mut latest: BTreeMap<i32, Checkpoint> = BTreeMap::new();
    for r in &cps {
        let cp =
            Checkpoint::decode(r.key.as_deref().unwrap(), r.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            (cp.group.as_str(), cp.topic.as_str(), cp.upstream),
            ("app", "east.orders", COMMITTED)
        );
        latest.insert(cp.partition, cp);
    }
    let from_checkpoints: Vec<i64> = latest.values().map(|c| c.downstream).collect();
    assert_eq!(from_checkpoints, synced);

    // The group fails over: a consumer of "app" on the target resumes without loss.
    let mut cc = ConsumerConfig::new(&tgt);
    cc.set("group.id", "app").unwrap();
    cc.set("fetch.max.wait.ms", "100").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.subscribe(&["east.orders"], None).unwrap();
    let mut seen = Vec::new();
    let need = (PARTITIONS as i64 * (PER_PARTITION - COMMITTED)) as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut quiet = 0;
    while std::time::Instant::now() < deadline && quiet < 3 {
        let batch = c.poll(Duration::from_millis(300)).await.unwrap();
        if batch.is_empty() && seen.len() >= need {
            quiet += 1;
        }
        seen.extend(batch);
    }
    c.close().await.unwrap();
    let mut lost = 0;
    for p in 0..PARTITIONS {
        let offs: BTreeSet<i64> = seen
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        lost += (COMMITTED..PER_PARTITION)
            .filter(|o| !offs.contains(o))
            .count();
    }
    let duplicates = seen.iter().filter(|r| r.offset < COMMITTED).count();
    eprintln!(
        "failover: {} records read, lost {lost}, duplicates {duplicates} (offset.lag.max={LAG_MAX}, target offsets {synced:?})",
        seen.len()
    );
    assert_eq!(lost, 0, "records lost in the failover");
    assert_eq!(
        seen.len(),
        need + duplicates,
        "each record once past the translation"
    );
    assert!(duplicates as i64 <= PARTITIONS as i64 * LAG_MAX);

    // Heartbeats of the path east → west, in MM2's format, one a second.
    let hbs = read_topic(&tgt, "heartbeats", 1, 3, Duration::from_secs(10)).await;
    assert!(hbs.len() >= 3, "{} heartbeats", hbs.len());
    let decoded: Vec<Heartbeat> = hbs
        .iter()
        .map(|r| Heartbeat::decode(r.key.as_deref().unwrap(), r.value.as_deref().unwrap()).unwrap())
        .collect();
    assert!(decoded
        .iter()
        .all(|h| (h.source.as_str(), h.target.as_str()) == ("east", "west")));
    assert!(decoded.windows(2).all(|w| w[0].timestamp < w[1].timestamp));

    // A clean stop commits the source offsets; after a restart the mirror goes on from
    // them: the records produced meanwhile arrive, none twice.
    running.stop().await;
    produce(
        &src,
        "orders",
        PARTITIONS,
        PER_PARTITION..PER_PARTITION + 10,
    )
    .await;
    let mut worker = worker_again;
    worker.insert(
        "listeners".into(),
        format!("http://127.0.0.1:{}", free_port()),
    );
    let running = Standalone::start(worker, vec![mirror_again], None)
        .await
        .unwrap();
    let total = (PARTITIONS as i64 * (PER_PARTITION + 10)) as usize;
    let want = rows(&read_topic(&src, "orders", PARTITIONS, total, Duration::from_secs(10)).await);
    let got = rows(
        &read_topic(
            &tgt,
            "east.orders",
            PARTITIONS,
            total,
            Duration::from_secs(30),
        )
        .await,
    );
    assert_eq!(got.len(), total, "each record once after the restart");
    assert!(got == want, "records differ after the restart");
    running.stop().await;
}
