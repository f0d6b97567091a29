//! The PostgreSQL CDC source (logical replication, pgoutput) against a real PostgreSQL and a
//! real broker: inserts, updates and deletes come as Debezium-shaped change events with the
//! table's schema, keyed by the primary key; a delete is followed by a tombstone; a key
//! change is a delete, a tombstone and a create; rows there before the connector started
//! come first as snapshot reads (`r`); after a restart only new changes come.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::Duration;

use common::*;
use pg::{props, rows, worker_props, Postgres};
use serde_json::{json, Value as J};
use strom_connect::standalone::Standalone;

fn parse(b: Option<&[u8]>) -> J {
    b.map(|b| serde_json::from_slice(b).unwrap())
        .unwrap_or(J::Null)
}

/// (key payload, op or "tombstone", before, after) of each record.
fn events(recs: &[strom_client::ConsumerRecord]) -> Vec<(J, String, J, J)> {
    recs.iter()
        .map(|r| {
            let k = parse(r.key.as_deref())["payload"].clone();
            let v = parse(r.value.as_deref());
            if v.is_null() {
                (k, "tombstone".into(), J::Null, J::Null)
            } else {
                let p = &v["payload"];
                (
                    k,
                    p["op"].as_str().unwrap().to_owned(),
                    p["before"].clone(),
                    p["after"].clone(),
                )
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_updates_and_deletes_become_change_events_with_the_schema() {
    let pg = Postgres::start();
    let db = pg.client().await;
    db.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, \
         score numeric(5,1));
         CREATE TABLE other (id int PRIMARY KEY);
         INSERT INTO customers VALUES (0, 'zed', 'z@x', 2.0);",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let b = broker.bootstrap();
    let topic = "shop.public.customers";
    create_topic(&b, topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let port = pg.port.to_string();
    let connector = props(&[
        ("name", "cdc"),
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector",
        ),
        ("database.hostname", "127.0.0.1"),
        ("database.port", &port),
        ("database.user", "postgres"),
        ("database.dbname", "postgres"),
        ("topic.prefix", "shop"),
        ("table.include.list", "public\\.customers"),
        ("slot.name", "strom_slot"),
        ("publication.name", "strom_pub"),
        ("poll.interval.ms", "100"),
    ]);
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector.clone()], None)
        .await
        .unwrap();
    wait_for(
        "the replication slot",
        Duration::from_secs(20),
        async || {
            let r = rows(&db, "SELECT slot_name::text FROM pg_replication_slots").await;
            (r == vec![vec![Some("strom_slot".to_owned())]]).then_some(())
        },
    )
    .await;
    // The snapshot's record first (so that the changes below come after it, from the slot).
    assert_eq!(
        read_topic(&b, topic, 1, 1, Duration::from_secs(20))
            .await
            .len(),
        1
    );
    db.batch_execute(
        "INSERT INTO customers VALUES (1, 'ann', NULL, 1.5), (2, 'bob', 'b@x', NULL);
         INSERT INTO other VALUES (1);
         UPDATE customers SET name = 'ann2' WHERE id = 1;
         DELETE FROM customers WHERE id = 2;
         UPDATE customers SET id = 10 WHERE id = 1;",
    )
    .await
    .unwrap();
    let recs = read_topic(&b, topic, 1, 9, Duration::from_secs(20)).await;
    let status = http(w.addr, "GET", "/connectors/cdc/status", None)
        .await
        .body;
    let ann = json!({"id": 1, "name": "ann", "email": null, "score": "Dw=="});
    let ann2 = json!({"id": 1, "name": "ann2", "email": null, "score": "Dw=="});
    let bob = json!({"id": 2, "name": "bob", "email": "b@x", "score": null});
    // A key-only old row (replica identity default): the required name gets Debezium's
    // placeholder.
    let bob_key_only =
        json!({"id": 2, "name": "__debezium_unavailable_value", "email": null, "score": null});
    let ann_key_only =
        json!({"id": 1, "name": "__debezium_unavailable_value", "email": null, "score": null});
    let ann10 = json!({"id": 10, "name": "ann2", "email": null, "score": "Dw=="});
    assert_eq!(
        events(&recs),
        vec![
            // The initial snapshot: the row there before the connector started.
            (
                json!({"id": 0}),
                "r".into(),
                J::Null,
                json!({"id": 0, "name": "zed", "email": "z@x", "score": "FA=="})
            ),
            (json!({"id": 1}), "c".into(), J::Null, ann),
            (json!({"id": 2}), "c".into(), J::Null, bob),
            (json!({"id": 1}), "u".into(), J::Null, ann2),
            (json!({"id": 2}), "d".into(), bob_key_only, J::Null),
            (json!({"id": 2}), "tombstone".into(), J::Null, J::Null),
            (json!({"id": 1}), "d".into(), ann_key_only, J::Null),
            (json!({"id": 1}), "tombstone".into(), J::Null, J::Null),
            (json!({"id": 10}), "c".into(), J::Null, ann10),
        ],
        "{status}"
    );
    // The schemas: the key struct, the envelope with the row (nullable columns optional).
    let key = parse(recs[0].key.as_deref());
    assert_eq!(
        key["schema"],
        json!({"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}],
               "optional": false, "name": "shop.public.customers.Key"})
    );
    let value = parse(recs[0].value.as_deref());
    let row = json!({"type": "struct", "fields": [
        {"type": "int32", "optional": false, "field": "id"},
        {"type": "string", "optional": false, "field": "name"},
        {"type": "string", "optional": true, "field": "email"},
        {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "version": 1, "parameters": {"scale": "1", "connect.decimal.precision": "5"}, "field": "score"},
    ], "optional": true, "name": "shop.public.customers.Value"});
    let schema = &value["schema"];
    assert_eq!(schema["name"], json!("shop.public.customers.Envelope"));
    let mut before = row.clone();
    before["field"] = json!("before");
    assert_eq!(schema["fields"][0], before);
    assert_eq!(
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].clone())
            .collect::<Vec<_>>(),
        vec![
            json!("before"),
            json!("after"),
            json!("source"),
            json!("op"),
            json!("ts_ms")
        ]
    );
    let source = &value["payload"]["source"];
    assert_eq!(
        (
            &source["connector"],
            &source["name"],
            &source["db"],
            &source["schema"],
            &source["table"]
        ),
        (
            &json!("postgresql"),
            &json!("shop"),
            &json!("postgres"),
            &json!("public"),
            &json!("customers")
        )
    );

    // A restart resumes after what was committed: only the new change comes.
    w.stop().await;
    db.batch_execute("INSERT INTO customers VALUES (3, 'cy', NULL, NULL)")
        .await
        .unwrap();
    let w = Standalone::start(worker_props(&b, dir.path()), vec![connector], None)
        .await
        .unwrap();
    let recs = read_topic(&b, topic, 1, 10, Duration::from_secs(20)).await;
    let all = events(&recs);
    assert_eq!(all.len(), 10, "{all:?}");
    assert_eq!(
        all[9],
        (
            json!({"id": 3}),
            "c".into(),
            J::Null,
            json!({"id": 3, "name": "cy", "email": null, "score": null})
        )
    );
    w.stop().await;
}
