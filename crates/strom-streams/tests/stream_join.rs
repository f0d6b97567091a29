//! Stream-stream windowed joins (inner, left, outer) against a real broker over random
//! inputs with out-of-order timestamps: the output equals every pair within the window,
//! plus (left, outer) each record that had no partner, emitted once its window closed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use strom_streams::{JoinWindows, KafkaStreams, StreamsBuilder};

type Side = Vec<(String, String, i64)>;

fn reference(l: &Side, r: &Side, w: JoinWindows) -> [Vec<(String, String)>; 3] {
    let matches = |a: &(String, String, i64), b: &(String, String, i64)| {
        a.0 == b.0 && b.2 >= a.2 - w.before_ms && b.2 <= a.2 + w.after_ms
    };
    let mut inner = Vec::new();
    for a in l {
        for b in r.iter().filter(|b| matches(a, b)) {
            inner.push((a.0.clone(), format!("{}|{}", a.1, b.1)));
        }
    }
    let mut left = inner.clone();
    let mut outer = inner.clone();
    for a in l.iter().filter(|a| !r.iter().any(|b| matches(a, b))) {
        left.push((a.0.clone(), format!("{}|-", a.1)));
        outer.push((a.0.clone(), format!("{}|-", a.1)));
    }
    for b in r.iter().filter(|b| !l.iter().any(|a| matches(a, b))) {
        outer.push((b.0.clone(), format!("-|{}", b.1)));
    }
    for v in [&mut inner, &mut left, &mut outer] {
        v.sort();
    }
    [inner, left, outer]
}

fn case(rt: &tokio::runtime::Runtime, server: &Server, n: usize, l: Side, r: Side) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (lt, rt_) = (format!("ss-l-{n}"), format!("ss-r-{n}"));
    let outs = [
        format!("ss-inner-{n}"),
        format!("ss-left-{n}"),
        format!("ss-outer-{n}"),
    ];
    let w = JoinWindows {
        before_ms: 300,
        after_ms: 200,
        grace_ms: 5_000,
    };
    // A case that hangs fails instead (and proptest reports the input that failed).
    let run = async {
        create_topic(&b, &lt, 2).await;
        create_topic(&b, &rt_, 2).await;
        for o in &outs {
            create_topic(&b, o, 1).await;
        }
        let sb = StreamsBuilder::new();
        let ls = sb.stream::<String, String>(&lt);
        let rs = sb.stream::<String, String>(&rt_);
        ls.join_windowed(&rs, |a, b| format!("{a}|{b}"), w, "inner")
            .unwrap()
            .to(&outs[0]);
        ls.left_join_windowed(
            &rs,
            |a, b| format!("{a}|{}", b.map_or("-", |b| b.as_str())),
            w,
            "left",
        )
        .unwrap()
        .to(&outs[1]);
        ls.outer_join_windowed(
            &rs,
            |a, b| {
                format!(
                    "{}|{}",
                    a.map_or("-", |a| a.as_str()),
                    b.map_or("-", |b| b.as_str())
                )
            },
            w,
            "outer",
        )
        .unwrap()
        .to(&outs[2]);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("ss-app-{n}"), state.path()),
        );
        app.start().await.unwrap();
        let as_in = |s: &Side| -> Vec<In> { s.iter().map(|(k, v, ts)| kv(k, v, *ts)).collect() };
        produce(&b, &lt, &as_in(&l)).await;
        produce(&b, &rt_, &as_in(&r)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.metrics().processed.load(Ordering::Relaxed) < (l.len() + r.len()) as u64 {
            assert!(Instant::now() < deadline, "inputs not processed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One record per partition far ahead closes every window.
        let max = l.iter().chain(r.iter()).map(|x| x.2).max().unwrap_or(0);
        let flush: Vec<In> = (0..2)
            .map(|p| {
                (
                    Some(b"zz".to_vec()),
                    Some(b"flush".to_vec()),
                    max + 100_000,
                    Some(p),
                )
            })
            .collect();
        produce(&b, &lt, &flush).await;
        let want = reference(&l, &r, w);
        for (topic, want) in outs.iter().zip(want.iter()) {
            let got = read_until(&b, topic, false, Duration::from_secs(30), |x| {
                x.len() >= want.len()
            })
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let extra = read_until(&b, topic, false, Duration::from_millis(500), |_| false).await;
            let mut got: Vec<(String, String)> =
                got.iter().map(|x| (s(&x.key), s(&x.value))).collect();
            got.sort();
            assert_eq!(
                &got,
                want,
                "{topic} (processed {}, dropped late {}, tasks created {}, restored {}): \
                 l={l:?} r={r:?}",
                app.metrics().processed.load(Ordering::Relaxed),
                app.metrics().dropped_late.load(Ordering::Relaxed),
                app.metrics().tasks_created.load(Ordering::Relaxed),
                app.metrics().restored_records.load(Ordering::Relaxed),
            );
            assert_eq!(
                extra.len(),
                want.len(),
                "{topic}: nothing more after the expected output"
            );
        }
        assert_eq!(app.metrics().dropped_late.load(Ordering::Relaxed), 0);
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    };
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .unwrap_or_else(|_| panic!("case {n} did not finish in 120 s: l={l:?} r={r:?}"))
    });
}

fn side(tag: &'static str) -> impl Strategy<Value = Side> {
    proptest::collection::vec(("[a-c]", -400i64..400), 0..25).prop_map(move |v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (k, j))| (k, format!("{tag}{i}"), (1_000 + i as i64 * 100 + j).max(0)))
            .collect()
    })
}

#[test]
fn windowed_stream_joins_match_a_reference() {
    // Leaked: a failed case may leave an application's threads behind, and dropping the
    // runtime would wait for them instead of reporting the failure.
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ));
    let server = Server::start();
    let n = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        // Each case runs an application against the broker for seconds: shrink briefly
        // (at most 16 steps or 2 minutes).
        max_shrink_iters: 16,
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    });
    runner
        .run(&(side("L"), side("R")), |(l, r)| {
            case(rt, &server, n.fetch_add(1, Ordering::Relaxed), l, r);
            Ok(())
        })
        .unwrap();
}
