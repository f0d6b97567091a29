//! Throughput of the mirror source between two Strom brokers: N records of 100 B in a
//! 3-partition source topic, mirrored by `MirrorSourceConnector` (standalone worker on the
//! target) into `src.bench`; timed from the worker's start until the target holds every
//! record, and from the first record on the target to the last.
//!
//! `STROM_BIN=path/to/strom cargo run -p strom-connect --example mirror_bench [records] [tasks]`

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, TopicPartition, LATEST,
};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

const PARTITIONS: i32 = 3;

struct Broker(Child, String);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker(bin: &str, dir: &std::path::Path) -> Result<Broker, Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .arg("server")
        .args(["--set", &format!("listeners=PLAINTEXT://127.0.0.1:{port}")])
        .args(["--set", &format!("log.dirs={}", dir.display())])
        .args(["--set", "http.listeners="])
        .env("STROM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let addr = format!("127.0.0.1:{port}");
    while std::net::TcpStream::connect(&addr).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Broker(child, addr))
}

async fn end_offsets(admin: &Admin, topic: &str) -> i64 {
    let specs: Vec<(TopicPartition, i64)> = (0..PARTITIONS)
        .map(|p| (TopicPartition::new(topic, p), LATEST))
        .collect();
    match admin.client().list_offsets(&specs, 0).await {
        Ok(m) => m.values().map(|(o, _)| *o).sum(),
        Err(_) => 0,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: i64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300_000);
    let tasks: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let bin = std::env::var("STROM_BIN").map_err(|_| "set STROM_BIN")?;
    let dir = tempfile::tempdir()?;
    let source = broker(&bin, &dir.path().join("source"))?;
    let target = broker(&bin, &dir.path().join("target"))?;

    let src_admin = Admin::new(ClientConfig::new(&source.1)).await?;
    src_admin
        .create_topics(&[NewTopic::new("bench", PARTITIONS, 1)], false)
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let producer = Producer::new(ProducerConfig::new(&source.1)).await?;
    let value = vec![b'x'; 100];
    let mut acks = Vec::new();
    for i in 0..n {
        let r = ProducerRecord::new("bench")
            .partition((i % i64::from(PARTITIONS)) as i32)
            .key(format!("k{i}"))
            .value(value.clone())
            .header("h", Some(bytes::Bytes::from_static(b"v")));
        acks.push(producer.send(r).await?);
    }
    for a in acks {
        a.await?;
    }
    producer.close().await;

    let props = |pairs: &[(&str, String)]| -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let byte_array = "org.apache.kafka.connect.converters.ByteArrayConverter".to_owned();
    let worker = props(&[
        ("bootstrap.servers", target.1.clone()),
        ("key.converter", byte_array.clone()),
        ("value.converter", byte_array),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        ("listeners", "http://127.0.0.1:0".into()),
    ]);
    let mirror = props(&[
        ("name", "mirror".into()),
        ("connector.class", "MirrorSourceConnector".into()),
        ("tasks.max", tasks.to_string()),
        ("source.cluster.alias", "src".into()),
        ("source.cluster.bootstrap.servers", source.1.clone()),
        ("target.cluster.bootstrap.servers", target.1.clone()),
        ("topics", "bench".into()),
    ]);
    let tgt_admin = Admin::new(ClientConfig::new(&target.1)).await?;
    let start = Instant::now();
    let running = Standalone::start(worker, vec![mirror], None).await?;
    let mut first = None;
    loop {
        let have = end_offsets(&tgt_admin, "src.bench").await;
        if have > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if have >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    running.stop().await;
    let wall = done - start;
    let steady = done - first.unwrap_or(start);
    println!(
        "mirrored {n} records of 100 B ({PARTITIONS} partitions, tasks.max={tasks}): {:.2} s from the worker's start ({:.0} rec/s), {:.2} s first to last ({:.0} rec/s)",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        steady.as_secs_f64(),
        n as f64 / steady.as_secs_f64().max(1e-3)
    );
    Ok(())
}
