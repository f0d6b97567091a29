//! strom-console inside `strom server`, on the broker's HTTP listener: REST Proxy v3 produces
//! in every data mode (read back with librdkafka), and the lag monitor's Burrow-style status
//! reaches `strom group status`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{http_get, request};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

fn start() -> (common::Server, u16) {
    let http = common::free_port();
    let server = common::Server::start(&[
        ("http.listeners", &format!("http://127.0.0.1:{http}")),
        ("console.lag.poll.interval.ms", "300"),
        ("console.lag.intervals", "3"),
    ]);
    // The console connects to the broker in the background: wait for its routes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(http, "/v3/clusters").0 != 200 {
        assert!(Instant::now() < deadline, "the console never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, http)
}

fn json_request(port: u16, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(port, method, path, Some(&body.to_string()));
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value)
}

#[test]
fn rest_proxy_produces_every_data_mode_and_librdkafka_reads_them_back() {
    let (server, http) = start();
    let (status, clusters) = {
        let (s, t) = http_get(http, "/v3/clusters");
        (s, serde_json::from_str::<Value>(&t).unwrap())
    };
    assert_eq!(status, 200);
    let cluster = clusters["data"][0]["cluster_id"]
        .as_str()
        .expect("a cluster id")
        .to_owned();
    let topics = format!("/v3/clusters/{cluster}/topics");
    let (status, created) = json_request(
        http,
        "POST",
        &topics,
        &json!({"topic_name": "proxied", "partitions_count": 1}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["topic_name"], "proxied");

    let records = format!("{topics}/proxied/records");
    let sends = [
        json!({"key": {"type": "STRING", "data": "k-json"},
               "value": {"type": "JSON", "data": {"n": 1, "s": "x"}},
               "headers": [{"name": "h", "value": "aGk="}]}),
        json!({"key": {"type": "STRING", "data": "k-string"},
               "value": {"type": "STRING", "data": "plain text"}}),
        json!({"key": {"type": "BINARY", "data": "AAEC"},
               "value": {"type": "BINARY", "data": "/wCA"}}),
    ];
    for (i, body) in sends.iter().enumerate() {
        let (status, answer) = json_request(http, "POST", &records, body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error_code"], 200, "{answer}");
        assert_eq!(answer["offset"], i as i64, "{answer}");
    }
    // An unknown topic is Confluent's 40403.
    let (status, error) = json_request(
        http,
        "POST",
        &format!("{topics}/no-such-topic/records"),
        &sends[1],
    );
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error_code"], 40403, "{error}");

    let read = common::consume(
        &server.bootstrap(),
        "proxied",
        &[0],
        Offset::Beginning,
        3,
        Duration::from_secs(20),
        &[],
    );
    assert_eq!(read.len(), 3);
    let json_value: Value = serde_json::from_slice(read[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(json_value, json!({"n": 1, "s": "x"}));
    assert_eq!(read[0].key.as_deref(), Some(&b"k-json"[..]));
    assert_eq!(
        read[0].headers,
        vec![("h".to_owned(), Some(b"hi".to_vec()))]
    );
    assert_eq!(read[1].value.as_deref(), Some(&b"plain text"[..]));
    assert_eq!(read[2].key.as_deref(), Some(&[0u8, 1, 2][..]));
    assert_eq!(read[2].value.as_deref(), Some(&[0xffu8, 0, 0x80][..]));
}

/// `strom group status` on a group that committed and went away: its partition lags and,
/// with no members and no progress past the window, is STOP; the group is ERR.
#[test]
fn group_status_shows_the_lag_monitors_evaluation() {
    let (server, http) = start();
    let bootstrap = server.bootstrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(common::create_topic(&bootstrap, "watched", 1, &[]));
    let producer = common::producer(&bootstrap, &[]);
    runtime.block_on(async {
        for i in 0..5 {
            let v = format!("v{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to("watched").payload(&v),
                    Duration::from_secs(20),
                )
                .await
                .expect("acknowledged");
        }
    });
    let consumer = common::consumer(&bootstrap, &[("group.id", "gone")]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("watched", 0, Offset::Offset(2))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).expect("commit");
    drop(consumer);

    let url = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args([
                "group", "status", "gone", "--http", &url, "--output", "json",
            ])
            .output()
            .expect("run strom");
        if out.status.success() {
            let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            if rows.first().is_some_and(|r| r["status"] == "STOP") {
                break rows;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never STOP: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["topic"], "watched");
    assert_eq!(rows[0]["partition"], 0);
    assert_eq!(rows[0]["lag"], 3);
    assert_eq!(rows[0]["offset"], 2);
    assert_eq!(
        rows[1]["status"], "ERR",
        "the group is as bad as its worst partition"
    );
    assert_eq!(rows[1]["lag"], 3);

    // An unknown group: a clear error, not a table.
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["group", "status", "nobody", "--http", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("consumer group not found"), "{err}");
}
