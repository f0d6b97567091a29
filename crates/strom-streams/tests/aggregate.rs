//! Grouping and aggregation against a real broker: counts and sums through a repartition
//! topic equal a reference over random inputs; windowed counts with grace and
//! suppression over out-of-order timestamps equal a reference exactly; interactive
//! queries read the same values.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use strom_streams::{KafkaStreams, Materialized, StreamsBuilder, TimeWindows, Windowed};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn group_case(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    case: usize,
    input: Vec<(String, String, i64)>,
) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (topic, counts, sums) = (
        format!("g-in-{case}"),
        format!("g-count-{case}"),
        format!("g-sum-{case}"),
    );
    rt.block_on(async {
        create_topic(&b, &topic, 3).await;
        create_topic(&b, &counts, 2).await;
        create_topic(&b, &sums, 2).await;
        // Keyed by the first field; grouped by the second (a repartition).
        let recs: Vec<In> = input
            .iter()
            .enumerate()
            .map(|(i, (k, g, v))| {
                (
                    Some(k.as_bytes().to_vec()),
                    Some(format!("{g}:{v}").into_bytes()),
                    10 + i as i64,
                    None,
                )
            })
            .collect();
        produce(&b, &topic, &recs).await;
        let sb = StreamsBuilder::new();
        let s = sb.stream::<String, String>(&topic);
        let parsed = s.flat_map_values(|_, v: String| {
            v.split_once(':')
                .and_then(|(g, n)| Some((g.to_owned(), n.parse::<i64>().ok()?)))
        });
        let grouped = parsed.group_by(|_, (g, _)| g.clone());
        grouped
            .count(Materialized::in_memory("counts"))
            .unwrap()
            .to_stream()
            .to(&counts);
        grouped
            .aggregate(|| 0i64, |_, (_, n), acc| acc + n, "sums")
            .unwrap()
            .to_stream()
            .to(&sums);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("g-app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        let mut want_count: BTreeMap<String, i64> = BTreeMap::new();
        let mut want_sum: BTreeMap<String, i64> = BTreeMap::new();
        for (_, g, v) in &input {
            *want_count.entry(g.clone()).or_default() += 1;
            *want_sum.entry(g.clone()).or_default() += v;
        }
        let n = input.len();
        let got = read_until(&b, &counts, false, Duration::from_secs(30), |r| {
            r.len() >= n
        })
        .await;
        assert_eq!(latest(&got, i64v), want_count);
        let got = read_until(&b, &sums, false, Duration::from_secs(30), |r| r.len() >= n).await;
        assert_eq!(latest(&got, i64v), want_sum);
        // Interactive queries see the same values.
        let store = app.store("sums").unwrap();
        for (g, v) in &want_sum {
            assert_eq!(store.get::<String, i64>(g).unwrap(), Some(*v), "key {g}");
        }
        let all: BTreeMap<String, i64> = app
            .store("counts")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(all, want_count);
        assert!(app.error().is_none(), "{:?}", app.error());
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

#[test]
fn group_by_count_and_aggregate_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &proptest::collection::vec(("[a-e]", "[p-s]", -50i64..50), 1..80),
            |input| {
                group_case(&rt, &server, case.fetch_add(1, Ordering::Relaxed), input);
                Ok(())
            },
        )
        .unwrap();
}

/// Reference for windowed counts: per record in order, stream time advances to the max
/// timestamp seen; a window accepts a record while stream time < end + grace.
fn window_reference(
    input: &[(String, i64)],
    w: TimeWindows,
) -> (BTreeMap<(String, i64), i64>, i64) {
    let mut st = -1;
    let mut counts = BTreeMap::new();
    for (k, ts) in input {
        st = st.max(*ts);
        for start in w.windows_for(*ts) {
            if start + w.size_ms + w.grace_ms <= st {
                continue;
            }
            *counts.entry((k.clone(), start)).or_insert(0) += 1;
        }
    }
    (counts, st)
}

fn windowed(r: &strom_client::ConsumerRecord) -> (String, i64) {
    use strom_streams::Serde;
    let w = Windowed::<String>::from_bytes(r.key.as_deref().unwrap()).unwrap();
    (w.key, w.start)
}

fn window_case(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    case: usize,
    hopping: bool,
    input: Vec<(String, i64)>,
) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (topic, all, fin) = (
        format!("w-in-{case}"),
        format!("w-all-{case}"),
        format!("w-final-{case}"),
    );
    let mut w = TimeWindows::of_size(500).grace(200);
    if hopping {
        w = w.advance_by(250);
    }
    // A last record far ahead closes every window of the input.
    let mut input = input;
    let max = input.iter().map(|(_, t)| *t).max().unwrap_or(0);
    input.push(("zz".into(), max + 10_000));
    rt.block_on(async {
        create_topic(&b, &topic, 1).await;
        create_topic(&b, &all, 1).await;
        create_topic(&b, &fin, 1).await;
        let recs: Vec<In> = input.iter().map(|(k, ts)| kv(k, "x", *ts)).collect();
        produce(&b, &topic, &recs).await;
        let sb = StreamsBuilder::new();
        let table = sb
            .stream::<String, String>(&topic)
            .group_by_key()
            .windowed_by(w)
            .count(Materialized::persistent("wcounts"))
            .unwrap();
        table.to_stream().to(&all);
        table
            .suppress_until_window_closes("wbuffer")
            .unwrap()
            .to_stream()
            .to(&fin);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("w-app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        let (counts, _) = window_reference(&input, w);
        let finals: BTreeMap<(String, i64), i64> = counts
            .iter()
            .filter(|((k, _), _)| k != "zz")
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let updates: i64 = counts.values().sum();
        let got = read_until(&b, &all, false, Duration::from_secs(30), |r| {
            r.len() as i64 >= updates
        })
        .await;
        let latest: BTreeMap<(String, i64), i64> =
            got.iter().map(|r| (windowed(r), i64v(&r.value))).collect();
        assert_eq!(latest, counts, "every update of every window");
        assert_eq!(got.len() as i64, updates);
        let got = read_until(&b, &fin, false, Duration::from_secs(30), |r| {
            r.len() >= finals.len()
        })
        .await;
        // Give a duplicate emission a moment to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let more = read_until(&b, &fin, false, Duration::from_secs(1), |_| false).await;
        let emitted: BTreeMap<(String, i64), i64> =
            got.iter().map(|r| (windowed(r), i64v(&r.value))).collect();
        assert_eq!(emitted, finals, "one final result per closed window");
        assert_eq!(more.len(), finals.len(), "no window emitted twice");
        let dropped = app.metrics().dropped_late.load(Ordering::Relaxed);
        let expected_dropped: usize = input
            .iter()
            .scan(-1i64, |st, (_, ts)| {
                *st = (*st).max(*ts);
                Some(
                    w.windows_for(*ts)
                        .iter()
                        .filter(|s| *s + w.size_ms + w.grace_ms <= *st)
                        .count(),
                )
            })
            .sum();
        assert_eq!(dropped as usize, expected_dropped);
        // Interactive query of the window store (windows still retained).
        let store = app.store("wcounts").unwrap();
        let zz = store
            .fetch_windows::<String, i64>(&"zz".to_string(), 0, i64::MAX / 2, w.size_ms)
            .unwrap();
        assert!(!zz.is_empty() && zz.iter().all(|(_, c)| *c == 1), "{zz:?}");
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

fn out_of_order() -> impl Strategy<Value = Vec<(String, i64)>> {
    proptest::collection::vec(("[a-c]", -400i64..400), 1..60).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (k, jitter))| (k, (i as i64 * 100 + jitter).max(0)))
            .collect()
    })
}

#[test]
fn windowed_counts_with_grace_and_suppression_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 6,
        ..ProptestConfig::default()
    });
    runner
        .run(&(out_of_order(), any::<bool>()), |(input, hopping)| {
            window_case(
                &rt,
                &server,
                case.fetch_add(1, Ordering::Relaxed),
                hopping,
                input,
            );
            Ok(())
        })
        .unwrap();
}

/// Reference sessions: per record in order, the sessions of its key within the gap merge
/// with it (closed sessions, end + gap + grace <= stream time, are final and take no more
/// records), unless the merged session is itself closed: then the record is late.
fn session_reference(
    input: &[(String, i64)],
    gap: i64,
    grace: i64,
) -> BTreeMap<(String, i64, i64), i64> {
    let mut st = -1;
    let mut sessions: Vec<(String, i64, i64, i64)> = Vec::new();
    for (k, ts) in input {
        st = st.max(*ts);
        let (mut start, mut end, mut count) = (*ts, *ts, 1);
        let overlapping: Vec<usize> = sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                &s.0 == k && s.2 >= ts - gap && s.1 <= ts + gap && s.2 + gap + grace > st
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &overlapping {
            start = start.min(sessions[i].1);
            end = end.max(sessions[i].2);
            count += sessions[i].3;
        }
        if end + gap + grace <= st {
            continue;
        }
        for i in overlapping.into_iter().rev() {
            sessions.remove(i);
        }
        sessions.push((k.clone(), start, end, count));
    }
    sessions
        .into_iter()
        .map(|(k, s, e, c)| ((k, s, e), c))
        .collect()
}

fn session_case(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    case: usize,
    input: Vec<(String, i64)>,
) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (topic, fin) = (format!("sw-in-{case}"), format!("sw-final-{case}"));
    let (gap, grace) = (300, 200);
    let mut input = input;
    let max = input.iter().map(|(_, t)| *t).max().unwrap_or(0);
    input.push(("zz".into(), max + 10_000));
    rt.block_on(async {
        create_topic(&b, &topic, 1).await;
        create_topic(&b, &fin, 1).await;
        let recs: Vec<In> = input.iter().map(|(k, ts)| kv(k, "x", *ts)).collect();
        produce(&b, &topic, &recs).await;
        let sb = StreamsBuilder::new();
        sb.stream::<String, String>(&topic)
            .group_by_key()
            .windowed_by_session(
                strom_streams::SessionWindows::with_inactivity_gap(gap).grace(grace),
            )
            .count("sessions")
            .unwrap()
            .suppress_until_window_closes("sbuffer")
            .unwrap()
            .to_stream()
            .to(&fin);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("sw-app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        let want: BTreeMap<(String, i64, i64), i64> = session_reference(&input, gap, grace)
            .into_iter()
            .filter(|((k, _, _), _)| k != "zz")
            .collect();
        let got = read_until(&b, &fin, false, Duration::from_secs(30), |r| {
            r.len() >= want.len()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let more = read_until(&b, &fin, false, Duration::from_secs(1), |_| false).await;
        use strom_streams::Serde;
        let emitted: BTreeMap<(String, i64, i64), i64> = got
            .iter()
            .map(|r| {
                let w = Windowed::<String>::from_bytes(r.key.as_deref().unwrap()).unwrap();
                ((w.key, w.start, w.end), i64v(&r.value))
            })
            .collect();
        assert_eq!(emitted, want);
        assert_eq!(more.len(), want.len(), "each final session once");
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

#[test]
fn session_windows_with_suppression_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 5,
        ..ProptestConfig::default()
    });
    runner
        .run(&out_of_order(), |input| {
            session_case(&rt, &server, case.fetch_add(1, Ordering::Relaxed), input);
            Ok(())
        })
        .unwrap();
}

/// `KTable::group_by` + count/aggregate: users (key: user, value: "region:score") updated
/// and deleted at random; per region, the count of users and the sum of scores equal the
/// reference over the final table.
#[test]
fn table_group_by_with_subtraction_matches_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3,
        ..ProptestConfig::default()
    });
    let updates = proptest::collection::vec(
        (
            "[a-h]",
            proptest::option::weighted(0.8, ("[x-z]", 0i64..100)),
        ),
        1..50,
    );
    runner
        .run(&updates, |updates| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let b = server.bootstrap();
            let state = tempfile::tempdir().unwrap();
            let (users, counts, sums) = (
                format!("tg-users-{n}"),
                format!("tg-count-{n}"),
                format!("tg-sum-{n}"),
            );
            rt.block_on(async {
                create_topic(&b, &users, 2).await;
                create_topic(&b, &counts, 1).await;
                create_topic(&b, &sums, 1).await;
                let sb = StreamsBuilder::new();
                let table = sb.table::<String, String>(&users, "users").unwrap();
                let by_region = table.group_by(|_, v| {
                    let (r, s) = v.split_once(':').unwrap_or(("?", "0"));
                    (r.to_string(), s.parse::<i64>().unwrap_or(0))
                });
                by_region
                    .count("region-counts")
                    .unwrap()
                    .to_stream()
                    .to(&counts);
                by_region
                    .aggregate(|| 0i64, |_, v, a| a + v, |_, v, a| a - v, "region-sums")
                    .unwrap()
                    .to_stream()
                    .to(&sums);
                let mut app = KafkaStreams::new(
                    sb.build().unwrap(),
                    config(&b, &format!("tg-app-{n}"), state.path()),
                );
                app.start().await.unwrap();
                let recs: Vec<In> = updates
                    .iter()
                    .enumerate()
                    .map(|(i, (u, v))| {
                        (
                            Some(u.as_bytes().to_vec()),
                            v.as_ref().map(|(r, s)| format!("{r}:{s}").into_bytes()),
                            1 + i as i64,
                            None,
                        )
                    })
                    .collect();
                produce(&b, &users, &recs).await;
                let mut fin: BTreeMap<String, (String, i64)> = BTreeMap::new();
                for (u, v) in &updates {
                    match v {
                        Some(v) => fin.insert(u.clone(), v.clone()),
                        None => fin.remove(u),
                    };
                }
                let (mut want_c, mut want_s): (BTreeMap<String, i64>, BTreeMap<String, i64>) =
                    Default::default();
                for (r, sc) in fin.values() {
                    *want_c.entry(r.clone()).or_default() += 1;
                    *want_s.entry(r.clone()).or_default() += sc;
                }
                // Regions emptied by deletes end at 0.
                let dropped_to_zero =
                    |want: &BTreeMap<String, i64>, got: &BTreeMap<String, i64>| -> bool {
                        got.iter()
                            .all(|(k, v)| want.get(k).copied().unwrap_or(0) == *v)
                            && want.iter().all(|(k, v)| got.get(k) == Some(v))
                    };
                let got = read_until(&b, &counts, false, Duration::from_secs(30), |r| {
                    dropped_to_zero(&want_c, &latest(r, i64v))
                })
                .await;
                assert!(
                    dropped_to_zero(&want_c, &latest(&got, i64v)),
                    "{:?} vs {want_c:?}",
                    latest(&got, i64v)
                );
                let got = read_until(&b, &sums, false, Duration::from_secs(30), |r| {
                    dropped_to_zero(&want_s, &latest(r, i64v))
                })
                .await;
                assert!(
                    dropped_to_zero(&want_s, &latest(&got, i64v)),
                    "{:?} vs {want_s:?}",
                    latest(&got, i64v)
                );
                tokio::task::spawn_blocking(move || app.close())
                    .await
                    .unwrap();
            });
            Ok(())
        })
        .unwrap();
}

/// Sliding windows (difference 300, inclusive ends): the windows are every record's left
/// window [t - 300, t] and every non-empty right window [t + 1, t + 301]; the latest count
/// of each equals the records in it (grace large enough that nothing is late).
#[test]
fn sliding_window_counts_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        ..ProptestConfig::default()
    });
    runner
        .run(&out_of_order(), |input| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let b = server.bootstrap();
            let state = tempfile::tempdir().unwrap();
            let (topic, out) = (format!("sl-in-{n}"), format!("sl-out-{n}"));
            let d = 300;
            rt.block_on(async {
                create_topic(&b, &topic, 1).await;
                create_topic(&b, &out, 1).await;
                let sb = StreamsBuilder::new();
                sb.stream::<String, String>(&topic)
                    .group_by_key()
                    .windowed_by_sliding(
                        strom_streams::SlidingWindows::of_time_difference_and_grace(d, 5_000),
                    )
                    .count("sliding")
                    .unwrap()
                    .to_stream()
                    .to(&out);
                let mut app = KafkaStreams::new(
                    sb.build().unwrap(),
                    config(&b, &format!("sl-app-{n}"), state.path()),
                );
                app.start().await.unwrap();
                let recs: Vec<In> = input.iter().map(|(k, ts)| kv(k, "x", *ts)).collect();
                produce(&b, &topic, &recs).await;
                let mut want: BTreeMap<(String, i64), i64> = BTreeMap::new();
                let count = |k: &String, s: i64| {
                    input
                        .iter()
                        .filter(|(k2, t)| k2 == k && *t >= s && *t <= s + d)
                        .count() as i64
                };
                for (k, t) in &input {
                    want.insert((k.clone(), t - d), count(k, t - d));
                    let right = count(k, t + 1);
                    if right > 0 {
                        want.insert((k.clone(), t + 1), right);
                    }
                }
                let got = read_until(&b, &out, false, Duration::from_secs(30), |r| {
                    r.iter()
                        .map(|r| (windowed(r), i64v(&r.value)))
                        .collect::<BTreeMap<_, _>>()
                        == want
                })
                .await;
                let latest: BTreeMap<(String, i64), i64> =
                    got.iter().map(|r| (windowed(r), i64v(&r.value))).collect();
                assert_eq!(latest, want);
                tokio::task::spawn_blocking(move || app.close())
                    .await
                    .unwrap();
            });
            Ok(())
        })
        .unwrap();
}

/// With `repartition.purge.interval.ms=0` each commit deletes the repartition records below
/// the committed offsets: once everything is processed, the repartition topic's log start is
/// its end, and the counts are still right.
#[test]
fn repartition_records_are_purged_below_committed_offsets() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    rt.block_on(async {
        create_topic(&b, "purge-in", 2).await;
        create_topic(&b, "purge-out", 1).await;
        let n = 200;
        let recs: Vec<In> = (0..n)
            .map(|i| kv(&format!("k{i}"), &format!("g{}", i % 5), 10 + i as i64))
            .collect();
        produce(&b, "purge-in", &recs).await;
        let sb = StreamsBuilder::new();
        sb.stream::<String, String>("purge-in")
            .group_by(|_, g| g.clone())
            .count(Materialized::in_memory("purge-counts"))
            .unwrap()
            .to_stream()
            .to("purge-out");
        let mut config = config(&b, "purge-app", state.path());
        config.set("repartition.purge.interval.ms", "0").unwrap();
        let mut app = KafkaStreams::new(sb.build().unwrap(), config);
        app.start().await.unwrap();
        let got = read_until(&b, "purge-out", false, Duration::from_secs(30), |r| {
            r.len() >= n
        })
        .await;
        let want: BTreeMap<String, i64> = (0..5).map(|g| (format!("g{g}"), n as i64 / 5)).collect();
        assert_eq!(latest(&got, i64v), want);

        let admin = strom_client::Admin::new(strom_client::ClientConfig::new(&b))
            .await
            .unwrap();
        let topic = admin
            .list_topics(false)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name.starts_with("purge-app-") && t.name.ends_with("-repartition"))
            .expect("a repartition topic");
        let tps: Vec<strom_client::TopicPartition> = (0..topic.partitions.len() as i32)
            .map(|p| strom_client::TopicPartition::new(&topic.name, p))
            .collect();
        let offsets = |at: i64| {
            let specs: Vec<_> = tps.iter().map(|tp| (tp.clone(), at)).collect();
            let client = admin.client();
            async move {
                client
                    .list_offsets(&specs, 0)
                    .await
                    .unwrap()
                    .values()
                    .map(|(o, _)| *o)
                    .sum::<i64>()
            }
        };
        assert_eq!(offsets(strom_client::LATEST).await, n as i64);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let start = offsets(strom_client::EARLIEST).await;
            if start == n as i64 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "repartition log start {start}, want {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(app.error().is_none(), "{:?}", app.error());
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

/// Stream time survives a clean restart (kept in the task checkpoint): a record for a window
/// that closed before the restart is dropped as late, not counted into a closed window.
#[test]
fn stream_time_survives_a_clean_restart() {
    use strom_streams::Serde;
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let w = TimeWindows::of_size(1_000).grace(0);
    let build = |topic: &str, out: &str| {
        let sb = StreamsBuilder::new();
        sb.stream::<String, String>(topic)
            .group_by_key()
            .windowed_by(w)
            .count(Materialized::persistent("st-counts"))
            .unwrap()
            .to_stream()
            .to(out);
        sb.build().unwrap()
    };
    rt.block_on(async {
        create_topic(&b, "st-in", 1).await;
        create_topic(&b, "st-out", 1).await;
        // Window [0, 1000) gets two records, then stream time moves to 5000.
        produce(
            &b,
            "st-in",
            &[kv("k", "a", 100), kv("k", "b", 200), kv("k", "c", 5_000)],
        )
        .await;
        let mut app =
            KafkaStreams::new(build("st-in", "st-out"), config(&b, "st-app", state.path()));
        app.start().await.unwrap();
        let got = read_until(&b, "st-out", false, Duration::from_secs(30), |r| {
            r.len() >= 3
        })
        .await;
        assert_eq!(got.len(), 3);
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();

        // After the restart: a late record for [0, 1000), then one for [5000, 6000).
        produce(&b, "st-in", &[kv("k", "late", 300), kv("k", "d", 5_100)]).await;
        let mut app =
            KafkaStreams::new(build("st-in", "st-out"), config(&b, "st-app", state.path()));
        app.start().await.unwrap();
        let got = read_until(&b, "st-out", false, Duration::from_secs(30), |r| {
            r.len() >= 4
        })
        .await;
        // Give a (wrong) update of the closed window a moment to show up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got2 = read_until(&b, "st-out", false, Duration::from_secs(1), |_| false).await;
        assert_eq!(got2.len(), got.len());
        let counts: Vec<(i64, i64)> = got
            .iter()
            .map(|r| {
                let k = Windowed::<String>::from_bytes(r.key.as_deref().unwrap()).unwrap();
                (k.start, i64v(&r.value))
            })
            .collect();
        assert_eq!(counts, vec![(0, 1), (0, 2), (5_000, 1), (5_000, 2)]);
        assert_eq!(app.metrics().dropped_late.load(Ordering::Relaxed), 1);
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}
