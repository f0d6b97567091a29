//! The PostgreSQL sink against a real PostgreSQL and a real broker: records in Kafka's JSON
//! envelope are upserted by key into an auto-created table, tombstones delete, odd field names
//! are quoted; plain inserts into an existing table keep every type's value exactly.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::Duration;

use common::*;
use pg::{props, rows, worker_props, Postgres};
use serde_json::{json, Value as J};
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::standalone::Standalone;

async fn produce(b: &str, topic: &str, records: Vec<(Option<J>, Option<J>)>) {
    let p = Producer::new(ProducerConfig::new(b)).await.unwrap();
    let mut acks = Vec::new();
    for (k, v) in records {
        let mut rec = ProducerRecord::new(topic);
        if let Some(k) = k {
            rec = rec.key(k.to_string().into_bytes());
        }
        if let Some(v) = v {
            rec = rec.value(v.to_string().into_bytes());
        }
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    p.close().await;
}

fn key(id: i64) -> Option<J> {
    Some(json!({
        "schema": {"type": "struct", "optional": false, "fields": [
            {"type": "int64", "optional": false, "field": "id"}]},
        "payload": {"id": id}
    }))
}

fn order(id: i64, name: &str, qty: Option<i32>) -> Option<J> {
    Some(json!({
        "schema": {"type": "struct", "optional": false, "name": "order", "fields": [
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "string", "optional": false, "field": "name"},
            {"type": "int32", "optional": true, "field": "qty"},
            {"type": "string", "optional": true, "field": "odd \"col\"; DROP TABLE x; --"},
        ]},
        "payload": {"id": id, "name": name, "qty": qty, "odd \"col\"; DROP TABLE x; --": "q"}
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_by_key_deletes_on_tombstones_and_creates_the_table() {
    let pg = Postgres::start();
    let db = pg.client().await;
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "orders", 1).await;
    produce(
        &b,
        "orders",
        vec![
            (key(1), order(1, "one", Some(5))),
            (key(2), order(2, "two", None)),
            (key(1), order(1, "one again", Some(6))),
            (key(2), None),
            (key(3), order(3, "three", Some(7))),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.jdbc_url();
    let w = Standalone::start(
        worker_props(&b, dir.path()),
        vec![props(&[
            ("name", "orders-sink"),
            (
                "connector.class",
                "io.confluent.connect.jdbc.JdbcSinkConnector",
            ),
            ("topics", "orders"),
            ("connection.url", &url),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("auto.create", "true"),
            ("delete.enabled", "true"),
            ("table.name.format", "sink_${topic}"),
        ])],
        None,
    )
    .await
    .unwrap();
    let got = wait_for("the sink's rows", Duration::from_secs(20), async || {
        let t = db
            .query(
                "SELECT id::text, name, qty::text, \"odd \"\"col\"\"; DROP TABLE x; --\" FROM sink_orders ORDER BY id",
                &[],
            )
            .await
            .ok()?;
        let r: Vec<Vec<Option<String>>> = t
            .iter()
            .map(|r| (0..4).map(|i| r.get::<_, Option<String>>(i)).collect())
            .collect();
        (r.len() == 2 && r[0][1].as_deref() == Some("one again")).then_some(r)
    })
    .await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("one again"), s("6"), s("q")],
            vec![s("3"), s("three"), s("7"), s("q")],
        ]
    );
    // The table as created from the schema: the key the primary key, optional fields nullable.
    let cols = rows(
        &db,
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_name = 'sink_orders' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(
        cols,
        vec![
            vec![s("id"), s("bigint"), s("NO")],
            vec![s("name"), s("text"), s("NO")],
            vec![s("qty"), s("integer"), s("YES")],
            vec![s("odd \"col\"; DROP TABLE x; --"), s("text"), s("YES")],
        ]
    );
    let pk = rows(
        &db,
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
         AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'sink_orders'::regclass AND i.indisprimary",
    )
    .await;
    assert_eq!(pk, vec![vec![s("id")]]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_into_an_existing_table_keep_each_type_exactly() {
    let pg = Postgres::start();
    let db = pg.client().await;
    db.batch_execute(
        "CREATE TABLE readings (id bigint PRIMARY KEY, at timestamptz NOT NULL, day date, \
         amount numeric(12,3), ratio double precision, raw bytea, ok boolean, doc jsonb)",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "readings", 1).await;
    let schema = json!({"type": "struct", "optional": false, "fields": [
        {"type": "int64", "optional": false, "field": "id"},
        {"type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp", "field": "at"},
        {"type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "field": "day"},
        {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "3"}, "field": "amount"},
        {"type": "float64", "optional": true, "field": "ratio"},
        {"type": "bytes", "optional": true, "field": "raw"},
        {"type": "boolean", "optional": true, "field": "ok"},
        {"type": "string", "optional": true, "field": "doc"},
    ]});
    // 12.345 at scale 3 is 12345 = 0x3039 ("MDk="); -0.5 is -500 = 0xfe0c ("/gw=").
    let recs: Vec<(Option<J>, Option<J>)> = (1..=300)
        .map(|i| {
            let payload = if i % 2 == 0 {
                json!({"id": i, "at": 1_767_225_601_123i64 + i, "day": 20455, "amount": "MDk=",
                       "ratio": 0.25, "raw": "AAH/", "ok": true, "doc": "{\"a\": [1, 2]}"})
            } else {
                json!({"id": i, "at": 0, "day": null, "amount": "/gw=", "ratio": null, "raw": null,
                       "ok": null, "doc": null})
            };
            (None, Some(json!({"schema": schema, "payload": payload})))
        })
        .collect();
    produce(&b, "readings", recs).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.jdbc_url();
    let w = Standalone::start(
        worker_props(&b, dir.path()),
        vec![props(&[
            ("name", "readings-sink"),
            ("connector.class", "JdbcSinkConnector"),
            ("topics", "readings"),
            ("connection.url", &url),
            ("insert.mode", "insert"),
            ("pk.mode", "none"),
            ("batch.size", "64"),
        ])],
        None,
    )
    .await
    .unwrap();
    wait_for("300 rows", Duration::from_secs(20), async || {
        let n: i64 = db
            .query_one("SELECT count(*) FROM readings", &[])
            .await
            .ok()?
            .get(0);
        (n == 300).then_some(())
    })
    .await;
    let got = rows(
        &db,
        "SELECT id::text, at::text, day::text, amount::text, ratio::text, raw::text, ok::text, \
         doc::text FROM readings WHERE id IN (1, 2) ORDER BY id",
    )
    .await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        vec![
            vec![
                s("1"),
                s("1970-01-01 00:00:00+00"),
                None,
                s("-0.500"),
                None,
                None,
                None,
                None
            ],
            vec![
                s("2"),
                s("2026-01-01 00:00:01.125+00"),
                s("2026-01-02"),
                s("12.345"),
                s("0.25"),
                s("\\x0001ff"),
                s("true"),
                s("{\"a\": [1, 2]}"),
            ],
        ]
    );
    w.stop().await;
}
