//! Figures for the design note (ignored; run by hand):
//! `STROM_BIN=/work/bin/strom cargo test -p strom-connect --release --test postgres_figures -- --ignored --nocapture`
//! Records per second of the query-mode source (until the broker acknowledged every row), of
//! CDC source → sink (PostgreSQL → Strom → PostgreSQL) and of the sink alone, and the
//! broker-to-sink latency (a record acknowledged by the broker until its row is visible).

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;
use pg::{props, worker_props, Postgres};
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::standalone::Standalone;

const N: i64 = 50_000;

/// Waits until the standalone offsets file in `dir` holds `needle`; returns when.
async fn offsets_hold(dir: &std::path::Path, needle: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let text = std::fs::read_to_string(dir.join("offsets")).unwrap_or_default();
        if text.contains(needle) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "offsets never reached {needle}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run by hand with --ignored --nocapture"]
async fn postgres_connector_figures() {
    let pg = Postgres::start();
    let db = pg.client().await;
    let broker = Broker::start();
    let b = broker.bootstrap();
    let url = pg.jdbc_url();
    db.batch_execute(&format!(
        "CREATE TABLE bench (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamp);
         INSERT INTO bench SELECT i, 'name-' || i, i * 1.25, timestamp '2026-01-01' + i * interval '1 ms'
         FROM generate_series(1, {N}) i;
         CREATE TABLE cdc (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamp);"
    ))
    .await
    .unwrap();
    for t in ["q-bench", "c.public.cdc", "sinkin"] {
        create_topic(&b, t, 1).await;
    }
    let dir = tempfile::tempdir().unwrap();

    // Query-mode source.
    let start = Instant::now();
    let w = Standalone::start(
        worker_props(&b, dir.path()),
        vec![props(&[
            ("name", "q"),
            ("connector.class", "JdbcSourceConnector"),
            ("connection.url", &url),
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("table.whitelist", "bench"),
            ("topic.prefix", "q-"),
            ("batch.max.rows", "2000"),
            ("poll.interval.ms", "100"),
        ])],
        None,
    )
    .await
    .unwrap();
    // Done when the offset of the last row is committed (every record acknowledged).
    let secs =
        (offsets_hold(dir.path(), &format!("\"incrementing\":{N}")).await - start).as_secs_f64();
    eprintln!(
        "query-mode source: {N} rows acknowledged by the broker in {secs:.2} s = {:.0} records/s",
        N as f64 / secs
    );
    w.stop().await;

    // CDC source into the sink: PostgreSQL → Strom → PostgreSQL.
    let w = Standalone::start(
        worker_props(&b, dir.path()),
        vec![
            props(&[
                ("name", "c"),
                ("connector.class", "PostgresConnector"),
                ("connection.url", &url),
                ("topic.prefix", "c"),
                ("table.include.list", "public\\.cdc"),
                ("poll.interval.ms", "50"),
            ]),
            props(&[
                ("name", "c-sink"),
                ("connector.class", "JdbcSinkConnector"),
                ("topics", "c.public.cdc"),
                ("connection.url", &url),
                ("insert.mode", "upsert"),
                ("pk.mode", "record_key"),
                ("delete.enabled", "true"),
                ("auto.create", "true"),
                ("table.name.format", "cdc_copy"),
            ]),
        ],
        None,
    )
    .await
    .unwrap();
    wait_for("the slot", Duration::from_secs(20), async || {
        let n: i64 = db
            .query_one("SELECT count(*) FROM pg_replication_slots", &[])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    let start = Instant::now();
    db.batch_execute("INSERT INTO cdc SELECT * FROM bench")
        .await
        .unwrap();
    wait_for("the copy", Duration::from_secs(300), async || {
        let n: i64 = db
            .query_one("SELECT count(*) FROM cdc_copy", &[])
            .await
            .ok()?
            .get(0);
        (n == N).then_some(())
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "CDC source → sink: {N} inserted rows copied to another table in {secs:.2} s = {:.0} records/s",
        N as f64 / secs
    );
    w.stop().await;

    // Sink: N records waiting in the topic, then the connector started.
    let schema = json!({"type": "struct", "optional": false, "fields": [
        {"type": "int64", "optional": false, "field": "id"},
        {"type": "string", "optional": false, "field": "name"}]});
    let key_schema = json!({"type": "struct", "optional": false, "fields": [
        {"type": "int64", "optional": false, "field": "id"}]});
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    let record = |i: i64| {
        ProducerRecord::new("sinkin")
            .key(
                json!({"schema": key_schema, "payload": {"id": i}})
                    .to_string()
                    .into_bytes(),
            )
            .value(
                json!({"schema": schema, "payload": {"id": i, "name": format!("name-{i}")}})
                    .to_string()
                    .into_bytes(),
            )
    };
    let mut acks = Vec::new();
    for i in 1..=N {
        acks.push(p.send(record(i)).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    let count = async || -> i64 {
        db.query_one("SELECT count(*) FROM sinkout", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    let start = Instant::now();
    let w = Standalone::start(
        worker_props(&b, dir.path()),
        vec![props(&[
            ("name", "s"),
            ("connector.class", "JdbcSinkConnector"),
            ("topics", "sinkin"),
            ("connection.url", &url),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("auto.create", "true"),
            ("table.name.format", "sinkout"),
        ])],
        None,
    )
    .await
    .unwrap();
    wait_for("the sink", Duration::from_secs(300), async || {
        (count().await == N).then_some(())
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "sink (upsert): {N} records in {secs:.2} s = {:.0} records/s",
        N as f64 / secs
    );

    // Broker-to-sink latency: one record at a time, acknowledged, until its row is visible.
    let mut lat = Vec::new();
    for i in N + 1..=N + 200 {
        let ack = p.send(record(i)).await.unwrap();
        ack.await.unwrap();
        let t0 = Instant::now();
        loop {
            let found = db
                .query_opt("SELECT 1 FROM sinkout WHERE id = $1", &[&i])
                .await
                .unwrap()
                .is_some();
            if found {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    eprintln!(
        "broker-to-sink latency over {} records: p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
    assert_eq!(count().await, N + 200);
    p.close().await;
    w.stop().await;
}
