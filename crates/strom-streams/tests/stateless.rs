//! Stateless operations against a real broker: each operator's output equals a reference
//! computed here, for random inputs (property test), and a record that cannot be
//! deserialized is skipped or stops the application as the handler says.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use strom_streams::{KafkaStreams, StreamsBuilder, StreamsConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One app with every stateless operator, writing several output topics.
fn topology(input: &str, out: &str) -> strom_streams::Topology {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, i64>(input);
    // filter + mapValues
    s.filter(|_, v| v % 3 != 0)
        .map_values(|_, v| v * 10)
        .to(&format!("{out}-filter"));
    // flatMap + selectKey
    s.flat_map(|k, v| (0..(v.rem_euclid(3))).map(move |i| (format!("{k}.{i}"), v)))
        .select_key(|k, _| k.to_uppercase())
        .to(&format!("{out}-flat"));
    // branch + merge
    let parts = s.branch(vec![Box::new(|_, v| *v < 0), Box::new(|_, v| *v % 2 == 0)]);
    parts[0]
        .map_values(|_, v| -v)
        .merge(&parts[1])
        .peek(|_, _| {})
        .to(&format!("{out}-merge"));
    // map
    s.map(|k, v| (v.to_string(), k)).to(&format!("{out}-map"));
    b.build().unwrap()
}

fn reference(input: &[(String, i64)]) -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let mut r: BTreeMap<&'static str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (k, v) in input {
        if v % 3 != 0 {
            r.entry("filter")
                .or_default()
                .push((k.clone(), (v * 10).to_be_bytes().to_vec()));
        }
        for i in 0..v.rem_euclid(3) {
            r.entry("flat")
                .or_default()
                .push((format!("{k}.{i}").to_uppercase(), v.to_be_bytes().to_vec()));
        }
        if *v < 0 {
            r.entry("merge")
                .or_default()
                .push((k.clone(), (-v).to_be_bytes().to_vec()));
        } else if v % 2 == 0 {
            r.entry("merge")
                .or_default()
                .push((k.clone(), v.to_be_bytes().to_vec()));
        }
        r.entry("map")
            .or_default()
            .push((v.to_string(), k.as_bytes().to_vec()));
    }
    for v in r.values_mut() {
        v.sort();
    }
    r
}

fn run_case(rt: &tokio::runtime::Runtime, server: &Server, case: usize, input: Vec<(String, i64)>) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let topic = format!("in-{case}");
    let out = format!("out-{case}");
    rt.block_on(async {
        create_topic(&b, &topic, 3).await;
        for o in ["filter", "flat", "merge", "map"] {
            create_topic(&b, &format!("{out}-{o}"), 2).await;
        }
        let recs: Vec<In> = input
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                (
                    Some(k.as_bytes().to_vec()),
                    Some(v.to_be_bytes().to_vec()),
                    1000 + i as i64,
                    None,
                )
            })
            .collect();
        produce(&b, &topic, &recs).await;
        let mut app = KafkaStreams::new(
            topology(&topic, &out),
            config(&b, &format!("app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        let expected = reference(&input);
        for (o, want) in &expected {
            let got = read_until(
                &b,
                &format!("{out}-{o}"),
                false,
                Duration::from_secs(30),
                |r| r.len() >= want.len(),
            )
            .await;
            let mut got: Vec<(String, Vec<u8>)> = got
                .iter()
                .map(|r| (s(&r.key), r.value.as_deref().unwrap_or_default().to_vec()))
                .collect();
            got.sort();
            assert_eq!(&got, want, "operator {o}");
        }
        assert!(app.error().is_none(), "{:?}", app.error());
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

#[test]
fn stateless_operators_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &proptest::collection::vec(("[a-d]{1,2}", -20i64..20), 1..60),
            |input| {
                let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                run_case(&rt, &server, n, input);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn bad_records_are_skipped_or_stop_the_app() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "mixed", 1).await;
        create_topic(&b, "mixed-out", 1).await;
        produce(
            &b,
            "mixed",
            &[
                (
                    Some(b"a".to_vec()),
                    Some(1i64.to_be_bytes().to_vec()),
                    1,
                    None,
                ),
                (Some(b"b".to_vec()), Some(b"not a long".to_vec()), 2, None),
                (
                    Some(b"c".to_vec()),
                    Some(3i64.to_be_bytes().to_vec()),
                    3,
                    None,
                ),
            ],
        )
        .await;
        let topo = || {
            let sb = StreamsBuilder::new();
            sb.stream::<String, i64>("mixed").to("mixed-out");
            sb.build().unwrap()
        };
        // LogAndContinue: the bad record is counted and skipped.
        let state = tempfile::tempdir().unwrap();
        let mut c: StreamsConfig = config(&b, "skip-app", state.path());
        c.set(
            "default.deserialization.exception.handler",
            "LogAndContinueExceptionHandler",
        )
        .unwrap();
        let mut app = KafkaStreams::new(topo(), c);
        app.start().await.unwrap();
        let got = read_until(&b, "mixed-out", false, Duration::from_secs(20), |r| {
            r.len() >= 2
        })
        .await;
        let keys: Vec<String> = got.iter().map(|r| s(&r.key)).collect();
        assert_eq!(keys, vec!["a", "c"]);
        assert_eq!(
            app.metrics()
                .skipped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
        // LogAndFail (the default): the thread stops with an error naming the record.
        let state = tempfile::tempdir().unwrap();
        let mut app = KafkaStreams::new(topo(), config(&b, "fail-app", state.path()));
        app.start().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while app.error().is_none() {
            assert!(std::time::Instant::now() < deadline, "no error reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let e = app.error().unwrap().to_string();
        assert!(e.contains("mixed-0@1") && e.contains("value"), "{e}");
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

/// Record headers pass through the topology to the output, as in Kafka Streams.
#[test]
fn headers_pass_through() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "h-in", 1).await;
        create_topic(&b, "h-out", 1).await;
        let p = strom_client::Producer::new(strom_client::ProducerConfig::new(&b))
            .await
            .unwrap();
        let rec = strom_client::ProducerRecord::new("h-in")
            .key("k")
            .value("v")
            .header("trace-id", Some(bytes::Bytes::from_static(b"abc")));
        p.send(rec).await.unwrap().await.unwrap();
        p.close().await;
        let sb = StreamsBuilder::new();
        sb.stream::<String, String>("h-in")
            .map_values(|_, v: String| v.to_uppercase())
            .to("h-out");
        let state = tempfile::tempdir().unwrap();
        let mut app = KafkaStreams::new(sb.build().unwrap(), config(&b, "h-app", state.path()));
        app.start().await.unwrap();
        let got = read_until(&b, "h-out", false, Duration::from_secs(20), |r| {
            !r.is_empty()
        })
        .await;
        assert_eq!(s(&got[0].value), "V");
        assert_eq!(
            got[0].headers,
            vec![(
                "trace-id".to_string(),
                Some(bytes::Bytes::from_static(b"abc"))
            )]
        );
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}
