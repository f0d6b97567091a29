//! The web console's endpoints against a real broker: the embedded front end (content types,
//! ETag revalidation), `/api/console/...` bodies (topics with sizes, partitions, the message
//! browser and its filters, groups, offset reset preview/apply, histories) and their
//! v3-shaped errors, asserted exactly.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use hyper::Method;
use serde_json::{json, Value};
use strom_client::{Consumer, ConsumerConfig, ProducerRecord, TopicPartition};
use strom_console::ConsoleConfig;

fn config(b: &str) -> ConsoleConfig {
    let mut c = ConsoleConfig::new(b);
    c.history_interval = Duration::from_millis(200);
    c.lag.poll_interval = Duration::from_millis(200);
    c
}

/// Records `n` of `topic` partition `p`: key `k{i}`, value `{"n":i}`, header `h=even|odd`.
async fn produce(b: &str, topic: &str, p: i32, n: usize) {
    let prod = producer(b).await;
    let mut futs = Vec::new();
    for i in 0..n {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        let r = ProducerRecord::new(topic)
            .partition(p)
            .key(format!("k{i}"))
            .value(format!("{{\"n\":{i}}}"))
            .header("h", Some(parity.as_bytes().to_vec().into()));
        futs.push(prod.send(r).await.unwrap());
    }
    for f in futs {
        f.await.unwrap();
    }
}

fn offsets(v: &Value) -> Vec<i64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_end_is_served_with_types_and_revalidation() {
    let server = Server::start();
    let cs = serve_console(config(&server.bootstrap())).await;
    let (status, h, body) = get_with_headers(&cs.addr, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(body.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("pages.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let path = format!("/ui/{file}");
        let (status, h, body) = get_with_headers(&cs.addr, &path, &[]).await;
        assert_eq!((status, &h["content-type"]), (200, &ty.parse().unwrap()));
        assert!(!body.is_empty());
        let etag = h["etag"].to_str().unwrap().to_owned();
        let (status, _, body) =
            get_with_headers(&cs.addr, &path, &[("if-none-match", &etag)]).await;
        assert_eq!((status, body.as_str()), (304, ""), "{file} revalidates");
    }
    assert_eq!(
        get(&cs.addr, "/ui/missing.js").await,
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_partitions_and_overview() {
    let server = Server::start();
    let b = server.bootstrap();
    for (t, n) in [("a-1", 3), ("a-2", 1), ("b-1", 1)] {
        create_topic(&b, t, n).await;
    }
    produce(&b, "a-1", 1, 10).await;
    let cs = serve_console(config(&b)).await;

    let (status, mut v) = get(&cs.addr, "/api/console/topics?filter=A-&limit=1").await;
    assert_eq!(status, 200);
    assert!(v["data"][0]["size_bytes"].as_i64().unwrap() > 0, "{v}");
    v["data"][0]["size_bytes"] = json!("SIZE");
    assert_eq!(
        v,
        json!({"total": 2, "offset": 0, "limit": 1, "data": [{
            "topic_name": "a-1", "is_internal": false, "partitions_count": 3,
            "replication_factor": 1, "under_replicated_partitions": 0,
            "size_bytes": "SIZE", "messages": 10,
        }]})
    );
    let (_, v) = get(&cs.addr, "/api/console/topics?filter=a-&offset=1&limit=5").await;
    assert_eq!(v["total"], 2);
    assert_eq!(v["data"][0]["topic_name"], "a-2");
    assert_eq!(v["data"][0]["messages"], 0);
    let (_, v) = get(&cs.addr, "/api/console/topics?filter=zzz").await;
    assert_eq!(v, json!({"total": 0, "offset": 0, "limit": 50, "data": []}));
    for (q, msg) in [
        ("limit=0", "limit: must be between 1 and 500"),
        ("limit=501", "limit: must be between 1 and 500"),
        ("offset=-1", "offset: '-1' is not a valid number"),
        ("internal=maybe", "internal: 'maybe' is not true or false"),
    ] {
        assert_eq!(
            get(&cs.addr, &format!("/api/console/topics?{q}")).await,
            (400, json!({"error_code": 400, "message": msg})),
            "{q}"
        );
    }

    let (status, mut v) = get(
        &cs.addr,
        "/api/console/topics/a-1/partitions?offset=1&limit=1",
    )
    .await;
    assert_eq!(status, 200);
    v["data"][0]["size_bytes"] = json!("SIZE");
    assert_eq!(
        v,
        json!({"topic_name": "a-1", "total": 3, "offset": 1, "limit": 1, "data": [{
            "partition_id": 1, "leader": 1, "replicas": [1], "isr": [1], "offline_replicas": [],
            "log_start_offset": 0, "log_end_offset": 10, "size_bytes": "SIZE",
        }]})
    );
    assert_eq!(
        get(&cs.addr, "/api/console/topics/nope/partitions").await,
        (
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."})
        )
    );

    let (status, v) = get(&cs.addr, "/api/console/overview").await;
    assert_eq!(status, 200);
    assert_eq!(v["brokers"].as_array().unwrap().len(), 1);
    assert_eq!(v["brokers"][0]["is_controller"], true);
    assert_eq!(v["topics"], 3);
    let all: usize = admin(&b)
        .await
        .list_topics(true)
        .await
        .unwrap()
        .iter()
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(v["partitions"], all);
    assert_eq!(v["offline_partitions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_browser_reads_pages_and_filters_on_the_server() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "m", 2).await;
    produce(&b, "m", 0, 20).await;
    let cs = serve_console(config(&b)).await;
    let base = "/api/console/topics/m/messages";

    let (status, v) = get(&cs.addr, &format!("{base}?position=earliest&limit=5")).await;
    assert_eq!(status, 200);
    assert_eq!(offsets(&v), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        (
            v["from_offset"].clone(),
            v["next_offset"].clone(),
            v["scanned"].clone(),
            v["end_reached"].clone()
        ),
        (json!(0), json!(5), json!(5), json!(false))
    );
    let mut first = v["data"][0].clone();
    assert!(first["timestamp"].as_i64().unwrap() > 0);
    first["timestamp"] = json!(0);
    first["time"] = json!("T");
    assert_eq!(
        first,
        json!({"partition": 0, "offset": 0, "timestamp": 0, "time": "T",
            "key": "k0", "key_encoding": "text", "value": "{\"n\":0}", "value_encoding": "text",
            "value_size": 7, "truncated": false, "schema_id": null, "key_schema_id": null,
            "headers": [{"key": "h", "value": "even", "encoding": "text"}]})
    );
    // Latest (the default): the last `limit` records.
    let (_, v) = get(&cs.addr, &format!("{base}?limit=3")).await;
    assert_eq!(offsets(&v), vec![17, 18, 19]);
    assert_eq!(v["end_reached"], true);
    // From an offset, and from a timestamp (every record is after 0).
    let (_, v) = get(&cs.addr, &format!("{base}?offset=18")).await;
    assert_eq!(offsets(&v), vec![18, 19]);
    let (_, v) = get(&cs.addr, &format!("{base}?timestamp=0&limit=2")).await;
    assert_eq!(offsets(&v), vec![0, 1]);
    let (_, v) = get(&cs.addr, &format!("{base}?timestamp=99999999999999")).await;
    assert_eq!((offsets(&v), v["from_offset"].clone()), (vec![], json!(20)));
    // Server-side filters: value substring, key, header; scanning stops at max_scan.
    let (_, v) = get(
        &cs.addr,
        &format!("{base}?position=earliest&value=%22n%22%3A1"),
    )
    .await;
    assert_eq!(offsets(&v), vec![1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    let (_, v) = get(&cs.addr, &format!("{base}?key=k7")).await;
    assert_eq!((offsets(&v), v["scanned"].clone()), (vec![7], json!(20)));
    let (_, v) = get(
        &cs.addr,
        &format!("{base}?position=earliest&header=odd&limit=3"),
    )
    .await;
    assert_eq!(
        (offsets(&v), v["next_offset"].clone()),
        (vec![1, 3, 5], json!(6))
    );
    let (_, v) = get(
        &cs.addr,
        &format!("{base}?position=earliest&header=odd&max_scan=4"),
    )
    .await;
    assert_eq!(
        (offsets(&v), v["next_offset"].clone()),
        (vec![1, 3], json!(4))
    );
    // An empty partition.
    let (_, v) = get(&cs.addr, &format!("{base}?partition=1")).await;
    assert_eq!(
        (offsets(&v), v["end_reached"].clone()),
        (vec![], json!(true))
    );

    for (q, status, body) in [
        (
            "partition=2",
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."}),
        ),
        (
            "offset=abc",
            400,
            json!({"error_code": 400, "message": "offset: 'abc' is not a valid number"}),
        ),
        (
            "offset=1&timestamp=2",
            400,
            json!({"error_code": 400, "message": "give one of offset, timestamp and position"}),
        ),
        (
            "position=middle",
            400,
            json!({"error_code": 400, "message": "position: 'middle' is not earliest or latest"}),
        ),
        (
            "limit=501",
            400,
            json!({"error_code": 400, "message": "limit: must be between 1 and 500"}),
        ),
        (
            "max_scan=0",
            400,
            json!({"error_code": 400, "message": "max_scan: must be between 1 and 100000"}),
        ),
    ] {
        assert_eq!(
            get(&cs.addr, &format!("{base}?{q}")).await,
            (status, body),
            "{q}"
        );
    }
    // Every browse connects a consumer of its own; its connections close with it.
    let sockets = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = sockets();
    for _ in 0..50 {
        let (status, _) = get(&cs.addr, &format!("{base}?limit=3")).await;
        assert_eq!(status, 200);
    }
    // Times out (fails) if the 50 consumers left their sockets open.
    eventually(
        "browse connections closed",
        Duration::from_secs(10),
        async || (sockets() <= before + 5).then_some(()),
    )
    .await;
    assert_eq!(
        get(&cs.addr, "/api/console/topics/nope/messages").await,
        (
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_browser_over_all_partitions_merges_by_time() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "all", 3).await;
    // Partition by partition, so partition 0 holds the oldest records.
    for p in 0..3 {
        produce(&b, "all", p, 4).await;
    }
    create_topic(&b, "wide", 101).await;
    let cs = serve_console(config(&b)).await;
    let base = "/api/console/topics/all/messages?partition=all";
    let tps = |v: &Value| -> Vec<(i64, i64)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["partition"].as_i64().unwrap(),
                    m["offset"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (status, v) = get(&cs.addr, &format!("{base}&position=earliest&limit=5")).await;
    assert_eq!(status, 200);
    assert_eq!(tps(&v), vec![(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]);
    // Every partition has fewer than 5 records: all were read.
    assert_eq!(
        (v["partition_id"].clone(), v["end_reached"].clone()),
        (json!("all"), json!(true))
    );
    // With 3, each partition stops after its third record.
    let (_, v) = get(&cs.addr, &format!("{base}&position=earliest&limit=3")).await;
    assert_eq!(
        (tps(&v), v["end_reached"].clone()),
        (vec![(0, 0), (0, 1), (0, 2)], json!(false))
    );
    let (_, v) = get(&cs.addr, &format!("{base}&limit=5")).await;
    assert_eq!(tps(&v), vec![(1, 3), (2, 0), (2, 1), (2, 2), (2, 3)]);
    assert_eq!(
        v["partitions"],
        json!([
            {"partition_id": 0, "from_offset": 0, "next_offset": 4, "log_end_offset": 4},
            {"partition_id": 1, "from_offset": 0, "next_offset": 4, "log_end_offset": 4},
            {"partition_id": 2, "from_offset": 0, "next_offset": 4, "log_end_offset": 4},
        ])
    );
    let (_, v) = get(&cs.addr, &format!("{base}&key=k2")).await;
    assert_eq!(
        (tps(&v), v["scanned"].clone()),
        (vec![(0, 2), (1, 2), (2, 2)], json!(12))
    );
    let (_, v) = get(&cs.addr, &format!("{base}&timestamp=0&limit=2")).await;
    assert_eq!(tps(&v), vec![(0, 0), (0, 1)]);
    assert_eq!(
        get(&cs.addr, &format!("{base}&offset=1")).await,
        (
            400,
            json!({"error_code": 400, "message": "an offset needs one partition, not all"})
        )
    );
    assert_eq!(
        get(&cs.addr, "/api/console/topics/wide/messages?partition=all").await,
        (
            400,
            json!({"error_code": 400, "message": "partition 'all' reads at most 100 partitions and topic 'wide' has 101: choose one"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_reset_offsets_with_preview_and_histories() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "r", 2).await;
    produce(&b, "r", 0, 20).await;
    produce(&b, "r", 1, 4).await;
    let cs = serve_console(config(&b)).await;
    let admin = admin(&b).await;
    let commit = |p: i32, o: i64| (TopicPartition::new("r", p), o);
    admin
        .alter_group_offsets("g", &BTreeMap::from([commit(0, 5), commit(1, 4)]))
        .await
        .unwrap();

    let (status, v) = get(&cs.addr, "/api/console/groups/g").await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            json!([
                p["partition_id"],
                p["committed_offset"],
                p["log_end_offset"],
                p["lag"]
            ])
        })
        .collect();
    assert_eq!(rows, vec![json!([0, 5, 20, 15]), json!([1, 4, 4, 0])]);
    assert_eq!(
        (v["members"].clone(), v["partitions_total"].clone()),
        (json!([]), json!(2))
    );
    let (_, v) = get(&cs.addr, "/api/console/groups?filter=g").await;
    assert_eq!(
        (v["total"].clone(), v["data"][0]["group_id"].clone()),
        (json!(1), json!("g"))
    );

    // The lag history fills from the sampler.
    let lag = eventually("lag history", Duration::from_secs(10), async || {
        let (_, h) = get(&cs.addr, "/api/console/history/lag/g").await;
        h["data"].as_array()?.last().map(|s| s["lag"].clone())
    })
    .await;
    assert_eq!(lag, json!(15));
    let (_, h) = get(&cs.addr, "/api/console/history/throughput").await;
    assert_eq!(h["interval_ms"], 200);
    assert_eq!(h["end_offsets"], 24);

    // Preview: nothing changes.
    let path = "/api/console/groups/g/reset-offsets";
    let (status, v) = http_json(
        &cs.addr,
        Method::POST,
        path,
        Some(r#"{"to":"earliest","topic":"r","partitions":[0]}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"group_id": "g", "state": "Empty", "members": 0, "dry_run": true, "applied": false,
            "can_apply": true, "partitions": [{"topic_name": "r", "partition_id": 0,
            "current_offset": 5, "new_offset": 0, "log_start_offset": 0, "log_end_offset": 20,
            "lag_after": 20}]})
    );
    assert_eq!(
        admin.list_group_offsets("g").await.unwrap()[&TopicPartition::new("r", 0)].offset,
        5
    );
    // Offsets are clamped to the partition's range; timestamps find the first offset.
    let (_, v) = http_json(
        &cs.addr,
        Method::POST,
        path,
        Some(r#"{"to":"offset","offset":100}"#),
    )
    .await;
    let news: Vec<Value> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["new_offset"].clone())
        .collect();
    assert_eq!(news, vec![json!(20), json!(4)]);
    let (_, v) = http_json(
        &cs.addr,
        Method::POST,
        path,
        Some(r#"{"to":"timestamp","timestamp":0}"#),
    )
    .await;
    let news: Vec<Value> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["new_offset"].clone())
        .collect();
    assert_eq!(news, vec![json!(0), json!(0)]);
    // Apply.
    let (status, v) = http_json(
        &cs.addr,
        Method::POST,
        path,
        Some(r#"{"to":"latest","dry_run":false}"#),
    )
    .await;
    assert_eq!((status, v["applied"].clone()), (200, json!(true)));
    let now = admin.list_group_offsets("g").await.unwrap();
    assert_eq!(
        (
            now[&TopicPartition::new("r", 0)].offset,
            now[&TopicPartition::new("r", 1)].offset
        ),
        (20, 4)
    );

    // An active group: Kafka refuses.
    let mut cc = ConsumerConfig::new(&b);
    cc.set("group.id", "live").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&["r"], None).unwrap();
    eventually("an assignment", Duration::from_secs(20), async || {
        consumer.poll(Duration::from_millis(100)).await.ok()?;
        (!consumer.assignment().is_empty()).then_some(())
    })
    .await;
    let (status, v) = http_json(
        &cs.addr,
        Method::POST,
        "/api/console/groups/live/reset-offsets",
        Some(r#"{"to":"earliest","topic":"r"}"#),
    )
    .await;
    assert_eq!(
        (status, v["can_apply"].clone(), v["state"].clone()),
        (200, json!(false), json!("Stable"))
    );
    assert_eq!(
        http_json(
            &cs.addr,
            Method::POST,
            "/api/console/groups/live/reset-offsets",
            Some(r#"{"to":"earliest","topic":"r","dry_run":false}"#)
        )
        .await,
        (
            400,
            json!({"error_code": 40002, "message": "Assignments can only be reset if the group 'live' is inactive, but the current state is Stable."})
        )
    );
    let (_, v) = get(&cs.addr, "/api/console/groups/live").await;
    assert_eq!(v["members"].as_array().unwrap().len(), 1);
    assert_eq!(v["members"][0]["assignments"].as_array().unwrap().len(), 2);

    for (body, status, want) in [
        (
            r#"{"to":"sideways"}"#,
            400,
            json!({"error_code": 400, "message": "to: 'sideways' is not earliest, latest, timestamp or offset"}),
        ),
        (
            r#"{"to":"offset"}"#,
            400,
            json!({"error_code": 400, "message": "to 'offset' needs an offset"}),
        ),
        (
            r#"{"to":"timestamp","timestamp":-5}"#,
            400,
            json!({"error_code": 400, "message": "to 'timestamp' needs a timestamp (ms since the epoch, >= 0)"}),
        ),
        (
            r#"{"to":"earliest","topic":"r","partitions":[7]}"#,
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."}),
        ),
        (
            r#"{"to":"earliest","topic":"nope"}"#,
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."}),
        ),
    ] {
        assert_eq!(
            http_json(&cs.addr, Method::POST, path, Some(body)).await,
            (status, want),
            "{body}"
        );
    }
    // A form post from another site is refused; the console's own page passes.
    let body = r#"{"to":"earliest","dry_run":false}"#;
    let (status, text) = request_with_headers(
        &cs.addr,
        Method::POST,
        path,
        body,
        &[
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ],
    )
    .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&text).unwrap()),
        (
            403,
            json!({"error_code": 403, "message": "Cross-origin request refused: Origin http://evil.example does not match this server"})
        )
    );
    assert_eq!(
        admin.list_group_offsets("g").await.unwrap()[&TopicPartition::new("r", 0)].offset,
        20
    );
    let same = format!("http://{}", cs.addr);
    let (status, _) = request_with_headers(
        &cs.addr,
        Method::POST,
        path,
        r#"{"to":"latest"}"#,
        &[("origin", &same)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = http_json(&cs.addr, Method::POST, path, Some("{")).await;
    assert_eq!((status, v["error_code"].clone()), (400, json!(400)));
    assert_eq!(
        http_json(
            &cs.addr,
            Method::POST,
            "/api/console/groups/nope/reset-offsets",
            Some(r#"{"to":"earliest"}"#)
        )
        .await,
        (
            404,
            json!({"error_code": 404, "message": "Consumer group nope cannot be found."})
        )
    );
    assert_eq!(
        get(&cs.addr, "/api/console/groups/nope").await,
        (
            404,
            json!({"error_code": 404, "message": "Consumer group nope cannot be found."})
        )
    );
    drop(consumer);
}

const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[{"name":"item","type":"string"},{"name":"qty","type":"int"}]}"#;

/// A Schema Registry that knows schema 7 (Avro `Order`) only.
async fn fake_registry() -> String {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::Json;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        axum::routing::get(|Path(id): Path<i32>| async move {
            if id == 7 {
                (StatusCode::OK, Json(json!({ "schema": ORDER_SCHEMA })))
            } else {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error_code": 40403, "message": "Schema not found"})),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_values_are_decoded_through_the_schema_registry() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "avro", 1).await;
    let prod = producer(&b).await;
    // Schema 7: {"item": "book", "qty": 2} in Avro (zig-zag lengths and ints); schema 9 is
    // unknown to the registry.
    let framed: [&[u8]; 2] = [
        &[0, 0, 0, 0, 7, 8, b'b', b'o', b'o', b'k', 4],
        &[0, 0, 0, 0, 9, 0],
    ];
    for v in framed {
        // The key is framed too (schema 7): decoded like the value.
        let r = ProducerRecord::new("avro")
            .key(framed[0].to_vec())
            .value(v.to_vec());
        prod.send(r).await.unwrap().await.unwrap();
    }
    let path = "/api/console/topics/avro/messages?position=earliest";

    let plain = serve_console(config(&b)).await;
    let (_, v) = get(&plain.addr, path).await;
    let shown: Vec<Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!([
                m["schema_id"],
                m["value_encoding"],
                m["value"],
                m["key_encoding"]
            ])
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            json!([7, "base64", "AAAAAAcIYm9vawQ=", "base64"]),
            json!([9, "base64", "AAAAAAkA", "base64"])
        ]
    );

    let mut cfg = config(&b);
    cfg.schema_registry_url = Some(fake_registry().await);
    let decoding = serve_console(cfg).await;
    let (status, v) = get(&decoding.addr, path).await;
    assert_eq!(status, 200);
    let m = &v["data"][0];
    assert_eq!(
        (m["value_encoding"].clone(), m["schema_type"].clone()),
        (json!("schema-registry"), json!("AVRO"))
    );
    let decoded: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
    assert_eq!(decoded, json!({"item": "book", "qty": 2}));
    assert_eq!(
        (m["key_schema_id"].clone(), m["key_encoding"].clone()),
        (json!(7), json!("schema-registry"))
    );
    let key: Value = serde_json::from_str(m["key"].as_str().unwrap()).unwrap();
    assert_eq!(key, json!({"item": "book", "qty": 2}));
    let m = &v["data"][1];
    assert_eq!(
        (m["value_encoding"].clone(), m["decode_error"].clone()),
        (
            json!("base64"),
            json!("schema registry error 40403 (HTTP 404): Schema not found")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_connectors_pages_name_missing_services_and_pass_errors_through() {
    let server = Server::start();
    let b = server.bootstrap();
    // Neither service configured: 404s naming the setting.
    let bare = serve_console(config(&b)).await;
    assert_eq!(
        get(&bare.addr, "/api/console/schemas").await,
        (
            404,
            json!({"error_code": 404, "message": "No Schema Registry is configured (console.schema.registry.url)"})
        )
    );
    assert_eq!(
        get(&bare.addr, "/api/console/connectors").await,
        (
            404,
            json!({"error_code": 404, "message": "No Connect worker is configured (console.connect.url)"})
        )
    );

    // Real services: their errors come back with their codes; bad parameters are 400s.
    let mut cfg = config(&b);
    cfg.schema_registry_url = Some(start_registry(&b).await);
    let dir = tempfile::tempdir().unwrap();
    let (connect_url, _worker) = start_connect(&b, dir.path()).await;
    cfg.connect_url = Some(connect_url);
    let cs = serve_console(cfg).await;
    let (status, body) = get(&cs.addr, "/api/console/schemas?limit=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(
        body["data"],
        json!([{"subject": "ui-orders-value", "version": 2, "id": 2, "schema_type": "AVRO"}])
    );
    let (status, body) = get(&cs.addr, "/api/console/schemas/no-such-subject").await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (404, json!(40401)),
        "{body}"
    );
    assert_eq!(
        get(
            &cs.addr,
            "/api/console/schemas/ui-orders-value?version=first"
        )
        .await,
        (
            400,
            json!({"error_code": 400, "message": "version: 'first' is not a version number or latest"})
        )
    );
    let (status, body) = request_with_headers(
        &cs.addr,
        Method::POST,
        "/api/console/connectors/ui-file/explode",
        "",
        &[],
    )
    .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (
            400,
            json!({"error_code": 400, "message": "action: 'explode' is not pause, resume or restart"})
        )
    );
    let (status, body) = request_with_headers(
        &cs.addr,
        Method::POST,
        "/api/console/connectors/no-such/pause",
        "",
        &[],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no-such"), "{body}");
}
