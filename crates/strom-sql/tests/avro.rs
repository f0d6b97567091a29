//! VALUE_FORMAT / KEY_FORMAT 'AVRO' through the Schema Registry embedded in `strom server`:
//! a stream whose columns are inferred from the registry's latest `<topic>-value` schema
//! reads Confluent-framed records a producer wrote; CSAS and CTAS writing AVRO register
//! their output schemas (exact text checked) and frame their records (decoded exactly);
//! pull queries read AVRO keys and values.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value as J};
use strom_schema::serde::{self as sr, RegistryClient};

const PRODUCER_SCHEMA: &str = r#"{"type":"record","name":"pageview","namespace":"example","fields":[{"name":"viewtime","type":"long"},{"name":"userid","type":"string"},{"name":"pageid","type":["null","string"],"default":null},{"name":"tags","type":{"type":"array","items":"string"}}]}"#;

async fn wait_registry(url: &str) {
    let client = RegistryClient::new(url);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Registering the producer's schema is the readiness check: it needs the registry
    // listening and elected primary.
    loop {
        match client
            .register("pageviews-value", PRODUCER_SCHEMA, false)
            .await
        {
            Ok(_) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "registry not ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Decodes a framed record with the schema its frame names.
async fn decode(client: &RegistryClient, b: &[u8]) -> J {
    let (id, mut payload) = sr::split_frame(b).unwrap();
    let s = client.schema_by_id(id).await.unwrap();
    J::try_from(sr::decode(&s.parsed, &mut payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn avro_in_and_out_through_the_registry() {
    init_logs();
    let reg_port = free_port();
    let url = format!("http://127.0.0.1:{reg_port}");
    let broker = Server::start_with(&[("schema.registry.listeners", &url)]);
    let b = broker.bootstrap();
    wait_registry(&url).await;
    let client = RegistryClient::new(&url);
    let (id, _) = client.latest_id("pageviews-value").await.unwrap();
    let parsed = client.schema_by_id(id).await.unwrap();

    create_topic(&b, "pageviews", 1).await;
    let rows = [
        json!({"viewtime": 1, "userid": "u1", "pageid": "p1", "tags": ["a"]}),
        json!({"viewtime": 2, "userid": "u2", "pageid": null, "tags": []}),
        json!({"viewtime": 3, "userid": "u1", "pageid": "p3", "tags": ["b", "c"]}),
    ];
    let records: Vec<In> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = apache_avro::types::Value::try_from(r.clone()).unwrap();
            let bytes = sr::encode(id, &parsed.parsed, v).unwrap();
            (None, Some(bytes), 1000 + i as i64, None)
        })
        .collect();
    produce(&b, "pageviews", &records).await;

    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(
        &b,
        "avro",
        state.path(),
        &[("ksql.schema.registry.url", &url)],
    )
    .await;

    // Columns inferred from the latest schema of pageviews-value, named upper-case.
    sql.ok("CREATE STREAM PV WITH (KAFKA_TOPIC='pageviews', VALUE_FORMAT='AVRO');");
    let d = sql.ok("DESCRIBE PV;");
    let fields: Vec<(String, String)> = d[0]["sourceDescription"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["schema"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("VIEWTIME", "BIGINT"),
        ("USERID", "STRING"),
        ("PAGEID", "STRING"),
        ("TAGS", "ARRAY"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(fields, want, "{d}");

    // CSAS writing AVRO: the output schema is registered as ksqlDB generates it.
    sql.ok(
        "CREATE STREAM OUT WITH (KAFKA_TOPIC='pv_out', VALUE_FORMAT='AVRO') AS \
         SELECT USERID, VIEWTIME * 10 AS T10, UCASE(PAGEID) AS P, ARRAY_LENGTH(TAGS) AS N \
         FROM PV WHERE VIEWTIME > 1 EMIT CHANGES;",
    );
    let out = read_n(
        &b,
        "pv_out",
        2,
        Duration::from_secs(30),
        Duration::from_millis(300),
    )
    .await;
    let (out_id, _) = client.latest_id("pv_out-value").await.unwrap();
    let (ty, text) = client.schema_text_by_id(out_id).await.unwrap();
    assert_eq!(ty, "AVRO");
    let schema: J = serde_json::from_str(&text).unwrap();
    let opt = |t: &str, n: &str| json!({"name": n, "type": ["null", t], "default": null});
    assert_eq!(
        schema,
        json!({"type": "record", "name": "KsqlDataSourceSchema",
               "namespace": "io.confluent.ksql.avro_schemas",
               "fields": [opt("string", "USERID"), opt("long", "T10"), opt("string", "P"), opt("int", "N")]})
    );
    let mut got = Vec::new();
    for r in &out {
        let v = r.value.as_deref().unwrap();
        assert_eq!(sr::split_frame(v).unwrap().0, out_id);
        got.push((decode(&client, v).await, r.timestamp));
    }
    assert_eq!(
        got,
        vec![
            (json!({"USERID": "u2", "T10": 20, "P": null, "N": 0}), 1001),
            (json!({"USERID": "u1", "T10": 30, "P": "P3", "N": 2}), 1002),
        ]
    );

    // CTAS with AVRO keys and values: the key schema is the bare key type.
    sql.ok(
        "CREATE TABLE COUNTS WITH (KAFKA_TOPIC='pv_counts', KEY_FORMAT='AVRO', VALUE_FORMAT='AVRO') AS \
         SELECT USERID, COUNT(*) AS VIEWS, MAX(VIEWTIME) AS LAST FROM PV GROUP BY USERID EMIT CHANGES;",
    );
    let out = read_n(
        &b,
        "pv_counts",
        3,
        Duration::from_secs(30),
        Duration::from_millis(300),
    )
    .await;
    let (kid, _) = client.latest_id("pv_counts-key").await.unwrap();
    assert_eq!(client.schema_text_by_id(kid).await.unwrap().1, "\"string\"");
    let mut got = Vec::new();
    for r in &out {
        got.push((
            decode(&client, r.key.as_deref().unwrap()).await,
            decode(&client, r.value.as_deref().unwrap()).await,
        ));
    }
    assert_eq!(
        got,
        vec![
            (json!("u1"), json!({"VIEWS": 1, "LAST": 1})),
            (json!("u2"), json!({"VIEWS": 1, "LAST": 2})),
            (json!("u1"), json!({"VIEWS": 2, "LAST": 3})),
        ]
    );

    // Pull query over the AVRO table; INSERT INTO ... VALUES writes with the stream's schema.
    let (code, _, body) = http(
        sql.port,
        "POST",
        "/query",
        Some(&json!({"ksql": "SELECT * FROM COUNTS WHERE USERID = 'u1';"}).to_string()),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let j: J = serde_json::from_str(&body).unwrap();
    assert_eq!(j[1]["row"]["columns"], json!(["u1", 2, 3]), "{body}");

    sql.ok("INSERT INTO PV (VIEWTIME, USERID, PAGEID, TAGS) VALUES (4, 'u3', 'p4', ARRAY['x']);");
    let all = read_n(&b, "pageviews", 4, Duration::from_secs(10), Duration::ZERO).await;
    let last = all.last().unwrap().value.as_deref().unwrap();
    assert_eq!(
        sr::split_frame(last).unwrap().0,
        id,
        "written with the inferred schema"
    );
    assert_eq!(
        decode(&client, last).await,
        json!({"viewtime": 4, "userid": "u3", "pageid": "p4", "tags": ["x"]})
    );

    // Without a registry URL AVRO is refused with a clear error.
    let state2 = tempfile::tempdir().unwrap();
    let plain = SqlServer::start(&b, "avro_noreg", state2.path(), &[]).await;
    let (code, e) = plain.ksql(
        "CREATE STREAM X WITH (KAFKA_TOPIC='pageviews', VALUE_FORMAT='AVRO');",
        json!({}),
    );
    assert_eq!(code, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("ksql.schema.registry.url"),
        "{e}"
    );
    plain.stop().await;
    sql.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_sr_in_and_out_through_the_registry() {
    init_logs();
    let reg_port = free_port();
    let url = format!("http://127.0.0.1:{reg_port}");
    let broker = Server::start_with(&[("schema.registry.listeners", &url)]);
    let b = broker.bootstrap();
    let client = RegistryClient::new(&url);
    let producer_schema = json!({"type": "object", "properties": {
        "orderId": {"type": "integer", "connect.type": "int32", "connect.index": 0},
        "item": {"oneOf": [{"type": "null"}, {"type": "string"}], "connect.index": 1},
        "price": {"type": "number", "connect.index": 2}
    }})
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        match client
            .register_typed("orders-value", &producer_schema, "JSON", false)
            .await
        {
            Ok(id) => break id,
            Err(e) => {
                assert!(Instant::now() < deadline, "registry not ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    create_topic(&b, "orders", 1).await;
    let frame = |v: J| {
        let mut out = vec![0u8];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(v.to_string().as_bytes());
        out
    };
    let records: Vec<In> = vec![
        (
            None,
            Some(frame(json!({"orderId": 1, "item": "tea", "price": 2.5}))),
            10,
            None,
        ),
        (
            None,
            Some(frame(json!({"orderId": 2, "item": null, "price": 4.0}))),
            20,
            None,
        ),
    ];
    produce(&b, "orders", &records).await;

    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(
        &b,
        "jsonsr",
        state.path(),
        &[("ksql.schema.registry.url", &url)],
    )
    .await;
    sql.ok("CREATE STREAM ORDERS WITH (KAFKA_TOPIC='orders', VALUE_FORMAT='JSON_SR');");
    let d = sql.ok("DESCRIBE ORDERS;");
    let fields: Vec<(String, String)> = d[0]["sourceDescription"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["schema"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("ORDERID", "INTEGER"),
            ("ITEM", "STRING"),
            ("PRICE", "DOUBLE")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    sql.ok(
        "CREATE STREAM PRICED WITH (KAFKA_TOPIC='priced', VALUE_FORMAT='JSON_SR') AS \
         SELECT ORDERID, COALESCE(ITEM, 'none') AS ITEM, PRICE * 2 AS DOUBLED FROM ORDERS EMIT CHANGES;",
    );
    let out = read_n(
        &b,
        "priced",
        2,
        Duration::from_secs(30),
        Duration::from_millis(300),
    )
    .await;
    let (out_id, ty) = client.latest_id("priced-value").await.unwrap();
    assert_eq!(ty, "JSON");
    let schema: J =
        serde_json::from_str(&client.schema_text_by_id(out_id).await.unwrap().1).unwrap();
    let opt = |t: J, i: usize| json!({"oneOf": [{"type": "null"}, t], "connect.index": i});
    assert_eq!(
        schema,
        json!({"type": "object", "properties": {
            "ORDERID": opt(json!({"type": "integer", "connect.type": "int32"}), 0),
            "ITEM": opt(json!({"type": "string"}), 1),
            "DOUBLED": opt(json!({"type": "number"}), 2),
        }})
    );
    let got: Vec<J> = out
        .iter()
        .map(|r| {
            let v = r.value.as_deref().unwrap();
            assert_eq!(sr::split_frame(v).unwrap().0, out_id);
            serde_json::from_slice(&v[5..]).unwrap()
        })
        .collect();
    assert_eq!(
        got,
        [
            json!({"ORDERID": 1, "ITEM": "tea", "DOUBLED": 5.0}),
            json!({"ORDERID": 2, "ITEM": "none", "DOUBLED": 8.0}),
        ]
    );
    // INSERT VALUES writes under the producer schema's property names.
    sql.ok("INSERT INTO ORDERS (ORDERID, ITEM, PRICE) VALUES (3, 'jam', 1.0);");
    let all = read_n(&b, "orders", 3, Duration::from_secs(10), Duration::ZERO).await;
    let last = all.last().unwrap().value.as_deref().unwrap();
    assert_eq!(sr::split_frame(last).unwrap().0, id);
    assert_eq!(
        serde_json::from_slice::<J>(&last[5..]).unwrap(),
        json!({"orderId": 3, "item": "jam", "price": 1.0})
    );
    sql.stop().await;
}
