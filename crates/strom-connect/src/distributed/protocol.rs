//! Kafka Connect's group protocol bytes and the leader's assignors: version 0 (protocol
//! name `default`, eager rebalancing, round-robin) and version 1 (`compatible`,
//! incremental cooperative rebalancing, sticky and balanced).
//!
//! Member metadata: `version: int16, url: string, config_offset: int64`, and in v1
//! `allocation: nullable bytes` (the member's current assignment, encoded as a v1
//! assignment). Assignment: `version: int16, error: int16, leader: string, leader_url:
//! string, config_offset: int64, [connector: string, [task: int32]]`, and in v1
//! `revoked: [connector, [task]], scheduled_delay: int32`; task -1 stands for the connector
//! instance itself. Strings are int16-length-prefixed UTF-8, bytes int32-length-prefixed
//! (-1 for null), arrays int32-counted. In v1 the assignment lists only what is new to the
//! member; `revoked` what it must stop (then it rejoins, and the next round hands that work
//! to others).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ConnectError, Result};

/// The protocol name of eager rebalancing in Kafka's Connect protocol (v0).
pub const PROTOCOL_DEFAULT: &str = "default";
/// The protocol name of incremental cooperative rebalancing (v1).
pub const PROTOCOL_COMPATIBLE: &str = "compatible";
/// The group protocol type of Connect workers.
pub const PROTOCOL_TYPE: &str = "connect";
/// The task id that stands for a connector instance in an assignment.
pub const CONNECTOR_TASK: i32 = -1;

/// Assignment error codes (Kafka's `ConnectProtocol.Assignment`).
pub const NO_ERROR: i16 = 0;
pub const CONFIG_MISMATCH: i16 = 1;

/// One member's share: connectors and (connector, task) pairs.
pub type Share = (Vec<String>, Vec<(String, usize)>);

/// A worker's JoinGroup metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub url: String,
    pub config_offset: i64,
    /// v1: what the member runs now.
    pub allocation: Option<Share>,
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
    /// v1: what the member must stop.
    pub revoked: Share,
    /// v1: `scheduled.rebalance.max.delay.ms` left (0: none scheduled).
    pub delay: i32,
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

fn put_share(buf: &mut BytesMut, connectors: &[String], tasks: &[(String, usize)]) {
    let mut by_connector: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for c in connectors {
        by_connector.entry(c).or_default().push(CONNECTOR_TASK);
    }
    for (c, t) in tasks {
        by_connector.entry(c).or_default().push(*t as i32);
    }
    buf.put_i32(by_connector.len() as i32);
    for (c, ids) in by_connector {
        put_str(buf, c);
        buf.put_i32(ids.len() as i32);
        for id in ids {
            buf.put_i32(id);
        }
    }
}

fn get_share(b: &mut Bytes, what: &str) -> Result<Share> {
    let mut out: Share = (Vec::new(), Vec::new());
    let n = get_i32(b, what)?;
    for _ in 0..n.max(0) {
        let c = get_str(b, what)?;
        let m = get_i32(b, what)?;
        for _ in 0..m.max(0) {
            match get_i32(b, what)? {
                CONNECTOR_TASK => out.0.push(c.clone()),
                t => out
                    .1
                    .push((c.clone(), usize::try_from(t).map_err(|_| bad(what))?)),
            }
        }
    }
    Ok(out)
}

/// Metadata in v0 (no allocation) or v1.
pub fn encode_metadata(s: &WorkerState) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(i16::from(s.allocation.is_some()));
    put_str(&mut buf, &s.url);
    buf.put_i64(s.config_offset);
    if let Some((c, t)) = &s.allocation {
        let alloc = encode_assignment(
            &Assignment {
                connectors: c.clone(),
                tasks: t.clone(),
                ..Assignment::default()
            },
            1,
        );
        buf.put_i32(alloc.len() as i32);
        buf.put_slice(&alloc);
    }
    buf.freeze()
}

pub fn decode_metadata(mut b: Bytes) -> Result<WorkerState> {
    let version = get_i16(&mut b, "metadata")?;
    let url = get_str(&mut b, "metadata")?;
    let config_offset = get_i64(&mut b, "metadata")?;
    let mut allocation = None;
    if version >= 1 && b.remaining() >= 4 {
        let n = get_i32(&mut b, "metadata")?;
        if n >= 0 {
            let n = n as usize;
            if b.remaining() < n {
                return Err(bad("metadata"));
            }
            let a = decode_assignment(b.split_to(n))?;
            allocation = Some((a.connectors, a.tasks));
        } else {
            allocation = Some((Vec::new(), Vec::new()));
        }
    } else if version >= 1 {
        allocation = Some((Vec::new(), Vec::new()));
    }
    Ok(WorkerState {
        url,
        config_offset,
        allocation,
    })
}

/// An assignment in `version` 0 or 1 (v1 adds the revocations and the delay).
pub fn encode_assignment(a: &Assignment, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    buf.put_i16(a.error);
    put_str(&mut buf, &a.leader);
    put_str(&mut buf, &a.leader_url);
    buf.put_i64(a.config_offset);
    put_share(&mut buf, &a.connectors, &a.tasks);
    if version >= 1 {
        put_share(&mut buf, &a.revoked.0, &a.revoked.1);
        buf.put_i32(a.delay);
    }
    buf.freeze()
}

pub fn decode_assignment(mut b: Bytes) -> Result<Assignment> {
    let what = "assignment";
    let version = get_i16(&mut b, what)?;
    let mut a = Assignment {
        error: get_i16(&mut b, what)?,
        leader: get_str(&mut b, what)?,
        leader_url: get_str(&mut b, what)?,
        config_offset: get_i64(&mut b, what)?,
        ..Assignment::default()
    };
    (a.connectors, a.tasks) = get_share(&mut b, what)?;
    if version >= 1 {
        a.revoked = get_share(&mut b, what)?;
        a.delay = get_i32(&mut b, what)?;
    }
    Ok(a)
}

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

/// What the cooperative leader hands one member: new work, and work to stop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub assigned: Share,
    pub revoked: Share,
}

/// Balances `items` (already owned by some members per `owned`) over `members`: each keeps
/// what it has up to its quota, gives back the rest (revoked, not handed out this round,
/// since it still runs), and the unowned items go to members below their quota.
fn balance<T: Ord + Clone>(
    members: &[String],
    owned: &BTreeMap<String, Vec<T>>,
    items: &[T],
) -> BTreeMap<String, (Vec<T>, Vec<T>)> {
    let wanted: std::collections::BTreeSet<&T> = items.iter().collect();
    let mut taken: std::collections::BTreeSet<T> = std::collections::BTreeSet::new();
    // Keep: each member's current items that still exist and nobody earlier kept.
    let mut keep: BTreeMap<String, Vec<T>> = BTreeMap::new();
    let mut revoke: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for m in members {
        for it in owned.get(m).into_iter().flatten() {
            if wanted.contains(it) && taken.insert(it.clone()) {
                keep.entry(m.clone()).or_default().push(it.clone());
            } else {
                revoke.entry(m.clone()).or_default().push(it.clone());
            }
        }
    }
    // Quotas: floor or ceil of the average; the ceil slots go to those holding the most.
    let n = members.len().max(1);
    let (base, extra) = (items.len() / n, items.len() % n);
    let mut order: Vec<&String> = members.iter().collect();
    order.sort_by_key(|m| std::cmp::Reverse(keep.get(*m).map_or(0, Vec::len)));
    let quota: BTreeMap<&String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, base + usize::from(i < extra)))
        .collect();
    for m in members {
        let k = keep.entry(m.clone()).or_default();
        while k.len() > quota[m] {
            if let Some(it) = k.pop() {
                revoke.entry(m.clone()).or_default().push(it);
            }
        }
    }
    // Hand out what nobody runs, to whoever is furthest below quota.
    let running: std::collections::BTreeSet<&T> = owned.values().flatten().collect();
    let mut assign: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for it in items.iter().filter(|it| !running.contains(it)) {
        let target = members
            .iter()
            .filter(|m| keep[*m].len() + assign.get(*m).map_or(0, Vec::len) < quota[m])
            .min_by_key(|m| keep[*m].len() + assign.get(*m).map_or(0, Vec::len));
        let target = match target {
            Some(t) => t,
            // Everyone at quota (the over-quota ones are giving work back): least loaded.
            None => match members
                .iter()
                .min_by_key(|m| keep[*m].len() + assign.get(*m).map_or(0, Vec::len))
            {
                Some(t) => t,
                None => continue,
            },
        };
        assign.entry(target.clone()).or_default().push(it.clone());
    }
    members
        .iter()
        .map(|m| {
            (
                m.clone(),
                (
                    assign.remove(m).unwrap_or_default(),
                    revoke.remove(m).unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// Incremental cooperative assignment (members sorted by id): connectors and tasks are
/// balanced separately, each member keeping what it runs as far as balance allows.
/// `current` is each member's allocation from its metadata.
pub fn cooperative(
    current: &BTreeMap<String, Share>,
    shape: &BTreeMap<String, usize>,
) -> BTreeMap<String, Delta> {
    let members: Vec<String> = current.keys().cloned().collect();
    let connectors: Vec<String> = shape.keys().cloned().collect();
    let tasks: Vec<(String, usize)> = shape
        .iter()
        .flat_map(|(c, n)| (0..*n).map(move |t| (c.clone(), t)))
        .collect();
    let owned_c: BTreeMap<String, Vec<String>> = current
        .iter()
        .map(|(m, s)| (m.clone(), s.0.clone()))
        .collect();
    let owned_t: BTreeMap<String, Vec<(String, usize)>> = current
        .iter()
        .map(|(m, s)| (m.clone(), s.1.clone()))
        .collect();
    let mut c = balance(&members, &owned_c, &connectors);
    let mut t = balance(&members, &owned_t, &tasks);
    members
        .iter()
        .map(|m| {
            let (ca, cr) = c.remove(m).unwrap_or_default();
            let (ta, tr) = t.remove(m).unwrap_or_default();
            (
                m.clone(),
                Delta {
                    assigned: (ca, ta),
                    revoked: (cr, tr),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_assignment_round_trip_in_kafkas_layout() {
        let s = WorkerState {
            url: "http://h:8083/".into(),
            config_offset: 7,
            allocation: None,
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
            ..Assignment::default()
        };
        let back = decode_assignment(encode_assignment(&a, 0)).unwrap();
        assert_eq!(back, a);
        let v1 = Assignment {
            revoked: (vec!["x".into()], vec![("x".into(), 1)]),
            delay: 5,
            ..a.clone()
        };
        assert_eq!(decode_assignment(encode_assignment(&v1, 1)).unwrap(), v1);
        let s1 = WorkerState {
            allocation: Some((vec!["c".into()], vec![("c".into(), 3)])),
            ..s.clone()
        };
        let b1 = encode_metadata(&s1);
        assert_eq!(&b1[..2], &[0, 1]);
        assert_eq!(decode_metadata(b1).unwrap(), s1);
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0])).is_err());
    }

    fn share(c: &[&str], t: &[(&str, usize)]) -> Share {
        (
            c.iter().map(|s| s.to_string()).collect(),
            t.iter().map(|(c, i)| (c.to_string(), *i)).collect(),
        )
    }

    #[test]
    fn cooperative_keeps_work_in_place_revokes_the_surplus_and_hands_out_the_lost() {
        let shape: BTreeMap<String, usize> = [("a".to_owned(), 3)].into();
        // One worker ran everything; two join: it keeps one task (and the connector) and
        // gives two back; the newcomers get nothing until the next round.
        let mut cur: BTreeMap<String, Share> = BTreeMap::new();
        cur.insert("w1".into(), share(&["a"], &[("a", 0), ("a", 1), ("a", 2)]));
        cur.insert("w2".into(), share(&[], &[]));
        cur.insert("w3".into(), share(&[], &[]));
        let d = cooperative(&cur, &shape);
        assert_eq!(d["w1"].assigned, share(&[], &[]));
        assert_eq!(d["w1"].revoked, share(&[], &[("a", 2), ("a", 1)]));
        assert_eq!(d["w2"], Delta::default());
        // Next round: the revoked tasks are nobody's, one for each newcomer.
        cur.insert("w1".into(), share(&["a"], &[("a", 0)]));
        let d = cooperative(&cur, &shape);
        assert_eq!(d["w1"], Delta::default());
        let mut handed: Vec<(String, usize)> = d["w2"].assigned.1.clone();
        handed.extend(d["w3"].assigned.1.clone());
        handed.sort();
        assert_eq!(handed, vec![("a".to_owned(), 1), ("a".to_owned(), 2)]);
        assert_eq!((d["w2"].assigned.1.len(), d["w3"].assigned.1.len()), (1, 1));
        // w2 dies: its task goes to a survivor at once, nothing else moves.
        cur.insert("w2".into(), share(&[], &[("a", 1)]));
        cur.insert("w3".into(), share(&[], &[("a", 2)]));
        cur.remove("w2");
        let d = cooperative(&cur, &shape);
        let moved: Vec<&Delta> = d.values().filter(|x| !x.assigned.1.is_empty()).collect();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].assigned.1, vec![("a".to_owned(), 1)]);
        assert!(d.values().all(|x| x.revoked == share(&[], &[])));
        // A deleted connector's work is revoked.
        let d = cooperative(&cur, &BTreeMap::new());
        assert_eq!(d["w1"].revoked, share(&["a"], &[("a", 0)]));
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
