//! Figures for the design note (ignored by default: run with
//! `STROM_BIN=/work/bin/strom cargo test -p strom-sql --release --test figures -- --ignored --nocapture`):
//! rows per second of a filter-project query and of a windowed aggregation, and the p99
//! latency of a push query from produce to the row reaching the HTTP client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn figures() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(&b, "figures", state.path(), &[]).await;
    let n: i64 = std::env::var("FIGURES_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    sql.ok("CREATE STREAM fg_in (k STRING KEY, v INT, name STRING) WITH (KAFKA_TOPIC='fg_in', VALUE_FORMAT='JSON', PARTITIONS=1);");
    let recs: Vec<In> = (0..n)
        .map(|i| {
            (
                Some(format!("k{}", i % 10).into_bytes()),
                Some(format!("{{\"V\":{i},\"NAME\":\"name-{i}\"}}").into_bytes()),
                i * 10,
                None,
            )
        })
        .collect();
    produce(&b, "fg_in", &recs).await;

    let t = Instant::now();
    sql.ok("CREATE STREAM fg_fp AS SELECT k, v * 2 AS v2, UCASE(name) AS name FROM fg_in WHERE v % 2 = 0;");
    let out = read_n(
        &b,
        "FG_FP",
        n as usize / 2,
        Duration::from_secs(600),
        Duration::ZERO,
    )
    .await;
    let e = t.elapsed();
    assert_eq!(out.len(), n as usize / 2);
    println!(
        "FIGURE filter-project: {n} input rows in {e:?}: {:.0} rows/s",
        n as f64 / e.as_secs_f64()
    );

    let t = Instant::now();
    sql.ok("CREATE TABLE fg_win AS SELECT k, COUNT(*) AS c, SUM(v) AS s FROM fg_in WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY k;");
    let out = read_n(
        &b,
        "FG_WIN",
        n as usize,
        Duration::from_secs(600),
        Duration::ZERO,
    )
    .await;
    let e = t.elapsed();
    assert_eq!(out.len(), n as usize);
    println!(
        "FIGURE windowed aggregation: {n} input rows in {e:?}: {:.0} rows/s",
        n as f64 / e.as_secs_f64()
    );

    // Push query latency: rows produced one at a time, timed from before the produce to
    // the row's line arriving at the HTTP client.
    sql.ok("CREATE STREAM fg_lat (k STRING KEY, sent BIGINT) WITH (KAFKA_TOPIC='fg_lat', VALUE_FORMAT='JSON', PARTITIONS=1);");
    let port = sql.port;
    let (tx, rx) = std::sync::mpsc::channel::<(i64, i64)>();
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"sql": "SELECT sent FROM fg_lat EMIT CHANGES;"}"#;
        write!(
            s,
            "POST /query-stream HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(v) = line
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
            {
                if let Ok(sent) = v.parse::<i64>() {
                    let _ = tx.send((sent, now_us()));
                }
            }
            line.clear();
        }
    });
    let mut p = strom_client::ProducerConfig::new(&b);
    p.set("linger.ms", "0").unwrap();
    let producer = strom_client::Producer::new(p).await.unwrap();
    let send = |sent: i64| {
        strom_client::ProducerRecord::new("fg_lat")
            .key(b"k".to_vec())
            .value(format!("{{\"SENT\":{sent}}}").into_bytes())
    };
    // Warm up until the transient query delivers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        producer.send(send(-1)).await.unwrap().await.unwrap();
        if rx.recv_timeout(Duration::from_millis(300)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "push query never delivered");
    }
    while rx.try_recv().is_ok() {}
    let mut lat = Vec::new();
    for _ in 0..300 {
        let sent = now_us();
        producer.send(send(sent)).await.unwrap().await.unwrap();
        loop {
            let (s, at) = rx.recv_timeout(Duration::from_secs(10)).expect("row");
            if s == sent {
                lat.push(at - s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "FIGURE push query latency over {} rows: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    producer.close().await;
    sql.stop().await;
}

/// The evaluator's own cost per row, for the note's DataFusion discussion: a WHERE and a
/// three-expression projection compiled once and evaluated over in-memory rows.
#[test]
#[ignore]
fn evaluator_cost() {
    use strom_sql::ast::{SelectItem, Statement};
    use strom_sql::expr::{Compiler, Scope};
    use strom_sql::types::{SqlType, Value};
    let parsed = strom_sql::parser::parse(
        "SELECT v * 2, UCASE(name), CASE WHEN v > 10 THEN CONCAT(name, '-', CAST(v AS STRING)) ELSE name END FROM s WHERE v % 2 = 0;",
    )
    .unwrap();
    let Statement::Select(q) = &parsed[0].statement else {
        panic!("a select")
    };
    let mut scope = Scope::default();
    scope.push(Some("S"), "V", SqlType::Int);
    scope.push(Some("S"), "NAME", SqlType::String);
    let (pred, _) = Compiler::new(&scope)
        .compile(q.where_.as_ref().unwrap())
        .unwrap();
    let proj: Vec<_> = q
        .select
        .iter()
        .map(|i| match i {
            SelectItem::Expr { expr, .. } => Compiler::new(&scope).compile(expr).unwrap().0,
            _ => panic!("expressions"),
        })
        .collect();
    let rows: Vec<Vec<Value>> = (0..1000)
        .map(|i| vec![Value::Int(i), Value::String(format!("name-{i}"))])
        .collect();
    let n = 1_000_000;
    let t = Instant::now();
    let mut kept = 0usize;
    for i in 0..n {
        let r = &rows[i % rows.len()];
        if pred.test(r) {
            let out: Vec<Value> = proj.iter().map(|e| e.eval(r)).collect();
            kept += out.len();
        }
    }
    let e = t.elapsed();
    assert_eq!(kept, n / 2 * 3);
    println!(
        "FIGURE evaluator: {n} rows (WHERE + 3 expressions) in {e:?}: {:.0} ns/row, {:.0} rows/s",
        e.as_nanos() as f64 / n as f64,
        n as f64 / e.as_secs_f64()
    );
}
