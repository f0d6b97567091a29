//! `strom consume TOPIC`: prints records from a position (end by default, `--from-beginning`,
//! `--offset`, `--timestamp`) or as a member of `--group`, until `--max-messages` or
//! `--timeout-ms` of silence. Values one per line, a kcat-style `--format`, or JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};

use crate::output::{block_on, ConnArgs, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    topic: String,
    /// Start at the earliest offset (with --group: when the group has no committed offset).
    #[arg(long = "from-beginning", conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,
    /// Start at this offset (every selected partition).
    #[arg(long, conflicts_with = "timestamp")]
    offset: Option<i64>,
    /// Start at the first record with a timestamp >= this (ms since the epoch).
    #[arg(long)]
    timestamp: Option<i64>,
    /// Read only these partitions (repeatable; all when omitted).
    #[arg(long, short = 'p')]
    partition: Vec<i32>,
    /// Consume as a member of this group (offsets are committed).
    #[arg(long, short = 'g', conflicts_with_all = ["offset", "timestamp", "partition"])]
    group: Option<String>,
    /// Exit after this many records.
    #[arg(long = "max-messages", short = 'n')]
    max_messages: Option<u64>,
    /// Exit after this long without a record.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// Print the key before the value, separated by --key-separator.
    #[arg(long = "print-key")]
    print_key: bool,
    #[arg(long = "key-separator", default_value = "\t")]
    key_separator: String,
    /// kcat-style format: %t topic, %p partition, %o offset, %T timestamp, %k key, %v value,
    /// %h headers, \n and \t; e.g. --format '%p:%o %k=%v\n'.
    #[arg(long)]
    format: Option<String>,
    #[command(flatten)]
    value_format: crate::schema::ValueFormatArgs,
}

pub(crate) fn run(args: ConsumeArgs) -> Result<()> {
    block_on(async move {
        let mut config = ConsumerConfig::new(&args.conn.bootstrap);
        config.client.client_id = "strom-cli".into();
        config.set("fetch.max.wait.ms", "200")?;
        if args.from_beginning {
            config.set("auto.offset.reset", "earliest")?;
        }
        if let Some(g) = &args.group {
            config.set("group.id", g)?;
        }
        for (k, v) in args.conn.pairs()? {
            config.set(&k, &v)?;
        }
        let decoder = crate::schema::ValueDecoder::new(&args.value_format)?;
        let mut consumer = Consumer::new(config).await?;
        match &args.group {
            Some(_) => consumer.subscribe(&[args.topic.as_str()], None)?,
            None => position(&mut consumer, &args).await?,
        }
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut count = 0u64;
        let mut last = Instant::now();
        'poll: loop {
            if args.max_messages.is_some_and(|m| count >= m) {
                break;
            }
            if args
                .timeout_ms
                .is_some_and(|t| last.elapsed() >= Duration::from_millis(t))
            {
                break;
            }
            let records = consumer.poll(Duration::from_millis(200)).await?;
            if !records.is_empty() {
                last = Instant::now();
            }
            for r in &records {
                if args.max_messages.is_some_and(|m| count >= m) {
                    // Do not commit records that were not printed.
                    let tp = TopicPartition::new(r.topic.clone(), r.partition);
                    consumer.seek(&tp, r.offset)?;
                    continue;
                }
                let decoded;
                let r = match &decoder {
                    Some(d) => {
                        decoded = d.decode(r).await?;
                        &decoded
                    }
                    None => r,
                };
                if write_record(&mut out, r, &args).is_err() {
                    break 'poll; // stdout closed (e.g. piped into head)
                }
                count += 1;
            }
            if out.flush().is_err() {
                break;
            }
        }
        drop(out);
        if args.group.is_some() {
            consumer.commit().await?;
        }
        consumer.close().await?;
        eprintln!("consumed {count} records");
        Ok(())
    })
}

/// Assigns the partitions and places the starting positions (no group).
async fn position(consumer: &mut Consumer, args: &ConsumeArgs) -> Result<()> {
    let info = consumer
        .client()
        .refresh_metadata(Some(std::slice::from_ref(&args.topic)), false)
        .await?;
    let Some(topic) = info.topic(&args.topic) else {
        bail!("UNKNOWN_TOPIC_OR_PARTITION: topic '{}'", args.topic);
    };
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let chosen = if args.partition.is_empty() {
        all.clone()
    } else {
        args.partition.clone()
    };
    if let Some(p) = chosen.iter().find(|p| !all.contains(p)) {
        bail!(
            "UNKNOWN_TOPIC_OR_PARTITION: topic '{}' has no partition {p}",
            args.topic
        );
    }
    let tps: Vec<TopicPartition> = chosen
        .iter()
        .map(|p| TopicPartition::new(args.topic.clone(), *p))
        .collect();
    consumer.assign(&tps);
    if args.from_beginning {
        consumer.seek_to_beginning().await?;
    } else if let Some(o) = args.offset {
        for tp in &tps {
            consumer.seek(tp, o)?;
        }
    } else if let Some(ts) = args.timestamp {
        consumer.seek_to_timestamp(ts).await?;
    } else {
        consumer.seek_to_end().await?;
    }
    Ok(())
}

fn write_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    args: &ConsumeArgs,
) -> std::io::Result<()> {
    if args.conn.output == Format::Json {
        let headers: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.as_deref().map(printable))))
            .collect();
        let line = json!({
            "topic": r.topic, "partition": r.partition, "offset": r.offset,
            "timestamp": r.timestamp, "key": r.key.as_deref().map(printable),
            "value": r.value.as_deref().map(printable), "headers": headers,
        });
        return writeln!(out, "{line}");
    }
    if let Some(fmt) = &args.format {
        return out.write_all(render(fmt, r).as_bytes());
    }
    if args.print_key {
        out.write_all(r.key.as_deref().unwrap_or(b"null"))?;
        out.write_all(args.key_separator.as_bytes())?;
    }
    out.write_all(r.value.as_deref().unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

/// Expands a kcat-style format string for one record.
fn render(fmt: &str, r: &ConsumerRecord) -> String {
    let mut s = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%' || c == '\\') {
            (_, false) => s.push(c),
            ('%', true) => match chars.next() {
                Some('t') => s.push_str(&r.topic),
                Some('p') => s.push_str(&r.partition.to_string()),
                Some('o') => s.push_str(&r.offset.to_string()),
                Some('T') => s.push_str(&r.timestamp.to_string()),
                Some('k') => s.push_str(&r.key.as_deref().map(printable).unwrap_or_default()),
                Some('v') => s.push_str(&r.value.as_deref().map(printable).unwrap_or_default()),
                Some('h') => {
                    let hs: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}={}", v.as_deref().map(printable).unwrap_or_default())
                        })
                        .collect();
                    s.push_str(&hs.join(","));
                }
                Some('%') => s.push('%'),
                Some(other) => {
                    s.push('%');
                    s.push(other);
                }
                None => s.push('%'),
            },
            (_, true) => match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('\\') => s.push('\\'),
                Some(other) => {
                    s.push('\\');
                    s.push(other);
                }
                None => s.push('\\'),
            },
        }
    }
    s
}

/// Bytes as text: UTF-8 as it is, anything else lossily (the CLI prints text).
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_tokens_expand() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 99,
            key: Some("k".into()),
            value: Some("v".into()),
            headers: vec![("h".into(), Some("x".into()))],
        };
        assert_eq!(
            render("%t/%p@%o %T %k=%v [%h]\\n", &r),
            "t/2@7 99 k=v [h=x]\n"
        );
        assert_eq!(render("100%% %z", &r), "100% %z");
    }
}
