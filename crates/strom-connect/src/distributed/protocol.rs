//! Kafka Connect's group protocol bytes (its `ConnectProtocol`, version 0, protocol name
//! `default`, eager rebalancing) and the leader's round-robin assignor.
//!
//! Member metadata: `version: int16 = 0, url: string, config_offset: int64`.
//! Assignment: `version: int16 = 0, error: int16, leader: string, leader_url: string,
//! config_offset: int64, [connector: string, [task: int32]]`, where task -1 stands for the
//! connector instance itself. Strings are int16-length-prefixed UTF-8, arrays int32-counted.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ConnectError, Result};

/// The protocol name of eager rebalancing in Kafka's Connect protocol.
pub const PROTOCOL_DEFAULT: &str = "default";
/// The group protocol type of Connect workers.
pub const PROTOCOL_TYPE: &str = "connect";
/// The task id that stands for a connector instance in an assignment.
pub const CONNECTOR_TASK: i32 = -1;

/// Assignment error codes (Kafka's `ConnectProtocol.Assignment`).
pub const NO_ERROR: i16 = 0;
pub const CONFIG_MISMATCH: i16 = 1;

/// A worker's JoinGroup metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub url: String,
    pub config_offset: i64,
}

/// What the leader hands one worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub error: i16,
    pub leader: String,
    pub leader_url: String,
    pub config_offset: i64,
    pub connectors: Vec<String>,
    pub tasks: Vec<(String, usize)>,
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn bad(what: &str) -> ConnectError {
    ConnectError::Kafka(format!("malformed Connect protocol {what}"))
}

fn get_i16(b: &mut Bytes, what: &str) -> Result<i16> {
    if b.remaining() < 2 {
        return Err(bad(what));
    }
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes, what: &str) -> Result<i32> {
    if b.remaining() < 4 {
        return Err(bad(what));
    }
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes, what: &str) -> Result<i64> {
    if b.remaining() < 8 {
        return Err(bad(what));
    }
    Ok(b.get_i64())
}

fn get_str(b: &mut Bytes, what: &str) -> Result<String> {
    let n = get_i16(b, what)?;
    let n = usize::try_from(n).map_err(|_| bad(what))?;
    if b.remaining() < n {
        return Err(bad(what));
    }
    String::from_utf8(b.split_to(n).to_vec()).map_err(|_| bad(what))
}

pub fn encode_metadata(s: &WorkerState) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    put_str(&mut buf, &s.url);
    buf.put_i64(s.config_offset);
    buf.freeze()
}

pub fn decode_metadata(mut b: Bytes) -> Result<WorkerState> {
    let _version = get_i16(&mut b, "metadata")?;
    Ok(WorkerState {
        url: get_str(&mut b, "metadata")?,
        config_offset: get_i64(&mut b, "metadata")?,
    })
}

pub fn encode_assignment(a: &Assignment) -> Bytes {
    let mut by_connector: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for c in &a.connectors {
        by_connector.entry(c).or_default().push(CONNECTOR_TASK);
    }
    for (c, t) in &a.tasks {
        by_connector.entry(c).or_default().push(*t as i32);
    }
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i16(a.error);
    put_str(&mut buf, &a.leader);
    put_str(&mut buf, &a.leader_url);
    buf.put_i64(a.config_offset);
    buf.put_i32(by_connector.len() as i32);
    for (c, ids) in by_connector {
        put_str(&mut buf, c);
        buf.put_i32(ids.len() as i32);
        for id in ids {
            buf.put_i32(id);
        }
    }
    buf.freeze()
}

pub fn decode_assignment(mut b: Bytes) -> Result<Assignment> {
    let what = "assignment";
    let _version = get_i16(&mut b, what)?;
    let mut a = Assignment {
        error: get_i16(&mut b, what)?,
        leader: get_str(&mut b, what)?,
        leader_url: get_str(&mut b, what)?,
        config_offset: get_i64(&mut b, what)?,
        ..Assignment::default()
    };
    let n = get_i32(&mut b, what)?;
    for _ in 0..n.max(0) {
        let c = get_str(&mut b, what)?;
        let m = get_i32(&mut b, what)?;
        for _ in 0..m.max(0) {
            match get_i32(&mut b, what)? {
                CONNECTOR_TASK => a.connectors.push(c.clone()),
                t => a
                    .tasks
                    .push((c.clone(), usize::try_from(t).map_err(|_| bad(what))?)),
            }
        }
    }
    Ok(a)
}

/// One member's share: connectors and (connector, task) pairs.
pub type Share = (Vec<String>, Vec<(String, usize)>);

/// Round-robin over the members (sorted by member id): every connector in name order, then
/// every task in (connector, task) order, continuing where the connectors left off, so the
/// counts per worker differ by at most one. `shape` is connector → number of tasks.
pub fn round_robin(members: &[String], shape: &BTreeMap<String, usize>) -> BTreeMap<String, Share> {
    let mut sorted = members.to_vec();
    sorted.sort();
    let mut out: BTreeMap<String, Share> = sorted
        .iter()
        .map(|m| (m.clone(), (Vec::new(), Vec::new())))
        .collect();
    if sorted.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for c in shape.keys() {
        if let Some(e) = out.get_mut(&sorted[next % sorted.len()]) {
            e.0.push(c.clone());
        }
        next += 1;
    }
    for (c, n) in shape {
        for t in 0..*n {
            if let Some(e) = out.get_mut(&sorted[next % sorted.len()]) {
                e.1.push((c.clone(), t));
            }
            next += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_assignment_round_trip_in_kafkas_layout() {
        let s = WorkerState {
            url: "http://h:8083/".into(),
            config_offset: 7,
        };
        let b = encode_metadata(&s);
        // version 0, int16 length 14, the url, int64 offset.
        assert_eq!(&b[..4], &[0, 0, 0, 14]);
        assert_eq!(b.len(), 2 + 2 + 14 + 8);
        assert_eq!(decode_metadata(b).unwrap(), s);

        let a = Assignment {
            error: NO_ERROR,
            leader: "m-1".into(),
            leader_url: "http://h:8083/".into(),
            config_offset: 9,
            connectors: vec!["c".into()],
            tasks: vec![("c".into(), 0), ("d".into(), 2)],
        };
        let back = decode_assignment(encode_assignment(&a)).unwrap();
        assert_eq!(back, a);
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0])).is_err());
    }

    #[test]
    fn round_robin_spreads_connectors_then_tasks() {
        let members = vec!["w2".to_owned(), "w1".to_owned(), "w3".to_owned()];
        let shape: BTreeMap<String, usize> = [("a".to_owned(), 3), ("b".to_owned(), 2)].into();
        let r = round_robin(&members, &shape);
        assert_eq!(r["w1"].0, vec!["a"]);
        assert_eq!(r["w2"].0, vec!["b"]);
        assert!(r["w3"].0.is_empty());
        assert_eq!(r["w3"].1, vec![("a".into(), 0), ("b".into(), 0)]);
        assert_eq!(r["w1"].1, vec![("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(r["w2"].1, vec![("a".into(), 2)]);
    }
}
