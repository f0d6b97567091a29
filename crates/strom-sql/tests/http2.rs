//! `/query-stream` over HTTP/2 cleartext with prior knowledge, as ksqlDB's Java client
//! speaks it, on the same port as HTTP/1.1: the documented request (`{"sql",
//! "properties"}`) and response shapes (a header object, then one JSON array per row,
//! streamed live; or one JSON array with `Accept: application/json`), two queries
//! multiplexed on one connection.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value as J};

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Sender {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an HTTP/2 prior-knowledge handshake");
    tokio::spawn(conn);
    sender
}

fn request(sql: &str, accept: Option<&str>) -> Request<Full<Bytes>> {
    let body = json!({"sql": sql, "properties": {"auto.offset.reset": "earliest"}}).to_string();
    let mut r = Request::post("http://127.0.0.1/query-stream")
        .header("content-type", "application/vnd.ksqlapi.delimited.v1");
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_stream_over_http2() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(&b, "h2", state.path(), &[]).await;
    sql.ok("CREATE STREAM S (ID STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);");
    sql.ok("INSERT INTO S (ID, V) VALUES ('a', 1); INSERT INTO S (ID, V) VALUES ('b', 2);");

    let mut sender = connect(sql.port).await;
    // A live push query: two rows from the beginning, then one inserted while it runs.
    let resp = sender
        .send_request(request(
            "SELECT ID, V * 10 AS V10 FROM S EMIT CHANGES LIMIT 3;",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.ksqlapi.delimited.v1"
    );
    let mut body = resp.into_body();
    let mut text = String::new();
    // Read until the header and both existing rows arrived.
    while text.lines().count() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("rows in time")
            .expect("the stream is open")
            .unwrap();
        if let Ok(d) = frame.into_data() {
            text.push_str(std::str::from_utf8(&d).unwrap());
        }
    }

    // Meanwhile a second query on the same connection (multiplexed), as one JSON array.
    let other = sender
        .send_request(request(
            "SELECT ID, V FROM S EMIT CHANGES LIMIT 2;",
            Some("application/json"),
        ))
        .await
        .unwrap();
    assert_eq!(other.version(), Version::HTTP_2);
    let all = other.into_body().collect().await.unwrap().to_bytes();
    let arr: J = serde_json::from_slice(&all).unwrap();
    let arr = arr.as_array().unwrap();
    assert_eq!(arr.len(), 3, "{arr:?}");
    assert_eq!(arr[0]["columnNames"], json!(["ID", "V"]));
    assert_eq!(arr[0]["columnTypes"], json!(["STRING", "INTEGER"]));
    assert_eq!(arr[1..], [json!(["a", 1]), json!(["b", 2])]);

    // The live row reaches the first query, which then ends at its LIMIT.
    sql.ok("INSERT INTO S (ID, V) VALUES ('c', 3);");
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("the live row in time")
    {
        if let Ok(d) = frame.unwrap().into_data() {
            text.push_str(std::str::from_utf8(&d).unwrap());
        }
    }
    let lines: Vec<J> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["queryId"].as_str().is_some_and(|q| !q.is_empty()));
    assert_eq!(lines[0]["columnNames"], json!(["ID", "V10"]));
    assert_eq!(lines[0]["columnTypes"], json!(["STRING", "INTEGER"]));
    assert_eq!(
        lines[1..],
        [json!(["a", 10]), json!(["b", 20]), json!(["c", 30])]
    );

    // HTTP/1.1 still works on the same port.
    let (code, _, info) = http(sql.port, "GET", "/info", None, None);
    assert_eq!(code, 200, "{info}");
    sql.stop().await;
}
