//! The processor API against a real broker: a processor with a store and stream-time and
//! wall-clock punctuations; its output equals a reference computed here.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use strom_streams::{
    KafkaStreams, Processor, ProcessorContext, PunctuationType, Record, Result, StoreKind,
    StreamsBuilder,
};

/// Sums values per key in a store; every 1000 ms of stream time forwards each key's sum
/// (key `"<key>@<time>"`); every 100 ms of wall-clock time forwards a `"wall"` tick.
struct Summer;

impl Processor<String, i64, String, i64> for Summer {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        ctx.schedule(1000, PunctuationType::StreamTime);
        ctx.schedule(100, PunctuationType::WallClockTime);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        rec: Record<String, i64>,
    ) -> Result<()> {
        let old: i64 = ctx.get("sums", &rec.key)?.unwrap_or(0);
        ctx.put("sums", &rec.key, Some(&(old + rec.value)))
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        kind: PunctuationType,
        time: i64,
    ) -> Result<()> {
        match kind {
            PunctuationType::StreamTime => {
                for (k, v) in ctx.all::<String, i64>("sums")? {
                    ctx.forward(Record {
                        key: format!("{k}@{time}"),
                        value: v,
                        timestamp: time,
                    });
                }
            }
            PunctuationType::WallClockTime => ctx.forward(Record {
                key: "wall".into(),
                value: 1,
                timestamp: time,
            }),
        }
        Ok(())
    }
}

#[test]
fn processor_with_store_and_punctuations() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "p-in", 1).await;
        create_topic(&b, "p-out", 1).await;
        let input: Vec<(String, i64, i64)> = (0..50)
            .map(|i| (if i % 3 == 0 { "a" } else { "b" }.to_string(), i, i * 100))
            .collect();
        let recs: Vec<In> = input
            .iter()
            .map(|(k, v, ts)| {
                (
                    Some(k.as_bytes().to_vec()),
                    Some(v.to_be_bytes().to_vec()),
                    *ts,
                    None,
                )
            })
            .collect();
        produce(&b, "p-in", &recs).await;
        let sb = StreamsBuilder::new();
        sb.add_state_store("sums", StoreKind::Persistent, true)
            .unwrap();
        sb.stream::<String, i64>("p-in")
            .process(|| Box::new(Summer), &["sums"])
            .to("p-out");
        let state = tempfile::tempdir().unwrap();
        let mut c = config(&b, "p-app", state.path());
        c.punctuate_interval = Duration::from_millis(50);
        let mut app = KafkaStreams::new(sb.build().unwrap(), c);
        app.start().await.unwrap();
        // Reference: stream time crosses 1000, 2000, ... at the records with those timestamps.
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for (k, v, ts) in &input {
            *sums.entry(k.clone()).or_default() += v;
            if *ts > 0 && ts % 1000 == 0 {
                for (sk, sv) in &sums {
                    want.insert(format!("{sk}@{ts}"), *sv);
                }
            }
        }
        let got = read_until(&b, "p-out", false, Duration::from_secs(30), |r| {
            r.iter().filter(|r| s(&r.key) != "wall").count() >= want.len()
                && r.iter().filter(|r| s(&r.key) == "wall").count() >= 3
        })
        .await;
        let stream: BTreeMap<String, i64> = got
            .iter()
            .filter(|r| s(&r.key) != "wall")
            .map(|r| (s(&r.key), i64v(&r.value)))
            .collect();
        assert_eq!(stream, want);
        assert!(
            got.iter().filter(|r| s(&r.key) == "wall").count() >= 3,
            "wall-clock punctuations"
        );
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}
