//! Persistent queries survive a restart of the SQL server: the command topic restores them,
//! they resume from their committed offsets, and with exactly_once_v2 the output holds no
//! duplicate, aggregates included (their state comes back from the changelog).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persistent_queries_continue_after_restart_without_duplicates() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(&b, "restart", state.path(), &[]).await;
    sql.ok("CREATE STREAM rt_src (k STRING KEY, v INT) WITH (KAFKA_TOPIC='rt_src', VALUE_FORMAT='JSON', PARTITIONS=1);");
    let eos = json!({"processing.guarantee": "exactly_once_v2"});
    let (code, j) = sql.ksql(
        "CREATE STREAM rt_out AS SELECT k, v + 1 AS w FROM rt_src;",
        eos.clone(),
    );
    assert_eq!(code, 200, "{j}");
    assert_eq!(j[0]["commandStatus"]["queryId"], "CSAS_RT_OUT_1");
    let (code, j) = sql.ksql(
        "CREATE TABLE rt_cnt AS SELECT k, COUNT(*) AS n FROM rt_src GROUP BY k;",
        eos,
    );
    assert_eq!(code, 200, "{j}");
    let first: Vec<In> = (1..=3)
        .map(|i| {
            (
                Some(b"a".to_vec()),
                Some(format!("{{\"V\":{i}}}").into_bytes()),
                i * 1000,
                None,
            )
        })
        .collect();
    produce(&b, "rt_src", &first).await;
    let out = read_n(&b, "RT_OUT", 3, Duration::from_secs(60), Duration::ZERO).await;
    assert_eq!(out.len(), 3);
    let cnt = read_n(&b, "RT_CNT", 3, Duration::from_secs(60), Duration::ZERO).await;
    assert_eq!(cnt.len(), 3);
    sql.stop().await;

    // While the server is down, more input arrives.
    let second: Vec<In> = (4..=5)
        .map(|i| {
            (
                Some(b"a".to_vec()),
                Some(format!("{{\"V\":{i}}}").into_bytes()),
                i * 1000,
                None,
            )
        })
        .collect();
    produce(&b, "rt_src", &second).await;

    let sql = SqlServer::start(&b, "restart", state.path(), &[]).await;
    let j = sql.ok("SHOW QUERIES;");
    let ids: Vec<&str> = j[0]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["CSAS_RT_OUT_1", "CTAS_RT_CNT_2"]);
    let out = read_n(
        &b,
        "RT_OUT",
        5,
        Duration::from_secs(60),
        Duration::from_millis(1500),
    )
    .await;
    let values: Vec<String> = out.iter().map(|r| s(&r.value)).collect();
    assert_eq!(
        values,
        [
            "{\"W\":2}",
            "{\"W\":3}",
            "{\"W\":4}",
            "{\"W\":5}",
            "{\"W\":6}"
        ]
    );
    let cnt = read_n(
        &b,
        "RT_CNT",
        5,
        Duration::from_secs(60),
        Duration::from_millis(1500),
    )
    .await;
    let counts: Vec<String> = cnt.iter().map(|r| s(&r.value)).collect();
    assert_eq!(
        counts,
        [
            "{\"N\":1}",
            "{\"N\":2}",
            "{\"N\":3}",
            "{\"N\":4}",
            "{\"N\":5}"
        ]
    );
    // The catalog and the commands' statuses came back too.
    let (code, _, body) = http(sql.port, "GET", "/status", None, None);
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["commandStatuses"]["table/`RT_CNT`/create"], "SUCCESS");

    let j = sql.ok("DESCRIBE rt_cnt;");
    assert_eq!(
        j[0]["sourceDescription"]["writeQueries"][0]["id"],
        "CTAS_RT_CNT_2"
    );
    sql.stop().await;
}
