//! Strom's cluster metadata: records appended to a metadata log, replayed into an immutable
//! [`MetadataImage`]; the [`Controller`] that turns admin requests into records; the topic and
//! broker config catalogues; the [`quorum`] that replicates the records with Raft (openraft), not
//! yet wired into the controller.

pub mod acl;
pub mod balancer;
pub mod broker_config;
pub mod broker_config_defs;
pub mod config_defs;
pub mod config_describe;
pub mod controller;
pub mod delta;
pub mod error;
pub mod image;
pub mod log;
mod properties;
pub mod quorum;
pub mod quota;
pub mod records;
pub mod storage;

pub use broker_config::{BrokerConfig, BrokerConfigError, Listener};
pub use config_defs::{ConfigSource, ConfigType, DescribedConfig};
pub use controller::topics::validate_topic_name;
pub use controller::{
    AlterConfigOp, Controller, ControllerAnswer, ControllerHandler, ControllerOp,
    ControllerOpResult, CreateTopicRequest, CreatedTopic,
};
pub use delta::MetadataDelta;
pub use error::{ControllerError, MetadataLogError};
pub use image::{
    is_internal, BrokerRegistration, MetadataImage, PartitionImage, TopicImage,
    CLUSTER_METADATA_TOPIC,
};
pub use log::MetadataLog;
pub use records::{ConfigResource, MetadataRecord};
