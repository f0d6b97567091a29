//! `POST /v3/clusters/{id}/topics/{t}/records`: producing records as Confluent's REST Proxy
//! v3 does. The body is one or more JSON records (concatenated JSON); each gets a delivery
//! report, in order, with its own `error_code` (200 on success). A request with one record
//! answers with that record's HTTP status; otherwise (several records, or a chunked body:
//! the streamed mode) the answer is 200 and the reports are streamed back as they complete,
//! so a client may keep the request open and send records as it goes.
//!
//! A record: `partition_id` (optional), `headers` (`[{"name", "value": base64 or null}]`),
//! `key` and `value` (`{"type": "BINARY" | "JSON" | "STRING", "data": ...}`; BINARY data is
//! base64, JSON data any JSON value, STRING data a string; no type means JSON; no data or
//! null data a null key or value), `timestamp` (RFC 3339, optional). Schema Registry formats
//! are not supported (400).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http_body_util::{BodyExt, Channel};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{DeliveryFuture, ProducerRecord};

use super::error::{RestError, RestResult};
use super::MAX_BODY_BYTES;
use crate::util::{parse_rfc3339, rfc3339_ms};
use crate::Console;

/// Reports not yet written back, at most (bounds the records in flight per request).
const IN_FLIGHT: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRequest {
    #[serde(default)]
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<HeaderRequest>,
    #[serde(default)]
    key: Option<DataRequest>,
    #[serde(default)]
    value: Option<DataRequest>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderRequest {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DataRequest {
    #[serde(rename = "type", default)]
    data_type: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    schema_id: Option<Value>,
    #[serde(default)]
    schema_version: Option<Value>,
    #[serde(default)]
    subject: Option<Value>,
}

/// A key or value to send, and how the report describes it.
struct Encoded {
    bytes: Option<Bytes>,
    data_type: &'static str,
}

fn encode(what: &str, d: Option<DataRequest>) -> RestResult<Option<Encoded>> {
    let Some(d) = d else {
        return Ok(None);
    };
    if d.schema.is_some()
        || d.schema_id.is_some()
        || d.schema_version.is_some()
        || d.subject.is_some()
    {
        return Err(RestError::BadRequest(format!(
            "{what}: Schema Registry formats are not supported; use BINARY, JSON or STRING"
        )));
    }
    let ty = d
        .data_type
        .as_deref()
        .unwrap_or("JSON")
        .to_ascii_uppercase();
    let data = d.data.filter(|v| !v.is_null());
    let (data_type, bytes) = match (ty.as_str(), data) {
        ("BINARY", None) => ("BINARY", None),
        ("BINARY", Some(Value::String(s))) => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| RestError::BadRequest(format!("{what}: data is not base64: {e}")))?;
            ("BINARY", Some(Bytes::from(b)))
        }
        ("BINARY", Some(_)) => {
            return Err(RestError::BadRequest(format!(
                "{what}: BINARY data must be a base64 string"
            )))
        }
        ("JSON", v) => ("JSON", v.map(|v| Bytes::from(v.to_string()))),
        ("STRING", None) => ("STRING", None),
        ("STRING", Some(Value::String(s))) => ("STRING", Some(Bytes::from(s))),
        ("STRING", Some(_)) => {
            return Err(RestError::BadRequest(format!(
                "{what}: STRING data must be a string"
            )))
        }
        (other, _) => {
            return Err(RestError::BadRequest(format!(
                "{what}: unsupported type '{other}'; use BINARY, JSON or STRING"
            )))
        }
    };
    Ok(Some(Encoded { bytes, data_type }))
}

fn describe(e: &Option<Encoded>) -> Value {
    match e {
        None => Value::Null,
        Some(e) => json!({
            "type": e.data_type,
            "size": e.bytes.as_ref().map_or(0, |b| b.len()),
        }),
    }
}

/// A report to write back: ready, or waiting on the broker's acknowledgement.
enum Pending {
    Ready(Value, StatusCode),
    Delivery {
        fut: DeliveryFuture,
        key: Value,
        value: Value,
    },
}

impl Pending {
    fn error(e: RestError) -> Pending {
        Pending::Ready(e.body(), e.status_and_code().0)
    }

    async fn resolve(self, cluster: &str, topic: &str) -> (Value, StatusCode) {
        match self {
            Pending::Ready(v, s) => (v, s),
            Pending::Delivery { fut, key, value } => match fut.await {
                Ok(md) => (
                    json!({
                        "error_code": 200,
                        "cluster_id": cluster,
                        "topic_name": md.topic,
                        "partition_id": md.partition,
                        "offset": md.offset,
                        "timestamp": rfc3339_ms(md.timestamp),
                        "key": key,
                        "value": value,
                    }),
                    StatusCode::OK,
                ),
                Err(e) => {
                    let e = RestError::from_client(e, Some(topic), None);
                    (e.body(), e.status_and_code().0)
                }
            },
        }
    }
}

/// The context every record of a request shares.
struct Target {
    console: Arc<Console>,
    topic: String,
    partitions: i32,
}

impl Target {
    /// Validates one record and hands it to the producer.
    async fn send(&self, v: Value) -> Pending {
        match self.try_send(v).await {
            Ok(p) => p,
            Err(e) => Pending::error(e),
        }
    }

    async fn try_send(&self, v: Value) -> RestResult<Pending> {
        let req: RecordRequest = serde_json::from_value(v)
            .map_err(|e| RestError::BadRequest(format!("Unrecognized request body: {e}")))?;
        if let Some(p) = req.partition_id {
            if p < 0 || p >= self.partitions {
                return Err(RestError::PartitionNotFound {
                    topic: self.topic.clone(),
                    partition: p,
                });
            }
        }
        let timestamp = match &req.timestamp {
            None => None,
            Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
                RestError::BadRequest(format!("timestamp '{t}' is not an RFC 3339 date-time"))
            })?),
        };
        let mut headers = Vec::with_capacity(req.headers.len());
        for h in req.headers {
            let value = match h.value {
                None => None,
                Some(s) => Some(Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(s.as_bytes())
                        .map_err(|e| {
                            RestError::BadRequest(format!(
                                "header '{}': value is not base64: {e}",
                                h.name
                            ))
                        })?,
                )),
            };
            headers.push((h.name, value));
        }
        let key = encode("key", req.key)?;
        let value = encode("value", req.value)?;
        let record = ProducerRecord {
            topic: self.topic.clone(),
            partition: req.partition_id,
            key: key.as_ref().and_then(|k| k.bytes.clone()),
            value: value.as_ref().and_then(|v| v.bytes.clone()),
            headers,
            timestamp,
        };
        let producer = self
            .console
            .producer()
            .await
            .map_err(|e| RestError::from_client(e, Some(&self.topic), None))?;
        let fut = producer
            .send(record)
            .await
            .map_err(|e| RestError::from_client(e, Some(&self.topic), req.partition_id))?;
        Ok(Pending::Delivery {
            fut,
            key: describe(&key),
            value: describe(&value),
        })
    }
}

/// Watches the bytes of a concatenated-JSON stream for the end of a top-level object or
/// array (tracking nesting, strings and escapes), so the parser runs once per record instead
/// of once per chunk. Scans each byte once.
#[derive(Debug, Default)]
struct Boundary {
    scanned: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Boundary {
    /// Scans what arrived since the last call; true if a top-level value may be complete.
    fn feed(&mut self, buf: &[u8]) -> bool {
        let mut closed = false;
        for &b in &buf[self.scanned.min(buf.len())..] {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    closed |= self.depth == 0;
                }
                // A scalar at the top level (not a record): let the parser judge it.
                b if self.depth == 0 && !b.is_ascii_whitespace() => closed = true,
                _ => {}
            }
        }
        self.scanned = buf.len();
        closed
    }

    /// After the parser took values off the front: scan the rest again from its start.
    fn reset(&mut self) {
        *self = Boundary::default();
    }
}

/// Splits complete JSON values off the front of `buf`. `Err` on a syntax error (the rest of
/// the stream cannot be re-synchronised).
fn take_values(buf: &mut Vec<u8>, out: &mut VecDeque<Value>) -> Result<(), String> {
    loop {
        let start = buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(buf.len());
        buf.drain(..start);
        if buf.is_empty() {
            return Ok(());
        }
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                buf.drain(..used);
                out.push_back(v);
            }
            Some(Err(e)) if e.is_eof() => return Ok(()),
            Some(Err(e)) => return Err(format!("Unrecognized request body: {e}")),
            None => return Ok(()),
        }
    }
}

/// Reads the body's records as they arrive and queues each one's report on `reports`.
async fn read_records(
    target: &Target,
    mut body: Body,
    reports: &tokio::sync::mpsc::Sender<Pending>,
) {
    let mut buf = Vec::new();
    let mut values = VecDeque::new();
    let mut boundary = Boundary::default();
    loop {
        let frame = body.frame().await;
        let ended = match frame {
            None => true,
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    buf.extend_from_slice(&data);
                }
                false
            }
            Some(Err(e)) => {
                let _ = reports
                    .send(Pending::error(RestError::BadRequest(format!(
                        "reading the request body: {e}"
                    ))))
                    .await;
                return;
            }
        };
        // Parse only when a record may have ended, so a large record sent in small chunks is
        // not re-parsed from its start for each chunk.
        let parsed = if boundary.feed(&buf) || ended {
            let r = take_values(&mut buf, &mut values);
            boundary.reset();
            boundary.feed(&buf);
            r
        } else {
            Ok(())
        };
        while let Some(v) = values.pop_front() {
            if reports.send(target.send(v).await).await.is_err() {
                return;
            }
        }
        let failure = match parsed {
            Err(msg) => Some(msg),
            Ok(()) if ended && !buf.is_empty() => {
                Some("Unrecognized request body: the last record is incomplete".to_owned())
            }
            Ok(()) if buf.len() > MAX_BODY_BYTES => {
                Some(format!("a record is larger than {MAX_BODY_BYTES} bytes"))
            }
            Ok(()) => None,
        };
        if let Some(msg) = failure {
            let _ = reports
                .send(Pending::error(RestError::BadRequest(msg)))
                .await;
            return;
        }
        if ended {
            return;
        }
    }
}

pub async fn produce(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((cluster, topic)): Path<(String, String)>,
    body: Body,
) -> Response {
    match start(c, &headers, cluster, topic, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn start(
    c: Arc<Console>,
    headers: &HeaderMap,
    cluster: String,
    topic: String,
    body: Body,
) -> RestResult<Response> {
    let d = c
        .admin()
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(e, None, None))?;
    if d.cluster_id != cluster {
        return Err(RestError::ClusterNotFound(cluster));
    }
    let info = c
        .admin()
        .describe_topics(std::slice::from_ref(&topic))
        .await
        .map_err(|e| RestError::from_client(e, Some(&topic), None))?;
    let partitions = info.first().map_or(0, |t| t.partitions.len() as i32);
    let target = Target {
        console: c,
        topic,
        partitions,
    };
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(RestError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let chunked = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(IN_FLIGHT);
    let topic = target.topic.clone();
    // The reader runs beside the writer of reports, so neither waits on a full queue.
    tokio::spawn(async move { read_records(&target, body, &tx).await });
    if !chunked {
        // The whole body is here: one record answers with its own status.
        let mut reports = Vec::new();
        while let Some(p) = rx.recv().await {
            reports.push(p.resolve(&cluster, &topic).await);
        }
        return Ok(match reports.len() {
            0 => RestError::BadRequest("the request body holds no record".into()).into_response(),
            1 => {
                let (v, status) = reports.pop().expect("one report");
                (status, axum::Json(v)).into_response()
            }
            _ => {
                let mut out = String::new();
                for (v, _) in reports {
                    out.push_str(&v.to_string());
                }
                json_response(Body::from(out))
            }
        });
    }
    let (mut sender, channel) = Channel::<Bytes, Infallible>::new(16);
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let (v, _) = p.resolve(&cluster, &topic).await;
            if sender
                .send(Frame::data(Bytes::from(v.to_string())))
                .await
                .is_err()
            {
                // The client went away; the reader stops when its queue closes.
                return;
            }
        }
    });
    Ok(json_response(Body::new(channel)))
}

fn json_response(body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_json_is_split_as_it_arrives() {
        let mut buf = br#" {"a":1}{"b":"x"} {"c""#.to_vec();
        let mut out = VecDeque::new();
        take_values(&mut buf, &mut out).unwrap();
        assert_eq!(
            Vec::from(out.clone()),
            vec![json!({"a":1}), json!({"b":"x"})]
        );
        assert_eq!(buf, br#"{"c""#);
        buf.extend_from_slice(b":[1]}\n");
        out.clear();
        take_values(&mut buf, &mut out).unwrap();
        assert_eq!(Vec::from(out), vec![json!({"c":[1]})]);
        assert!(buf.is_empty());
        let mut bad = b"{\"a\":1} ]".to_vec();
        let mut out = VecDeque::new();
        assert!(take_values(&mut bad, &mut out).is_err());
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn boundaries_are_found_outside_strings() {
        let mut b = Boundary::default();
        let mut buf = br#"{"a":"}\"{","#.to_vec();
        assert!(!b.feed(&buf));
        buf.extend_from_slice(br#""b":[1,{"c":2}]"#);
        assert!(!b.feed(&buf));
        buf.extend_from_slice(b"}");
        assert!(b.feed(&buf));
        let mut out = VecDeque::new();
        take_values(&mut buf, &mut out).unwrap();
        assert_eq!(
            Vec::from(out),
            vec![json!({"a": "}\"{", "b": [1, {"c": 2}]})]
        );
        let mut b = Boundary::default();
        assert!(b.feed(b"  5"));
    }

    #[test]
    fn data_is_encoded_by_type() {
        let d = |v: Value| Some(serde_json::from_value::<DataRequest>(v).unwrap());
        let e = encode("value", d(json!({"type":"BINARY","data":"AAEC"})))
            .unwrap()
            .unwrap();
        assert_eq!(e.bytes.as_deref(), Some(&[0u8, 1, 2][..]));
        let e = encode("value", d(json!({"type":"JSON","data":{"a":[1,"x"]}})))
            .unwrap()
            .unwrap();
        assert_eq!(e.bytes.as_deref(), Some(&br#"{"a":[1,"x"]}"#[..]));
        let e = encode("value", d(json!({"data":5}))).unwrap().unwrap();
        assert_eq!((e.data_type, e.bytes.as_deref()), ("JSON", Some(&b"5"[..])));
        let e = encode("key", d(json!({"type":"STRING","data":"héllo"})))
            .unwrap()
            .unwrap();
        assert_eq!(describe(&Some(e)), json!({"type":"STRING","size":6}));
        let e = encode("key", d(json!({"type":"BINARY","data":null})))
            .unwrap()
            .unwrap();
        assert!(e.bytes.is_none());
        assert!(encode("key", None).unwrap().is_none());
        for bad in [
            json!({"type":"BINARY","data":"***"}),
            json!({"type":"BINARY","data":1}),
            json!({"type":"STRING","data":{}}),
            json!({"type":"AVRO","data":"x"}),
            json!({"schema_id":1,"data":"x"}),
        ] {
            let err = encode("value", d(bad.clone())).err().unwrap();
            assert_eq!(err.status_and_code().1, 400, "{bad}");
        }
    }
}
