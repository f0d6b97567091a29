//! Throughput of the file connectors through a broker: N lines file → topic → file with the
//! standalone worker, timed from the start until the sink's file holds every line; also the
//! source-to-sink latency of single lines appended to an idle pipeline.
//!
//! `STROM_BIN=path/to/strom cargo run -p strom-connect --release --example file_bench [lines]`
//! (or `BOOTSTRAP=host:port` to use a running broker with auto-created or existing topic
//! `bench-lines`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, NewTopic};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

fn line_count(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let mut broker = None;
    let bootstrap = match std::env::var("BOOTSTRAP") {
        Ok(b) => b,
        Err(_) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let bin = std::env::var("STROM_BIN").map_err(|_| "set STROM_BIN or BOOTSTRAP")?;
            let child = Command::new(bin)
                .args([
                    "server",
                    "--set",
                    &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                ])
                .args([
                    "--set",
                    &format!("log.dirs={}", dir.path().join("data").display()),
                ])
                .env("STROM_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()?;
            broker = Some(child);
            let addr = format!("127.0.0.1:{port}");
            while std::net::TcpStream::connect(&addr).is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
            addr
        }
    };
    let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
    let _ = admin
        .create_topics(&[NewTopic::new("bench-lines", 1, 1)], false)
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for i in 0..n {
        writeln!(f, "bench-line-{i:09}-{}", "x".repeat(80))?;
    }
    f.flush()?;
    drop(f);
    let props = |pairs: &[(&str, String)]| -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
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
        ("name", "bench-source".into()),
        ("connector.class", "FileStreamSource".into()),
        ("file", input.display().to_string()),
        ("topic", "bench-lines".into()),
    ]);
    let sink = props(&[
        ("name", "bench-sink".into()),
        ("connector.class", "FileStreamSink".into()),
        ("file", output.display().to_string()),
        ("topics", "bench-lines".into()),
    ]);
    let started = Instant::now();
    let running = Standalone::start(worker, vec![source, sink], None).await?;
    while line_count(&output) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} lines file → topic → file in {secs:.2} s: {:.0} records/s",
        n as f64 / secs
    );

    // Latency: one line at a time into the idle pipeline.
    let mut samples = Vec::new();
    // (Watched by file size: counting the lines of a large file would dominate the figure.)
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    for i in 0..50 {
        let before = size(&output);
        let t = Instant::now();
        let mut f = std::fs::OpenOptions::new().append(true).open(&input)?;
        writeln!(f, "latency-{i}")?;
        while size(&output) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "file-to-file latency of one line: p50 {:?}, p99 {:?} (the source waits 100 ms when idle)",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );
    running.stop().await;
    if let Some(mut b) = broker {
        let _ = b.kill();
        let _ = b.wait();
    }
    Ok(())
}
