//! Throughput of the MQTT source and the HTTP sink through a broker, with the standalone
//! worker: N messages published with `mosquitto_pub -q 1 -l` (a mosquitto started here on a
//! free port) timed until all are in the topic; and N records already in a topic sent by
//! the HTTP sink (batches of 500, JSON arrays) to a local axum server, timed until it has
//! them all.
//!
//! `STROM_BIN=path/to/strom cargo run -p strom-connect --release --example edge_bench [n]`

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(port: u16) {
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn props(pairs: &[(&str, String)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

async fn count_records(
    bootstrap: &str,
    topic: &str,
    want: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut c = ConsumerConfig::new(bootstrap);
    c.set("auto.offset.reset", "earliest")?;
    c.set("fetch.max.wait.ms", "50")?;
    let mut consumer = Consumer::new(c).await?;
    consumer.assign(&[TopicPartition::new(topic, 0)]);
    let mut got = 0;
    while got < want {
        got += consumer.poll(Duration::from_millis(100)).await?.len();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let bin = std::env::var("STROM_BIN").map_err(|_| "set STROM_BIN")?;
    let mut broker = Command::new(bin)
        .args([
            "server",
            "--set",
            &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        ])
        .args([
            "--set",
            &format!("log.dirs={}", dir.path().join("data").display()),
        ])
        .args(["--set", "group.initial.rebalance.delay.ms=0"])
        .env("STROM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    wait_listening(port);
    let bootstrap = format!("127.0.0.1:{port}");
    let mqtt_port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n"),
    )?;
    let mut mosquitto = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_listening(mqtt_port);

    let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
    admin
        .create_topics(
            &[
                NewTopic::new("mqtt-in", 1, 1),
                NewTopic::new("http-out", 1, 1),
            ],
            false,
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = props(&[
        ("bootstrap.servers", bootstrap.clone()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
    ]);
    let source = props(&[
        ("name", "mqtt-bench".into()),
        ("connector.class", "MqttSource".into()),
        ("mqtt.server.uri", format!("tcp://127.0.0.1:{mqtt_port}")),
        ("mqtt.topics", "bench/#".into()),
        ("kafka.topic", "mqtt-in".into()),
        ("mqtt.client.id", "bench".into()),
        ("mqtt.clean.session.enabled", "false".into()),
    ]);
    let running = Standalone::start(worker, vec![source], None).await?;
    // The subscription is persistent once made: wait for it, then publish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut publisher = Command::new("mosquitto_pub")
        .args([
            "-p",
            &mqtt_port.to_string(),
            "-t",
            "bench/sensor",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()?;
    {
        let mut input = std::io::BufWriter::new(publisher.stdin.take().ok_or("stdin")?);
        for i in 0..n {
            writeln!(input, "{{\"sensor\":\"s{}\",\"reading\":{i}}}", i % 10)?;
        }
    }
    count_records(&bootstrap, "mqtt-in", n).await?;
    let secs = started.elapsed().as_secs_f64();
    publisher.wait()?;
    println!(
        "MQTT source: {n} QoS 1 messages mosquitto_pub → topic in {secs:.2} s: {:.0} records/s",
        n as f64 / secs
    );

    // HTTP sink.
    let p = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let v = format!("{{\"order\":{i},\"item\":\"tea\"}}");
        acks.push(
            p.send(ProducerRecord::new("http-out").value(v.into_bytes()))
                .await?,
        );
    }
    for a in acks {
        a.await?;
    }
    let received = Arc::new(AtomicUsize::new(0));
    let r2 = received.clone();
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move |body: String| {
            let r = r2.clone();
            async move {
                let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                r.fetch_add(items.len(), Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let sink = serde_json::json!({"name": "http-bench", "config": {
        "connector.class": "HttpSink", "topics": "http-out",
        "http.api.url": format!("http://{http_addr}/ingest"), "batch.max.size": "500"}});
    let mut s = tokio::net::TcpStream::connect(running.addr).await?;
    let body = sink.to_string();
    use tokio::io::AsyncWriteExt;
    s.write_all(
        format!(
            "POST /connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    while received.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "HTTP sink: {n} records topic → HTTP server (batches of 500) in {secs:.2} s: {:.0} records/s",
        n as f64 / secs
    );
    running.stop().await;
    let _ = mosquitto.kill();
    let _ = broker.kill();
    Ok(())
}
