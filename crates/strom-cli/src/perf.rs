//! `strom perf produce|consume`, in the spirit of kafka-producer-perf-test and
//! kafka-consumer-perf-test, on strom-client: fixed-size records at a target rate (or as
//! fast as possible), throughput and send-to-ack latency percentiles from an HdrHistogram.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde_json::json;
use strom_client::{
    Admin, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::sync::mpsc;

use crate::output::{block_on, ConnArgs, Format, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct PerfArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: PerfCmd,
}

#[derive(Debug, clap::Subcommand)]
enum PerfCmd {
    /// Produce fixed-size records and report throughput and latency.
    Produce(ProduceOpts),
    /// Read records from the beginning and report throughput.
    Consume(ConsumeOpts),
}

#[derive(Debug, clap::Args)]
struct ProduceOpts {
    #[arg(long)]
    topic: String,
    /// Records to send (all producers together); ignored with --duration-secs.
    #[arg(long = "num-records", default_value_t = 1_000_000)]
    num_records: u64,
    /// Run for this long instead of a fixed count.
    #[arg(long = "duration-secs")]
    duration_secs: Option<u64>,
    #[arg(long = "record-size", default_value_t = 100)]
    record_size: usize,
    /// Target records/s over all producers; -1 = as fast as possible.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    throughput: i64,
    #[arg(long, default_value = "1")]
    acks: String,
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long = "batch-size", default_value_t = 262_144)]
    batch_size: usize,
    #[arg(long = "linger-ms", default_value_t = 5)]
    linger_ms: u64,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Independent producers, each with its own connections.
    #[arg(long, default_value_t = 1)]
    producers: usize,
}

#[derive(Debug, clap::Args)]
struct ConsumeOpts {
    #[arg(long)]
    topic: String,
    /// Records to read before stopping.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Read as this group (subscribe) instead of assigning every partition.
    #[arg(long)]
    group: Option<String>,
    /// Give up after this long without a record.
    #[arg(long = "timeout-ms", default_value_t = 10_000)]
    timeout_ms: u64,
}

pub(crate) fn run(args: PerfArgs) -> Result<()> {
    let conn = args.conn;
    block_on(async move {
        match args.command {
            PerfCmd::Produce(o) => produce(&conn, o).await,
            PerfCmd::Consume(o) => consume(&conn, o).await,
        }
    })
}

struct Stats {
    records: u64,
    bytes: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

async fn produce(conn: &ConnArgs, o: ProduceOpts) -> Result<()> {
    if o.producers == 0 {
        bail!("--producers must be at least 1");
    }
    let admin = Admin::new(conn.client_config()?).await?;
    for (_, r) in admin
        .create_topics(&[NewTopic::new(o.topic.clone(), o.partitions, -1)], false)
        .await?
    {
        if let Err(e) = r {
            if e.code() != Some(strom_client::KafkaCode::TopicAlreadyExists) {
                return Err(e.into());
            }
        }
    }
    let mut config = ProducerConfig::new(&conn.bootstrap);
    config.client.client_id = "strom-perf".into();
    config
        .set("acks", &o.acks)?
        .set("compression.type", &o.compression)?
        .set("batch.size", &o.batch_size.to_string())?
        .set("linger.ms", &o.linger_ms.to_string())?
        .set(
            "buffer.memory",
            &(64 * 1024 * 1024).max(o.batch_size * 8).to_string(),
        )?;
    for (k, v) in conn.pairs()? {
        config.set(&k, &v)?;
    }
    let deadline = o
        .duration_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    let per_producer = o.num_records / o.producers as u64;
    let rate = (o.throughput > 0).then(|| o.throughput as f64 / o.producers as f64);
    let payload = bytes::Bytes::from(vec![b'x'; o.record_size]);
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(sent.clone(), "sent");
    let mut tasks = Vec::new();
    for i in 0..o.producers {
        let count = per_producer + u64::from((i as u64) < o.num_records % o.producers as u64);
        let producer = Arc::new(Producer::new(config.clone()).await?);
        let (topic, payload, counter) = (o.topic.clone(), payload.clone(), sent.clone());
        tasks.push(tokio::spawn(run_producer(
            producer, topic, payload, count, deadline, rate, counter,
        )));
    }
    let mut total = Stats {
        records: 0,
        bytes: 0,
        errors: 0,
        latency_us: new_histogram(),
    };
    for t in tasks {
        let s = t.await??;
        total.records += s.records;
        total.bytes += s.bytes;
        total.errors += s.errors;
        total.latency_us.add(&s.latency_us)?;
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    report_produce(conn.output, &o, &total, secs);
    if total.errors > 0 {
        bail!("{} records failed", total.errors);
    }
    Ok(())
}

/// Prints "N records <verb>" on stderr once a second when stderr is a terminal.
fn spawn_progress(
    count: Arc<AtomicU64>,
    verb: &'static str,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let n = count.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64();
            eprint!("\r{n} records {verb} ({rate:.0} records/sec)   ");
        }
    }))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

async fn run_producer(
    producer: Arc<Producer>,
    topic: String,
    payload: bytes::Bytes,
    count: u64,
    deadline: Option<Instant>,
    rate: Option<f64>,
    progress: Arc<AtomicU64>,
) -> Result<Stats> {
    // Acks are awaited in send order by a second task, which records each latency.
    let (tx, mut rx) = mpsc::channel::<(Instant, strom_client::DeliveryFuture)>(100_000);
    let size = payload.len() as u64;
    let collector = tokio::spawn(async move {
        let mut s = Stats {
            records: 0,
            bytes: 0,
            errors: 0,
            latency_us: new_histogram(),
        };
        while let Some((sent, fut)) = rx.recv().await {
            match fut.await {
                Ok(_) => {
                    let us = sent.elapsed().as_micros().max(1) as u64;
                    s.latency_us.saturating_record(us);
                    s.records += 1;
                    s.bytes += size;
                }
                Err(_) => s.errors += 1,
            }
        }
        s
    });
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if sent >= count => break,
            _ => {}
        }
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(sent as f64 / r);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let t = Instant::now();
        let fut = producer
            .send(ProducerRecord::new(topic.clone()).value(payload.clone()))
            .await?;
        if tx.send((t, fut)).await.is_err() {
            break;
        }
        sent += 1;
        progress.fetch_add(1, Ordering::Relaxed);
    }
    drop(tx);
    producer.flush().await;
    let stats = collector.await?;
    producer.close().await;
    Ok(stats)
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

fn report_produce(format: Format, o: &ProduceOpts, s: &Stats, secs: f64) {
    let h = &s.latency_us;
    let rps = s.records as f64 / secs;
    let mbps = s.bytes as f64 / secs / 1_048_576.0;
    let fields = json!({
        "records": s.records, "errors": s.errors, "seconds": (secs * 1000.0).round() / 1000.0,
        "records_per_sec": rps.round(), "mb_per_sec": (mbps * 100.0).round() / 100.0,
        "latency_avg_ms": ms(h.mean() as u64), "latency_p50_ms": ms(h.value_at_quantile(0.50)),
        "latency_p95_ms": ms(h.value_at_quantile(0.95)), "latency_p99_ms": ms(h.value_at_quantile(0.99)),
        "latency_p999_ms": ms(h.value_at_quantile(0.999)), "latency_max_ms": ms(h.max()),
        "record_size": o.record_size, "acks": o.acks, "compression": o.compression,
        "batch_size": o.batch_size, "linger_ms": o.linger_ms, "producers": o.producers,
    });
    if format == Format::Json {
        println!("{fields}");
        return;
    }
    println!(
        "{} records sent, {:.0} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency.",
        s.records, rps, mbps, ms(h.mean() as u64), ms(h.max())
    );
    let mut t = Table::new(&["P50-MS", "P95-MS", "P99-MS", "P99.9-MS", "MAX-MS"]);
    t.row(vec![
        fields["latency_p50_ms"].clone(),
        fields["latency_p95_ms"].clone(),
        fields["latency_p99_ms"].clone(),
        fields["latency_p999_ms"].clone(),
        fields["latency_max_ms"].clone(),
    ]);
    t.print(Format::Table);
}

async fn consume(conn: &ConnArgs, o: ConsumeOpts) -> Result<()> {
    let mut config = ConsumerConfig::new(&conn.bootstrap);
    config.client.client_id = "strom-perf".into();
    config
        .set("auto.offset.reset", "earliest")?
        .set("enable.auto.commit", "false")?
        .set("max.poll.records", "10000")?;
    if let Some(g) = &o.group {
        config.set("group.id", g)?;
    }
    for (k, v) in conn.pairs()? {
        config.set(&k, &v)?;
    }
    let mut consumer = Consumer::new(config).await?;
    if o.group.is_some() {
        consumer.subscribe(&[o.topic.as_str()], None)?;
    } else {
        let md = consumer
            .client()
            .refresh_metadata(Some(std::slice::from_ref(&o.topic)), false)
            .await?;
        let Some(t) = md.topic(&o.topic) else {
            bail!("UNKNOWN_TOPIC_OR_PARTITION: topic '{}'", o.topic);
        };
        let tps: Vec<TopicPartition> = t
            .partitions
            .iter()
            .map(|p| TopicPartition::new(o.topic.clone(), p.partition))
            .collect();
        consumer.assign(&tps);
        consumer.seek_to_beginning().await?;
    }
    let started = Instant::now();
    let read = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(read.clone(), "read");
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    while records < o.messages {
        if last.elapsed() > Duration::from_millis(o.timeout_ms) {
            break;
        }
        let batch = consumer.poll(Duration::from_millis(500)).await?;
        if !batch.is_empty() {
            last = Instant::now();
        }
        let wanted = (o.messages - records) as usize;
        for r in batch.iter().take(wanted) {
            records += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64)
                + r.key.as_ref().map_or(0, |k| k.len() as u64);
        }
        read.store(records, Ordering::Relaxed);
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    consumer.close().await?;
    let fields = json!({
        "records": records, "seconds": (secs * 1000.0).round() / 1000.0,
        "records_per_sec": (records as f64 / secs).round(),
        "mb_per_sec": ((bytes as f64 / secs / 1_048_576.0) * 100.0).round() / 100.0,
        "mb": ((bytes as f64 / 1_048_576.0) * 100.0).round() / 100.0,
    });
    match conn.output {
        Format::Json => println!("{fields}"),
        Format::Table => {
            let mut t = Table::new(&["RECORDS", "SECONDS", "RECORDS/SEC", "MB", "MB/SEC"]);
            t.row(vec![
                fields["records"].clone(),
                fields["seconds"].clone(),
                fields["records_per_sec"].clone(),
                fields["mb"].clone(),
                fields["mb_per_sec"].clone(),
            ]);
            t.print(Format::Table);
        }
    }
    if records < o.messages {
        bail!(
            "REQUEST_TIMED_OUT: read {records} of {} records before {} ms of silence",
            o.messages,
            o.timeout_ms
        );
    }
    Ok(())
}
