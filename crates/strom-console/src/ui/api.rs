//! The JSON endpoints of the web console under `/api/console` (what the REST proxy and the
//! Burrow API do not cover): the cluster overview, the topic list with sizes (paginated,
//! filtered on the server), a topic's partitions with offsets, the message browser, groups
//! with their lag per partition and Burrow status, the offset reset (preview and apply) and
//! the chart histories. Errors are the REST proxy's v3 errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{
    Consumer, ConsumerConfig, ConsumerRecord, TopicInfo, TopicPartition, EARLIEST, LATEST,
};

use crate::rest::{RestError, RestResult};
use crate::util::{now_ms, rfc3339_ms};
use crate::Console;

type Shared = Arc<Console>;
type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// The query parameters, or a v3-shaped 400 when they do not decode.
fn params(q: Params) -> RestResult<HashMap<String, String>> {
    q.map(|Query(q)| q)
        .map_err(|e| RestError::BadRequest(format!("bad query string: {}", e.body_text())))
}

/// Largest page of any list.
pub const MAX_PAGE: usize = 500;
/// Default page of lists.
pub const DEFAULT_PAGE: usize = 50;
/// Records the message browser reads at most per request, by default and at most.
pub const DEFAULT_SCAN: i64 = 10_000;
pub const MAX_SCAN: i64 = 100_000;
/// Time the message browser spends reading at most per request.
const BROWSE_TIME: Duration = Duration::from_secs(5);
/// Key, value and header bytes shown per record at most.
const MAX_SHOWN: usize = 100_000;

fn ok(v: Value) -> Response {
    crate::rest::ok_json(v)
}

fn kafka(e: strom_client::Error) -> RestError {
    RestError::from_client(e, None, None)
}

fn num<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str) -> RestResult<Option<T>> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| RestError::BadRequest(format!("{name}: '{s}' is not a valid number"))),
    }
}

/// `offset` and `limit` of a page (limit 1..=MAX_PAGE).
pub(crate) fn page(q: &HashMap<String, String>) -> RestResult<(usize, usize)> {
    let offset = num::<usize>(q, "offset")?.unwrap_or(0);
    let limit = num::<usize>(q, "limit")?.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(RestError::BadRequest(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok((offset, limit))
}

fn filter_of(q: &HashMap<String, String>) -> String {
    q.get("filter")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default()
}

/// Earliest and latest offsets of `tps` (partitions without a leader are left out; a
/// failure leaves everything out).
async fn offsets_of(c: &Console, tps: &[TopicPartition]) -> HashMap<TopicPartition, (i64, i64)> {
    let client = c.admin().client();
    let mut out = HashMap::new();
    if tps.is_empty() {
        return out;
    }
    let spec = |ts| tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>();
    let (earliest, latest) = (spec(EARLIEST), spec(LATEST));
    let (Ok(starts), Ok(ends)) = tokio::join!(
        client.list_offsets(&earliest, 0),
        client.list_offsets(&latest, 0),
    ) else {
        return out;
    };
    for (tp, (s, _)) in starts {
        if let Some((e, _)) = ends.get(&tp) {
            out.insert(tp, (s, *e));
        }
    }
    out
}

/// Bytes of each partition (its largest replica) over every broker's log directories.
async fn sizes(c: &Console) -> HashMap<(String, i32), i64> {
    let mut out: HashMap<(String, i32), i64> = HashMap::new();
    let Ok(d) = c.admin().describe_cluster().await else {
        return out;
    };
    for b in d.brokers {
        if let Ok(s) = c.admin().partition_sizes(b.node_id).await {
            for (k, v) in s {
                let e = out.entry(k).or_insert(0);
                *e = (*e).max(v);
            }
        }
    }
    out
}

/// `GET /api/console/overview`: cluster id, brokers, controller, quorum, counts and the
/// latest throughput.
pub async fn overview(State(c): State<Shared>) -> RestResult<Response> {
    let d = c.admin().describe_cluster().await.map_err(kafka)?;
    let topics = c.admin().list_topics(true).await.map_err(kafka)?;
    let groups = c.admin().list_groups().await.map_err(kafka)?;
    let quorum = c.admin().describe_quorum().await.ok().map(|q| {
        json!({
            "leader_id": q.leader_id,
            "leader_epoch": q.leader_epoch,
            "high_watermark": q.high_watermark,
            "voters": q.voters.iter().map(|v| json!({"node_id": v.node_id, "log_end_offset": v.log_end_offset})).collect::<Vec<_>>(),
            "observers": q.observers.iter().map(|v| json!({"node_id": v.node_id, "log_end_offset": v.log_end_offset})).collect::<Vec<_>>(),
        })
    });
    let parts = topics.iter().flat_map(|t| t.partitions.iter());
    let partitions = parts.clone().count();
    let under_replicated = parts
        .clone()
        .filter(|p| p.isr.len() < p.replicas.len())
        .count();
    let offline = parts.filter(|p| p.leader < 0).count();
    let throughput = c.history().throughput().last().map(|(_, r)| *r);
    let mut brokers: Vec<Value> = d
        .brokers
        .iter()
        .map(|b| {
            json!({
                "broker_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
                "is_controller": b.node_id == d.controller_id,
            })
        })
        .collect();
    brokers.sort_by_key(|b| b["broker_id"].as_i64());
    Ok(ok(json!({
        "cluster_id": d.cluster_id,
        "controller_id": d.controller_id,
        "brokers": brokers,
        "quorum": quorum,
        "topics": topics.iter().filter(|t| !t.is_internal).count(),
        "internal_topics": topics.iter().filter(|t| t.is_internal).count(),
        "partitions": partitions,
        "under_replicated_partitions": under_replicated,
        "offline_partitions": offline,
        "groups": groups.len(),
        "messages_per_sec": throughput,
    })))
}

/// `GET /api/console/topics?filter=&offset=&limit=&internal=`: topics whose name contains
/// `filter` (case-insensitive), sorted by name, one page with sizes and message counts.
pub async fn topics(State(c): State<Shared>, q: Params) -> RestResult<Response> {
    let q = params(q)?;
    let (offset, limit) = page(&q)?;
    let filter = filter_of(&q);
    let internal = match q.get("internal").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(RestError::BadRequest(format!(
                "internal: '{v}' is not true or false"
            )))
        }
    };
    let mut all: Vec<TopicInfo> = c
        .admin()
        .list_topics(internal)
        .await
        .map_err(kafka)?
        .into_iter()
        .filter(|t| filter.is_empty() || t.name.to_lowercase().contains(&filter))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let total = all.len();
    let shown: Vec<&TopicInfo> = all.iter().skip(offset).take(limit).collect();
    let tps: Vec<TopicPartition> = shown
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| TopicPartition::new(&t.name, p.partition))
        })
        .collect();
    let (offsets, sizes) = tokio::join!(offsets_of(&c, &tps), sizes(&c));
    let data: Vec<Value> = shown
        .iter()
        .map(|t| {
            let mut size = None::<i64>;
            let mut messages = None::<i64>;
            for p in &t.partitions {
                if let Some(s) = sizes.get(&(t.name.clone(), p.partition)) {
                    *size.get_or_insert(0) += s;
                }
                if let Some((s, e)) = offsets.get(&TopicPartition::new(&t.name, p.partition)) {
                    *messages.get_or_insert(0) += (e - s).max(0);
                }
            }
            json!({
                "topic_name": t.name,
                "is_internal": t.is_internal,
                "partitions_count": t.partitions.len(),
                "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                "under_replicated_partitions": t.partitions.iter().filter(|p| p.isr.len() < p.replicas.len()).count(),
                "size_bytes": size,
                "messages": messages,
            })
        })
        .collect();
    Ok(ok(json!({
        "total": total, "offset": offset, "limit": limit, "data": data,
    })))
}

async fn describe(c: &Console, topic: &str) -> RestResult<TopicInfo> {
    let mut ts = c
        .admin()
        .describe_topics(&[topic.to_owned()])
        .await
        .map_err(|e| RestError::from_client(e, Some(topic), None))?;
    ts.pop()
        .ok_or_else(|| RestError::TopicNotFound(topic.to_owned()))
}

/// `GET /api/console/topics/{t}/partitions?offset=&limit=`: leader, replicas, ISR, offsets
/// and size of one page of partitions.
pub async fn partitions(
    State(c): State<Shared>,
    Path(topic): Path<String>,
    q: Params,
) -> RestResult<Response> {
    let q = params(q)?;
    let (offset, limit) = page(&q)?;
    let t = describe(&c, &topic).await?;
    let shown: Vec<_> = t.partitions.iter().skip(offset).take(limit).collect();
    let tps: Vec<TopicPartition> = shown
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| TopicPartition::new(&topic, p.partition))
        .collect();
    let (offsets, sizes) = tokio::join!(offsets_of(&c, &tps), sizes(&c));
    let data: Vec<Value> = shown
        .iter()
        .map(|p| {
            let o = offsets.get(&TopicPartition::new(&topic, p.partition));
            json!({
                "partition_id": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "offline_replicas": p.offline,
                "log_start_offset": o.map(|o| o.0),
                "log_end_offset": o.map(|o| o.1),
                "size_bytes": sizes.get(&(topic.clone(), p.partition)),
            })
        })
        .collect();
    Ok(ok(json!({
        "topic_name": topic, "total": t.partitions.len(), "offset": offset, "limit": limit,
        "data": data,
    })))
}

/// Bytes shown as text when they are UTF-8, else base64; cut at `MAX_SHOWN`.
fn shown(b: &Option<Bytes>) -> (Value, &'static str, bool) {
    let Some(b) = b else {
        return (Value::Null, "null", false);
    };
    let cut = b.len() > MAX_SHOWN;
    let b = &b[..b.len().min(MAX_SHOWN)];
    match std::str::from_utf8(b) {
        Ok(s) if !(b.len() >= 5 && b[0] == 0) => (Value::from(s), "text", cut),
        _ => (
            Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
            "base64",
            cut,
        ),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

struct Filters {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    header: Option<Vec<u8>>,
}

impl Filters {
    fn any(&self) -> bool {
        self.key.is_some() || self.value.is_some() || self.header.is_some()
    }

    fn matches(&self, r: &ConsumerRecord) -> bool {
        let field = |f: &Option<Vec<u8>>, b: &Option<Bytes>| match f {
            None => true,
            Some(n) => b.as_ref().is_some_and(|b| contains(b, n)),
        };
        field(&self.key, &r.key)
            && field(&self.value, &r.value)
            && match &self.header {
                None => true,
                Some(n) => r.headers.iter().any(|(k, v)| {
                    contains(k.as_bytes(), n) || v.as_ref().is_some_and(|v| contains(v, n))
                }),
            }
    }
}

/// The schema id of a value in Confluent's wire format (magic byte 0, a 4-byte id).
fn framed_id(b: &Option<Bytes>) -> Option<i32> {
    b.as_ref()
        .filter(|v| v.len() >= 5 && v[0] == 0)
        .map(|v| i32::from_be_bytes([v[1], v[2], v[3], v[4]]))
}

/// The records as the browser shows them, Confluent-framed keys and values decoded through
/// the Schema Registry when one is configured.
async fn records_json(c: &Console, found: &[ConsumerRecord]) -> Vec<Value> {
    let mut data = Vec::with_capacity(found.len());
    for r in found {
        let mut v = record_json(r);
        if let (Some(d), Some(id), Some(bytes)) = (c.decoders(), framed_id(&r.key), r.key.as_ref())
        {
            match d.decode(id, bytes).await {
                Ok((decoded, _)) => {
                    v["key"] = Value::from(decoded.to_string());
                    v["key_encoding"] = Value::from("schema-registry");
                }
                Err(e) => v["key_decode_error"] = Value::from(e),
            }
        }
        if let (Some(d), Some(id), Some(bytes)) =
            (c.decoders(), framed_id(&r.value), r.value.as_ref())
        {
            match d.decode(id, bytes).await {
                Ok((decoded, ty)) => {
                    v["value"] = Value::from(decoded.to_string());
                    v["value_encoding"] = Value::from("schema-registry");
                    v["schema_type"] = Value::from(ty);
                }
                Err(e) => v["decode_error"] = Value::from(e),
            }
        }
        data.push(v);
    }
    data
}

fn record_json(r: &ConsumerRecord) -> Value {
    let (key, key_encoding, key_cut) = shown(&r.key);
    let (value, value_encoding, value_cut) = shown(&r.value);
    let schema_id = framed_id(&r.value);
    json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "time": rfc3339_ms(r.timestamp),
        "key": key, "key_encoding": key_encoding,
        "value": value, "value_encoding": value_encoding,
        "value_size": r.value.as_ref().map_or(0, |v| v.len()),
        "truncated": key_cut || value_cut,
        "schema_id": schema_id,
        "key_schema_id": framed_id(&r.key),
        "headers": r.headers.iter().map(|(k, v)| {
            let (value, encoding, _) = shown(v);
            json!({"key": k, "value": value, "encoding": encoding})
        }).collect::<Vec<_>>(),
    })
}

/// `GET /api/console/topics/{t}/messages?partition=&offset=|timestamp=|position=&limit=
/// &max_scan=&key=&value=&header=`: reads one partition from a start (an offset, the first
/// record at or after a timestamp in ms, `earliest`, or by default `latest`: the last
/// `limit` records, or the last `max_scan` when filtering) and returns up to `limit`
/// records whose key, value or a header contains the given substrings. It reads at most
/// `max_scan` records and 5 s; `next_offset` is where to continue. With a Schema Registry
/// configured, Confluent-framed values are decoded to JSON text (`value_encoding`
/// `schema-registry`, `schema_type`), or carry `decode_error` (keys likewise, with
/// `key_schema_id` and `key_decode_error`); filters match the raw bytes.
pub async fn messages(
    State(c): State<Shared>,
    Path(topic): Path<String>,
    q: Params,
) -> RestResult<Response> {
    let q = params(q)?;
    let all = q.get("partition").is_some_and(|p| p == "all");
    let partition = if all {
        0
    } else {
        num::<i32>(&q, "partition")?.unwrap_or(0)
    };
    let limit = num::<usize>(&q, "limit")?.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(RestError::BadRequest(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let max_scan = num::<i64>(&q, "max_scan")?.unwrap_or(DEFAULT_SCAN);
    if !(1..=MAX_SCAN).contains(&max_scan) {
        return Err(RestError::BadRequest(format!(
            "max_scan: must be between 1 and {MAX_SCAN}"
        )));
    }
    let filt = |n: &str| {
        q.get(n)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
    };
    let filters = Filters {
        key: filt("key"),
        value: filt("value"),
        header: filt("header"),
    };
    let offset = num::<i64>(&q, "offset")?;
    let timestamp = num::<i64>(&q, "timestamp")?;
    if timestamp.is_some_and(|t| t < 0) {
        return Err(RestError::BadRequest(
            "timestamp: must be ms since the epoch (>= 0)".into(),
        ));
    }
    let position = q.get("position").map(String::as_str).unwrap_or("");
    if [offset.is_some(), timestamp.is_some(), !position.is_empty()]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        return Err(RestError::BadRequest(
            "give one of offset, timestamp and position".into(),
        ));
    }
    let t = describe(&c, &topic).await?;
    if all {
        let start = match (offset, timestamp, position) {
            (Some(_), _, _) => {
                return Err(RestError::BadRequest(
                    "an offset needs one partition, not all".into(),
                ))
            }
            (_, Some(ts), _) => ts,
            (_, _, "earliest") => EARLIEST,
            (_, _, "" | "latest") => LATEST,
            (_, _, p) => {
                return Err(RestError::BadRequest(format!(
                    "position: '{p}' is not earliest or latest"
                )))
            }
        };
        let v = browse_all(&c, &t, start, limit, max_scan, &filters).await?;
        return Ok(ok(v));
    }
    if !t.partitions.iter().any(|p| p.partition == partition) {
        return Err(RestError::PartitionNotFound { topic, partition });
    }
    let tp = TopicPartition::new(&topic, partition);
    let client = c.admin().client();
    let err = |e| RestError::from_client(e, Some(&topic), Some(partition));
    let first = |m: HashMap<TopicPartition, (i64, i64)>| m.get(&tp).map_or(-1, |x| x.0);
    let start = first(
        client
            .list_offsets(&[(tp.clone(), EARLIEST)], 0)
            .await
            .map_err(err)?,
    );
    let end = first(
        client
            .list_offsets(&[(tp.clone(), LATEST)], 0)
            .await
            .map_err(err)?,
    )
    .max(start);
    let from = match (offset, timestamp, position) {
        (Some(o), _, _) => o.clamp(start, end),
        (_, Some(ts), _) => {
            let at = first(
                client
                    .list_offsets(&[(tp.clone(), ts)], 0)
                    .await
                    .map_err(err)?,
            );
            if at < 0 {
                end
            } else {
                at
            }
        }
        (_, _, "earliest") => start,
        (_, _, "" | "latest") => {
            let back = if filters.any() {
                max_scan
            } else {
                limit as i64
            };
            (end - back).max(start)
        }
        (_, _, p) => {
            return Err(RestError::BadRequest(format!(
                "position: '{p}' is not earliest or latest"
            )))
        }
    };
    let mut found = Vec::new();
    let mut scanned = 0i64;
    let mut next = from;
    if from < end {
        let mut cc = ConsumerConfig::new(&c.config().bootstrap);
        cc.max_poll_records = limit.max(500);
        cc.fetch_max_wait = Duration::from_millis(100);
        let mut consumer = Consumer::new(cc).await.map_err(err)?;
        consumer.assign(std::slice::from_ref(&tp));
        consumer.seek(&tp, from).map_err(err)?;
        let deadline = Instant::now() + BROWSE_TIME;
        'read: while next < end && scanned < max_scan && Instant::now() < deadline {
            let batch = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(err)?;
            if batch.is_empty() {
                if let Some(p) = consumer.position(&tp) {
                    next = next.max(p);
                }
                continue;
            }
            for r in batch {
                if r.offset >= end || scanned >= max_scan {
                    break 'read;
                }
                scanned += 1;
                next = r.offset + 1;
                if filters.matches(&r) {
                    found.push(r);
                    if found.len() >= limit {
                        break 'read;
                    }
                }
            }
        }
    }
    let data = records_json(&c, &found).await;
    Ok(ok(json!({
        "topic_name": topic,
        "partition_id": partition,
        "log_start_offset": start,
        "log_end_offset": end,
        "from_offset": from,
        "next_offset": next,
        "scanned": scanned,
        "end_reached": next >= end,
        "data": data,
    })))
}

/// Partitions `partition=all` reads at most.
pub const MAX_ALL_PARTITIONS: usize = 100;

/// The message browser over every partition of a topic (at most `MAX_ALL_PARTITIONS`):
/// from `start` (`EARLIEST`, `LATEST` or a timestamp) in each partition, the matching
/// records merged by time: the oldest `limit` (earliest, timestamp) or the newest `limit`
/// (latest: each partition's last `limit` records, or its share of `max_scan` when
/// filtering). At most `max_scan` records and 5 s in all.
async fn browse_all(
    c: &Console,
    t: &TopicInfo,
    start: i64,
    limit: usize,
    max_scan: i64,
    filters: &Filters,
) -> RestResult<Value> {
    let n = t.partitions.len();
    if n > MAX_ALL_PARTITIONS {
        return Err(RestError::BadRequest(format!(
            "partition 'all' reads at most {MAX_ALL_PARTITIONS} partitions and topic '{}' has {n}: choose one",
            t.name
        )));
    }
    let err = |e| RestError::from_client(e, Some(&t.name), None);
    let tps: Vec<TopicPartition> = t
        .partitions
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| TopicPartition::new(&t.name, p.partition))
        .collect();
    let client = c.admin().client();
    let spec = |ts| tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>();
    let starts = client.list_offsets(&spec(EARLIEST), 0).await.map_err(err)?;
    let ends = client.list_offsets(&spec(LATEST), 0).await.map_err(err)?;
    let at = if start >= 0 {
        client.list_offsets(&spec(start), 0).await.map_err(err)?
    } else {
        HashMap::new()
    };
    let newest = start == LATEST;
    let back = if filters.any() {
        (max_scan + n as i64 - 1) / n.max(1) as i64
    } else {
        limit as i64
    };
    // Per partition: [from, end) to read, and where reading got to.
    let mut range: BTreeMap<TopicPartition, (i64, i64, i64)> = BTreeMap::new();
    for tp in &tps {
        let s = starts.get(tp).map_or(0, |x| x.0);
        let e = ends.get(tp).map_or(0, |x| x.0).max(s);
        let from = match start {
            EARLIEST => s,
            LATEST => (e - back).max(s),
            _ => at.get(tp).map(|x| x.0).filter(|o| *o >= 0).unwrap_or(e),
        };
        range.insert(tp.clone(), (from, e, from));
    }
    let mut found: Vec<ConsumerRecord> = Vec::new();
    let mut per: HashMap<i32, usize> = HashMap::new();
    let mut scanned = 0i64;
    let reading: Vec<TopicPartition> = range
        .iter()
        .filter(|(_, (f, e, _))| f < e)
        .map(|(tp, _)| tp.clone())
        .collect();
    if !reading.is_empty() {
        let mut cc = ConsumerConfig::new(&c.config().bootstrap);
        cc.max_poll_records = 500;
        cc.fetch_max_wait = Duration::from_millis(100);
        let mut consumer = Consumer::new(cc).await.map_err(err)?;
        consumer.assign(&reading);
        for tp in &reading {
            consumer.seek(tp, range[tp].0).map_err(err)?;
        }
        let deadline = Instant::now() + BROWSE_TIME;
        let done = |range: &BTreeMap<TopicPartition, (i64, i64, i64)>,
                    per: &HashMap<i32, usize>| {
            range.iter().all(|(tp, (_, e, next))| {
                next >= e || (!newest && per.get(&tp.partition).copied().unwrap_or(0) >= limit)
            })
        };
        while !done(&range, &per) && scanned < max_scan && Instant::now() < deadline {
            let batch = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(err)?;
            let empty = batch.is_empty();
            for r in batch {
                let tp = TopicPartition::new(&t.name, r.partition);
                let Some((_, e, next)) = range.get_mut(&tp) else {
                    continue;
                };
                let full = !newest && per.get(&r.partition).copied().unwrap_or(0) >= limit;
                if r.offset >= *e || full || scanned >= max_scan {
                    continue;
                }
                scanned += 1;
                *next = r.offset + 1;
                if filters.matches(&r) {
                    *per.entry(r.partition).or_insert(0) += 1;
                    found.push(r);
                }
            }
            // Positions move past control records and gaps without records to show.
            for tp in &reading {
                if let (true, Some(p), Some((_, e, next))) =
                    (empty, consumer.position(tp), range.get_mut(tp))
                {
                    *next = (*next).max(p.min(*e));
                }
                // A partition with its `limit` matches is read no further.
                if !newest && per.get(&tp.partition).copied().unwrap_or(0) >= limit {
                    consumer.pause(std::slice::from_ref(tp));
                }
            }
        }
    }
    found.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
    if newest {
        let cut = found.len().saturating_sub(limit);
        found.drain(..cut);
    } else {
        found.truncate(limit);
    }
    let end_reached = range.values().all(|(_, e, next)| next >= e);
    let partitions: Vec<Value> = range
        .iter()
        .map(|(tp, (from, e, next))| {
            json!({"partition_id": tp.partition, "from_offset": from, "next_offset": next, "log_end_offset": e})
        })
        .collect();
    Ok(json!({
        "topic_name": t.name,
        "partition_id": "all",
        "scanned": scanned,
        "end_reached": end_reached,
        "partitions": partitions,
        "data": records_json(c, &found).await,
    }))
}

/// `GET /api/console/groups?filter=&offset=&limit=`: one page of groups, each with state,
/// members, total lag (from the history's last sample) and Burrow status.
pub async fn groups(State(c): State<Shared>, q: Params) -> RestResult<Response> {
    let q = params(q)?;
    let (offset, limit) = page(&q)?;
    let filter = filter_of(&q);
    let mut listings: Vec<_> = c
        .admin()
        .list_groups()
        .await
        .map_err(kafka)?
        .into_iter()
        .filter(|g| filter.is_empty() || g.group_id.to_lowercase().contains(&filter))
        .collect();
    listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let total = listings.len();
    let ids: Vec<String> = listings
        .iter()
        .skip(offset)
        .take(limit)
        .map(|g| g.group_id.clone())
        .collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        c.admin()
            .describe_any_groups(&ids)
            .await
            .unwrap_or_default()
    };
    let lags: HashMap<String, i64> = {
        let h = c.history();
        ids.iter()
            .filter_map(|g| Some((g.clone(), h.groups.get(g)?.back()?.lag)))
            .collect()
    };
    let data: Vec<Value> = ids
        .iter()
        .map(|g| {
            let d = described.iter().find(|d| &d.group_id == g);
            let listing = listings.iter().find(|l| &l.group_id == g);
            json!({
                "group_id": g,
                "state": d.map(|d| d.state.clone()).or_else(|| listing.map(|l| l.state.clone())),
                "protocol_type": listing.map(|l| l.protocol_type.clone()),
                "members": d.map_or(0, |d| d.members.len()),
                "total_lag": lags.get(g),
                "status": c.group_report(g).map(|r| r.status.name()),
            })
        })
        .collect();
    Ok(ok(json!({
        "total": total, "offset": offset, "limit": limit, "data": data,
    })))
}

/// `GET /api/console/groups/{g}?offset=&limit=`: members with assignments, and one page of
/// the committed partitions with end offset, lag, owner and Burrow status.
pub async fn group(
    State(c): State<Shared>,
    Path(group): Path<String>,
    q: Params,
) -> RestResult<Response> {
    let q = params(q)?;
    let (offset, limit) = page(&q)?;
    let d = c
        .admin()
        .describe_any_groups(std::slice::from_ref(&group))
        .await
        .ok()
        .and_then(|mut v| v.pop())
        .filter(|d| d.state != "Dead");
    let committed = c.admin().list_group_offsets(&group).await.map_err(kafka)?;
    if d.is_none() && committed.is_empty() {
        return Err(RestError::GroupNotFound(group));
    }
    let report = c.group_report(&group);
    let statuses: HashMap<TopicPartition, &'static str> = report
        .iter()
        .flat_map(|r| r.partitions.iter().map(|p| (p.tp.clone(), p.status.name())))
        .collect();
    let mut owners: HashMap<TopicPartition, (String, String)> = HashMap::new();
    let members: Vec<Value> = d
        .iter()
        .flat_map(|d| d.members.iter())
        .map(|m| {
            for tp in &m.assignment {
                owners.insert(tp.clone(), (m.member_id.clone(), m.client_id.clone()));
            }
            json!({
                "member_id": m.member_id, "client_id": m.client_id, "host": m.client_host,
                "instance_id": m.group_instance_id,
                "assignments": m.assignment.iter().map(|tp| json!({"topic_name": tp.topic, "partition_id": tp.partition})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let shown: Vec<_> = committed.iter().skip(offset).take(limit).collect();
    let tps: Vec<TopicPartition> = shown.iter().map(|(tp, _)| (*tp).clone()).collect();
    let mut ends = HashMap::new();
    let mut by_topic: BTreeMap<&str, Vec<TopicPartition>> = BTreeMap::new();
    for tp in &tps {
        by_topic.entry(&tp.topic).or_default().push(tp.clone());
    }
    for (_, list) in by_topic {
        // Topic by topic, so a deleted topic leaves only its own partitions without ends.
        let specs: Vec<_> = list.into_iter().map(|tp| (tp, LATEST)).collect();
        if let Ok(m) = c.admin().client().list_offsets(&specs, 0).await {
            ends.extend(m.into_iter().map(|(tp, (o, _))| (tp, o)));
        }
    }
    let partitions: Vec<Value> = shown
        .iter()
        .map(|(tp, co)| {
            let end = ends.get(*tp).copied();
            let owner = owners.get(*tp);
            json!({
                "topic_name": tp.topic, "partition_id": tp.partition,
                "committed_offset": co.offset,
                "log_end_offset": end,
                "lag": end.map(|e| (e - co.offset.max(0)).max(0)),
                "member_id": owner.map(|o| &o.0), "client_id": owner.map(|o| &o.1),
                "status": statuses.get(*tp).copied(),
            })
        })
        .collect();
    Ok(ok(json!({
        "group_id": group,
        "state": d.as_ref().map_or("Empty".to_owned(), |d| d.state.clone()),
        "protocol_type": d.as_ref().map(|d| d.protocol_type.clone()),
        "protocol": d.as_ref().map(|d| d.protocol.clone()),
        "members": members,
        "status": report.as_ref().map(|r| r.status.name()),
        "total_lag": report.as_ref().map(|r| r.total_lag),
        "partitions_total": committed.len(),
        "offset": offset, "limit": limit,
        "partitions": partitions,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// Reset this topic's partitions (all, or `partitions`); by default every partition the
    /// group has committed.
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    partitions: Option<Vec<i32>>,
    /// `earliest`, `latest`, `timestamp` (with `timestamp` in ms) or `offset` (with
    /// `offset`, clamped to the partition's range as Kafka's tool does).
    to: String,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    /// Preview only (the default): nothing is changed.
    #[serde(default = "yes")]
    dry_run: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/console/groups/{g}/reset-offsets`: the new offset of each partition (preview,
/// `dry_run` true, the default) or sets them (`dry_run` false). As in Kafka, offsets can be
/// reset only for a group without members: an active group is refused with Kafka's message.
pub async fn reset_offsets(
    State(c): State<Shared>,
    Path(group): Path<String>,
    body: Bytes,
) -> RestResult<Response> {
    let req: ResetRequest = serde_json::from_slice(&body)
        .map_err(|e| RestError::BadRequest(format!("Unrecognized request body: {e}")))?;
    let committed = c.admin().list_group_offsets(&group).await.map_err(kafka)?;
    let d = c
        .admin()
        .describe_any_groups(std::slice::from_ref(&group))
        .await
        .ok()
        .and_then(|mut v| v.pop())
        .filter(|d| d.state != "Dead");
    let tps: Vec<TopicPartition> = match &req.topic {
        Some(topic) => {
            let t = describe(&c, topic).await?;
            match &req.partitions {
                None => t
                    .partitions
                    .iter()
                    .map(|p| TopicPartition::new(topic, p.partition))
                    .collect(),
                Some(ps) => {
                    for p in ps {
                        if !t.partitions.iter().any(|x| x.partition == *p) {
                            return Err(RestError::PartitionNotFound {
                                topic: topic.clone(),
                                partition: *p,
                            });
                        }
                    }
                    ps.iter().map(|p| TopicPartition::new(topic, *p)).collect()
                }
            }
        }
        None => {
            if d.is_none() && committed.is_empty() {
                return Err(RestError::GroupNotFound(group));
            }
            if committed.is_empty() {
                return Err(RestError::BadRequest(format!(
                    "group '{group}' has no committed offsets: name a topic to reset"
                )));
            }
            committed.keys().cloned().collect()
        }
    };
    let target_ts = match (req.to.as_str(), req.timestamp, req.offset) {
        ("earliest", _, _) => None,
        ("latest", _, _) => None,
        ("timestamp", Some(ts), _) if ts >= 0 => Some(ts),
        ("timestamp", _, _) => {
            return Err(RestError::BadRequest(
                "to 'timestamp' needs a timestamp (ms since the epoch, >= 0)".into(),
            ))
        }
        ("offset", _, Some(_)) => None,
        ("offset", _, None) => {
            return Err(RestError::BadRequest("to 'offset' needs an offset".into()))
        }
        (other, _, _) => {
            return Err(RestError::BadRequest(format!(
                "to: '{other}' is not earliest, latest, timestamp or offset"
            )))
        }
    };
    let client = c.admin().client();
    let spec = |ts| tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>();
    let starts = client
        .list_offsets(&spec(EARLIEST), 0)
        .await
        .map_err(kafka)?;
    let ends = client.list_offsets(&spec(LATEST), 0).await.map_err(kafka)?;
    let at = match target_ts {
        Some(ts) => client.list_offsets(&spec(ts), 0).await.map_err(kafka)?,
        None => HashMap::new(),
    };
    let mut plan = BTreeMap::new();
    let mut rows = Vec::new();
    for tp in &tps {
        let start = starts.get(tp).map_or(0, |x| x.0);
        let end = ends.get(tp).map_or(0, |x| x.0).max(start);
        let new = match req.to.as_str() {
            "earliest" => start,
            "latest" => end,
            "timestamp" => at.get(tp).map(|x| x.0).filter(|o| *o >= 0).unwrap_or(end),
            _ => req.offset.unwrap_or(0).clamp(start, end),
        };
        plan.insert(tp.clone(), new);
        rows.push(json!({
            "topic_name": tp.topic, "partition_id": tp.partition,
            "current_offset": committed.get(tp).map(|c| c.offset),
            "new_offset": new,
            "log_start_offset": start, "log_end_offset": end,
            "lag_after": (end - new).max(0),
        }));
    }
    let state = d.as_ref().map_or("Empty".to_owned(), |d| d.state.clone());
    let members = d.as_ref().map_or(0, |d| d.members.len());
    if !req.dry_run {
        if members > 0 {
            // kafka-consumer-groups.sh's refusal.
            return Err(RestError::KafkaRefused(format!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
            )));
        }
        c.admin()
            .alter_group_offsets(&group, &plan)
            .await
            .map_err(kafka)?;
    }
    Ok(ok(json!({
        "group_id": group,
        "state": state,
        "members": members,
        "dry_run": req.dry_run,
        "applied": !req.dry_run,
        "can_apply": members == 0,
        "partitions": rows,
    })))
}

/// `GET /api/console/history/throughput`: messages per second over the last hour.
pub async fn throughput(State(c): State<Shared>) -> RestResult<Response> {
    let h = c.history();
    let points: Vec<Value> = h
        .throughput()
        .into_iter()
        .map(|(t, r)| json!({"t": t, "messages_per_sec": r}))
        .collect();
    let last = h.cluster.back().copied();
    Ok(ok(json!({
        "interval_ms": c.config().history_interval.as_millis() as u64,
        "now": now_ms(),
        "end_offsets": last.map(|s| s.end_offsets),
        "partitions": last.map(|s| s.partitions),
        "data": points,
    })))
}

/// `GET /api/console/history/lag/{g}`: the group's total lag over the last hour.
pub async fn lag_history(
    State(c): State<Shared>,
    Path(group): Path<String>,
) -> RestResult<Response> {
    let h = c.history();
    let points: Vec<Value> = h
        .groups
        .get(&group)
        .map(|q| {
            q.iter()
                .map(|s| json!({"t": s.t_ms, "lag": s.lag}))
                .collect()
        })
        .unwrap_or_default();
    Ok(ok(json!({
        "group_id": group,
        "interval_ms": c.config().history_interval.as_millis() as u64,
        "now": now_ms(),
        "data": points,
    })))
}
