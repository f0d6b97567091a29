//! A KIP-848 group (`group.protocol=consumer`): DescribeGroups does not describe it, so the
//! lag monitor and the REST proxy describe it with ConsumerGroupDescribe. A member kept
//! alive by hand-written ConsumerGroupHeartbeats that does not advance is STALL (alive),
//! not STOP (gone), and the REST proxy shows it as a STABLE group with its consumer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde_json::json;
use strom_client::TopicPartition;
use strom_console::{ConsoleConfig, LagConfig};
use strom_protocol::kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, RequestHeader,
    TopicName,
};
use strom_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::*;

const GROUP: &str = "g848";
const MEMBER: &str = "member-848-0000000000";

/// One ConsumerGroupHeartbeat v0 on a fresh connection.
async fn heartbeat(b: &str, epoch: i32) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(StrBytes::from_static_str(GROUP));
    req.member_id = StrBytes::from_static_str(MEMBER);
    req.member_epoch = epoch;
    req.rebalance_timeout_ms = 30_000;
    if epoch == 0 {
        req.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("t848"))]);
        req.topic_partitions = Some(Vec::new());
    }
    let key = ApiKey::ConsumerGroupHeartbeat;
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = 0;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("hand-written"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(0))
        .unwrap();
    req.encode(&mut body, 0).unwrap();
    let mut stream = tokio::net::TcpStream::connect(b).await.unwrap();
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    let len = stream.read_i32().await.unwrap();
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await.unwrap();
    let mut frame = bytes::Bytes::from(frame);
    // Correlation id, then the tagged fields of a v1 response header.
    frame.advance(if key.response_header_version(0) >= 1 {
        5
    } else {
        4
    });
    ConsumerGroupHeartbeatResponse::decode(&mut frame, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip848_member_that_does_not_advance_is_stalled_and_described() {
    let server = Server::start();
    let b = server.bootstrap();
    create_topic(&b, "t848", 1).await;
    let mut config = ConsoleConfig::new(&b);
    config.lag = LagConfig {
        poll_interval: Duration::from_millis(250),
        intervals: 4,
        stop_after: Some(Duration::from_millis(1500)),
    };
    let console = serve_console(config).await;
    let addr = console.addr.clone();
    let admin = admin(&b).await;
    let producer = strom_client::Producer::new(strom_client::ProducerConfig::new(&b))
        .await
        .unwrap();
    for i in 0..10 {
        let rec = strom_client::ProducerRecord::new("t848").value(format!("v{i}").into_bytes());
        producer.send(rec).await.unwrap().await.unwrap();
    }

    let joined = heartbeat(&b, 0).await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let epoch = eventually("the assignment", Duration::from_secs(10), async || {
        let r = heartbeat(&b, joined.member_epoch).await;
        let assigned = r
            .assignment
            .as_ref()
            .is_some_and(|a| a.topic_partitions.iter().any(|t| !t.partitions.is_empty()));
        (r.error_code == 0 && (assigned || joined.assignment.is_some())).then_some(r.member_epoch)
    })
    .await;
    let epoch = epoch.max(joined.member_epoch);
    admin
        .client()
        .commit_offsets(
            GROUP,
            epoch,
            MEMBER,
            &BTreeMap::from([(TopicPartition::new("t848", 0), 4)]),
        )
        .await
        .unwrap();
    let beats = tokio::spawn({
        let b = b.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                heartbeat(&b, epoch).await;
            }
        }
    });

    let status = eventually("g848 to be ERR", Duration::from_secs(20), async || {
        let (code, v) = get(&addr, &format!("/v3/kafka/local/consumer/{GROUP}/lag")).await;
        (code == 200 && v["status"]["status"] == "ERR").then_some(v)
    })
    .await;
    let p = &status["status"]["partitions"][0];
    assert_eq!(
        (&p["status"], &p["current_lag"]),
        (&json!("STALL"), &json!(6))
    );
    assert_eq!(p["client_id"], "hand-written");
    assert!(p["owner"].as_str().is_some_and(|o| !o.is_empty()), "{p}");

    let groups = format!(
        "/v3/clusters/{}/consumer-groups",
        console
            .console
            .admin()
            .describe_cluster()
            .await
            .unwrap()
            .cluster_id
    );
    let (code, g) = get(&addr, &format!("{groups}/{GROUP}")).await;
    assert_eq!(code, 200, "{g}");
    assert_eq!(
        (&g["state"], &g["is_simple"]),
        (&json!("STABLE"), &json!(false))
    );
    let (code, v) = get(&addr, &format!("{groups}/{GROUP}/consumers")).await;
    assert_eq!(code, 200);
    assert_eq!(v["data"][0]["consumer_id"], MEMBER);
    assert_eq!(v["data"][0]["client_id"], "hand-written");
    let (_, v) = get(&addr, &format!("{groups}/{GROUP}/lag-summary")).await;
    assert_eq!(
        (&v["max_lag"], &v["max_lag_consumer_id"]),
        (&json!(6), &json!(MEMBER))
    );
    beats.abort();
}
