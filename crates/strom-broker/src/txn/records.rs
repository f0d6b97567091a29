//! The records of `__transaction_state` in Kafka's own layout (`TransactionLogKey` v0,
//! `TransactionLogValue` v0, non-flexible), so Kafka's tools can read Strom's log. Pure
//! encode/decode; every length read is checked against the bytes that remain.

use std::collections::BTreeSet;

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Kafka's `Utils.abs(transactionalId.hashCode()) % partitions` (same hash as groups).
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::records::partition_for(transactional_id, partitions)
}

/// The record key of a transactional id (TransactionLogKey v0).
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + transactional_id.len());
    key.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut key, transactional_id);
    key
}

/// (key, value) of one transactional id's metadata.
pub fn encode(md: &TxnMetadata) -> (Vec<u8>, Vec<u8>) {
    let key = encode_key(&md.transactional_id);
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    v.extend_from_slice(&md.producer_id.to_be_bytes());
    v.extend_from_slice(&md.producer_epoch.to_be_bytes());
    v.extend_from_slice(&md.timeout_ms.to_be_bytes());
    v.push(md.state.code() as u8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &md.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    v.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, partitions) in topics {
        put_str(&mut v, topic);
        v.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for p in partitions {
            v.extend_from_slice(&p.to_be_bytes());
        }
    }
    v.extend_from_slice(&md.last_update_ms.to_be_bytes());
    v.extend_from_slice(&md.start_ms.to_be_bytes());
    (key, v)
}

/// Decodes a stored record: the transactional id and its metadata (`None`: tombstone).
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(String, Option<TxnMetadata>), String> {
    let mut k = Reader(key.ok_or("record without key")?);
    let version = k.i16()?;
    if version != KEY_VERSION {
        return Err(format!("unknown transaction log key version {version}"));
    }
    let id = k.string()?;
    let Some(value) = value else {
        return Ok((id, None));
    };
    let mut r = Reader(value);
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(format!("unknown transaction log value version {version}"));
    }
    if version == 1 {
        return Err("flexible transaction log values (KIP-890) are not read yet".into());
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.take(1)?[0] as i8;
    let state =
        TxnState::from_code(status).ok_or(format!("unknown transaction status {status}"))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let count = r.i32()?;
        if count < 0 || count as usize > r.0.len() / 4 {
            return Err(format!("bad partition count {count}"));
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok((
        id.clone(),
        Some(TxnMetadata {
            transactional_id: id,
            producer_id,
            producer_epoch,
            last_producer_epoch: -1,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "record truncated: need {n} bytes, have {}",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| "i16")?,
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| "i32")?,
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| "i64")?,
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        if len < 0 {
            return Err("null string".into());
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let md = TxnMetadata {
            transactional_id: "tx-1".into(),
            producer_id: 4000,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("a".to_owned(), 0),
                ("a".to_owned(), 2),
                ("b".to_owned(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 100,
            last_update_ms: 200,
        };
        let (k, v) = encode(&md);
        assert_eq!(
            decode(Some(&k), Some(&v)).unwrap(),
            ("tx-1".into(), Some(md))
        );
        for cut in 0..v.len() {
            assert!(decode(Some(&k), Some(&v[..cut])).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(Some(&k), None).unwrap(), ("tx-1".into(), None));
        // Kafka's Utils.abs("tx-1".hashCode()) % 50
        // Java: "tx-1".hashCode() == 3572520, and 3572520 % 50 == 20.
        assert_eq!(partition_for("tx-1", 50), 20);
    }
}
