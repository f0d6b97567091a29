//! Joins against a real broker over random inputs: stream-table (inner, left) and
//! table-table (inner, left, outer, with deletes) equal a reference computed here.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use strom_streams::{Change, KafkaStreams, Materialized, Serde, StreamsBuilder};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Table = BTreeMap<String, String>;

fn stream_table_case(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    case: usize,
    table: Table,
    orders: Vec<(String, i64)>,
) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (t, o, inner, left) = (
        format!("st-customers-{case}"),
        format!("st-orders-{case}"),
        format!("st-inner-{case}"),
        format!("st-left-{case}"),
    );
    rt.block_on(async {
        for (name, n) in [(&t, 2), (&o, 2), (&inner, 1), (&left, 1)] {
            create_topic(&b, name, n).await;
        }
        let recs: Vec<In> = table.iter().map(|(k, v)| kv(k, v, 1)).collect();
        produce(&b, &t, &recs).await;
        let sb = StreamsBuilder::new();
        let customers = sb
            .table::<String, String>(&t, Materialized::persistent("customers"))
            .unwrap();
        let orders_stream = sb.stream::<String, i64>(&o);
        orders_stream
            .join(&customers, |amount, name| format!("{name}:{amount}"))
            .unwrap()
            .to(&inner);
        orders_stream
            .left_join(&customers, |amount, name| {
                format!("{}:{amount}", name.map_or("?", |n| n.as_str()))
            })
            .unwrap()
            .to(&left);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("st-app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        wait_for("the table", Duration::from_secs(30), || {
            app.store("customers")
                .map(|s| s.all::<String, String>().unwrap_or_default().len() == table.len())
                .unwrap_or(false)
        })
        .await;
        let recs: Vec<In> = orders
            .iter()
            .enumerate()
            .map(|(i, (k, a))| {
                (
                    Some(k.as_bytes().to_vec()),
                    Some(a.to_be_bytes().to_vec()),
                    10 + i as i64,
                    None,
                )
            })
            .collect();
        produce(&b, &o, &recs).await;
        let mut want_inner = Vec::new();
        let mut want_left = Vec::new();
        for (k, a) in &orders {
            match table.get(k) {
                Some(n) => {
                    want_inner.push((k.clone(), format!("{n}:{a}")));
                    want_left.push((k.clone(), format!("{n}:{a}")));
                }
                None => want_left.push((k.clone(), format!("?:{a}"))),
            }
        }
        want_inner.sort();
        want_left.sort();
        for (topic, want) in [(&inner, want_inner), (&left, want_left)] {
            let got = read_until(&b, topic, false, Duration::from_secs(30), |r| {
                r.len() >= want.len()
            })
            .await;
            let mut got: Vec<(String, String)> =
                got.iter().map(|r| (s(&r.key), s(&r.value))).collect();
            got.sort();
            assert_eq!(got, want, "{topic}");
        }
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

#[test]
fn stream_table_joins_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                proptest::collection::btree_map("[a-h]", "[A-Z]{1,3}", 0..6),
                proptest::collection::vec(("[a-h]", 0i64..100), 1..40),
            ),
            |(table, orders)| {
                stream_table_case(
                    &rt,
                    &server,
                    case.fetch_add(1, Ordering::Relaxed),
                    table,
                    orders,
                );
                Ok(())
            },
        )
        .unwrap();
}

/// Updates of a table: key and value (`None` deletes).
type Updates = Vec<(String, Option<String>)>;

fn apply(updates: &Updates) -> Table {
    let mut t = Table::new();
    for (k, v) in updates {
        match v {
            Some(v) => t.insert(k.clone(), v.clone()),
            None => t.remove(k),
        };
    }
    t
}

fn table_table_case(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    case: usize,
    lu: Updates,
    ru: Updates,
) {
    let b = server.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let (l, r) = (format!("tt-l-{case}"), format!("tt-r-{case}"));
    let outs = [
        format!("tt-inner-{case}"),
        format!("tt-left-{case}"),
        format!("tt-outer-{case}"),
    ];
    rt.block_on(async {
        for name in [&l, &r] {
            create_topic(&b, name, 2).await;
        }
        for name in &outs {
            create_topic(&b, name, 1).await;
        }
        let sb = StreamsBuilder::new();
        let lt = sb
            .table::<String, String>(&l, Materialized::in_memory("left"))
            .unwrap();
        let rt_ = sb
            .table::<String, String>(&r, Materialized::persistent("right"))
            .unwrap();
        lt.join(&rt_, |a, b| format!("{a}+{b}"))
            .unwrap()
            .to_change_stream()
            .to(&outs[0]);
        lt.left_join(&rt_, |a, b| {
            format!("{a}+{}", b.map_or("-", |b| b.as_str()))
        })
        .unwrap()
        .to_change_stream()
        .to(&outs[1]);
        lt.outer_join(&rt_, |a, b| {
            format!(
                "{}+{}",
                a.map_or("-", |a| a.as_str()),
                b.map_or("-", |b| b.as_str())
            )
        })
        .unwrap()
        .to_change_stream()
        .to(&outs[2]);
        let mut app = KafkaStreams::new(
            sb.build().unwrap(),
            config(&b, &format!("tt-app-{case}"), state.path()),
        );
        app.start().await.unwrap();
        let as_in = |u: &Updates| -> Vec<In> {
            u.iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    (
                        Some(k.as_bytes().to_vec()),
                        v.as_ref().map(|v| v.as_bytes().to_vec()),
                        1 + i as i64,
                        None,
                    )
                })
                .collect()
        };
        produce(&b, &l, &as_in(&lu)).await;
        produce(&b, &r, &as_in(&ru)).await;
        let (fl, fr) = (apply(&lu), apply(&ru));
        let keys: std::collections::BTreeSet<&String> = fl.keys().chain(fr.keys()).collect();
        let mut want: [Table; 3] = Default::default();
        for k in keys {
            let (a, b) = (fl.get(k), fr.get(k));
            if let (Some(a), Some(b)) = (a, b) {
                want[0].insert(k.clone(), format!("{a}+{b}"));
            }
            if let Some(a) = a {
                want[1].insert(k.clone(), format!("{a}+{}", b.map_or("-", |b| b.as_str())));
            }
            want[2].insert(
                k.clone(),
                format!(
                    "{}+{}",
                    a.map_or("-", |a| a.as_str()),
                    b.map_or("-", |b| b.as_str())
                ),
            );
        }
        let total = lu.len() + ru.len();
        wait_for("all updates", Duration::from_secs(30), || {
            app.metrics().processed.load(Ordering::Relaxed) >= total as u64
        })
        .await;
        for (topic, want) in outs.iter().zip(want.iter()) {
            let got = read_until(&b, topic, false, Duration::from_secs(30), |recs| {
                final_rows(recs) == *want
            })
            .await;
            assert_eq!(&final_rows(&got), want, "{topic}");
        }
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

/// The rows a change stream leaves: the latest new value per key, deletes removed.
fn final_rows(recs: &[strom_client::ConsumerRecord]) -> Table {
    let mut t = Table::new();
    for r in recs {
        let c = Change::<String>::from_bytes(r.value.as_deref().unwrap_or_default()).unwrap();
        match c.new {
            Some(v) => t.insert(s(&r.key), v),
            None => t.remove(&s(&r.key)),
        };
    }
    t
}

#[test]
fn table_table_joins_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let updates = || {
        proptest::collection::vec(
            ("[a-f]", proptest::option::weighted(0.75, "[a-z]{1,2}")),
            0..30,
        )
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3,
        ..ProptestConfig::default()
    });
    runner
        .run(&(updates(), updates()), |(lu, ru)| {
            table_table_case(&rt, &server, case.fetch_add(1, Ordering::Relaxed), lu, ru);
            Ok(())
        })
        .unwrap();
}

/// Stream-globaltable join: the table's topic has other partitions than the stream (no
/// co-partitioning), the join key comes from the value; `start` returns once the global
/// table is loaded, so every order sees it.
#[test]
fn stream_global_table_join_with_a_key_mapper() {
    let rt = runtime();
    let server = Server::start();
    let b = server.bootstrap();
    rt.block_on(async {
        create_topic(&b, "gt-customers", 3).await;
        create_topic(&b, "gt-orders", 2).await;
        create_topic(&b, "gt-inner", 1).await;
        create_topic(&b, "gt-left", 1).await;
        let customers: Vec<In> = (0..20)
            .map(|i| kv(&format!("c{i}"), &format!("name{i}"), 1))
            .collect();
        produce(&b, "gt-customers", &customers).await;
        let sb = StreamsBuilder::new();
        let table = sb
            .global_table::<String, String>("gt-customers", "customers-global")
            .unwrap();
        let orders = sb.stream::<String, String>("gt-orders");
        let customer_of =
            |_: &String, v: &String| v.split(':').next().unwrap_or_default().to_string();
        orders
            .join_global(&table, customer_of, |v, name| format!("{v}/{name}"))
            .to("gt-inner");
        orders
            .left_join_global(&table, customer_of, |v, name| {
                format!("{v}/{}", name.map_or("?", |n| n.as_str()))
            })
            .to("gt-left");
        let state = tempfile::tempdir().unwrap();
        let mut app = KafkaStreams::new(sb.build().unwrap(), config(&b, "gt-app", state.path()));
        app.start().await.unwrap();
        let orders: Vec<In> = (0..40)
            .map(|i| kv(&format!("o{i}"), &format!("c{}:{i}", i % 25), 10 + i))
            .collect();
        produce(&b, "gt-orders", &orders).await;
        let mut want_inner = Vec::new();
        let mut want_left = Vec::new();
        for i in 0..40 {
            let c = i % 25;
            let v = format!("c{c}:{i}");
            if c < 20 {
                want_inner.push((format!("o{i}"), format!("{v}/name{c}")));
                want_left.push((format!("o{i}"), format!("{v}/name{c}")));
            } else {
                want_left.push((format!("o{i}"), format!("{v}/?")));
            }
        }
        want_inner.sort();
        want_left.sort();
        for (topic, want) in [("gt-inner", want_inner), ("gt-left", want_left)] {
            let got = read_until(&b, topic, false, Duration::from_secs(30), |r| {
                r.len() >= want.len()
            })
            .await;
            let mut got: Vec<(String, String)> =
                got.iter().map(|r| (s(&r.key), s(&r.value))).collect();
            got.sort();
            assert_eq!(got, want, "{topic}");
        }
        tokio::task::spawn_blocking(move || app.close())
            .await
            .unwrap();
    });
}

/// Foreign-key join: orders (key: order, value: "customer:amount", 2 partitions) joined
/// with customers (key: customer, 3 partitions) by the customer in the value; updates,
/// customer changes and deletes on both sides at random, in two rounds; the final rows
/// equal the join of the final tables.
#[test]
fn foreign_key_joins_match_a_reference() {
    let rt = runtime();
    let server = Server::start();
    let case = AtomicUsize::new(0);
    let orders = || {
        proptest::collection::vec(
            (
                "o[0-9]",
                proptest::option::weighted(0.8, ("c[0-4]", 0i64..100)),
            ),
            0..25,
        )
    };
    let customers = || {
        proptest::collection::vec(
            ("c[0-4]", proptest::option::weighted(0.8, "[A-Z]{2}")),
            0..12,
        )
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3,
        ..ProptestConfig::default()
    });
    runner
        .run(&(customers(), orders(), customers()), |(c1, o, c2)| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let b = server.bootstrap();
            let state = tempfile::tempdir().unwrap();
            let (ot, ct, inner, left) = (
                format!("fk-o-{n}"),
                format!("fk-c-{n}"),
                format!("fk-inner-{n}"),
                format!("fk-left-{n}"),
            );
            rt.block_on(async {
                create_topic(&b, &ot, 2).await;
                create_topic(&b, &ct, 3).await;
                create_topic(&b, &inner, 1).await;
                create_topic(&b, &left, 1).await;
                let sb = StreamsBuilder::new();
                let orders_t = sb.table::<String, String>(&ot, "fk-orders").unwrap();
                let customers_t = sb.table::<String, String>(&ct, "fk-customers").unwrap();
                let cust = |v: &String| v.split(':').next().unwrap_or_default().to_string();
                orders_t
                    .join_on_foreign_key(&customers_t, cust, |o, c| format!("{o}/{c}"), "fk1")
                    .unwrap()
                    .to_change_stream()
                    .to(&inner);
                orders_t
                    .left_join_on_foreign_key(
                        &customers_t,
                        cust,
                        |o, c| format!("{o}/{}", c.map_or("?", |c| c.as_str())),
                        "fk2",
                    )
                    .unwrap()
                    .to_change_stream()
                    .to(&left);
                let mut app = KafkaStreams::new(
                    sb.build().unwrap(),
                    config(&b, &format!("fk-app-{n}"), state.path()),
                );
                app.start().await.unwrap();
                let as_in = |u: &Updates| -> Vec<In> {
                    u.iter()
                        .map(|(k, v)| {
                            (
                                Some(k.as_bytes().to_vec()),
                                v.as_ref().map(|v| v.as_bytes().to_vec()),
                                1,
                                None,
                            )
                        })
                        .collect()
                };
                let o: Updates = o
                    .into_iter()
                    .map(|(k, v)| (k, v.map(|(c, a)| format!("{c}:{a}"))))
                    .collect();
                produce(&b, &ct, &as_in(&c1)).await;
                produce(&b, &ot, &as_in(&o)).await;
                produce(&b, &ct, &as_in(&c2)).await;
                let mut all_c = c1.clone();
                all_c.extend(c2.clone());
                let (fo, fc) = (apply(&o), apply(&all_c));
                let mut want: [Table; 2] = Default::default();
                for (k, v) in &fo {
                    let c = fc.get(&cust(v));
                    if let Some(c) = c {
                        want[0].insert(k.clone(), format!("{v}/{c}"));
                    }
                    want[1].insert(k.clone(), format!("{v}/{}", c.map_or("?", |c| c.as_str())));
                }
                for (topic, want) in [&inner, &left].into_iter().zip(want.iter()) {
                    let got = read_until(&b, topic, false, Duration::from_secs(30), |r| {
                        final_rows(r) == *want
                    })
                    .await;
                    assert_eq!(&final_rows(&got), want, "{topic}");
                }
                tokio::task::spawn_blocking(move || app.close())
                    .await
                    .unwrap();
            });
            Ok(())
        })
        .unwrap();
}
