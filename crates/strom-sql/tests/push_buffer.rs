//! Bounded push-query buffers: a client that stops reading is dropped once the query's
//! row buffer (`ksql.query.push.buffer.rows`) is full, with an error as the response's
//! last line, instead of rows piling up in the server; a reading client is unaffected.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value as J};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_push_client_is_dropped_not_buffered() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    create_topic(&b, "big", 1).await;
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(
        &b,
        "pushbuf",
        state.path(),
        &[("ksql.query.push.buffer.rows", "5")],
    )
    .await;
    sql.ok(
        "CREATE STREAM BIG (ID INT KEY, S STRING) WITH (KAFKA_TOPIC='big', VALUE_FORMAT='JSON');",
    );
    // 3 000 rows of 10 kB: far more than the socket buffers between a server and a
    // client that does not read hold.
    let pad = "x".repeat(10_000);
    let records: Vec<In> = (0..3_000i32)
        .map(|i| {
            (
                Some(i.to_be_bytes().to_vec()),
                Some(json!({"S": pad}).to_string().into_bytes()),
                1_000 + i64::from(i),
                None,
            )
        })
        .collect();
    produce(&b, "big", &records).await;

    // A client with a tiny receive buffer sends the query and does not read.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stream = sock
        .connect(format!("127.0.0.1:{}", sql.port).parse().unwrap())
        .await
        .unwrap();
    let body = json!({"sql": "SELECT ID, S FROM BIG EMIT CHANGES;", "properties": {"auto.offset.reset": "earliest"}}).to_string();
    let req = format!(
        "POST /query-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Meanwhile the server serves others.
    let (code, _, _) = http(sql.port, "GET", "/info", None, None);
    assert_eq!(code, 200);

    // Now read: what was in flight, then the error, then the end (the query stopped).
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("the dropped client's response ends")
            .unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let rows = text.matches(&pad).count();
    assert!(
        rows < 3_000,
        "the client got every row: nothing was dropped"
    );
    let err_line = text
        .lines()
        .rev()
        .find_map(|l| {
            let start = l.find("{\"@type\"")?;
            serde_json::from_str::<J>(&l[start..]).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no error line at the end: {}",
                &text[text.len().saturating_sub(300)..]
            )
        });
    assert_eq!(err_line["@type"], "generic_error");
    assert_eq!(err_line["error_code"], 50000);
    assert!(err_line["message"]
        .as_str()
        .unwrap()
        .contains("ksql.query.push.buffer.rows"));

    // A client that reads gets its rows.
    let q = json!({"sql": "SELECT ID FROM BIG WHERE ID < 3 EMIT CHANGES LIMIT 3;", "properties": {"auto.offset.reset": "earliest"}}).to_string();
    let (code, _, body) = http(sql.port, "POST", "/query-stream", Some(&q), None);
    assert_eq!(code, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[1..], ["[0]", "[1]", "[2]"]);
    sql.stop().await;
}
