//! The ksqlDB REST API driven with raw HTTP/1.1, as ksqlDB's clients speak it: /info,
//! /healthcheck, /ksql (statement entities and errors), /query-stream (delimited and JSON),
//! /query (chunked JSON array, PRINT), and a live push query that sees rows written
//! after it started.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value as J};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_api_as_a_ksqldb_client() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(&b, "rest", state.path(), &[]).await;
    let port = sql.port;

    let (code, _, body) = http(port, "GET", "/info", None, None);
    assert_eq!(code, 200);
    let info: J = serde_json::from_str(&body).unwrap();
    assert_eq!(info["KsqlServerInfo"]["ksqlServiceId"], "rest");
    assert_eq!(info["KsqlServerInfo"]["serverStatus"], "RUNNING");
    assert_eq!(
        info["KsqlServerInfo"]["version"],
        strom_sql::server::KSQL_VERSION
    );
    let (code, _, body) = http(port, "GET", "/healthcheck", None, None);
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<J>(&body).unwrap()["isHealthy"], true);

    // Statements: ksqlDB's entity shapes.
    let (code, j) = sql.ksql(
        "CREATE STREAM rs (id STRING KEY, v INT) WITH (KAFKA_TOPIC='rs', VALUE_FORMAT='JSON', PARTITIONS=1);",
        json!({}),
    );
    assert_eq!(code, 200, "{j}");
    assert_eq!(
        j,
        json!([{
            "@type": "currentStatus",
            "statementText": "CREATE STREAM rs (id STRING KEY, v INT) WITH (KAFKA_TOPIC='rs', VALUE_FORMAT='JSON', PARTITIONS=1);",
            "commandId": "stream/`RS`/create",
            "commandStatus": {"status": "SUCCESS", "message": "Stream created", "queryId": null},
            "commandSequenceNumber": 0,
            "warnings": []
        }])
    );
    let (code, _, body) = http(port, "GET", "/status", None, None);
    assert_eq!(code, 200);
    let st: J = serde_json::from_str(&body).unwrap();
    assert_eq!(
        st,
        json!({"commandStatuses": {"stream/`RS`/create": "SUCCESS"}})
    );
    let (code, _, body) = http(port, "GET", "/status/stream/%60RS%60/create", None, None);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<J>(&body).unwrap(),
        json!({"status": "SUCCESS", "message": "Stream created"})
    );
    let (code, _, _) = http(port, "GET", "/status/stream/%60NOPE%60/create", None, None);
    assert_eq!(code, 404);
    for (id, v, ts) in [("a", 1, 1000), ("b", 2, 2000), ("c", 3, 3000)] {
        sql.ok(&format!(
            "INSERT INTO rs (id, v, ROWTIME) VALUES ('{id}', {v}, {ts});"
        ));
    }
    // Errors: bad JSON, a parse error with its position, an unknown source.
    let (code, _, body) = http(port, "POST", "/ksql", Some("{not json"), None);
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<J>(&body).unwrap()["@type"],
        "generic_error"
    );
    let (code, j) = sql.ksql("SELECT * FROM rs\nWHERE v >;", json!({}));
    assert_eq!(code, 400);
    assert_eq!(j["@type"], "statement_error");
    assert_eq!(j["error_code"], 40001);
    assert_eq!(j["message"], "line 2:10: Expected: an expression, found: ;");
    let (code, j) = sql.ksql("DESCRIBE nope;", json!({}));
    assert_eq!(code, 400);
    assert_eq!(
        j["message"],
        "Could not find STREAM/TABLE 'NOPE' in the Metastore"
    );
    assert_eq!(j["statementText"], "DESCRIBE nope;");

    // /query-stream, delimited (the default): a header line, then one array per row.
    let q = json!({"sql": "SELECT id, v * 10 AS v10 FROM rs EMIT CHANGES LIMIT 3;", "properties": {"auto.offset.reset": "earliest"}}).to_string();
    let (code, head, body) = http(port, "POST", "/query-stream", Some(&q), None);
    assert_eq!(code, 200, "{body}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/vnd.ksqlapi.delimited.v1"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let lines: Vec<J> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["queryId"]
        .as_str()
        .unwrap()
        .starts_with("transient_RS_"));
    assert_eq!(lines[0]["columnNames"], json!(["ID", "V10"]));
    assert_eq!(lines[0]["columnTypes"], json!(["STRING", "INTEGER"]));
    assert_eq!(
        &lines[1..],
        &[json!(["a", 10]), json!(["b", 20]), json!(["c", 30])]
    );

    // /query-stream with Accept: application/json: one JSON array.
    let (code, _, body) = http(
        port,
        "POST",
        "/query-stream",
        Some(&q),
        Some("application/json"),
    );
    assert_eq!(code, 200);
    let arr: J = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(arr[0]["columnNames"], json!(["ID", "V10"]));
    assert_eq!(
        arr.as_array().unwrap()[1..],
        [json!(["a", 10]), json!(["b", 20]), json!(["c", 30])]
    );

    // /query-stream errors.
    let (code, _, body) = http(
        port,
        "POST",
        "/query-stream",
        Some(r#"{"sql": "SELECT * FROM nope EMIT CHANGES;"}"#),
        None,
    );
    assert_eq!(code, 400);
    let e: J = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error_code"], 40001);
    assert_eq!(e["message"], "NOPE does not exist.");

    // /query: the older chunked JSON array of header, rows and final message.
    let q = json!({"ksql": "SELECT * FROM rs EMIT CHANGES LIMIT 2;", "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"}}).to_string();
    let (code, _, body) = http(port, "POST", "/query", Some(&q), None);
    assert_eq!(code, 200, "{body}");
    let arr: J = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let arr = arr.as_array().unwrap();
    assert_eq!(arr.len(), 4, "{body}");
    assert_eq!(arr[0]["header"]["schema"], "`ID` STRING, `V` INTEGER");
    assert_eq!(arr[1], json!({"row": {"columns": ["a", 1]}}));
    assert_eq!(arr[2], json!({"row": {"columns": ["b", 2]}}));
    assert_eq!(arr[3], json!({"finalMessage": "Limit Reached"}));

    // PRINT through /query: the topic's records as text.
    let p = json!({"ksql": "PRINT 'rs' FROM BEGINNING LIMIT 2;"}).to_string();
    let (code, _, body) = http(port, "POST", "/query", Some(&p), None);
    assert_eq!(code, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "Key format: KAFKA_STRING");
    assert_eq!(lines[1], "Value format: JSON or KAFKA_STRING");
    assert_eq!(
        lines[2],
        "rowtime: 1970/01/01 00:00:01.000 Z, key: a, value: {\"V\":1}, partition: 0"
    );
    assert_eq!(
        lines[3],
        "rowtime: 1970/01/01 00:00:02.000 Z, key: b, value: {\"V\":2}, partition: 0"
    );
    assert_eq!(lines.len(), 4, "{body}");

    // A live push query (latest offsets): rows inserted after it started reach it.
    let q = json!({"sql": "SELECT id, v FROM rs WHERE v >= 100 EMIT CHANGES LIMIT 1;"}).to_string();
    let reader = std::thread::spawn(move || http(port, "POST", "/query-stream", Some(&q), None));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 100;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the push query saw no row");
        sql.ok(&format!("INSERT INTO rs (id, v) VALUES ('live', {n});"));
        n += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, _, body) = reader.join().unwrap();
    assert_eq!(code, 200);
    let lines: Vec<J> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[1][0], "live");
    assert!(lines[1][1].as_i64().unwrap() >= 100);

    // A push query without LIMIT is still open when the server stops: the stop ends it.
    let q = json!({"sql": "SELECT * FROM rs EMIT CHANGES;"}).to_string();
    let open = std::thread::spawn(move || http(port, "POST", "/query-stream", Some(&q), None));
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::time::timeout(Duration::from_secs(30), sql.stop())
        .await
        .expect("the server stops with a push query open");
    let (code, _, body) = open.join().unwrap();
    assert_eq!(code, 200);
    let header: J = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(header["columnNames"], json!(["ID", "V"]));
}
