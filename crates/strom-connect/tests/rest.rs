//! Kafka Connect's REST API against a standalone worker and a real broker: every endpoint,
//! with exact status codes and bodies, including unknown connectors, conflicts, bad
//! configs, the KIP-875 stop/offsets cycle, restarts, plugins, validation and loggers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value as J};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

const SOURCE: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
const SINK: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";
const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn start_worker(b: &str, dir: &std::path::Path) -> Standalone {
    let props: Props = [
        ("bootstrap.servers", b.to_owned()),
        ("listeners", "http://127.0.0.1:0".to_owned()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "50".to_owned()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
        ("consumer.session.timeout.ms", "6000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Standalone::start(props, Vec::new(), None).await.unwrap()
}

fn not_found(name: &str) -> J {
    json!({"error_code": 404, "message": format!("Connector {name} not found")})
}

async fn wait_status(addr: SocketAddr, name: &str, want: &J) {
    let path = format!("/connectors/{name}/status");
    let mut last = J::Null;
    for _ in 0..200 {
        let r = http(addr, "GET", &path, None).await;
        last = r.json();
        if r.status == 200 && &last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("status of {name}: {last}, want {want}");
}

fn status(name: &str, kind: &str, worker: &str, connector: &str, tasks: &[&str]) -> J {
    let tasks: Vec<J> = tasks
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": i, "state": s, "worker_id": worker}))
        .collect();
    json!({
        "name": name,
        "connector": {"state": connector, "worker_id": worker},
        "tasks": tasks,
        "type": kind,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_lifecycle_status_offsets_and_errors() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "rest-in", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\nc\n").unwrap();
    let w = start_worker(&b, dir.path()).await;
    let addr = w.addr;
    let wid = addr.to_string();

    // Root and an empty worker.
    let r = http(addr, "GET", "/", None).await;
    assert_eq!(r.status, 200);
    let root = r.json();
    assert_eq!(root["version"], VERSION);
    assert!(
        root["kafka_cluster_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{root}"
    );
    assert_eq!(root.as_object().unwrap().len(), 3);
    let r = http(addr, "GET", "/connectors", None).await;
    assert_eq!((r.status, r.json()), (200, json!([])));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Unknown connectors: 404 with Kafka's body on every route.
    for (m, p) in [
        ("GET", "/connectors/nope"),
        ("DELETE", "/connectors/nope"),
        ("GET", "/connectors/nope/config"),
        ("GET", "/connectors/nope/status"),
        ("GET", "/connectors/nope/tasks"),
        ("GET", "/connectors/nope/topics"),
        ("PUT", "/connectors/nope/topics/reset"),
        ("PUT", "/connectors/nope/pause"),
        ("PUT", "/connectors/nope/resume"),
        ("PUT", "/connectors/nope/stop"),
        ("POST", "/connectors/nope/restart"),
        ("GET", "/connectors/nope/offsets"),
        ("DELETE", "/connectors/nope/offsets"),
        ("POST", "/connectors/nope/tasks/0/restart"),
    ] {
        let r = http(addr, m, p, None).await;
        assert_eq!((r.status, r.json()), (404, not_found("nope")), "{m} {p}");
    }

    let r = http(addr, "GET", "/connectors/nope/tasks/x/status", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    let r = http(addr, "GET", "/connectors/nope/tasks/0/status", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "No status found for task nope-0"})
        )
    );

    // Bad configs: 400 with every problem listed.
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "src", "config": {
        "connector.class": "FileStreamSource", "batch.size": "many"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error_code": 400, "message":
        "Connector configuration is invalid and contains the following 3 error(s):\n\
         Missing required configuration \"file\" which has no default value.\n\
         Missing required configuration \"topic\" which has no default value.\n\
         Invalid value many for configuration batch.size: Not a number of type INT\n\
         You can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`"})
    );
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "x", "config": {"connector.class": "com.example.Nope"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], format!("Failed to find any class that implements Connector and which name matches com.example.Nope, available connectors are: {SINK}, {SOURCE}, org.apache.kafka.connect.mirror.MirrorCheckpointConnector, org.apache.kafka.connect.mirror.MirrorHeartbeatConnector, org.apache.kafka.connect.mirror.MirrorSourceConnector, io.confluent.connect.jdbc.JdbcSourceConnector, io.debezium.connector.postgresql.PostgresConnector, io.confluent.connect.jdbc.JdbcSinkConnector, io.confluent.connect.http.HttpSinkConnector, io.confluent.connect.mqtt.MqttSinkConnector, io.confluent.connect.mqtt.MqttSourceConnector"));
    let r = http(addr, "POST", "/connectors", Some(&json!({"config": {}}))).await;
    assert_eq!(
        r.json(),
        json!({"error_code": 400, "message": "Connector name must be specified"})
    );
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "a", "config": {"name": "b", "connector.class": "FileStreamSource"}})),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"error_code": 400, "message": "Connector name configuration (b) doesn't match connector name in the URL (a)"})
    );

    // Create: 201, the info, a Location header; again: 409.
    let config = json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": "rest-in"});
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "src", "config": config})),
    )
    .await;
    let mut full = config.clone();
    full["name"] = json!("src");
    let info = json!({"name": "src", "config": full, "tasks": [{"connector": "src", "task": 0}], "type": "source"});
    assert_eq!((r.status, r.json()), (201, info.clone()));
    assert_eq!(r.header("location"), Some("/connectors/src"));
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "src", "config": config})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            409,
            json!({"error_code": 409, "message": "Connector src already exists"})
        )
    );

    let r = http(addr, "GET", "/connectors/src", None).await;
    assert_eq!((r.status, r.json()), (200, info.clone()));
    let r = http(addr, "GET", "/connectors/src/config", None).await;
    assert_eq!((r.status, r.json()), (200, full.clone()));
    let r = http(addr, "GET", "/connectors/src/tasks", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!([{"id": {"connector": "src", "task": 0}, "config": full}])
        )
    );
    let running = status("src", "source", &wid, "RUNNING", &["RUNNING"]);
    wait_status(addr, "src", &running).await;
    let r = http(addr, "GET", "/connectors/src/tasks/0/status", None).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"id": 0, "state": "RUNNING", "worker_id": wid}))
    );
    let r = http(addr, "GET", "/connectors/src/tasks/7/status", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "No status found for task src-7"})
        )
    );
    let r = http(addr, "GET", "/connectors?expand=status&expand=info", None).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"src": {"status": running, "info": info}}))
    );
    let r = http(addr, "GET", "/connectors?expand=info", None).await;
    assert_eq!(r.json(), json!({"src": {"info": info}}));

    // The three lines reach the topic; topics and offsets show it.
    let recs = read_topic(&b, "rest-in", 1, 3, Duration::from_secs(20)).await;
    assert_eq!(recs.len(), 3);
    let r = http(addr, "GET", "/connectors/src/topics", None).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"src": {"topics": ["rest-in"]}}))
    );
    let file = input.display().to_string();
    let committed =
        json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": 6}}]});
    wait_for("committed offsets", Duration::from_secs(10), async || {
        let r = http(addr, "GET", "/connectors/src/offsets", None).await;
        (r.status == 200 && r.json() == committed).then_some(())
    })
    .await;
    let r = http(addr, "PUT", "/connectors/src/topics/reset", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = http(addr, "GET", "/connectors/src/topics", None).await;
    assert_eq!(r.json(), json!({"src": {"topics": []}}));

    // Pause and resume.
    let r = http(addr, "PUT", "/connectors/src/pause", None).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    wait_status(
        addr,
        "src",
        &status("src", "source", &wid, "PAUSED", &["PAUSED"]),
    )
    .await;
    let r = http(addr, "PUT", "/connectors/src/resume", None).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    wait_status(addr, "src", &running).await;

    // Offsets can change only when stopped (KIP-875).
    let patch = json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": 2}}]});
    let r = http(addr, "PATCH", "/connectors/src/offsets", Some(&patch)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message":
        "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/src/stop' endpoint"})
        )
    );
    let r = http(addr, "DELETE", "/connectors/src/offsets", None).await;
    assert_eq!(r.status, 400);
    let r = http(addr, "PUT", "/connectors/src/stop", None).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    let r = http(addr, "GET", "/connectors/src/status", None).await;
    assert_eq!(r.json(), status("src", "source", &wid, "STOPPED", &[]));
    let r = http(addr, "GET", "/connectors/src/tasks", None).await;
    assert_eq!(r.json(), json!([]));
    // A stopped connector runs nothing, so a restart restarts nothing.
    let r = http(
        addr,
        "POST",
        "/connectors/src/restart?includeTasks=true",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (202, status("src", "source", &wid, "STOPPED", &[]))
    );
    let r = http(
        addr,
        "PATCH",
        "/connectors/src/offsets",
        Some(&json!({"offsets": [{"partition": {"file": "x"}, "offset": {"position": 1}}]})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message": "Partition objects for this connector must contain the key 'filename'"})
        )
    );
    let r = http(
        addr,
        "PATCH",
        "/connectors/src/offsets",
        Some(&json!({"offsets": []})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(addr, "PATCH", "/connectors/src/offsets", Some(&patch)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "The offsets for this connector have been altered successfully"})
        )
    );
    let r = http(addr, "GET", "/connectors/src/offsets", None).await;
    assert_eq!(r.json(), patch);
    // Resumed from position 2, the source sends "b" and "c" again.
    let r = http(addr, "PUT", "/connectors/src/resume", None).await;
    assert_eq!(r.status, 202);
    wait_status(addr, "src", &running).await;
    let recs = read_topic(&b, "rest-in", 1, 5, Duration::from_secs(20)).await;
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["a", "b", "c", "b", "c"]);
    // Reset: everything again from the start.
    http(addr, "PUT", "/connectors/src/stop", None).await;
    let r = http(addr, "DELETE", "/connectors/src/offsets", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "The offsets for this connector have been reset successfully"})
        )
    );
    let r = http(addr, "GET", "/connectors/src/offsets", None).await;
    assert_eq!((r.status, r.json()), (200, json!({"offsets": []})));
    http(addr, "PUT", "/connectors/src/resume", None).await;
    let recs = read_topic(&b, "rest-in", 1, 8, Duration::from_secs(20)).await;
    assert_eq!(recs.len(), 8);

    // Restarts: connector only → 204; with tasks → 202 and the status with RESTARTING.
    let r = http(addr, "POST", "/connectors/src/restart", None).await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    wait_status(addr, "src", &running).await;
    let r = http(
        addr,
        "POST",
        "/connectors/src/restart?includeTasks=true&onlyFailed=false",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            202,
            status("src", "source", &wid, "RESTARTING", &["RESTARTING"])
        )
    );
    wait_status(addr, "src", &running).await;
    let r = http(
        addr,
        "POST",
        "/connectors/src/restart?includeTasks=true&onlyFailed=true",
        None,
    )
    .await;
    assert_eq!((r.status, r.json()), (202, running.clone()));
    let r = http(addr, "POST", "/connectors/src/tasks/0/restart", None).await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = http(addr, "POST", "/connectors/src/tasks/3/restart", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "Unknown task: src-3"})
        )
    );
    wait_status(addr, "src", &running).await;

    // PUT config: 200 on update, 201 on create, 400 on a bad one.
    let mut changed = full.clone();
    changed["batch.size"] = json!("10");
    let r = http(addr, "PUT", "/connectors/src/config", Some(&changed)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"name": "src", "config": changed, "tasks": [{"connector": "src", "task": 0}], "type": "source"})
        )
    );
    let sink_out = dir.path().join("out.txt");
    let sink = json!({"connector.class": SINK, "file": sink_out.display().to_string(), "topics": "rest-in", "tasks.max": "2"});
    let r = http(addr, "PUT", "/connectors/sink/config", Some(&sink)).await;
    let mut sink_full = sink.clone();
    sink_full["name"] = json!("sink");
    assert_eq!(
        (r.status, r.json()),
        (
            201,
            json!({"name": "sink", "config": sink_full,
        "tasks": [{"connector": "sink", "task": 0}, {"connector": "sink", "task": 1}], "type": "sink"})
        )
    );
    let r = http(
        addr,
        "PUT",
        "/connectors/bad/config",
        Some(&json!({"connector.class": SINK, "file": "/tmp/x"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Must configure one of topics or topics.regex"));
    wait_status(
        addr,
        "sink",
        &status("sink", "sink", &wid, "RUNNING", &["RUNNING", "RUNNING"]),
    )
    .await;
    let r = http(addr, "GET", "/connectors", None).await;
    assert_eq!(r.json(), json!(["sink", "src"]));

    // The sink's offsets are its consumer group's (KIP-875's kafka_* keys).
    let committed = json!({"offsets": [{"partition": {"kafka_topic": "rest-in", "kafka_partition": 0}, "offset": {"kafka_offset": 8}}]});
    wait_for("sink offsets", Duration::from_secs(20), async || {
        let r = http(addr, "GET", "/connectors/sink/offsets", None).await;
        (r.json() == committed).then_some(())
    })
    .await;
    http(addr, "PUT", "/connectors/sink/stop", None).await;
    let r = http(addr, "PATCH", "/connectors/sink/offsets", Some(&json!({"offsets": [
        {"partition": {"kafka_topic": "rest-in", "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]}))).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "The offsets for this connector have been altered successfully"})
        )
    );
    let r = http(addr, "GET", "/connectors/sink/offsets", None).await;
    assert_eq!(
        r.json(),
        json!({"offsets": [{"partition": {"kafka_topic": "rest-in", "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]})
    );
    let r = http(
        addr,
        "PATCH",
        "/connectors/sink/offsets",
        Some(&json!({"offsets": [
        {"partition": {"kafka_topic": "rest-in"}, "offset": {"kafka_offset": 5}}]})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(addr, "DELETE", "/connectors/sink/offsets", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "The offsets for this connector have been reset successfully"})
        )
    );
    let r = http(addr, "GET", "/connectors/sink/offsets", None).await;
    assert_eq!(r.json(), json!({"offsets": []}));

    // Delete.
    let r = http(addr, "DELETE", "/connectors/src", None).await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = http(addr, "GET", "/connectors/src", None).await;
    assert_eq!((r.status, r.json()), (404, not_found("src")));

    // Unknown routes and methods, malformed bodies.
    let r = http(addr, "GET", "/nothing/here", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    let r = http(addr, "DELETE", "/connectors", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            405,
            json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"})
        )
    );
    let r = http(addr, "POST", "/connectors", Some(&json!("not an object"))).await;
    assert_eq!(r.status, 400);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_validation_and_loggers() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&broker.bootstrap(), dir.path()).await;
    let addr = w.addr;

    let r = http(addr, "GET", "/connector-plugins", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!([
                {"class": SINK, "type": "sink", "version": VERSION},
                {"class": SOURCE, "type": "source", "version": VERSION},
                {"class": "org.apache.kafka.connect.mirror.MirrorCheckpointConnector", "type": "source", "version": VERSION},
                {"class": "org.apache.kafka.connect.mirror.MirrorHeartbeatConnector", "type": "source", "version": VERSION},
                {"class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "type": "source", "version": VERSION},
                {"class": "io.confluent.connect.jdbc.JdbcSourceConnector", "type": "source", "version": VERSION},
                {"class": "io.debezium.connector.postgresql.PostgresConnector", "type": "source", "version": VERSION},
                {"class": "io.confluent.connect.jdbc.JdbcSinkConnector", "type": "sink", "version": VERSION},
                {"class": "io.confluent.connect.http.HttpSinkConnector", "type": "sink", "version": VERSION},
                {"class": "io.confluent.connect.mqtt.MqttSinkConnector", "type": "sink", "version": VERSION},
                {"class": "io.confluent.connect.mqtt.MqttSourceConnector", "type": "source", "version": VERSION},
            ])
        )
    );
    let r = http(addr, "GET", "/connector-plugins?connectorsOnly=false", None).await;
    let all = r.json();
    let count = |t: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == t)
            .count()
    };
    assert_eq!(
        (
            count("source"),
            count("sink"),
            count("transformation"),
            count("predicate"),
            count("converter")
        ),
        (7, 4, 26, 3, 4)
    );
    assert!(all.as_array().unwrap().contains(&json!({"class": "org.apache.kafka.connect.transforms.InsertField$Value", "type": "transformation", "version": VERSION})));

    let r = http(
        addr,
        "GET",
        "/connector-plugins/FileStreamSource/config",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let defs = r.json();
    let names: Vec<&str> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["file", "topic", "batch.size"]);
    let r = http(
        addr,
        "GET",
        "/connector-plugins/FileStreamSource/config",
        None,
    )
    .await;
    assert_eq!(
        r.json()[2],
        json!({"name": "batch.size", "type": "INT", "required": false, "default_value": "2000",
        "importance": "LOW", "documentation": "The maximum number of records the source task can read from the file each time it is polled",
        "group": null, "width": "NONE", "display_name": "batch.size", "dependents": [], "order": -1})
    );
    let r = http(addr, "GET", "/connector-plugins/Nope/config", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error_code": 404, "message": "Unknown plugin Nope."})
        )
    );

    // Validation reports each field's errors; the body is 200 even when the config is bad.
    let r = http(addr, "PUT", "/connector-plugins/FileStreamSinkConnector/config/validate", Some(&json!({
        "connector.class": "FileStreamSink", "name": "v", "tasks.max": "0",
        "topics": "a", "topics.regex": "b.*",
        "transforms": "route", "transforms.route.type": "RegexRouter", "transforms.route.regex": "x",
        "key.converter": "com.example.Missing"}))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["name"], SINK);
    assert_eq!(v["error_count"], 6);
    assert_eq!(
        v["groups"],
        json!([
            "Common",
            "Transforms",
            "Predicates",
            "Error Handling",
            "Transforms: route"
        ])
    );
    let errors_of = |name: &str| {
        v["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == name)
            .map(|c| c["value"]["errors"].clone())
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    assert_eq!(
        errors_of("tasks.max"),
        json!(["Invalid value 0 for configuration tasks.max: Value must be at least 1"])
    );
    assert_eq!(
        errors_of("topics"),
        json!(["topics and topics.regex are mutually exclusive options, but both are set."])
    );
    assert_eq!(
        errors_of("topics.regex"),
        json!(["topics and topics.regex are mutually exclusive options, but both are set."])
    );
    assert_eq!(
        errors_of("file"),
        json!(["Missing required configuration \"file\" which has no default value."])
    );
    assert_eq!(errors_of("key.converter"), json!(["Invalid value com.example.Missing for configuration key.converter: Class com.example.Missing could not be found."]));
    assert_eq!(errors_of("transforms.route.replacement"), json!(["Missing required configuration \"transforms.route.replacement\" which has no default value."]));
    assert_eq!(errors_of("transforms.route.regex"), json!([]));
    let file_cfg = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == "file")
        .unwrap();
    assert_eq!(
        file_cfg["value"],
        json!({"name": "file", "value": null, "recommended_values": [], "errors": ["Missing required configuration \"file\" which has no default value."], "visible": true})
    );
    let r = http(
        addr,
        "PUT",
        "/connector-plugins/FileStreamSource/config/validate",
        Some(&json!({
        "connector.class": "FileStreamSource", "name": "ok", "file": "/tmp/f", "topic": "t"})),
    )
    .await;
    assert_eq!((r.status, r.json()["error_count"].clone()), (200, json!(0)));
    let r = http(
        addr,
        "PUT",
        "/connector-plugins/FileStreamSource/config/validate",
        Some(&json!({"connector.class": "FileStreamSink"})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message": "Included connector type FileStreamSink does not match request type FileStreamSource"})
        )
    );

    // Loggers.
    let r = http(addr, "GET", "/admin/loggers", None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"root": {"level": "INFO", "last_modified": null}})
        )
    );
    let r = http(
        addr,
        "PUT",
        "/admin/loggers/org.apache.kafka.connect",
        Some(&json!({"level": "debug"})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!(["org.apache.kafka.connect"]))
    );
    let r = http(
        addr,
        "GET",
        "/admin/loggers/org.apache.kafka.connect.runtime",
        None,
    )
    .await;
    assert_eq!(r.json()["level"], "DEBUG");
    assert!(r.json()["last_modified"].as_i64().is_some());
    let r = http(addr, "GET", "/admin/loggers/other", None).await;
    assert_eq!(r.json(), json!({"level": "INFO", "last_modified": null}));
    let r = http(
        addr,
        "PUT",
        "/admin/loggers/x",
        Some(&json!({"level": "LOUD"})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message": "Invalid log level 'LOUD'."})
        )
    );
    let r = http(addr, "PUT", "/admin/loggers/x", Some(&json!({}))).await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message": "Desired 'level' parameter was not specified in request."})
        )
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_created_paused_or_stopped_kip_980() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "k980", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\n").unwrap();
    let w = start_worker(&b, dir.path()).await;
    let (addr, wid) = (w.addr, w.addr.to_string());
    let config = json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": "k980"});

    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "s", "config": config, "initial_state": "STOPPED"})),
    )
    .await;
    let mut full = config.clone();
    full["name"] = json!("s");
    assert_eq!(
        (r.status, r.json()),
        (
            201,
            json!({"name": "s", "config": full, "tasks": [], "type": "source"})
        )
    );
    let r = http(addr, "GET", "/connectors/s/status", None).await;
    assert_eq!(r.json(), status("s", "source", &wid, "STOPPED", &[]));
    // Offsets can be set before the first run (the migration case KIP-980 is for).
    let file = input.display().to_string();
    let r = http(
        addr,
        "PATCH",
        "/connectors/s/offsets",
        Some(&json!({"offsets": [
        {"partition": {"filename": file}, "offset": {"position": 4}}]})),
    )
    .await;
    assert_eq!(r.status, 200);
    // A config update keeps it stopped.
    let r = http(addr, "PUT", "/connectors/s/config", Some(&config)).await;
    assert_eq!((r.status, r.json()["tasks"].clone()), (200, json!([])));
    let r = http(addr, "PUT", "/connectors/s/resume", None).await;
    assert_eq!(r.status, 202);
    wait_status(
        addr,
        "s",
        &status("s", "source", &wid, "RUNNING", &["RUNNING"]),
    )
    .await;
    let recs = read_topic(&b, "k980", 1, 1, Duration::from_secs(20)).await;
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["two"], "resumed from the offset set while stopped");

    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "p", "config": config, "initial_state": "PAUSED"})),
    )
    .await;
    assert_eq!(r.status, 201);
    wait_status(
        addr,
        "p",
        &status("p", "source", &wid, "PAUSED", &["PAUSED"]),
    )
    .await;
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "q", "config": config, "initial_state": "SLEEPING"})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error_code": 400, "message": "Invalid initial state \"SLEEPING\"; must be one of RUNNING, PAUSED, STOPPED"})
        )
    );
    let r = http(addr, "GET", "/connectors?expand=status", None).await;
    assert_eq!(r.json()["p"]["status"]["connector"]["state"], "PAUSED");
    assert_eq!(r.json().as_object().unwrap().len(), 2);
    w.stop().await;
}
