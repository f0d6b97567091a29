//! Small conversions between plain Rust values and the `kafka-protocol` newtypes.

use strom_protocol::kafka_protocol::messages::{GroupId, TopicName};
use strom_protocol::kafka_protocol::protocol::StrBytes;

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

pub(crate) fn group_id(s: &str) -> GroupId {
    GroupId(sb(s))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
