//! Throughput, restore and latency figures of strom-streams against a running broker:
//! a stateless pipeline and a windowed aggregation over N pre-produced records, the
//! restore of a count store's changelog after a kill, and end-to-end latency (produce to
//! consume through a stateless app) at a steady rate.
//!
//! ```sh
//! strom server &    # release build
//! cargo run --release -p strom-streams --example streams_bench -- 127.0.0.1:9092 1000000
//! ```

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_streams::{KafkaStreams, Materialized, StreamsBuilder, StreamsConfig, TimeWindows};

type Error = Box<dyn std::error::Error>;

async fn topics(b: &str, names: &[&str], partitions: i32) -> Result<(), Error> {
    let admin = Admin::new(ClientConfig::new(b)).await?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(*n, partitions, 1))
        .collect();
    for (_, r) in admin.create_topics(&new, false).await? {
        if let Err(e) = r {
            if e.code() != Some(strom_client::KafkaCode::TopicAlreadyExists) {
                return Err(e.into());
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

async fn produce(b: &str, topic: &str, n: u64, keys: u64) -> Result<(), Error> {
    let mut c = ProducerConfig::new(b);
    c.set("linger.ms", "5")?;
    c.set("batch.size", "262144")?;
    let p = Producer::new(c).await?;
    let value = vec![b'x'; 100];
    let mut acks = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(topic)
            .key(format!("k{}", i % keys))
            .value(value.clone())
            .timestamp(1_000_000 + i as i64);
        acks.push(p.send(rec).await?);
        if acks.len() >= 100_000 {
            for a in acks.drain(..) {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    p.close().await;
    Ok(())
}

fn config(b: &str, app: &str, dir: &std::path::Path) -> Result<StreamsConfig, Error> {
    let mut c = StreamsConfig::new(app, b);
    c.set("state.dir", &dir.display().to_string())?;
    c.set("commit.interval.ms", "1000")?;
    c.set("consumer.session.timeout.ms", "6000")?;
    c.set("consumer.heartbeat.interval.ms", "500")?;
    Ok(c)
}

/// Runs `app` until it processed `n` records; records/s from its first record on.
async fn throughput(mut app: KafkaStreams, n: u64) -> Result<(f64, KafkaStreams), Error> {
    app.start().await?;
    let m = app.metrics();
    while m.processed.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t0 = Instant::now();
    while m.processed.load(Ordering::Relaxed) < n {
        if let Some(e) = app.error() {
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((n as f64 / t0.elapsed().as_secs_f64(), app))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let b = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("streams-bench-{}", std::process::id()));
    let run = std::process::id();
    let (input, out1, out2) = (
        format!("bench-in-{run}"),
        format!("bench-stateless-{run}"),
        format!("bench-windowed-{run}"),
    );
    topics(&b, &[&input, &out1, &out2], 4).await?;
    let t = Instant::now();
    produce(&b, &input, n, 10_000).await?;
    println!(
        "produced {n} records of 100 B in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Stateless: filter + mapValues + to.
    let sb = StreamsBuilder::new();
    sb.stream::<String, Vec<u8>>(&input)
        .filter(|k, _| !k.ends_with('7'))
        .map_values(|_, mut v: Vec<u8>| {
            v.truncate(50);
            v
        })
        .to(&out1);
    let app = KafkaStreams::new(
        sb.build()?,
        config(&b, &format!("bench-stateless-{run}"), &dir)?,
    );
    let (rate, app) = throughput(app, n).await?;
    println!("stateless (filter, mapValues, to): {rate:.0} records/s");
    tokio::task::spawn_blocking(move || app.close()).await?;

    // Windowed: 1 s tumbling counts per key (10 000 keys), redb store with changelog.
    let sb = StreamsBuilder::new();
    sb.stream::<String, Vec<u8>>(&input)
        .group_by_key()
        .windowed_by(TimeWindows::of_size(1_000).grace(500))
        .count(Materialized::persistent("bench-windows"))?
        .to_stream()
        .to(&out2);
    let app = KafkaStreams::new(
        sb.build()?,
        config(&b, &format!("bench-windowed-{run}"), &dir)?,
    );
    let (rate, app) = throughput(app, n).await?;
    println!("windowed count (1 s tumbling, persistent store, changelog): {rate:.0} records/s");
    tokio::task::spawn_blocking(move || app.close()).await?;

    // Restore: a count store over unique keys (changelog of n records), killed, restored.
    let restore_app = format!("bench-restore-{run}");
    let build = |input: &str| -> Result<strom_streams::Topology, Error> {
        let sb = StreamsBuilder::new();
        sb.stream::<String, Vec<u8>>(input)
            .map_values(|_, v: Vec<u8>| v)
            .group_by_key()
            .reduce(|_, v| v, Materialized::persistent("bench-latest"))?;
        Ok(sb.build()?)
    };
    let unique = format!("bench-unique-{run}");
    topics(&b, &[&unique], 4).await?;
    produce(&b, &unique, n, n).await?;
    let app = KafkaStreams::new(build(&unique)?, config(&b, &restore_app, &dir.join("a"))?);
    let (_, app) = throughput(app, n).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await; // a commit
    tokio::task::spawn_blocking(move || app.kill()).await?;
    let mut app = KafkaStreams::new(build(&unique)?, config(&b, &restore_app, &dir.join("b"))?);
    app.start().await?;
    while app.metrics().tasks_created.load(Ordering::Relaxed) < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restored = app.metrics().restored_records.load(Ordering::Relaxed);
    let ms = app.metrics().restore_ms.load(Ordering::Relaxed);
    let bytes = restored as f64 * (100.0 + 7.0);
    println!(
        "restore: {restored} changelog records ({:.1} MB of keys and values) in {ms} ms = {:.1} s per GB",
        bytes / 1e6,
        ms as f64 / 1000.0 / (bytes / 1e9)
    );
    tokio::task::spawn_blocking(move || app.close()).await?;

    // Latency: 2000 records/s for 10 s through the stateless app, produce to consume.
    let (lin, lout) = (format!("lat-in-{run}"), format!("lat-out-{run}"));
    topics(&b, &[&lin, &lout], 4).await?;
    let sb = StreamsBuilder::new();
    sb.stream::<String, Vec<u8>>(&lin)
        .map_values(|_, v: Vec<u8>| v)
        .to(&lout);
    let mut c = config(&b, &format!("bench-latency-{run}"), &dir)?;
    c.set("producer.linger.ms", "0")?;
    c.set("consumer.fetch.max.wait.ms", "100")?;
    let mut app = KafkaStreams::new(sb.build()?, c);
    app.start().await?;
    let mut cc = ConsumerConfig::new(&b);
    cc.set("fetch.max.wait.ms", "100")?;
    let mut consumer = Consumer::new(cc).await?;
    consumer.assign(
        &(0..4)
            .map(|p| TopicPartition::new(lout.clone(), p))
            .collect::<Vec<_>>(),
    );
    consumer.seek_to_end().await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // group joined
    let bp = b.clone();
    let lin2 = lin.clone();
    let sender = tokio::spawn(async move {
        let mut pc = ProducerConfig::new(&bp);
        pc.set("linger.ms", "0").ok();
        let p = Producer::new(pc).await.expect("producer");
        let mut tick = tokio::time::interval(Duration::from_micros(500));
        for i in 0..20_000u64 {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let rec = ProducerRecord::new(lin2.as_str())
                .key(format!("k{}", i % 100))
                .value(now.to_be_bytes().to_vec());
            let _ = p.send(rec).await;
        }
        p.flush().await;
    });
    let mut lat = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while lat.len() < 20_000 && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(100)).await? {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            if let Some(v) = r.value.as_deref().and_then(|v| <[u8; 8]>::try_from(v).ok()) {
                lat.push(now - i64::from_be_bytes(v));
            }
        }
    }
    sender.await?;
    lat.sort_unstable();
    if !lat.is_empty() {
        let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
        println!(
            "latency produce->stream->consume at 2000 records/s ({} records): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            q(0.50),
            q(0.99),
            q(1.0)
        );
    }
    tokio::task::spawn_blocking(move || app.close()).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
