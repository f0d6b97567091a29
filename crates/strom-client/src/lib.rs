//! `strom-client`: a pure-Rust async Kafka client (producer, consumer with groups, admin) on
//! tokio and the `kafka-protocol` codecs via `strom-protocol`, with idempotence (KIP-98/360)
//! and transactions. It speaks to any Kafka-protocol broker: every API version is negotiated
//! through ApiVersions.

mod client;
mod config;
mod connection;
mod error;
mod group_admin;
mod ops;
mod quorum_admin;
mod reassign_admin;
mod util;
mod versions;

pub mod admin;
pub mod consumer;
pub mod membership;
pub mod partitioner;
pub mod producer;
pub mod security;
mod security_admin;
pub mod share;

pub use admin::{Admin, NewTopic};
pub use client::{BrokerInfo, Client, ClusterMetadata, PartitionInfo, TopicInfo};
pub use config::ClientConfig;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener};
pub use membership::{GroupMember, GroupMemberConfig, Joined, JoinedMember};
pub use ops::{CommittedOffset, EARLIEST, LATEST};
pub use quorum_admin::{NewVoter, QuorumInfo, QuorumReplica};
pub use reassign_admin::{PartitionOutcome, PartitionReassignment, ReassignmentTarget};
pub use security::{SecurityConfig, SecurityProtocol};
pub use security_admin::{acl_code, Acl, AclFilter, ScramUser};
pub use share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig, ShareRecord};

pub use error::{kafka_error_name, Error, KafkaCode, Result};
pub use producer::{
    ConsumerGroupMetadata, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
pub use strom_protocol::record_batch::Compression;

/// Confluent-format Avro, JSON Schema and Protobuf serdes with a Schema Registry client
/// (magic byte 0, 4-byte big-endian schema id, the payload), from `strom-schema`. Enabled by
/// the `serdes` feature, off by default so the plain client carries no Avro library or HTTP
/// client. The same module is `strom_registry::serde`.
#[cfg(feature = "serdes")]
pub use strom_schema::serde;

/// A topic and a partition index (Kafka's `TopicPartition`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(all(test, feature = "serdes"))]
mod serdes_tests {
    use crate::serde::{decode, encode, split_frame, MAGIC};

    #[test]
    fn serdes_frame_and_unframe_an_avro_value() {
        let parsed = strom_schema::avro::parse(r#""string""#, &[]).unwrap();
        // Schema id 7, then the Avro string "hi" (zig-zag length 2, the bytes).
        let framed = [MAGIC, 0, 0, 0, 7, 4, b'h', b'i'];
        let (id, mut payload) = split_frame(&framed).unwrap();
        assert_eq!(id, 7);
        let value = decode(&parsed, &mut payload).unwrap();
        assert!(payload.is_empty());
        assert_eq!(encode(id, &parsed, value).unwrap(), framed);
        assert!(split_frame(&[1, 0, 0, 0, 7]).is_err());
        assert!(split_frame(&[MAGIC, 0, 0]).is_err());
    }
}
