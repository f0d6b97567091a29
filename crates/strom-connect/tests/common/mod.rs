//! Test harness: the real `strom` broker and helpers from `strom-testkit`, plus what the
//! Connect tests add: reading a topic with a count, and JSON requests to the REST API.

#![allow(dead_code, unused_imports)]

pub mod dist;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value as J;
use strom_client::ConsumerRecord;
pub use strom_testkit::http::Resp;
pub use strom_testkit::{create_topic, free_port, strom_bin, wait_for, Broker, Read};

/// Reads every partition of `topic` from the start until `want` records came or `timeout`,
/// then a little longer, to see records beyond `want` (duplicates).
pub async fn read_topic(
    b: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<ConsumerRecord> {
    let how = Read::new(timeout)
        .partitions(partitions)
        .settle(Duration::from_millis(300));
    strom_testkit::read(b, topic, how, |r| r.len() >= want).await
}

/// The body of a response as JSON.
pub trait JsonBody {
    fn json(&self) -> J;
}

impl JsonBody for Resp {
    fn json(&self) -> J {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`; the body (if any) is sent as JSON.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&J>) -> Resp {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("Content-Type", "application/json")]
    } else {
        &[]
    };
    strom_testkit::http::request_async(addr, method, path, headers, &payload)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}
