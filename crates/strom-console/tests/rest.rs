//! The REST Proxy v3 against a real broker, over raw HTTP: cluster, broker, topic, partition,
//! config and consumer-group reads, topic create and delete, producing in every data mode
//! (read back with strom-client's consumer), the streamed mode, and v3 error bodies.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};
use strom_client::{ConsumerConfig, ConsumerRecord, TopicPartition};
use strom_console::ConsoleConfig;

use common::*;

struct Env {
    _server: Server,
    b: String,
    addr: String,
    base: String,
    cluster: String,
    _console: ConsoleServer,
}

async fn env() -> Env {
    let server = Server::start();
    let b = server.bootstrap();
    let console = serve_console(ConsoleConfig::new(&b)).await;
    let cluster = admin(&b).await.describe_cluster().await.unwrap().cluster_id;
    Env {
        b,
        addr: console.addr.clone(),
        base: console.base.clone(),
        cluster,
        _server: server,
        _console: console,
    }
}

/// Reads `n` records of `topic` from the beginning with strom-client's consumer.
async fn read_back(b: &str, topic: &str, partitions: i32, n: usize) -> Vec<ConsumerRecord> {
    let mut c = ConsumerConfig::new(b);
    c.set("auto.offset.reset", "earliest").unwrap();
    c.set("fetch.max.wait.ms", "100").unwrap();
    let mut consumer = strom_client::Consumer::new(c).await.unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(&tps);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n && std::time::Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(out.len(), n, "records read back from {topic}");
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_brokers_topics_partitions_and_configs() {
    let e = env().await;
    let (addr, base, id) = (&e.addr, &e.base, &e.cluster);
    let cluster_url = format!("{base}/v3/clusters/{id}");
    let cluster = json!({
        "kind": "KafkaCluster",
        "metadata": { "self": cluster_url, "resource_name": format!("crn:///kafka={id}") },
        "cluster_id": id,
        "controller": { "related": format!("{cluster_url}/brokers/1") },
        "acls": { "related": format!("{cluster_url}/acls") },
        "brokers": { "related": format!("{cluster_url}/brokers") },
        "broker_configs": { "related": format!("{cluster_url}/broker-configs") },
        "consumer_groups": { "related": format!("{cluster_url}/consumer-groups") },
        "topics": { "related": format!("{cluster_url}/topics") },
        "partition_reassignments": { "related": format!("{cluster_url}/topics/-/partitions/-/reassignment") },
    });
    let (code, v) = get(addr, "/v3/clusters").await;
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({
            "kind": "KafkaClusterList",
            "metadata": { "self": format!("{base}/v3/clusters"), "next": null },
            "data": [cluster],
        })
    );
    assert_eq!(
        get(addr, &format!("/v3/clusters/{id}")).await,
        (200, cluster)
    );
    assert_eq!(
        get(addr, "/v3/clusters/nope").await,
        (
            404,
            json!({"error_code": 404, "message": "Cluster nope cannot be found."})
        )
    );

    let (code, v) = get(addr, &format!("/v3/clusters/{id}/brokers")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "KafkaBrokerList");
    let broker = &v["data"][0];
    assert_eq!(broker["broker_id"], 1);
    assert_eq!(broker["host"], "127.0.0.1");
    assert_eq!(
        broker["port"],
        e.b.rsplit(':').next().unwrap().parse::<i64>().unwrap()
    );
    assert_eq!(
        get(addr, &format!("/v3/clusters/{id}/brokers/1")).await.1,
        *broker
    );
    assert_eq!(
        get(addr, &format!("/v3/clusters/{id}/brokers/9")).await,
        (
            404,
            json!({"error_code": 404, "message": "Broker 9 cannot be found."})
        )
    );

    // Create: 201 with the topic.
    let topics = format!("/v3/clusters/{id}/topics");
    let body = r#"{"topic_name":"orders","partitions_count":3,"replication_factor":1,
                   "configs":[{"name":"cleanup.policy","value":"compact"}]}"#;
    let (code, created) = http_json(addr, Method::POST, &topics, Some(body)).await;
    let topic_url = format!("{base}{topics}/orders");
    let orders = json!({
        "kind": "KafkaTopic",
        "metadata": { "self": topic_url, "resource_name": format!("crn:///kafka={id}/topic=orders") },
        "cluster_id": id,
        "topic_name": "orders",
        "is_internal": false,
        "replication_factor": 1,
        "partitions_count": 3,
        "partitions": { "related": format!("{topic_url}/partitions") },
        "configs": { "related": format!("{topic_url}/configs") },
        "partition_reassignments": { "related": format!("{topic_url}/partitions/-/reassignment") },
        "authorized_operations": [],
    });
    assert_eq!((code, &created), (201, &orders));
    wait_for_leaders(&admin(&e.b).await, "orders", 3).await;
    assert_eq!(
        get(addr, &format!("{topics}/orders")).await,
        (200, orders.clone())
    );
    let (code, list) = get(addr, &topics).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "KafkaTopicList");
    assert!(list["data"].as_array().unwrap().contains(&orders));
    // Creating it again: 400 with Confluent's 40002.
    let (code, v) = http_json(addr, Method::POST, &topics, Some(body)).await;
    assert_eq!((code, &v["error_code"]), (400, &json!(40002)), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("TOPIC_ALREADY_EXISTS"),
        "{v}"
    );
    // A body that is not a topic: 400.
    let (code, v) = http_json(addr, Method::POST, &topics, Some(r#"{"name":1}"#)).await;
    assert_eq!((code, &v["error_code"]), (400, &json!(400)), "{v}");

    // Partitions.
    let (code, v) = get(addr, &format!("{topics}/orders/partitions")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "KafkaPartitionList");
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let p2_url = format!("{topic_url}/partitions/2");
    assert_eq!(
        get(addr, &format!("{topics}/orders/partitions/2")).await,
        (
            200,
            json!({
                "kind": "KafkaPartition",
                "metadata": { "self": p2_url, "resource_name": format!("crn:///kafka={id}/topic=orders/partition=2") },
                "cluster_id": id,
                "topic_name": "orders",
                "partition_id": 2,
                "leader": { "related": format!("{p2_url}/replicas/1") },
                "replicas": { "related": format!("{p2_url}/replicas") },
                "reassignment": { "related": format!("{p2_url}/reassignment") },
            })
        )
    );
    let not_hosted =
        json!({"error_code": 40403, "message": "This server does not host this topic-partition."});
    assert_eq!(
        get(addr, &format!("{topics}/orders/partitions/7")).await,
        (404, not_hosted.clone())
    );
    let (code, v) = get(addr, &format!("{topics}/orders/partitions/x")).await;
    assert_eq!((code, &v["error_code"]), (400, &json!(400)));

    // Configs.
    let (code, v) = get(addr, &format!("{topics}/orders/configs")).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "KafkaTopicConfigList");
    let policy = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cleanup.policy")
        .cloned()
        .unwrap();
    let policy_url = format!("{topic_url}/configs/cleanup.policy");
    assert_eq!(
        policy,
        json!({
            "kind": "KafkaTopicConfig",
            "metadata": { "self": policy_url, "resource_name": format!("crn:///kafka={id}/topic=orders/config=cleanup.policy") },
            "cluster_id": id,
            "topic_name": "orders",
            "name": "cleanup.policy",
            "value": "compact",
            "is_default": false,
            "is_read_only": false,
            "is_sensitive": false,
            "source": "DYNAMIC_TOPIC_CONFIG",
            "synonyms": [],
        })
    );
    assert_eq!(
        get(addr, &format!("{topics}/orders/configs/cleanup.policy")).await,
        (200, policy)
    );

    // Replicas.
    let (code, v) = get(addr, &format!("{topics}/orders/partitions/2/replicas")).await;
    let replica = json!({
        "kind": "KafkaReplica",
        "metadata": {
            "self": format!("{p2_url}/replicas/1"),
            "resource_name": format!("crn:///kafka={id}/topic=orders/partition=2/replica=1"),
        },
        "cluster_id": id, "topic_name": "orders", "partition_id": 2, "broker_id": 1,
        "is_leader": true, "is_in_sync": true,
        "broker": { "related": format!("{cluster_url}/brokers/1") },
    });
    assert_eq!((code, &v["data"]), (200, &json!([replica])));
    assert_eq!(
        get(addr, &format!("{topics}/orders/partitions/2/replicas/1")).await,
        (200, replica)
    );
    assert_eq!(
        get(addr, &format!("{topics}/orders/partitions/2/replicas/4"))
            .await
            .0,
        404
    );

    // Changing configs: one by PUT, several by configs:alter, back to default by DELETE.
    let retention = format!("{topics}/orders/configs/retention.ms");
    let (code, text) = http(addr, Method::PUT, &retention, Some(r#"{"value":"60000"}"#)).await;
    assert_eq!((code, text.as_str()), (204, ""));
    let (_, v) = get(addr, &retention).await;
    assert_eq!(
        (&v["value"], &v["source"]),
        (&json!("60000"), &json!("DYNAMIC_TOPIC_CONFIG"))
    );
    let alter = format!("{topics}/orders/configs:alter");
    let batch = r#"{"data":[{"name":"retention.ms","operation":"DELETE"},
                            {"name":"segment.ms","value":"3600000"}]}"#;
    assert_eq!(http(addr, Method::POST, &alter, Some(batch)).await.0, 204);
    let (_, v) = get(addr, &retention).await;
    assert_eq!(v["is_default"], true, "{v}");
    let (_, v) = get(addr, &format!("{topics}/orders/configs/segment.ms")).await;
    assert_eq!(v["value"], "3600000");
    assert_eq!(
        http(
            addr,
            Method::DELETE,
            &format!("{topics}/orders/configs/segment.ms"),
            None
        )
        .await
        .0,
        204
    );
    let (_, v) = get(addr, &format!("{topics}/orders/configs/segment.ms")).await;
    assert_eq!(v["is_default"], true, "{v}");
    let (code, v) = http_json(addr, Method::PUT, &retention, Some(r#"{"value":"soon"}"#)).await;
    assert_eq!((code, &v["error_code"]), (400, &json!(40002)), "{v}");
    let bad_op = r#"{"data":[{"name":"retention.ms","operation":"APPEND","value":"1"}]}"#;
    let (code, v) = http_json(addr, Method::POST, &alter, Some(bad_op)).await;
    assert_eq!((code, &v["error_code"]), (400, &json!(400)), "{v}");
    assert_eq!(
        get(addr, &format!("{topics}/orders/configs/no.such.config")).await,
        (
            404,
            json!({"error_code": 404, "message": "Config no.such.config cannot be found."})
        )
    );

    // Broker configs.
    let (code, v) = get(addr, &format!("/v3/clusters/{id}/brokers/1/configs")).await;
    assert_eq!((code, &v["kind"]), (200, &json!("KafkaBrokerConfigList")));
    let first = v["data"][0].clone();
    assert_eq!(
        (&first["kind"], &first["broker_id"]),
        (&json!("KafkaBrokerConfig"), &json!(1))
    );
    let name = first["name"].as_str().unwrap();
    assert_eq!(
        get(addr, &format!("/v3/clusters/{id}/brokers/1/configs/{name}")).await,
        (200, first.clone())
    );

    // Delete: 204, then the topic is gone.
    let (code, text) = http(addr, Method::DELETE, &format!("{topics}/orders"), None).await;
    assert_eq!((code, text.as_str()), (204, ""));
    let gone = eventually("orders to be gone", Duration::from_secs(10), async || {
        let r = get(addr, &format!("{topics}/orders")).await;
        (r.0 == 404).then_some(r)
    })
    .await;
    assert_eq!(gone, (404, not_hosted.clone()));
    assert_eq!(
        http_json(addr, Method::DELETE, &format!("{topics}/orders"), None).await,
        (404, not_hosted)
    );
    assert_eq!(
        get(addr, "/v3/nothing/here").await,
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    assert_eq!(
        http_json(addr, Method::PATCH, &format!("/v3/clusters/{id}"), None).await,
        (
            405,
            json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"})
        )
    );
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_in_every_data_mode_and_read_back() {
    let e = env().await;
    create_topic(&e.b, "events", 2).await;
    let (addr, id) = (&e.addr, &e.cluster);
    let records = format!("/v3/clusters/{id}/topics/events/records");

    // JSON value, STRING key, a header, partition and timestamp chosen.
    let body = json!({
        "partition_id": 1,
        "headers": [{"name": "trace", "value": b64(b"abc")}, {"name": "empty", "value": null}],
        "key": {"type": "STRING", "data": "k-1"},
        "value": {"type": "JSON", "data": {"n": 1, "tags": ["a", "b"]}},
        "timestamp": "2021-02-05T19:14:42.123Z",
    });
    let (code, v) = http_json(addr, Method::POST, &records, Some(&body.to_string())).await;
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({
            "error_code": 200, "cluster_id": id, "topic_name": "events", "partition_id": 1,
            "offset": 0, "timestamp": "2021-02-05T19:14:42.123Z",
            "key": {"type": "STRING", "size": 3},
            "value": {"type": "JSON", "size": 24},
        })
    );
    // BINARY key and value on partition 0.
    let body = json!({
        "partition_id": 0,
        "key": {"type": "BINARY", "data": b64(&[0, 255, 7])},
        "value": {"type": "BINARY", "data": b64(b"\x01\x02binary")},
    });
    let (code, v) = http_json(addr, Method::POST, &records, Some(&body.to_string())).await;
    assert_eq!(code, 200);
    assert_eq!(
        (v["partition_id"].clone(), v["offset"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(v["key"], json!({"type": "BINARY", "size": 3}));
    assert_eq!(v["value"], json!({"type": "BINARY", "size": 8}));
    // STRING value without a key, JSON value without a type (JSON is the default), a null
    // value: three records in one body (200, one report each).
    let body = [
        json!({"partition_id": 0, "value": {"type": "STRING", "data": "plain text"}}),
        json!({"partition_id": 0, "value": {"data": [1, 2, 3]}}),
        json!({"partition_id": 0, "key": {"type": "STRING", "data": "gone"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (code, text) = http(addr, Method::POST, &records, Some(&body)).await;
    assert_eq!(code, 200);
    let reports: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    let offsets: Vec<&Value> = reports.iter().map(|r| &r["offset"]).collect();
    assert_eq!(offsets, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(reports[0]["key"], Value::Null);
    assert_eq!(reports[0]["value"], json!({"type": "STRING", "size": 10}));
    assert_eq!(reports[1]["value"], json!({"type": "JSON", "size": 7}));
    assert_eq!(reports[2]["value"], Value::Null);

    let got = read_back(&e.b, "events", 2, 5).await;
    let r = |p: i32, o: i64| {
        got.iter()
            .find(|r| r.partition == p && r.offset == o)
            .unwrap()
    };
    let first = r(1, 0);
    assert_eq!(first.key.as_deref(), Some(&b"k-1"[..]));
    assert_eq!(
        first.value.as_deref(),
        Some(&br#"{"n":1,"tags":["a","b"]}"#[..])
    );
    assert_eq!(first.timestamp, 1_612_552_482_123);
    assert_eq!(
        first.headers,
        vec![
            ("trace".to_owned(), Some(bytes::Bytes::from_static(b"abc"))),
            ("empty".to_owned(), None)
        ]
    );
    assert_eq!(r(0, 0).key.as_deref(), Some(&[0u8, 255, 7][..]));
    assert_eq!(r(0, 0).value.as_deref(), Some(&b"\x01\x02binary"[..]));
    assert_eq!(r(0, 1).key, None);
    assert_eq!(r(0, 1).value.as_deref(), Some(&b"plain text"[..]));
    assert_eq!(r(0, 2).value.as_deref(), Some(&b"[1,2,3]"[..]));
    assert_eq!(r(0, 3).key.as_deref(), Some(&b"gone"[..]));
    assert_eq!(r(0, 3).value, None);

    // Errors, one record each: the record's status and a v3 body.
    for (body, status, code) in [
        (
            r#"{"value":{"type":"BINARY","data":"not base64!"}}"#,
            400,
            400,
        ),
        (r#"{"value":{"type":"AVRO","data":"x"}}"#, 400, 400),
        (r#"{"value":{"schema_id":3,"data":"x"}}"#, 400, 400),
        (r#"{"partition_id":5,"value":{"data":1}}"#, 404, 40403),
        (r#"{"timestamp":"yesterday"}"#, 400, 400),
        (r#"{"surprise":true}"#, 400, 400),
        (r#"{"value":"#, 400, 400),
        ("", 400, 400),
    ] {
        let (got_status, v) = http_json(addr, Method::POST, &records, Some(body)).await;
        assert_eq!(
            (got_status, &v["error_code"]),
            (status, &json!(code)),
            "{body}: {v}"
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}: {v}"
        );
    }
    assert_eq!(
        http_json(
            addr,
            Method::POST,
            &format!("/v3/clusters/{id}/topics/missing/records"),
            Some(r#"{"value":{"data":1}}"#)
        )
        .await,
        (
            404,
            json!({"error_code": 40403, "message": "This server does not host this topic-partition."})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamed_mode_answers_each_record_as_it_arrives() {
    let e = env().await;
    create_topic(&e.b, "stream", 1).await;
    let path = format!("/v3/clusters/{}/topics/stream/records", e.cluster);
    let mut s = streaming_post(&e.addr, &path).await;
    assert_eq!(s.response.status(), 200);
    // Each report comes back before the next record is sent: the request stays open.
    for i in 0..3 {
        let record = json!({"value": {"type": "STRING", "data": format!("r{i}")}}).to_string();
        // Split a record across two chunks.
        let (a, b) = record.split_at(record.len() / 2);
        s.send(a).await;
        s.send(b).await;
        let report = s.next_report().await.unwrap();
        assert_eq!(report["error_code"], 200, "{report}");
        assert_eq!(report["offset"], i);
    }
    // A record sent a few bytes at a time.
    let record = json!({"value": {"type": "STRING", "data": "x".repeat(3000)}}).to_string();
    for piece in record.as_bytes().chunks(7) {
        s.send(std::str::from_utf8(piece).unwrap()).await;
    }
    let report = s.next_report().await.unwrap();
    assert_eq!(
        (&report["offset"], &report["value"]["size"]),
        (&json!(3), &json!(3000))
    );
    // A bad record in the stream gets its own error; the stream goes on.
    s.send(r#"{"value":{"type":"BINARY","data":"%%%"}}"#).await;
    let bad = s.next_report().await.unwrap();
    assert_eq!(bad["error_code"], 400);
    s.send(r#" {"value":{"data":{"last":true}}} "#).await;
    let last = s.next_report().await.unwrap();
    assert_eq!(
        (&last["error_code"], &last["offset"]),
        (&json!(200), &json!(4))
    );
    s.finish();
    assert!(
        s.next_report().await.is_none(),
        "the answer ends with the request"
    );

    let got = read_back(&e.b, "stream", 1, 5).await;
    let values: Vec<&[u8]> = got.iter().map(|r| r.value.as_deref().unwrap()).collect();
    let long = "x".repeat(3000);
    assert_eq!(
        values,
        [
            &b"r0"[..],
            b"r1",
            b"r2",
            long.as_bytes(),
            br#"{"last":true}"#
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_their_consumers_and_lags() {
    let e = env().await;
    create_topic(&e.b, "work", 2).await;
    let (addr, base, id) = (&e.addr, &e.base, &e.cluster);
    let records = format!("/v3/clusters/{id}/topics/work/records");
    for p in [0, 0, 0, 0, 1, 1] {
        let body = json!({"partition_id": p, "value": {"data": p}}).to_string();
        assert_eq!(
            http_json(addr, Method::POST, &records, Some(&body)).await.0,
            200
        );
    }
    let admin = admin(&e.b).await;
    admin
        .alter_group_offsets(
            "billing",
            &BTreeMap::from([
                (TopicPartition::new("work", 0), 1),
                (TopicPartition::new("work", 1), 2),
            ]),
        )
        .await
        .unwrap();
    let groups = format!("/v3/clusters/{id}/consumer-groups");
    let group_url = format!("{base}{groups}/billing");
    let billing = json!({
        "kind": "KafkaConsumerGroup",
        "metadata": { "self": group_url, "resource_name": format!("crn:///kafka={id}/consumer-group=billing") },
        "cluster_id": id,
        "consumer_group_id": "billing",
        "is_simple": true,
        "partition_assignor": "",
        "state": "EMPTY",
        "coordinator": { "related": format!("{base}/v3/clusters/{id}/brokers/1") },
        "consumer": { "related": format!("{group_url}/consumers") },
        "lag_summary": { "related": format!("{group_url}/lag-summary") },
    });
    assert_eq!(
        get(addr, &format!("{groups}/billing")).await,
        (200, billing.clone())
    );
    let (code, v) = get(addr, &groups).await;
    assert_eq!((code, &v["kind"]), (200, &json!("KafkaConsumerGroupList")));
    assert_eq!(v["data"], json!([billing]));
    let (code, v) = get(addr, &format!("{groups}/billing/consumers")).await;
    assert_eq!((code, &v["data"]), (200, &json!([])));

    let lag = |p: i32, current: i64, end: i64| {
        json!({
            "kind": "KafkaConsumerLag",
            "metadata": {
                "self": format!("{group_url}/lags/work/partitions/{p}"),
                "resource_name": format!("crn:///kafka={id}/consumer-group=billing/lag=work/partition={p}"),
            },
            "cluster_id": id, "consumer_group_id": "billing", "topic_name": "work",
            "partition_id": p, "current_offset": current, "log_end_offset": end,
            "lag": end - current, "consumer_id": "", "instance_id": null, "client_id": "",
        })
    };
    assert_eq!(
        get(addr, &format!("{groups}/billing/lags")).await,
        (
            200,
            json!({
                "kind": "KafkaConsumerLagList",
                "metadata": { "self": format!("{group_url}/lags"), "next": null },
                "data": [lag(0, 1, 4), lag(1, 2, 2)],
            })
        )
    );
    assert_eq!(
        get(addr, &format!("{groups}/billing/lags/work/partitions/0")).await,
        (200, lag(0, 1, 4))
    );
    assert_eq!(
        get(addr, &format!("{groups}/billing/lag-summary")).await,
        (
            200,
            json!({
                "kind": "KafkaConsumerGroupLagSummary",
                "metadata": {
                    "self": format!("{group_url}/lag-summary"),
                    "resource_name": format!("crn:///kafka={id}/consumer-group=billing/lag-summary"),
                },
                "cluster_id": id, "consumer_group_id": "billing",
                "max_lag_consumer_id": "", "max_lag_instance_id": null, "max_lag_client_id": "",
                "max_lag_topic_name": "work", "max_lag_partition_id": 0,
                "max_lag": 3, "total_lag": 3,
                "max_lag_consumer": { "related": format!("{group_url}/consumers/") },
                "max_lag_partition": { "related": format!("{base}/v3/clusters/{id}/topics/work/partitions/0") },
            })
        )
    );
    // A live member: its consumer resource and assignments.
    let mut cc = ConsumerConfig::new(&e.b);
    cc.set("group.id", "live").unwrap();
    cc.set("client.id", "worker-1").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    let mut member = strom_client::Consumer::new(cc).await.unwrap();
    member.subscribe(&["work"], None).unwrap();
    while member.assignment().is_empty() {
        member.poll(Duration::from_millis(100)).await.unwrap();
    }
    let (code, v) = get(addr, &format!("{groups}/live/consumers")).await;
    assert_eq!(code, 200);
    let consumer = v["data"][0].clone();
    assert_eq!(
        (&consumer["client_id"], &consumer["consumer_group_id"]),
        (&json!("worker-1"), &json!("live"))
    );
    let cid = consumer["consumer_id"].as_str().unwrap().to_owned();
    assert_eq!(
        get(addr, &format!("{groups}/live/consumers/{cid}")).await,
        (200, consumer)
    );
    let (code, v) = get(addr, &format!("{groups}/live/consumers/{cid}/assignments")).await;
    assert_eq!(
        (code, &v["kind"]),
        (200, &json!("KafkaConsumerAssignmentList"))
    );
    let assigned: Vec<(&Value, &Value)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (&a["topic_name"], &a["partition_id"]))
        .collect();
    assert_eq!(
        assigned,
        [(&json!("work"), &json!(0)), (&json!("work"), &json!(1))]
    );
    let (code, v) = get(addr, &format!("{groups}/live")).await;
    assert_eq!(
        (code, &v["state"], &v["is_simple"]),
        (200, &json!("STABLE"), &json!(false))
    );
    assert_eq!(
        get(addr, &format!("{groups}/live/consumers/ghost")).await,
        (
            404,
            json!({"error_code": 404, "message": "Consumer ghost cannot be found in consumer group live."})
        )
    );
    member.close().await.unwrap();

    assert_eq!(
        get(addr, &format!("{groups}/nobody")).await,
        (
            404,
            json!({"error_code": 404, "message": "Consumer group nobody cannot be found."})
        )
    );
    assert_eq!(
        get(addr, &format!("{groups}/nobody/lag-summary")).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_many_records_gets_every_report_in_order() {
    let e = env().await;
    create_topic(&e.b, "bulk", 1).await;
    let path = format!("/v3/clusters/{}/topics/bulk/records", e.cluster);
    // More records than the reports queued per request.
    let body: String = (0..600)
        .map(|i| json!({"value": {"type": "STRING", "data": format!("m{i}")}}).to_string())
        .collect();
    let (code, text) = http(&e.addr, Method::POST, &path, Some(&body)).await;
    assert_eq!(code, 200);
    let offsets: Vec<i64> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|r| r.unwrap()["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, (0..600).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_until_shutdown_and_refuses_bad_settings() {
    let server = Server::start();
    let port = free_port();
    let mut config = ConsoleConfig::new(&server.bootstrap());
    config.listener = format!("http://127.0.0.1:{port}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(strom_console::run(config.clone(), async move {
        let _ = stopped.await;
    }));
    let addr = format!("127.0.0.1:{port}");
    let clusters = eventually(
        "the console to listen",
        Duration::from_secs(10),
        async || {
            tokio::net::TcpStream::connect(&addr).await.ok()?;
            Some(get(&addr, "/v3/kafka").await)
        },
    )
    .await;
    assert_eq!(
        (clusters.0, &clusters.1["clusters"]),
        (200, &json!(["local"]))
    );
    assert_eq!(
        get(&addr, "/elsewhere").await,
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    assert_eq!(
        http_json(&addr, Method::PATCH, "/v3/kafka", None).await,
        (
            405,
            json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"})
        )
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    let mut bad = config.clone();
    bad.listener = "https://127.0.0.1:1".into();
    let err = strom_console::run(bad, async {}).await.unwrap_err();
    assert!(
        matches!(err, strom_console::ConsoleError::Listener { .. }),
        "{err}"
    );
    let mut bad = config.clone();
    bad.notifiers = vec![strom_console::NotifierConfig::Webhook {
        url: "ftp://example.com/hook".into(),
        template: None,
        content_type: "application/json".into(),
    }];
    let err = strom_console::Console::start(bad).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid console configuration: webhook: 'ftp://example.com/hook' is not an http:// URL"
    );
    let mut bad = config;
    bad.lag.poll_interval = Duration::ZERO;
    let err = strom_console::Console::start(bad).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid console configuration: the lag poll interval must be longer than zero"
    );
}
