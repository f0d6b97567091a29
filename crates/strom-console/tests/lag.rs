//! The lag monitor against a real broker: scripted groups that are caught up, lagging,
//! stalled, stopped and rewound get Burrow's statuses through the Burrow API, and a local
//! webhook receiver gets each group status transition.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use strom_client::{
    Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_console::{ConsoleConfig, LagConfig, NotifierConfig};

use common::*;

/// A webhook receiver: every POSTed body, parsed as JSON.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let sink = sink.clone();
            async move {
                let v: Value = serde_json::from_str(&body).expect("the webhook body is JSON");
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn produce_n(p: &Producer, topic: &str, n: usize) {
    let mut acks = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(topic).value(format!("v{i}").into_bytes());
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
}

async fn commit(admin: &strom_client::Admin, group: &str, topic: &str, offset: i64) {
    admin
        .alter_group_offsets(
            group,
            &BTreeMap::from([(TopicPartition::new(topic, 0), offset)]),
        )
        .await
        .unwrap();
}

async fn status_of(addr: &str, group: &str) -> Option<Value> {
    let (code, v) = get(addr, &format!("/v3/kafka/local/consumer/{group}/lag")).await;
    (code == 200).then(|| v["status"].clone())
}

/// Waits until the group's status is `want`; returns the status object.
async fn wait_status(addr: &str, group: &str, want: &str, timeout: Duration) -> Value {
    eventually(&format!("{group} to be {want}"), timeout, async || {
        status_of(addr, group).await.filter(|s| s["status"] == want)
    })
    .await
}

fn transitions(got: &Mutex<Vec<Value>>, group: &str) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|v| v["group"] == group)
        .map(|v| {
            (
                v["previous"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scripted_groups_get_burrows_statuses_and_the_webhook_hears_each_change() {
    let server = Server::start();
    let b = server.bootstrap();
    for t in ["t-ok", "t-warn", "t-stall", "t-stop", "t-rewind"] {
        create_topic(&b, t, 1).await;
    }
    let (hook, got) = webhook_receiver().await;
    let mut config = ConsoleConfig::new(&b);
    config.lag = LagConfig {
        poll_interval: Duration::from_millis(250),
        intervals: 4,
        stop_after: Some(Duration::from_millis(1500)),
    };
    config.notifiers = vec![
        NotifierConfig::Log,
        NotifierConfig::Webhook {
            url: hook,
            template: None,
            content_type: "application/json".into(),
        },
    ];
    let console = serve_console(config).await;
    let addr = console.addr.clone();
    let admin = admin(&b).await;
    let mut pc = ProducerConfig::new(&b);
    pc.set("linger.ms", "0").unwrap();
    let producer = Arc::new(Producer::new(pc).await.unwrap());
    for t in ["t-ok", "t-warn", "t-stall", "t-stop", "t-rewind"] {
        produce_n(&producer, t, 10).await;
    }

    // Caught up: committed at the end.
    commit(&admin, "g-ok", "t-ok", 10).await;
    // Stopped: no members, offset 2 of 10, never moves.
    commit(&admin, "g-stop", "t-stop", 2).await;
    // Rewound: at 8 of 10, seen there, then back to 3.
    commit(&admin, "g-rewind", "t-rewind", 8).await;
    // Stalled: a live member that committed 3 and then makes no progress.
    let mut cc = ConsumerConfig::new(&b);
    cc.set("group.id", "g-stall").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("fetch.max.wait.ms", "100").unwrap();
    let mut stalled = Consumer::new(cc).await.unwrap();
    stalled.subscribe(&["t-stall"], None).unwrap();
    while stalled.assignment().is_empty() {
        stalled.poll(Duration::from_millis(100)).await.unwrap();
    }
    let tp = TopicPartition::new("t-stall", 0);
    stalled.pause(std::slice::from_ref(&tp));
    stalled
        .commit_offsets(&BTreeMap::from([(tp.clone(), 3)]))
        .await
        .unwrap();
    let stall_task = tokio::spawn(async move {
        loop {
            // Paused: stays in the group (heartbeats) without consuming.
            stalled.poll(Duration::from_millis(200)).await.unwrap();
        }
    });
    // Lagging: commits move forward by 1 while 10 records arrive per step.
    commit(&admin, "g-warn", "t-warn", 1).await;
    let warn_admin = admin.clone();
    let warn_producer = producer.clone();
    let warn_task = tokio::spawn(async move {
        let mut offset = 1;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            produce_n(&warn_producer, "t-warn", 10).await;
            offset += 1;
            commit(&warn_admin, "g-warn", "t-warn", offset).await;
        }
    });

    let rewind_seen = wait_status(&addr, "g-rewind", "OK", Duration::from_secs(10)).await;
    assert_eq!(rewind_seen["partitions"][0]["end"]["offset"], 8);
    commit(&admin, "g-rewind", "t-rewind", 3).await;
    let within = Duration::from_secs(20);
    // REWIND lasts while the rewind is in the window (then, without members, it is STOP).
    let rewind = wait_status(&addr, "g-rewind", "ERR", within).await;

    let mut ok = wait_status(&addr, "g-ok", "OK", within).await;
    let stall = wait_status(&addr, "g-stall", "ERR", within).await;
    let stop = wait_status(&addr, "g-stop", "ERR", within).await;
    let warn = wait_status(&addr, "g-warn", "WARN", within).await;
    warn_task.abort();
    stall_task.abort();

    assert_eq!(stall["partitions"][0]["status"], "STALL");
    assert_eq!(stall["partitions"][0]["current_lag"], 7);
    assert!(stall["partitions"][0]["owner"]
        .as_str()
        .is_some_and(|o| !o.is_empty()));
    assert_eq!(stop["partitions"][0]["status"], "STOP");
    assert_eq!(stop["totallag"], 8);
    assert_eq!(rewind["partitions"][0]["status"], "REWIND");
    assert_eq!(rewind["partitions"][0]["end"]["offset"], 3);
    assert_eq!(warn["partitions"][0]["status"], "WARN");
    let wp = &warn["partitions"][0];
    assert!(wp["end"]["lag"].as_i64() > wp["start"]["lag"].as_i64());
    assert!(wp["end"]["offset"].as_i64() > wp["start"]["offset"].as_i64());

    // The caught-up group's whole answer, times and host aside.
    normalize(&mut ok);
    let entry = json!({"offset": 10, "timestamp": 0, "observedAt": 0, "lag": 0});
    let partition = json!({
        "topic": "t-ok", "partition": 0, "owner": "", "client_id": "", "status": "OK",
        "start": entry, "end": entry, "current_lag": 0, "complete": ok["partitions"][0]["complete"],
    });
    assert_eq!(
        ok,
        json!({
            "cluster": "local", "group": "g-ok", "status": "OK", "complete": ok["complete"],
            "partitions": [partition], "partition_count": 1, "maxlag": partition, "totallag": 0,
        })
    );
    // /status lists only the partitions that are not OK.
    let (code, mut body) = get(&addr, "/v3/kafka/local/consumer/g-ok/status").await;
    assert_eq!(code, 200);
    normalize(&mut body);
    assert_eq!(body["error"], false);
    assert_eq!(body["message"], "consumer status returned");
    assert_eq!(body["status"]["partitions"], json!([]));
    assert_eq!(
        body["request"],
        json!({"url": "/v3/kafka/local/consumer/g-ok/status", "host": "HOST"})
    );

    // The rewound group recovers when its offset comes back.
    commit(&admin, "g-rewind", "t-rewind", 10).await;
    wait_status(&addr, "g-rewind", "OK", within).await;

    // The webhook heard each transition, and nothing for the group that was always OK.
    eventually("the webhook calls", within, async || {
        let heard = |g| !transitions(&got, g).is_empty();
        (transitions(&got, "g-rewind").len() >= 2
            && heard("g-stop")
            && heard("g-stall")
            && heard("g-warn"))
        .then_some(())
    })
    .await;
    assert_eq!(transitions(&got, "g-ok"), vec![]);
    assert_eq!(transitions(&got, "g-stall")[0], ("OK".into(), "ERR".into()));
    assert_eq!(transitions(&got, "g-stop")[0], ("OK".into(), "ERR".into()));
    assert_eq!(transitions(&got, "g-warn")[0], ("OK".into(), "WARN".into()));
    assert_eq!(
        transitions(&got, "g-rewind")[..2],
        [("OK".into(), "ERR".into()), ("ERR".into(), "OK".into())]
    );
    let stop_call = got
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["group"] == "g-stop")
        .cloned()
        .unwrap();
    assert_eq!(stop_call["cluster"], "local");
    assert_eq!(stop_call["totallag"], 8);
    assert_eq!(
        stop_call["partitions"],
        json!([{"topic": "t-stop", "partition": 0, "status": "STOP", "current_lag": 8}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burrow_api_lists_and_refuses_in_burrows_shape() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "topic-a", 2).await;
    let mut config = ConsoleConfig::new(&b);
    config.cluster_name = "prod".into();
    config.lag.poll_interval = Duration::from_millis(200);
    let console = serve_console(config).await;
    let addr = console.addr.clone();
    let admin = admin(&b).await;
    let mut pc = ProducerConfig::new(&b);
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    for p in [0, 0, 0, 1] {
        let rec = ProducerRecord::new("topic-a")
            .partition(p)
            .value(b"x".to_vec());
        producer.send(rec).await.unwrap().await.unwrap();
    }
    commit(&admin, "group-a", "topic-a", 1).await;

    let (code, mut v) = get(&addr, "/v3/kafka").await;
    normalize(&mut v);
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"error": false, "message": "cluster list returned", "clusters": ["prod"],
               "request": {"url": "/v3/kafka", "host": "HOST"}})
    );
    let (code, v) = get(&addr, "/v3/kafka/prod").await;
    assert_eq!(code, 200);
    assert_eq!(v["module"]["servers"], json!([b]));
    let (code, v) = get(&addr, "/v3/kafka/prod/topic").await;
    assert_eq!(code, 200);
    assert!(v["topics"].as_array().unwrap().contains(&json!("topic-a")));
    let (code, v) = get(&addr, "/v3/kafka/prod/topic/topic-a").await;
    assert_eq!((code, &v["offsets"]), (200, &json!([3, 1])));

    let consumers = eventually(
        "group-a to be tracked",
        Duration::from_secs(10),
        async || {
            let (_, v) = get(&addr, "/v3/kafka/prod/consumer").await;
            (v["consumers"] == json!(["group-a"])).then_some(v)
        },
    )
    .await;
    assert_eq!(consumers["message"], "consumer list returned");
    let (code, v) = get(&addr, "/v3/kafka/prod/consumer/group-a").await;
    assert_eq!(code, 200);
    let p0 = &v["topics"]["topic-a"][0];
    assert_eq!(p0["current-lag"], 2);
    assert_eq!(p0["offsets"][0]["offset"], 1);

    for (path, message) in [
        ("/v3/kafka/other/consumer", "cluster not found"),
        (
            "/v3/kafka/prod/consumer/nobody/status",
            "consumer group not found",
        ),
        (
            "/v3/kafka/prod/consumer/nobody/lag",
            "consumer group not found",
        ),
        ("/v3/kafka/prod/topic/no-such-topic", "topic not found"),
    ] {
        let (code, mut v) = get(&addr, path).await;
        normalize(&mut v);
        assert_eq!(code, 404, "{path}");
        assert_eq!(
            v,
            json!({"error": true, "message": message, "request": {"url": path, "host": "HOST"}}),
            "{path}"
        );
    }
    let (code, text) = http(&addr, hyper::Method::GET, "/burrow/admin", None).await;
    assert_eq!((code, text.as_str()), (200, "GOOD"));
    let (code, v) = http_json(
        &addr,
        hyper::Method::DELETE,
        "/v3/kafka/prod/consumer/group-a",
        None,
    )
    .await;
    assert_eq!(
        (code, &v["message"]),
        (200, &json!("consumer group removed"))
    );
}
