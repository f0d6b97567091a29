//! The PostgreSQL source in query mode against a real PostgreSQL and a real broker: rows come
//! as Connect structs with the table's schema (Kafka's JSON envelope), in incrementing and in
//! timestamp mode, and a restart resumes from the committed offsets (no row twice, none lost).

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::Duration;

use common::*;
use pg::{props, worker_props, Postgres};
use serde_json::{json, Value as J};
use strom_connect::standalone::Standalone;

fn payloads(recs: &[strom_client::ConsumerRecord]) -> Vec<J> {
    recs.iter()
        .map(|r| serde_json::from_slice::<J>(r.value.as_deref().unwrap()).unwrap())
        .collect()
}

async fn status(w: &Standalone, name: &str) -> String {
    http(w.addr, "GET", &format!("/connectors/{name}/status"), None)
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incrementing_mode_sends_rows_with_their_schema_and_resumes_after_restart() {
    let pg = Postgres::start();
    let db = pg.client().await;
    db.batch_execute(
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), \
         added date, flag boolean);
         INSERT INTO items (name, price, added, flag) VALUES
           ('apple', 1.50, '2026-01-02', true), ('pear', NULL, NULL, NULL), ('fig', -3.25, '1969-12-31', false);",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "pg-items", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.jdbc_url();
    let connector = props(&[
        ("name", "items-source"),
        (
            "connector.class",
            "io.confluent.connect.jdbc.JdbcSourceConnector",
        ),
        ("connection.url", &url),
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("table.whitelist", "items"),
        ("topic.prefix", "pg-"),
        ("poll.interval.ms", "100"),
        ("batch.max.rows", "2"),
    ]);
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector.clone()], None)
        .await
        .unwrap();
    let recs = read_topic(&b, "pg-items", 1, 3, Duration::from_secs(20)).await;
    assert_eq!(recs.len(), 3, "{}", status(&w, "items-source").await);
    let values = payloads(&recs);
    let opt = |t: &str, f: &str| json!({"type": t, "optional": true, "field": f});
    assert_eq!(
        values[0]["schema"],
        json!({
            "type": "struct",
            "fields": [
                {"type": "int32", "optional": false, "field": "id"},
                {"type": "string", "optional": false, "field": "name"},
                {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
                 "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "price"},
                {"type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date",
                 "version": 1, "field": "added"},
                opt("boolean", "flag"),
            ],
            "optional": false,
            "name": "items",
        })
    );
    // 1.50 at scale 2 is 150 = 0x0096 ("AJY="); -3.25 is -325 = 0xfebb ("/rs=").
    assert_eq!(
        values
            .iter()
            .map(|v| v["payload"].clone())
            .collect::<Vec<_>>(),
        vec![
            json!({"id": 1, "name": "apple", "price": "AJY=", "added": 20455, "flag": true}),
            json!({"id": 2, "name": "pear", "price": null, "added": null, "flag": null}),
            json!({"id": 3, "name": "fig", "price": "/rs=", "added": -1, "flag": false}),
        ]
    );
    assert!(recs.iter().all(|r| r.key.is_none()));

    // Stop (offsets committed), add rows, start again: only the new rows come.
    w.stop().await;
    db.batch_execute("INSERT INTO items (name) VALUES ('kiwi'), ('lime')")
        .await
        .unwrap();
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector], None)
        .await
        .unwrap();
    let recs = read_topic(&b, "pg-items", 1, 5, Duration::from_secs(20)).await;
    let names: Vec<J> = payloads(&recs)
        .iter()
        .map(|v| v["payload"]["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![
            json!("apple"),
            json!("pear"),
            json!("fig"),
            json!("kiwi"),
            json!("lime")
        ],
        "{}",
        status(&w, "items-source").await
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_mode_reads_new_and_changed_rows_and_resumes_after_restart() {
    let pg = Postgres::start();
    let db = pg.client().await;
    // Three rows share a timestamp, more than one page (batch.max.rows=2) holds.
    db.batch_execute(
        "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamp NOT NULL, v text);
         INSERT INTO events VALUES
           (1, '2026-01-01 00:00:00', 'a'), (2, '2026-01-01 00:00:00', 'b'),
           (3, '2026-01-01 00:00:00', 'c'), (4, '2026-01-01 00:00:01.123456', 'd'),
           (5, '2026-01-02 00:00:00', 'e');",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "ts-events", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.jdbc_url();
    let connector = props(&[
        ("name", "events-source"),
        (
            "connector.class",
            "io.strom.connect.postgres.PostgresSourceConnector",
        ),
        ("connection.url", &url),
        ("mode", "timestamp"),
        ("timestamp.column.name", "updated_at"),
        ("table.include.list", "public.events"),
        ("topic.prefix", "ts-"),
        ("poll.interval.ms", "100"),
        ("batch.max.rows", "2"),
    ]);
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector.clone()], None)
        .await
        .unwrap();
    let recs = read_topic(&b, "ts-events", 1, 5, Duration::from_secs(20)).await;
    let got: Vec<J> = payloads(&recs)
        .iter()
        .map(|v| v["payload"].clone())
        .collect();
    let mut ids: Vec<i64> = got.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids[..3].sort();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 5],
        "{}",
        status(&w, "events-source").await
    );
    // Timestamps as Kafka's Timestamp (milliseconds).
    assert_eq!(got[3]["updated_at"], json!(1_767_225_601_123i64));
    assert_eq!(
        payloads(&recs)[0]["schema"]["fields"][1],
        json!({"type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp",
               "version": 1, "field": "updated_at"})
    );
    w.stop().await;

    db.batch_execute(
        "UPDATE events SET updated_at = '2026-01-03 00:00:00', v = 'a2' WHERE id = 1;
         INSERT INTO events VALUES (6, '2026-01-04 00:00:00', 'f');",
    )
    .await
    .unwrap();
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector], None)
        .await
        .unwrap();
    let recs = read_topic(&b, "ts-events", 1, 7, Duration::from_secs(20)).await;
    let tail: Vec<(i64, String)> = payloads(&recs)[5..]
        .iter()
        .map(|v| {
            (
                v["payload"]["id"].as_i64().unwrap(),
                v["payload"]["v"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        vec![(1, "a2".to_owned()), (6, "f".to_owned())],
        "{}",
        status(&w, "events-source").await
    );
    w.stop().await;
}
