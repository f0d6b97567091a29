//! Strom's own record of a KIP-848 group in `__consumer_offsets`: one snapshot per group
//! (key version `CONSUMER_GROUP_KEY_VERSION`, see the 2026-11-21-kip848 note), rewritten
//! when the group changes and compacted like the rest. Sessions are not stored: they restart
//! when the group is loaded. Pure encode/decode; every length is bounds-checked.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::group::{ConsumerGroup, Member};
use super::Assignment;

/// 1 added each member's `SubscribedTopicRegex` (after its topic names); 0 is still read.
const SNAPSHOT_VERSION: i16 = 1;
/// No count in a valid snapshot comes near this; a larger one is a corrupt record.
const MAX_COUNT: usize = 1 << 20;

/// Why a stored snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown snapshot version {0}")]
    UnknownVersion(i16),
    #[error("bad count or string in snapshot at byte {0}")]
    Malformed(usize),
}

pub fn encode(g: &ConsumerGroup) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    put_i32(&mut w, g.group_epoch);
    put_i32(&mut w, g.assignment_epoch);
    put_str(&mut w, Some(&g.assignor_name));
    put_count(&mut w, g.subscribed_partitions.len());
    for (id, n) in &g.subscribed_partitions {
        w.extend_from_slice(id.as_bytes());
        put_i32(&mut w, *n);
    }
    put_count(&mut w, g.members.len());
    for m in g.members.values() {
        put_str(&mut w, Some(&m.member_id));
        put_str(&mut w, m.instance_id.as_deref());
        put_str(&mut w, m.rack_id.as_deref());
        put_str(&mut w, Some(&m.client_id));
        put_str(&mut w, Some(&m.client_host));
        put_count(&mut w, m.subscribed_topic_names.len());
        for t in &m.subscribed_topic_names {
            put_str(&mut w, Some(t));
        }
        put_str(&mut w, m.subscribed_topic_regex.as_deref());
        put_str(&mut w, m.server_assignor.as_deref());
        put_i32(&mut w, m.rebalance_timeout_ms);
        put_i32(&mut w, m.member_epoch);
        put_i32(&mut w, m.previous_member_epoch);
        w.push(u8::from(m.left_static));
        put_assignment(&mut w, &m.assigned);
        put_assignment(&mut w, &m.pending_revocation);
        put_assignment(
            &mut w,
            g.target.get(&m.member_id).unwrap_or(&Assignment::new()),
        );
    }
    w
}

/// Rebuilds a group; sessions (and revocation deadlines) start at `now_ms`.
pub fn decode(
    group_id: &str,
    bytes: &[u8],
    now_ms: i64,
    session_timeout_ms: i32,
) -> Result<ConsumerGroup, SnapshotError> {
    let mut r = Reader { buf: bytes, at: 0 };
    let version = i16::from_be_bytes(r.take::<2>()?);
    if !(0..=SNAPSHOT_VERSION).contains(&version) {
        return Err(SnapshotError::UnknownVersion(version));
    }
    let mut g = ConsumerGroup::new(group_id);
    g.group_epoch = r.i32()?;
    g.assignment_epoch = r.i32()?;
    g.assignor_name = r.string()?;
    for _ in 0..r.count()? {
        let id = Uuid::from_bytes(r.take::<16>()?);
        g.subscribed_partitions.insert(id, r.i32()?);
    }
    for _ in 0..r.count()? {
        let mut m = Member::new(r.string()?, now_ms, session_timeout_ms);
        m.instance_id = r.nullable()?;
        m.rack_id = r.nullable()?;
        m.client_id = r.string()?;
        m.client_host = r.string()?;
        for _ in 0..r.count()? {
            m.subscribed_topic_names.push(r.string()?);
        }
        if version >= 1 {
            m.subscribed_topic_regex = r.nullable()?;
        }
        m.server_assignor = r.nullable()?;
        m.rebalance_timeout_ms = r.i32()?;
        m.member_epoch = r.i32()?;
        m.previous_member_epoch = r.i32()?;
        m.left_static = r.take::<1>()?[0] != 0;
        m.assigned = r.assignment()?;
        m.pending_revocation = r.assignment()?;
        if !m.pending_revocation.is_empty() {
            m.revocation_deadline_ms = Some(now_ms + i64::from(m.rebalance_timeout_ms));
        }
        let target = r.assignment()?;
        g.target.insert(m.member_id.clone(), target);
        g.members.insert(m.member_id.clone(), m);
    }
    Ok(g)
}

fn put_i32(w: &mut Vec<u8>, v: i32) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_count(w: &mut Vec<u8>, n: usize) {
    put_i32(
        w,
        i32::try_from(n).expect("a group's collections fit an i32 count"),
    );
}

fn put_str(w: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            put_count(w, s.len());
            w.extend_from_slice(s.as_bytes());
        }
        None => put_i32(w, -1),
    }
}

fn put_assignment(w: &mut Vec<u8>, a: &Assignment) {
    put_count(w, a.len());
    for (id, parts) in a {
        w.extend_from_slice(id.as_bytes());
        put_count(w, parts.len());
        for p in parts {
            put_i32(w, *p);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(SnapshotError::Truncated(self.at))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..end]);
        self.at = end;
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take::<4>()?))
    }

    fn count(&mut self) -> Result<usize, SnapshotError> {
        let at = self.at;
        usize::try_from(self.i32()?)
            .ok()
            .filter(|&n| n <= MAX_COUNT)
            .ok_or(SnapshotError::Malformed(at))
    }

    fn nullable(&mut self) -> Result<Option<String>, SnapshotError> {
        let at = self.at;
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| SnapshotError::Malformed(at))?;
        let end = self.at.checked_add(len).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(SnapshotError::Truncated(self.at))?;
        let s = std::str::from_utf8(&self.buf[self.at..end])
            .map_err(|_| SnapshotError::Malformed(at))?;
        self.at = end;
        Ok(Some(s.to_owned()))
    }

    fn string(&mut self) -> Result<String, SnapshotError> {
        let at = self.at;
        self.nullable()?.ok_or(SnapshotError::Malformed(at))
    }

    fn assignment(&mut self) -> Result<Assignment, SnapshotError> {
        let mut a = Assignment::new();
        for _ in 0..self.count()? {
            let id = Uuid::from_bytes(self.take::<16>()?);
            let mut parts = BTreeSet::new();
            for _ in 0..self.count()? {
                parts.insert(self.i32()?);
            }
            a.insert(id, parts);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_round_trips_and_corrupt_bytes_are_errors() {
        let mut g = ConsumerGroup::new("g");
        g.group_epoch = 4;
        g.assignment_epoch = 3;
        g.assignor_name = "uniform".into();
        g.subscribed_partitions.insert(Uuid::from_u128(1), 6);
        let mut m = Member::new("m".into(), 0, 45_000);
        m.instance_id = Some("i".into());
        m.subscribed_topic_names = vec!["t".into()];
        m.subscribed_topic_regex = Some("orders-.*".into());
        m.member_epoch = 3;
        m.previous_member_epoch = 2;
        m.rebalance_timeout_ms = 1_000;
        m.assigned.insert(Uuid::from_u128(1), [0, 1].into());
        m.pending_revocation.insert(Uuid::from_u128(1), [2].into());
        g.target.insert("m".into(), m.assigned.clone());
        g.members.insert("m".into(), m);
        let bytes = encode(&g);
        let back = decode("g", &bytes, 0, 45_000).expect("decodes");
        assert_eq!(encode(&back), bytes);
        assert_eq!(back.members["m"].revocation_deadline_ms, Some(1_000));
        assert_eq!(
            back.members["m"].subscribed_topic_regex.as_deref(),
            Some("orders-.*")
        );
        for cut in 0..bytes.len() {
            assert!(
                decode("g", &bytes[..cut], 0, 45_000).is_err(),
                "cut at {cut}"
            );
        }
        // The assignor name (after version and two epochs) made null: malformed.
        let mut bad = bytes.clone();
        bad[10..14].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            decode("g", &bad, 0, 45_000),
            Err(SnapshotError::Malformed(10))
        ));
        let mut bad = bytes;
        bad[0..2].copy_from_slice(&7i16.to_be_bytes());
        assert_eq!(
            decode("g", &bad, 0, 45_000).err(),
            Some(SnapshotError::UnknownVersion(7))
        );
    }

    #[test]
    fn a_version_0_snapshot_without_regexes_is_still_read() {
        let mut g = ConsumerGroup::new("g");
        g.group_epoch = 2;
        g.assignment_epoch = 2;
        g.assignor_name = "range".into();
        let mut m = Member::new("m".into(), 0, 45_000);
        m.subscribed_topic_names = vec!["t".into()];
        m.server_assignor = Some("range".into());
        g.members.insert("m".into(), m);
        let v1 = encode(&g);
        // Version 0 is version 1 without the member's (null) regex: 4 bytes after the names.
        // version, epochs, "range", no partitions, one member "m", instance, rack, client id,
        // host, one name "t".
        let regex_at = 2 + 4 + 4 + (4 + 5) + 4 + 4 + (4 + 1) + 4 + 4 + 4 + 4 + 4 + (4 + 1);
        assert_eq!(v1[regex_at..regex_at + 4], (-1i32).to_be_bytes());
        let mut v0 = v1[..regex_at].to_vec();
        v0.extend_from_slice(&v1[regex_at + 4..]);
        v0[0..2].copy_from_slice(&0i16.to_be_bytes());
        let back = decode("g", &v0, 0, 45_000).expect("version 0 decodes");
        assert_eq!(back.members["m"].subscribed_topic_names, ["t"]);
        assert_eq!(back.members["m"].subscribed_topic_regex, None);
        assert_eq!(back.members["m"].server_assignor.as_deref(), Some("range"));
        assert_eq!(encode(&back), v1);
    }
}
