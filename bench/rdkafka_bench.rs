//! The comparison harness: drives one workload with librdkafka (the `rdkafka` crate, an
//! independent client) against several Kafka-protocol brokers, alternating A B A B per round,
//! and prints each target's median with its ratio to the first target. Built as an example
//! of strom-cli so it shares the workspace's rdkafka build:
//!
//!   cargo run --release -p strom-cli --example rdkafka-bench -- \
//!     --target strom=127.0.0.1:9092 --target kafka=127.0.0.1:19092 --suite standard
//!
//! Producer settings follow ../shared/peers/side_by_side.py (linger.ms=5, batch.size=1 MiB,
//! idempotence off); each run writes a fresh topic, of 3 partitions unless `--partitions N`,
//! from one producer unless `--producers N` (independent producers, the records split).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// One measured workload.
#[derive(Debug, Clone)]
struct Workload {
    name: String,
    records: u64,
    size: usize,
    acks: String,
    compression: String,
    /// Target records/s (None = as fast as possible).
    rate: Option<u64>,
    /// Read the topic back after producing it.
    consume: bool,
    /// librdkafka linger.ms.
    linger_ms: u64,
}

fn standard_suite() -> Vec<Workload> {
    let mut out = Vec::new();
    for (records, size) in [(1_000_000u64, 100usize), (200_000, 1024)] {
        for acks in ["1", "all"] {
            for compression in ["none", "lz4"] {
                out.push(Workload {
                    name: format!("produce {records} x {size} B acks={acks} {compression}"),
                    records,
                    size,
                    acks: acks.into(),
                    compression: compression.into(),
                    rate: None,
                    consume: acks == "1" && compression == "none",
                    linger_ms: 5,
                });
            }
        }
    }
    out
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    produce_rps: f64,
    produce_mbps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    consume_rps: Option<f64>,
    peak_rss_mb: Option<f64>,
    /// Broker CPU (user + system) spent during the produce run.
    broker_cpu_ms: Option<f64>,
}

struct Timing {
    hist: Mutex<Histogram<u64>>,
    errors: Mutex<u64>,
}

struct Ctx(Arc<Timing>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_err() {
            *self.0.errors.lock().unwrap() += 1;
            return;
        }
        let us = sent.elapsed().as_micros().max(1) as u64;
        self.0.hist.lock().unwrap().saturating_record(us);
    }
}

/// Partitions of the benchmark topics (`--partitions`, default 3).
static PARTITIONS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(3);

/// Independent producers sharing each produce workload (`--producers`, default 1).
static PRODUCERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Replication factor of the benchmark topics (`--replication-factor`, default 1).
static REPLICATION_FACTOR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// Extra client settings per bootstrap address (`--client-config NAME:KEY=VALUE`, e.g. TLS).
static CLIENT_SETTINGS: Mutex<BTreeMap<String, Vec<(String, String)>>> =
    Mutex::new(BTreeMap::new());

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    if let Some(settings) = CLIENT_SETTINGS.lock().unwrap().get(bootstrap) {
        for (k, v) in settings {
            c.set(k, v);
        }
    }
    c
}

fn create_topic(
    bootstrap: &str,
    topic: &str,
    configs: &[(String, String)],
    rt: &tokio::runtime::Runtime,
) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let rf = REPLICATION_FACTOR.load(std::sync::atomic::Ordering::Relaxed);
    let partitions = PARTITIONS.load(std::sync::atomic::Ordering::Relaxed);
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = rt
        .block_on(admin.create_topics(&[t], &opts))
        .expect("create topic");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
    // Wait until metadata shows all partitions with leaders.
    for _ in 0..100 {
        if let Ok(md) = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            if md.topics().first().is_some_and(|t| {
                t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            }) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{topic} never got {partitions} partitions with leaders");
}

/// Produces `w` with `--producers` independent producers (each its own librdkafka instance
/// and connections, on its own thread), the records and the rate split between them.
fn produce(bootstrap: &str, topic: &str, w: &Workload) -> (f64, Histogram<u64>, u64) {
    let timing = Arc::new(Timing {
        hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")),
        errors: Mutex::new(0),
    });
    let producers = PRODUCERS.load(std::sync::atomic::Ordering::Relaxed).max(1) as u64;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for p in 0..producers {
            let records = w.records / producers + u64::from(p < w.records % producers);
            let rate = w.rate.map(|r| (r / producers).max(1));
            let timing = timing.clone();
            scope.spawn(move || produce_part(bootstrap, topic, w, records, rate, timing));
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let hist = timing.hist.lock().unwrap().clone();
    let errors = *timing.errors.lock().unwrap();
    (secs, hist, errors)
}

fn produce_part(
    bootstrap: &str,
    topic: &str,
    w: &Workload,
    records: u64,
    rate: Option<u64>,
    timing: Arc<Timing>,
) {
    let producer: BaseProducer<Ctx> = config(bootstrap)
        .set("acks", &w.acks)
        .set("compression.codec", &w.compression)
        .set("linger.ms", w.linger_ms.to_string())
        .set("batch.size", "1048576")
        .set("batch.num.messages", "100000")
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Ctx(timing))
        .expect("producer");
    let payload = vec![b'a'; w.size];
    let start = Instant::now();
    for i in 0..records {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        let mut rec: BaseRecord<'_, (), [u8], Box<Instant>> =
            BaseRecord::with_opaque_to(topic, Box::new(Instant::now())).payload(&payload[..]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

fn consume(bootstrap: &str, topic: &str, records: u64) -> f64 {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "rdkafka-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS.load(std::sync::atomic::Ordering::Relaxed) {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut got = 0u64;
    let deadline = start + Duration::from_secs(300);
    while got < records {
        assert!(Instant::now() < deadline, "consumed {got} of {records}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    records as f64 / start.elapsed().as_secs_f64()
}

/// User + system CPU of a process so far, in ms (from /proc/PID/stat, clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// User + system CPU of several processes (a cluster's brokers), summed.
fn cpu_ms_all(pids: &[u32]) -> Option<f64> {
    (!pids.is_empty())
        .then(|| pids.iter().map(|p| cpu_ms(*p)).sum::<Option<f64>>())
        .flatten()
}

/// Samples the processes' summed RSS every 50 ms while `f` runs; returns the peak.
fn with_rss<T>(pids: &[u32], f: impl FnOnce() -> T) -> (T, Option<f64>) {
    if pids.is_empty() {
        return (f(), None);
    }
    let pids = pids.to_vec();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(0f64));
    let (s, p) = (stop.clone(), peak.clone());
    let sampler = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(mb) = pids.iter().map(|p| rss_mb(*p)).sum::<Option<f64>>() {
                let mut m = p.lock().unwrap();
                *m = m.max(mb);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let out = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    let mb = *peak.lock().unwrap();
    (out, Some(mb))
}

fn run_once(
    bootstrap: &str,
    pids: &[u32],
    configs: &[(String, String)],
    w: &Workload,
    rt: &tokio::runtime::Runtime,
) -> Outcome {
    let topic = format!("bench-{}-{}", w.size, uuid_ish());
    create_topic(bootstrap, &topic, configs, rt);
    let cpu_before = cpu_ms_all(pids);
    let ((secs, h, errors), peak) = with_rss(pids, || produce(bootstrap, &topic, w));
    let broker_cpu_ms = cpu_before.zip(cpu_ms_all(pids)).map(|(a, b)| b - a);
    assert_eq!(errors, 0, "{} delivery errors", errors);
    let ms = |us: u64| us as f64 / 1000.0;
    let consume_rps = w.consume.then(|| consume(bootstrap, &topic, w.records));
    Outcome {
        produce_rps: w.records as f64 / secs,
        produce_mbps: (w.records as f64 * w.size as f64) / secs / 1_048_576.0,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        consume_rps,
        peak_rss_mb: peak,
        broker_cpu_ms,
    }
}

fn uuid_ish() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", nanos & 0xffff_ffff_ffff)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `--failover-probe BOOTSTRAP TOPIC PARTITION`: one acks=all producer (librdkafka defaults
/// otherwise) that, for each line read on stdin, sends one record to TOPIC/PARTITION, waits
/// for its delivery report and prints `ok UNIX_NANOS` (when the acknowledgement arrived) or
/// `err UNIX_NANOS MESSAGE`. A driver SIGKILLs the partition's leader, then writes a line:
/// the record is sent after the kill, so its acknowledgement comes from the new leader.
fn failover_probe(bootstrap: &str, topic: &str, partition: i32) {
    use rdkafka::producer::FutureProducer;
    use rdkafka::producer::FutureRecord;
    use std::io::{BufRead, Write};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let producer: FutureProducer = config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    let unix_nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for (i, line) in stdin.lock().lines().enumerate() {
        if line.is_err() {
            break;
        }
        let value = format!("probe-{i}");
        let record = FutureRecord::<(), _>::to(topic)
            .payload(&value)
            .partition(partition);
        let r = rt.block_on(producer.send(record, Duration::from_secs(120)));
        let now = unix_nanos();
        match r {
            Ok(_) => writeln!(out, "ok {now}"),
            Err((e, _)) => writeln!(out, "err {now} {e}"),
        }
        .and_then(|()| out.flush())
        .expect("stdout");
    }
}

struct Args {
    targets: Vec<(String, String, Vec<u32>)>,
    /// Topic configs each target's benchmark topics are created with (`--topic-config`),
    /// e.g. Kafka's `flush.messages=1` for an fsync-per-append run on the same broker.
    topic_configs: BTreeMap<String, Vec<(String, String)>>,
    rounds: usize,
    suite: Vec<Workload>,
    json: bool,
}

impl Args {
    fn topic_config(&self, target: &str) -> &[(String, String)] {
        self.topic_configs.get(target).map_or(&[], Vec::as_slice)
    }
}

const USAGE: &str = "usage: rdkafka-bench --target NAME=HOST:PORT[,HOST:PORT...][@PID[+PID...]] ... \
[--topic-config NAME:KEY=VALUE]... [--client-config NAME:KEY=VALUE]... [--rounds N] [--replication-factor N] [--partitions N] [--producers N] [--suite standard | --produce RECORDS,SIZE,ACKS,CODEC[,RATE]]... [--consume] [--linger-ms N] [--json]\n\
       rdkafka-bench --failover-probe HOST:PORT[,HOST:PORT...] TOPIC PARTITION";

fn parse_args() -> Args {
    let mut a = Args {
        targets: Vec::new(),
        topic_configs: BTreeMap::new(),
        rounds: 3,
        suite: Vec::new(),
        json: false,
    };
    let mut consume_too = false;
    let mut linger = None;
    let mut client_settings: Vec<(String, String, String)> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--target" => {
                let v = value();
                let (name, rest) = v.split_once('=').unwrap_or_else(|| panic!("{USAGE}"));
                let (addr, pid) = match rest.split_once('@') {
                    Some((a, p)) => (
                        a.to_owned(),
                        p.split('+').map(|p| p.parse().expect("pid")).collect(),
                    ),
                    None => (rest.to_owned(), Vec::new()),
                };
                a.targets.push((name.to_owned(), addr, pid));
            }
            "--topic-config" => {
                let v = value();
                let (name, kv) = v.split_once(':').unwrap_or_else(|| panic!("{USAGE}"));
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{USAGE}"));
                a.topic_configs
                    .entry(name.to_owned())
                    .or_default()
                    .push((k.to_owned(), v.to_owned()));
            }
            "--client-config" => {
                let v = value();
                let (name, kv) = v.split_once(':').unwrap_or_else(|| panic!("{USAGE}"));
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{USAGE}"));
                client_settings.push((name.to_owned(), k.to_owned(), v.to_owned()));
            }
            "--rounds" => a.rounds = value().parse().expect("rounds"),
            "--partitions" => PARTITIONS.store(
                value().parse().expect("partitions"),
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--producers" => PRODUCERS.store(
                value().parse().expect("producers"),
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--replication-factor" => REPLICATION_FACTOR.store(
                value().parse().expect("replication factor"),
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--suite" => {
                assert_eq!(value(), "standard", "{USAGE}");
                a.suite.extend(standard_suite());
            }
            "--produce" => {
                let v = value();
                let f: Vec<&str> = v.split(',').collect();
                assert!(f.len() >= 4, "{USAGE}");
                a.suite.push(Workload {
                    name: format!(
                        "produce {} x {} B acks={} {}{}",
                        f[0],
                        f[1],
                        f[2],
                        f[3],
                        f.get(4).map(|r| format!(" at {r}/s")).unwrap_or_default()
                    ),
                    records: f[0].parse().expect("records"),
                    size: f[1].parse().expect("size"),
                    acks: f[2].to_owned(),
                    compression: f[3].to_owned(),
                    rate: f.get(4).map(|r| r.parse().expect("rate")),
                    consume: false,
                    linger_ms: 5,
                });
            }
            "--consume" => consume_too = true,
            "--linger-ms" => linger = Some(value().parse().expect("linger.ms")),
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                eprintln!("rdkafka-bench: unknown flag {flag}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    for w in &mut a.suite {
        w.consume |= consume_too;
        if let Some(l) = linger {
            w.linger_ms = l;
            w.name.push_str(&format!(" linger {l}"));
        }
    }
    assert!(!a.targets.is_empty() && !a.suite.is_empty(), "{USAGE}");
    for (name, k, v) in client_settings {
        let (_, addr, _) = a
            .targets
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("--client-config names no target {name}"));
        CLIENT_SETTINGS
            .lock()
            .unwrap()
            .entry(addr.clone())
            .or_default()
            .push((k, v));
    }
    a
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--failover-probe") {
        assert_eq!(argv.len(), 5, "{USAGE}");
        let partition = argv[4].parse().expect("partition");
        failover_probe(&argv[2], &argv[3], partition);
        return;
    }
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for w in &args.suite {
        let mut results: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
        for _ in 0..args.rounds {
            for (name, addr, pid) in &args.targets {
                results.entry(name.clone()).or_default().push(run_once(
                    addr,
                    pid,
                    args.topic_config(name),
                    w,
                    &rt,
                ));
            }
        }
        let first = &args.targets[0].0;
        let base_rps = median(results[first].iter().map(|o| o.produce_rps).collect());
        let base_consume = results[first]
            .iter()
            .filter_map(|o| o.consume_rps)
            .collect::<Vec<_>>();
        for (name, _, _) in &args.targets {
            let rs = &results[name];
            let rps = median(rs.iter().map(|o| o.produce_rps).collect());
            let mbps = median(rs.iter().map(|o| o.produce_mbps).collect());
            let p50 = median(rs.iter().map(|o| o.p50_ms).collect());
            let p99 = median(rs.iter().map(|o| o.p99_ms).collect());
            let p999 = median(rs.iter().map(|o| o.p999_ms).collect());
            let max = median(rs.iter().map(|o| o.max_ms).collect());
            let consume: Vec<f64> = rs.iter().filter_map(|o| o.consume_rps).collect();
            let consume_med = (!consume.is_empty()).then(|| median(consume.clone()));
            let rss: Vec<f64> = rs.iter().filter_map(|o| o.peak_rss_mb).collect();
            let rss_max = rss
                .iter()
                .cloned()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let cpu: Vec<f64> = rs.iter().filter_map(|o| o.broker_cpu_ms).collect();
            let cpu_med = (!cpu.is_empty()).then(|| median(cpu));
            let ratio = rps / base_rps;
            let consume_ratio = consume_med
                .filter(|_| !base_consume.is_empty())
                .map(|c| c / median(base_consume.clone()));
            if args.json {
                println!(
                    "{{\"workload\":\"{}\",\"target\":\"{name}\",\"produce_rps\":{rps:.0},\"produce_mbps\":{mbps:.1},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2},\"p999_ms\":{p999:.2},\"max_ms\":{max:.2},\"consume_rps\":{},\"peak_rss_mb\":{},\"broker_cpu_ms\":{},\"ratio_to_{first}\":{ratio:.2}}}",
                    w.name,
                    consume_med.map_or("null".into(), |c| format!("{c:.0}")),
                    rss_max.map_or("null".into(), |r| format!("{r:.0}")),
                    cpu_med.map_or("null".into(), |c| format!("{c:.0}")),
                );
            } else {
                println!(
                    "{:<44} {name:<8} {rps:>10.0} rec/s {mbps:>7.1} MB/s  p50 {p50:>7.2} p99 {p99:>8.2} p99.9 {p999:>8.2} max {max:>8.2} ms  x{ratio:.2}{}{}{}",
                    w.name,
                    cpu_med.map_or(String::new(), |c| format!("  broker CPU {c:.0} ms")),
                    consume_med.map_or(String::new(), |c| format!("  consume {c:.0} rec/s{}", consume_ratio.map_or(String::new(), |r| format!(" x{r:.2}")))),
                    rss_max.map_or(String::new(), |r| format!("  peak RSS {r:.0} MB")),
                );
            }
        }
    }
}
