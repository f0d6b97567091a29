//! Distributed mode's REST API on two in-process workers of one group: answers and errors
//! as Kafka gives them, writes through either worker (one of them does not lead), tasks
//! spreading when a worker joins, a config change that adds a task, stop / offsets
//! PATCH (KIP-875) / resume resuming from the patched offset, restarts (one forwarded to
//! the worker running the task), a sink in its `connect-<name>` group, and delete.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::dist::read_until;
use common::*;
use serde_json::{json, Value as J};
use strom_connect::config::Props;
use strom_connect::distributed::Distributed;

fn props(b: &str) -> Props {
    [
        ("bootstrap.servers", b),
        ("group.id", "rest-group"),
        ("listeners", "http://127.0.0.1:0"),
        ("config.storage.topic", "rest-configs"),
        ("offset.storage.topic", "rest-offsets"),
        ("status.storage.topic", "rest-status"),
        ("config.storage.replication.factor", "1"),
        ("offset.storage.replication.factor", "1"),
        ("status.storage.replication.factor", "1"),
        ("offset.storage.partitions", "2"),
        ("status.storage.partitions", "2"),
        ("session.timeout.ms", "2000"),
        ("heartbeat.interval.ms", "300"),
        ("offset.flush.interval.ms", "200"),
        (
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("key.converter.schemas.enable", "false"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A write, retried while a rebalance answers 409.
async fn write(w: &Distributed, method: &str, path: &str, body: Option<&J>) -> Resp {
    for _ in 0..100 {
        let r = http(w.addr, method, path, body).await;
        if r.status != 409 || r.body.contains("already exists") {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{method} {path}: 409 for 20 s");
}

/// (state, worker id) of each task once there are `n` of them, all in `state`.
async fn tasks_in(w: &Distributed, name: &str, n: usize, state: &str) -> Vec<String> {
    wait_for(
        &format!("{n} {state} tasks of {name}"),
        Duration::from_secs(20),
        async || {
            let s = http(w.addr, "GET", &format!("/connectors/{name}/status"), None)
                .await
                .json();
            let t = s["tasks"].as_array()?.clone();
            (t.len() == n && t.iter().all(|t| t["state"] == state)).then(|| {
                t.iter()
                    .map(|t| t["worker_id"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_of_a_two_worker_group() {
    let broker = common::dist::fast_groups_broker();
    let b = broker.bootstrap();
    create_topic(&b, "counts", 1).await;
    let w1 = Distributed::start(props(&b)).await.unwrap();

    let config = json!({
        "connector.class": "org.apache.kafka.connect.tools.VerifiableSourceConnector",
        "tasks.max": "2",
        "topic": "counts",
        "throughput": "2000",
        "max.messages": "50",
    });
    let r = write(
        &w1,
        "POST",
        "/connectors",
        Some(&json!({"name": "counter", "config": config})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location"), Some("/connectors/counter"));
    let mut with_name = config.clone();
    with_name["name"] = json!("counter");
    assert_eq!(
        r.json(),
        json!({"name": "counter", "config": with_name, "tasks": [], "type": "source"})
    );
    let r = write(
        &w1,
        "POST",
        "/connectors",
        Some(&json!({"name": "counter", "config": config})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            409,
            json!({"error_code": 409, "message": "Connector counter already exists"})
        )
    );
    let mut eos = config.clone();
    eos["exactly.once.support"] = json!("required");
    let r = write(
        &w1,
        "POST",
        "/connectors",
        Some(&json!({"name": "eos", "config": eos})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["message"].as_str().unwrap().contains(
            "exactly.once.support: This worker does not have exactly-once source support enabled"
        ),
        "{}",
        r.body
    );
    let r = http(w1.addr, "GET", "/connectors/nope/status", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "Connector nope not found"})
        )
    );
    let only = tasks_in(&w1, "counter", 2, "RUNNING").await;
    assert_eq!(only, vec![w1.herder.worker_id.clone(); 2]);

    // A second worker joins: the tasks spread over both.
    let w2 = Distributed::start(props(&b)).await.unwrap();
    let ids = [w1.herder.worker_id.clone(), w2.herder.worker_id.clone()];
    let spread = wait_for(
        "tasks on both workers",
        Duration::from_secs(20),
        async || {
            let owners = tasks_in(&w2, "counter", 2, "RUNNING").await;
            let set: BTreeSet<String> = owners.into_iter().collect();
            (set.len() == 2).then_some(set)
        },
    )
    .await;
    assert_eq!(spread, ids.iter().cloned().collect());
    let r = http(w2.addr, "GET", "/connectors/counter/tasks", None).await;
    let tasks = r.json();
    assert_eq!(tasks[1]["id"], json!({"connector": "counter", "task": 1}));
    assert_eq!(tasks[1]["config"]["id"], "1");

    // Offsets cannot change while the connector runs (KIP-875).
    let patch = json!({"offsets": [{"partition": {"id": 0}, "offset": {"seqno": 39}}]});
    let r = write(&w2, "PATCH", "/connectors/counter/offsets", Some(&patch)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("STOPPED state"), "{}", r.body);

    // A config change through each worker: three tasks.
    let mut three = config.clone();
    three["tasks.max"] = json!("3");
    let r = write(&w2, "PUT", "/connectors/counter/config", Some(&three)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["config"]["tasks.max"], "3");
    tasks_in(&w1, "counter", 3, "RUNNING").await;
    let all = read_until(&b, "counts", 1, false, Duration::from_secs(20), |r| {
        r.len() >= 150
    })
    .await;
    assert_eq!(all.len(), 150);
    let r = http(w1.addr, "GET", "/connectors/counter/topics", None).await;
    assert_eq!(r.json(), json!({"counter": {"topics": ["counts"]}}));

    // Stop, move task 0 back by ten records, resume: exactly those ten come again.
    let r = write(&w2, "PUT", "/connectors/counter/stop", None).await;
    assert_eq!(r.status, 202);
    wait_for("a stopped connector", Duration::from_secs(20), async || {
        let s = http(w1.addr, "GET", "/connectors/counter/status", None)
            .await
            .json();
        (s["connector"]["state"] == "STOPPED" && s["tasks"] == json!([])).then_some(())
    })
    .await;
    let r = http(w1.addr, "GET", "/connectors/counter/offsets", None).await;
    let mut offsets: Vec<(i64, i64)> = r.json()["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"]["id"].as_i64().unwrap(),
                o["offset"]["seqno"].as_i64().unwrap(),
            )
        })
        .collect();
    offsets.sort();
    assert_eq!(offsets, vec![(0, 49), (1, 49), (2, 49)]);
    let r = write(&w2, "PATCH", "/connectors/counter/offsets", Some(&patch)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "The offsets for this connector have been altered successfully"})
        )
    );
    let r = write(&w1, "PUT", "/connectors/counter/resume", None).await;
    assert_eq!(r.status, 202);
    let owners = tasks_in(&w2, "counter", 3, "RUNNING").await;
    let again = read_until(&b, "counts", 1, false, Duration::from_secs(20), |r| {
        r.len() >= 160
    })
    .await;
    assert_eq!(again.len(), 160);
    let resent: Vec<i64> = again[150..]
        .iter()
        .map(|r| {
            assert_eq!(r.key.as_deref(), Some(&b"0"[..]));
            std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(resent, (40..50).collect::<Vec<_>>());

    // Restarts: the connector and its tasks (202 with RESTARTING), and one task through the
    // worker that does not run it (forwarded to the one that does).
    let r = write(
        &w2,
        "POST",
        "/connectors/counter/restart?includeTasks=true",
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = r.json();
    assert_eq!(s["connector"]["state"], "RESTARTING");
    assert!(s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "RESTARTING"));
    tasks_in(&w1, "counter", 3, "RUNNING").await;
    let elsewhere = if owners[0] == w1.herder.worker_id {
        &w2
    } else {
        &w1
    };
    let r = http(
        elsewhere.addr,
        "POST",
        "/connectors/counter/tasks/0/restart",
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http(w1.addr, "POST", "/connectors/counter/tasks/7/restart", None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A sink in distributed mode: its group is connect-<name>.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let sink = json!({
        "connector.class": "FileStreamSink",
        "tasks.max": "1",
        "topics": "counts",
        "file": out.display().to_string(),
    });
    let r = write(&w2, "PUT", "/connectors/sink/config", Some(&sink)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for(
        "the sink's 160 lines",
        Duration::from_secs(20),
        async || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            (text.lines().count() == 160).then_some(())
        },
    )
    .await;
    let r = write(&w1, "PUT", "/connectors/sink/stop", None).await;
    assert_eq!(r.status, 202);
    let offsets = wait_for("the sink's committed offset", Duration::from_secs(20), async || {
        let r = http(w2.addr, "GET", "/connectors/sink/offsets", None).await;
        let o = r.json();
        (o["offsets"]
            == json!([{"partition": {"kafka_topic": "counts", "kafka_partition": 0}, "offset": {"kafka_offset": 160}}]))
        .then_some(o)
    })
    .await;
    assert_eq!(offsets["offsets"].as_array().unwrap().len(), 1);

    // Delete through either worker: gone everywhere.
    let r = write(&w2, "DELETE", "/connectors/counter", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = write(&w1, "DELETE", "/connectors/sink", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for w in [&w1, &w2] {
        wait_for("no connectors", Duration::from_secs(10), async || {
            let r = http(w.addr, "GET", "/connectors", None).await;
            (r.json() == json!([])).then_some(())
        })
        .await;
        let r = http(w.addr, "GET", "/connectors/counter/status", None).await;
        assert_eq!(r.status, 404);
    }
    let r = http(w1.addr, "GET", "/connector-plugins", None).await;
    assert!(r.body.contains("VerifiableSourceConnector"), "{}", r.body);
    w2.stop().await;
    w1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_worker_settings_are_refused_at_start() {
    let broker = common::dist::fast_groups_broker();
    let b = broker.bootstrap();
    let mut missing = props(&b);
    missing.remove("group.id");
    let e = Distributed::start(missing).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Missing required configuration \"group.id\" which has no default value."
    );
    let mut eos = props(&b);
    eos.insert("exactly.once.source.support".into(), "always".into());
    let e = Distributed::start(eos).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("Invalid value always for configuration exactly.once.source.support"),
        "{e}"
    );
    // An existing config topic with more than one partition cannot keep configs in order.
    create_topic(&b, "three-part-configs", 3).await;
    let mut three = props(&b);
    three.insert("config.storage.topic".into(), "three-part-configs".into());
    let e = Distributed::start(three).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("required to have a single partition"),
        "{e}"
    );
    // The internal topics a good start creates are compacted.
    let w = Distributed::start(props(&b)).await.unwrap();
    let admin = strom_client::Admin::new(strom_client::ClientConfig::new(&b))
        .await
        .unwrap();
    for (topic, partitions) in [("rest-configs", 1), ("rest-offsets", 2), ("rest-status", 2)] {
        let t = admin.describe_topics(&[topic.to_owned()]).await.unwrap();
        assert_eq!(t[0].partitions.len(), partitions, "{topic}");
        let c = admin
            .describe_configs(
                &strom_client::admin::ConfigResource::Topic(topic.to_owned()),
                Some(&["cleanup.policy".to_owned()]),
            )
            .await
            .unwrap();
        assert_eq!(c[0].value.as_deref(), Some("compact"), "{topic}");
    }
    w.stop().await;
}
