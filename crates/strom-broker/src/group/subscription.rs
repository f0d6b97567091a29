//! Reads the topic list out of a `consumer` protocol member's metadata
//! (ConsumerProtocolSubscription, every version starts with version + topics). The broker
//! needs only the topics: OffsetDelete refuses topics a group consumes, expiry spares them.

use std::collections::BTreeSet;

/// Topics of a ConsumerProtocolSubscription, or `None` if the bytes are not one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let out = metadata.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(out)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = std::str::from_utf8(take(len)?).ok()?;
        topics.insert(name.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
pub(crate) fn encode_subscription(topics: &[&str], user_data: &[u8]) -> bytes::Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(&(user_data.len() as i32).to_be_bytes());
    out.extend_from_slice(user_data);
    // v1 owned partitions: none.
    out.extend_from_slice(&0i32.to_be_bytes());
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_and_rejects_garbage() {
        let sub = encode_subscription(&["a", "bb"], b"x");
        let topics = subscribed_topics(&sub).map(|t| t.into_iter().collect::<Vec<_>>());
        assert_eq!(topics, Some(vec!["a".to_owned(), "bb".to_owned()]));
        for cut in 0..8 {
            assert_eq!(subscribed_topics(&sub[..cut]), None, "cut at {cut}");
        }
        assert_eq!(subscribed_topics(&[0, 0, 127, 255, 255, 255]), None);
        assert_eq!(subscribed_topics(&[255, 255, 0, 0, 0, 0]), None);
    }
}
