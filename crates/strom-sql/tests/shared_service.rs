//! Two Strom SQL servers sharing a `ksql.service.id`: a statement given to one reaches the
//! other through the command topic; the persistent query runs on both as one Strom
//! Streams application (one consumer group), so its input partitions are split between
//! them and each output record is written once; when one server stops the other takes
//! over every partition without loss. Push and pull queries work from either server.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value as J};
use strom_client::{Admin, ClientConfig};

fn records(from: i32, to: i32) -> Vec<In> {
    (from..to)
        .map(|i| {
            (
                Some(i.to_be_bytes().to_vec()),
                Some(format!("{{\"V\":{i}}}").into_bytes()),
                1_000 + i64::from(i),
                None,
            )
        })
        .collect()
}

/// Output record count per input id (ID is the key, W = 2 * V).
fn counts(out: &[strom_client::ConsumerRecord]) -> BTreeMap<i32, usize> {
    let mut m = BTreeMap::new();
    for r in out {
        let id = i32::from_be_bytes(r.key.as_deref().unwrap().try_into().unwrap());
        let v: J = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v, json!({"W": 2 * id}));
        *m.entry(id).or_default() += 1;
    }
    m
}

async fn group_members(b: &str, group: &str) -> usize {
    let admin = Admin::new(ClientConfig::new(b)).await.unwrap();
    match admin.describe_groups(&[group.to_owned()]).await {
        Ok(g) if g[0].state == "Stable" => g[0].members.len(),
        _ => 0,
    }
}

fn push(port: u16, sql: &str) -> J {
    let q =
        json!({"ksql": sql, "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"}})
            .to_string();
    let (code, _, body) = http(port, "POST", "/query", Some(&q), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_sharing_a_service_id_split_queries() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    create_topic(&b, "src", 4).await;
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let eos = [("ksql.streams.processing.guarantee", "exactly_once_v2")];
    let a = SqlServer::start(&b, "shared", sa.path(), &eos).await;
    let bsrv = SqlServer::start(&b, "shared", sb.path(), &eos).await;

    a.ok("CREATE STREAM S (ID INT KEY, V INT) WITH (KAFKA_TOPIC='src', VALUE_FORMAT='JSON');");
    let r = a.ok("CREATE STREAM OUT AS SELECT ID, V * 2 AS W FROM S EMIT CHANGES;");
    let qid = r[0]["commandStatus"]["queryId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The other server learns the query from the command topic and runs it too: one
    // group with a member per server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = bsrv.ok("SHOW QUERIES;");
        let ids: Vec<&str> = q[0]["queries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|q| q["id"].as_str())
            .collect();
        if ids == [qid.as_str()] {
            break;
        }
        assert!(Instant::now() < deadline, "server B never saw {qid}: {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let group = format!("_confluent-ksql-sharedquery_{qid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_members(&b, &group).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the query's group never had both servers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    produce(&b, "src", &records(0, 200)).await;
    let out = read_n(
        &b,
        "OUT",
        200,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let c = counts(&out);
    assert_eq!(c.len(), 200);
    assert!(c.values().all(|n| *n == 1), "duplicates: {c:?}");

    // Push and pull queries from either server.
    for port in [a.port, bsrv.port] {
        let rows = push(
            port,
            "SELECT ID, W FROM OUT WHERE ID < 2 EMIT CHANGES LIMIT 2;",
        );
        let mut got: Vec<J> = rows.as_array().unwrap()[1..3]
            .iter()
            .map(|r| r["row"]["columns"].clone())
            .collect();
        got.sort_by_key(|r| r[0].as_i64());
        assert_eq!(got, vec![json!([0, 0]), json!([1, 2])]);
    }
    bsrv.ok("CREATE TABLE T AS SELECT ID, COUNT(*) AS N FROM S GROUP BY ID EMIT CHANGES;");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, body) = http(
            a.port,
            "POST",
            "/query",
            Some(&json!({"ksql": "SELECT * FROM T WHERE ID = 7;"}).to_string()),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let j: J = serde_json::from_str(&body).unwrap();
        if j[1]["row"]["columns"] == json!([7, 1]) {
            break;
        }
        assert!(Instant::now() < deadline, "pull from A never saw T: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One server stops: the other takes every partition, nothing lost or duplicated.
    a.stop().await;
    produce(&b, "src", &records(200, 400)).await;
    let out = read_n(
        &b,
        "OUT",
        400,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let c = counts(&out);
    assert_eq!(c.len(), 400, "lost records after the stop");
    assert!(c.values().all(|n| *n == 1), "duplicates: {c:?}");
    assert_eq!(group_members(&b, &group).await, 1);
    bsrv.stop().await;
}
