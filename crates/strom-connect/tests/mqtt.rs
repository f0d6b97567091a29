//! The MQTT source and sink against a real mosquitto broker (started by the test on a free
//! port, with a password file) driven by `mosquitto_pub` and `mosquitto_sub`, and a real
//! Strom broker.

mod common;
#[path = "common/mosquitto.rs"]
mod mosquitto;

use std::time::Duration;

use common::*;
use mosquitto::Mosquitto;
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

async fn start_worker(b: &str, dir: &std::path::Path) -> Standalone {
    let props: Props = [
        ("bootstrap.servers", b.to_owned()),
        ("listeners", "http://127.0.0.1:0".to_owned()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "100".to_owned()),
        // A record for a topic that does not exist fails within a second.
        ("producer.max.block.ms", "1000".to_owned()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.converters.ByteArrayConverter".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Standalone::start(props, Vec::new(), None).await.unwrap()
}

fn text(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8(b.clone().unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_messages_arrive_in_strom_topics_keyed_by_mqtt_topic() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "iot", 1).await;
    create_topic(&b, "alerts", 1).await;
    let mqtt = Mosquitto::start(Some(("device", "s3cret")));
    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "mqtt-in", "config": {
            "connector.class": "io.confluent.connect.mqtt.MqttSourceConnector",
            "mqtt.server.uri": mqtt.uri(),
            "mqtt.topics": "sensors/+/temp,alerts/#",
            "kafka.topic": "iot",
            "mqtt.kafka.topic.mapping": "alerts/#:alerts",
            "mqtt.qos": "1",
            "mqtt.username": "device",
            "mqtt.password": "s3cret",
            "mqtt.client.id": "strom-test-source",
        }})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // The subscription is live once a probe message comes through.
    let probe = || mqtt.publish_lines("sensors/probe/temp", 1, &["probe".to_owned()]);
    wait_for(
        "the MQTT subscription",
        Duration::from_secs(20),
        async || {
            probe();
            let got = read_topic(&b, "iot", 1, 1, Duration::from_millis(300)).await;
            (!got.is_empty()).then_some(())
        },
    )
    .await;

    let n = 500;
    let dev1: Vec<String> = (0..n).map(|i| format!("t1-{i}")).collect();
    let dev2: Vec<String> = (0..n).map(|i| format!("t2-{i}")).collect();
    mqtt.publish_lines("sensors/dev1/temp", 1, &dev1);
    mqtt.publish_lines("sensors/dev2/temp", 1, &dev2);
    mqtt.publish_lines("alerts/dev1/overheat", 1, &["too hot".to_owned()]);
    // Not subscribed: never arrives.
    mqtt.publish_lines("sensors/dev1/humidity", 1, &["55".to_owned()]);

    let all = read_topic(&b, "iot", 1, 2 * n + 1, Duration::from_secs(30)).await;
    let by_key = |key: &str| -> Vec<String> {
        all.iter()
            .filter(|r| text(&r.key) == key)
            .map(|r| text(&r.value))
            .collect()
    };
    // Each device's messages, exactly once and in order (QoS 1 on one clean connection).
    assert_eq!(by_key("sensors/dev1/temp"), dev1);
    assert_eq!(by_key("sensors/dev2/temp"), dev2);
    assert!(by_key("sensors/probe/temp").iter().all(|v| v == "probe"));
    assert_eq!(
        all.len(),
        2 * n + by_key("sensors/probe/temp").len(),
        "only subscribed topics arrive"
    );
    // Confluent's MQTT headers.
    let h = &all.last().unwrap().headers;
    let header = |k: &str| {
        h.iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| text(v))
            .unwrap_or_else(|| panic!("no header {k} in {h:?}"))
    };
    assert_eq!(header("mqtt.qos"), "1");
    assert_eq!(header("mqtt.retained"), "false");

    let alerts = read_topic(&b, "alerts", 1, 1, Duration::from_secs(10)).await;
    assert_eq!(
        alerts
            .iter()
            .map(|r| (text(&r.key), text(&r.value)))
            .collect::<Vec<_>>(),
        vec![("alerts/dev1/overheat".to_owned(), "too hot".to_owned())]
    );
    let s = http(w.addr, "GET", "/connectors/mqtt-in/status", None)
        .await
        .json();
    assert_eq!(s["tasks"][0]["state"], "RUNNING", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strom_records_reach_mosquitto_sub_exactly() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "readings", 1).await;
    let mqtt = Mosquitto::start(None);
    let n = 300;
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..n {
        let key = format!("k{}", i % 3);
        let value = format!("v{i}");
        expected.push(format!("strom/readings/{key} {value}"));
        let rec = ProducerRecord::new("readings")
            .key(key.into_bytes())
            .value(value.into_bytes());
        p.send(rec).await.unwrap().await.unwrap();
    }

    // mosquitto_sub (QoS 1, `-d` to see its SUBACK) subscribed before the sink starts.
    let mut sub = mqtt.sub_child(&["-q", "1", "-t", "strom/#", "-v", "-d"]);
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = sub.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .expect("mosquitto_sub subscribed")
            .expect("mosquitto_sub output");
        if line.contains("SUBACK") {
            break;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "mqtt-out", "config": {
            "connector.class": "MqttSink",
            "topics": "readings",
            "mqtt.server.uri": mqtt.uri(),
            "mqtt.topic": "strom/${topic}/${key}",
            "mqtt.qos": "1",
            "mqtt.retain.enabled": "true",
        }})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // The messages (the lines that are not mosquitto_sub's debug output), then a second
    // of nothing more.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) if line.starts_with("strom/") => got.push(line),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let quiet = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(line)) = tokio::time::timeout_at(quiet, lines.recv()).await {
        if line.starts_with("strom/") {
            got.push(line);
        }
    }
    drop(sub);
    assert_eq!(got, expected);

    // The retain flag: a new subscriber gets each key's last value.
    let retained = mqtt.sub(&[
        "-t",
        "strom/#",
        "-v",
        "--retained-only",
        "-C",
        "3",
        "-W",
        "10",
    ]);
    let mut retained: Vec<String> = String::from_utf8(retained.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    retained.sort();
    assert_eq!(
        retained,
        vec![
            format!("strom/readings/k0 v{}", n - 3),
            format!("strom/readings/k1 v{}", n - 2),
            format!("strom/readings/k2 v{}", n - 1),
        ]
    );
}

/// QoS 1 messages are acknowledged to the MQTT broker only once Kafka has them: a task that
/// cannot write a message (its topic does not exist yet) fails with the message
/// unacknowledged; the persistent session (`mqtt.clean.session.enabled=false`) keeps it and
/// queues what comes meanwhile, and the restarted task gets them all, the failed one once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_again_after_a_failed_task() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "plant", 1).await;
    let mqtt = Mosquitto::start(None);
    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "durable", "config": {
            "connector.class": "MqttSource",
            "mqtt.server.uri": mqtt.uri(),
            "mqtt.topics": "plant/#",
            "kafka.topic": "plant",
            // "nowhere" does not exist yet (the broker does not auto-create topics).
            "mqtt.kafka.topic.mapping": "plant/alarm:nowhere",
            "mqtt.clean.session.enabled": "false",
            "mqtt.client.id": "strom-durable",
        }})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let probe = || mqtt.publish_lines("plant/probe", 1, &["probe".to_owned()]);
    wait_for(
        "the MQTT subscription",
        Duration::from_secs(20),
        async || {
            probe();
            let got = read_topic(&b, "plant", 1, 1, Duration::from_millis(300)).await;
            (!got.is_empty()).then_some(())
        },
    )
    .await;

    mqtt.publish_lines("plant/alarm", 1, &["fire".to_owned()]);
    let failed = wait_for("the task to fail", Duration::from_secs(20), async || {
        let s = http(w.addr, "GET", "/connectors/durable/status", None)
            .await
            .json();
        (s["tasks"][0]["state"] == "FAILED").then_some(s)
    })
    .await;
    assert!(
        failed["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("KAFKA_PRODUCE"),
        "{failed}"
    );
    let later: Vec<String> = (0..100).map(|i| format!("later-{i}")).collect();
    mqtt.publish_lines("plant/later", 1, &later);

    create_topic(&b, "nowhere", 1).await;
    let r = http(w.addr, "POST", "/connectors/durable/tasks/0/restart", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let alarms = read_topic(&b, "nowhere", 1, 1, Duration::from_secs(20)).await;
    assert_eq!(
        alarms
            .iter()
            .map(|r| (text(&r.key), text(&r.value)))
            .collect::<Vec<_>>(),
        vec![("plant/alarm".to_owned(), "fire".to_owned())]
    );
    // Sent again by the broker, flagged as a duplicate delivery.
    let dup = alarms[0]
        .headers
        .iter()
        .find(|(k, _)| k == "mqtt.duplicate")
        .map(|(_, v)| text(v));
    assert_eq!(dup.as_deref(), Some("true"));
    let plant = read_topic(&b, "plant", 1, 101, Duration::from_secs(30)).await;
    let rest: Vec<String> = plant
        .iter()
        .filter(|r| text(&r.key) == "plant/later")
        .map(|r| text(&r.value))
        .collect();
    assert_eq!(rest, later);
    let s = http(w.addr, "GET", "/connectors/durable/status", None)
        .await
        .json();
    assert_eq!(s["tasks"][0]["state"], "RUNNING", "{s}");
}

/// Many QoS 1 messages at once: the source acknowledges every one (acks that do not fit the
/// client's full request queue wait for the next poll; dropping them stalled the source
/// before 50 000 messages), and all arrive once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_qos1_messages_arrive_in_order() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "bulk", 1).await;
    let mqtt = Mosquitto::start(None);
    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "bulk", "config": {
            "connector.class": "MqttSource",
            "mqtt.server.uri": mqtt.uri(),
            "mqtt.topics": "bulk/#",
            "kafka.topic": "bulk",
            "mqtt.record.key": "none",
            "mqtt.clean.session.enabled": "false",
            "mqtt.client.id": "strom-bulk",
        }})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The persistent session keeps what is published once the subscription is made.
    wait_for(
        "the MQTT subscription",
        Duration::from_secs(20),
        async || {
            mqtt.publish_lines("bulk/probe", 1, &["probe".to_owned()]);
            let got = read_topic(&b, "bulk", 1, 1, Duration::from_millis(300)).await;
            (!got.is_empty()).then_some(())
        },
    )
    .await;
    let n = 50_000;
    let lines: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    mqtt.publish_lines("bulk/data", 1, &lines);
    let got = read_topic(&b, "bulk", 1, n + 1, Duration::from_secs(60)).await;
    let data: Vec<String> = got
        .iter()
        .map(|r| text(&r.value))
        .filter(|v| v != "probe")
        .collect();
    assert_eq!(data.len(), n);
    assert!(
        data == lines,
        "the messages arrived out of order or changed"
    );
    assert!(got.iter().all(|r| r.key.is_none()));
}
