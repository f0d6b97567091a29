//! strom-client consumer groups against the real broker's coordinator: two members split a
//! topic with the range and the cooperative-sticky assignors, rebalance callbacks fire,
//! auto-commit stores positions, and a member leaving hands its partitions over.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{create_topic, Server};
use strom_client::consumer::RebalanceListener;
use strom_client::{
    Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Log {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("revoked {}", p.len()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("assigned {}", p.len()));
    }
}

fn config(b: &str, group: &str, strategy: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(b);
    for (k, v) in [
        ("group.id", group),
        ("partition.assignment.strategy", strategy),
        ("auto.offset.reset", "earliest"),
        ("fetch.max.wait.ms", "100"),
        ("heartbeat.interval.ms", "200"),
        ("session.timeout.ms", "6000"),
        ("auto.commit.interval.ms", "100"),
    ] {
        c.set(k, v).unwrap();
    }
    c
}

async fn produce(b: &str, topic: &str, n: usize) {
    let p = Producer::new(ProducerConfig::new(b)).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(topic)
            .key(format!("k{i}"))
            .value(format!("v{i}"));
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    p.close().await;
}

type Seen = Arc<Mutex<std::collections::HashSet<(i32, i64)>>>;

/// Polls a consumer in its own task (a member blocked in JoinGroup must not stall the other)
/// until `stop` is set; returns it.
fn spawn_member(
    mut c: Consumer,
    seen: Seen,
    stop: Arc<std::sync::atomic::AtomicBool>,
    owned: Arc<Mutex<usize>>,
) -> tokio::task::JoinHandle<Consumer> {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            for r in c.poll(Duration::from_millis(100)).await.unwrap() {
                seen.lock().unwrap().insert((r.partition, r.offset));
            }
            *owned.lock().unwrap() = c.assignment().len();
        }
        c
    })
}

/// Runs both members until together they read `n` records and own two partitions each.
async fn run_pair(a: Consumer, b: Consumer, n: usize) -> (Consumer, Consumer, usize) {
    let seen: Seen = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (oa, ob) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let ha = spawn_member(a, seen.clone(), stop.clone(), oa.clone());
    let hb = spawn_member(b, seen.clone(), stop.clone(), ob.clone());
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (read, na, nb) = (
            seen.lock().unwrap().len(),
            *oa.lock().unwrap(),
            *ob.lock().unwrap(),
        );
        if read >= n && na == 2 && nb == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group stuck: {read} records, {na} + {nb} partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let read = seen.lock().unwrap().len();
    (ha.await.unwrap(), hb.await.unwrap(), read)
}

async fn two_members(strategy: &str) {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let topic = format!("grp-{strategy}");
    create_topic(&b, &topic, 4, &[]).await;
    produce(&b, &topic, 400).await;
    let group = format!("g-{strategy}");
    let (log_a, log_b) = (Log::default(), Log::default());
    let mut a = Consumer::new(config(&b, &group, strategy)).await.unwrap();
    a.subscribe(&[topic.as_str()], Some(Box::new(log_a.clone())))
        .unwrap();
    // a alone gets all four partitions.
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.assignment().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "first member never got its partitions"
        );
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    let mut bm = Consumer::new(config(&b, &group, strategy)).await.unwrap();
    bm.subscribe(&[topic.as_str()], Some(Box::new(log_b.clone())))
        .unwrap();
    let (mut a, mut bm, read) = run_pair(a, bm, 400).await;
    assert_eq!(read, 400);
    assert_eq!(
        a.assignment().len() + bm.assignment().len(),
        4,
        "{:?} {:?}",
        a.assignment(),
        bm.assignment()
    );
    assert_eq!(a.assignment().len(), 2);
    assert!(log_a
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("revoked")));
    assert!(log_b.0.lock().unwrap().iter().any(|e| e == "assigned 2"));
    a.commit().await.unwrap();
    bm.commit().await.unwrap();
    // b leaves: a takes everything back; committed offsets cover all 400 records.
    bm.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.assignment().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "partitions not handed back after leave"
        );
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    let all: Vec<TopicPartition> = (0..4)
        .map(|p| TopicPartition::new(topic.clone(), p))
        .collect();
    let committed = a.committed(&all).await.unwrap();
    assert_eq!(committed.values().sum::<i64>(), 400, "{committed:?}");
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_group_splits_and_rebalances() {
    two_members("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group_splits_and_rebalances() {
    two_members("cooperative-sticky").await;
}

/// A strom-client member and a librdkafka member share one group: each decodes the other's
/// ConsumerProtocol subscription and assignment, whoever leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strom_and_librdkafka_members_share_a_group() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "mixed", 4, &[]).await;
    produce(&b, "mixed", 200).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rd_owned = Arc::new(Mutex::new(0usize));
    let rd_thread = {
        let (b, stop, owned) = (b.clone(), stop.clone(), rd_owned.clone());
        std::thread::spawn(move || {
            let rd: BaseConsumer = common::client_config(&b)
                .set("group.id", "mixed-group")
                .set("partition.assignment.strategy", "range")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "200")
                .create()
                .unwrap();
            rd.subscribe(&["mixed"]).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let _ = rd.poll(Duration::from_millis(50));
                *owned.lock().unwrap() = rd.assignment().map(|a| a.count()).unwrap_or(0);
            }
            rd.unsubscribe();
        })
    };
    let mut ours = Consumer::new(config(&b, "mixed-group", "range"))
        .await
        .unwrap();
    ours.subscribe(&["mixed"], None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        ours.poll(Duration::from_millis(100)).await.unwrap();
        let theirs = *rd_owned.lock().unwrap();
        if ours.assignment().len() == 2 && theirs == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mixed group never split: strom {:?}, librdkafka {theirs}",
            ours.assignment()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    rd_thread.join().unwrap();
    ours.close().await.unwrap();
}

/// With `set_defer_rejoin`, a member that owns partitions learns of a rebalance from
/// `rebalance_pending`, gets no records until it calls `rejoin`, commits first, and only
/// then gives partitions up: the second member starts exactly at that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_rejoin_lets_a_member_commit_before_revocation() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let topic = "grp-deferred";
    create_topic(&b, topic, 2, &[]).await;
    produce(&b, topic, 100).await;
    let mut cfg = config(&b, "g-deferred", "range");
    cfg.set("enable.auto.commit", "false").unwrap();
    let log_a = Log::default();
    let mut a = Consumer::new(cfg.clone()).await.unwrap();
    a.set_defer_rejoin(true);
    a.subscribe(&[topic], Some(Box::new(log_a.clone())))
        .unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read < 100 {
        assert!(Instant::now() < deadline, "a read only {read}");
        read += a.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    assert_eq!(a.assignment().len(), 2);
    let mut second = Consumer::new(cfg).await.unwrap();
    second.subscribe(&[topic], None).unwrap();
    let joiner = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while second.assignment().is_empty() {
            assert!(Instant::now() < deadline, "second member never joined");
            second.poll(Duration::from_millis(100)).await.unwrap();
        }
        second
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.rebalance_pending() {
        assert!(Instant::now() < deadline, "no rebalance seen");
        assert!(a.poll(Duration::from_millis(100)).await.unwrap().is_empty());
    }
    // Still the owner: poll returns nothing and did not revoke.
    assert!(a.poll(Duration::from_millis(50)).await.unwrap().is_empty());
    assert_eq!(a.assignment().len(), 2);
    assert!(log_a
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|e| !e.starts_with("revoked")));
    let positions: std::collections::BTreeMap<TopicPartition, Option<i64>> = a
        .assignment()
        .into_iter()
        .map(|tp| {
            let p = a.position(&tp);
            (tp, p)
        })
        .collect();
    a.commit().await.unwrap();
    a.rejoin().await.unwrap();
    assert!(log_a
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("revoked")));
    let joiner = {
        // a keeps polling so the join round it started can finish.
        let mut h = joiner;
        loop {
            tokio::select! {
                r = &mut h => break r.unwrap(),
                _ = a.poll(Duration::from_millis(100)) => {
                    if a.rebalance_pending() { a.rejoin().await.unwrap(); }
                }
            }
        }
    };
    let tp = joiner.assignment()[0].clone();
    let committed = joiner.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed.get(&tp).copied(), positions[&tp]);
    a.close().await.unwrap();
}
