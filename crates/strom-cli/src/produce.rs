//! `strom produce TOPIC`: one record per line from stdin or a file, optionally split into key
//! and value at `--key-separator`, with `--header` added to every record. Idempotent, acks=all
//! by default like Kafka's console producer; prints how many records were written.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord};

use crate::output::{block_on, split_kv, ConnArgs, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    conn: ConnArgs,
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long = "key-separator", short = 'K')]
    key_separator: Option<String>,
    /// A header added to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send everything to this partition instead of using the partitioner.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long = "compression", default_value = "none")]
    compression: String,
    #[command(flatten)]
    format: crate::schema::ValueFormatArgs,
}

pub(crate) fn run(args: ProduceArgs) -> Result<()> {
    block_on(async move {
        let mut config = ProducerConfig::new(&args.conn.bootstrap);
        config.client.client_id = "strom-cli".into();
        config
            .set("acks", &args.acks)?
            .set("compression.type", &args.compression)?;
        for (k, v) in args.conn.pairs()? {
            config.set(&k, &v)?;
        }
        let headers: Vec<(String, Option<Bytes>)> = args
            .headers
            .iter()
            .map(|h| split_kv(h).map(|(k, v)| (k, Some(Bytes::from(v)))))
            .collect::<Result<_>>()?;
        let reader: Box<dyn BufRead + Send> = match &args.file {
            Some(path) => Box::new(std::io::BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            )),
            None => Box::new(std::io::BufReader::new(std::io::stdin())),
        };
        let encoder = crate::schema::ValueEncoder::new(&args.format)?;
        let producer = Producer::new(config).await?;
        let progress = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut last_report = Instant::now();
        let mut pending = Vec::new();
        let mut count: u64 = 0;
        for line in reader.lines() {
            let line = line.context("reading input")?;
            let mut rec = ProducerRecord::new(args.topic.clone());
            match args
                .key_separator
                .as_deref()
                .and_then(|sep| line.split_once(sep))
            {
                Some((k, v)) => rec = rec.key(k.to_owned()).value(v.to_owned()),
                None => rec = rec.value(line),
            }
            if let (Some(enc), Some(v)) = (&encoder, &rec.value) {
                let text = String::from_utf8_lossy(v).into_owned();
                match enc.encode(&args.topic, &text).await {
                    Ok(bytes) => rec.value = Some(bytes.into()),
                    Err(e) => {
                        // The lines before this one are delivered, then produce stops:
                        // nothing after an invalid value is sent.
                        producer.flush().await;
                        for f in pending {
                            f.await?;
                        }
                        producer.close().await;
                        return Err(e.context(format!(
                            "input line {} not produced ({count} records before it were)",
                            count + 1
                        )));
                    }
                }
            }
            rec.partition = args.partition;
            rec.headers = headers.clone();
            pending.push(producer.send(rec).await?);
            count += 1;
            if pending.len() >= 10_000 {
                for f in pending.drain(..) {
                    f.await?;
                }
            }
            if progress && last_report.elapsed().as_secs() >= 1 {
                eprint!("\rproduced {count} records");
                last_report = Instant::now();
            }
        }
        producer.flush().await;
        for f in pending {
            f.await?;
        }
        producer.close().await;
        if progress {
            eprintln!("\r");
        }
        let mut table = Table::new(&["TOPIC", "RECORDS", "SECONDS"]);
        table.row(vec![
            json!(args.topic),
            json!(count),
            json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        ]);
        table.print(args.conn.output);
        Ok(())
    })
}
