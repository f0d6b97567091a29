//! Metadata (key 3), v0–12: brokers (the advertised listener, never the bind address), the
//! controller, and topics with partition leaders, epochs and ids. Unknown topics are created
//! here when both the request and `auto.create.topics.enable` allow it, as in Kafka.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::{MetadataImage, TopicImage};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation as Op, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::Metadata, 0, 12);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: MetadataRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    // v0: an empty list means every topic; v1+: null means every topic.
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                // A topic asked by id is looked up by id: the Java client (4.x, e.g. a
                // consumer with a SubscriptionPattern) sends its ids with an empty name.
                .map(|t| {
                    let name = t.name.map(|n| n.0.to_string());
                    let by_id = !t.topic_id.is_nil() && name.as_deref().is_none_or(str::is_empty);
                    (name.filter(|_| !by_id), t.topic_id)
                })
                .collect(),
        ),
    };
    let auto_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config().auto_create_topics_enable();
    let may_describe =
        |name: &str| header.authorized(broker, Op::Describe, ResourceType::Topic, name);
    if let (Some(requested), true) = (&requested, auto_create) {
        // Only topics the principal may describe and create (CREATE on the cluster or on
        // the topic) are created; the others are answered TOPIC_AUTHORIZATION_FAILED below.
        let image = broker.image();
        let mut may_create_any = None;
        let names: Vec<&str> = requested
            .iter()
            .filter_map(|(n, _)| n.as_deref())
            .filter(|n| {
                image.topic(n).is_some()
                    || (may_describe(n)
                        && (*may_create_any.get_or_insert_with(|| {
                            header.allowed_quietly(
                                broker,
                                Op::Create,
                                ResourceType::Cluster,
                                super::CLUSTER_RESOURCE_NAME,
                            )
                        }) || header.authorized(broker, Op::Create, ResourceType::Topic, n)))
            })
            .collect();
        tokio::task::block_in_place(|| broker.auto_create_topics(&names));
    }
    let image = broker.image();
    let mut response = MetadataResponse::default();
    response.brokers = brokers(&image, &header.listener);
    response.cluster_id = image
        .cluster_id()
        .map(|id| StrBytes::from_string(id.to_owned()));
    response.controller_id = BrokerId(broker.controller_id_for_clients());
    response.topics = match requested {
        None => image
            .topics()
            .filter(|t| version >= 1 || !strom_metadata::is_internal(&t.name))
            // Topics the principal may not describe are left out of "every topic".
            .filter(|t| may_describe(&t.name))
            .map(|t| topic_metadata(&image, t, version))
            .collect(),
        Some(requested) => requested
            .iter()
            .map(|(name, id)| {
                let found = match name {
                    Some(name) => image.topic(name),
                    None => image.topic_by_id(*id),
                };
                let described = match (name, found) {
                    (Some(name), _) => may_describe(name),
                    (None, Some(topic)) => may_describe(&topic.name),
                    (None, None) => true,
                };
                match (described, name) {
                    (true, _) => requested_topic(&image, name.as_deref(), *id, version),
                    // By name: Kafka answers TOPIC_AUTHORIZATION_FAILED; by id: as if the id
                    // did not exist, so ids do not reveal names.
                    (false, Some(name)) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = Some(TopicName(StrBytes::from_string(name.clone())));
                        t.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        t
                    }
                    (false, None) => requested_topic(&MetadataImage::empty(), None, *id, version),
                }
            })
            .collect(),
    };
    if broker.controller_contact_lost() {
        disown_cut_off_leaderships(broker, header, &mut response.topics);
    }
    if version >= 8 {
        for t in &mut response.topics {
            if let (Some(name), 0) = (&t.name, t.error_code) {
                t.topic_authorized_operations = if request.include_topic_authorized_operations {
                    header.authorized_operations(broker, ResourceType::Topic, name.0.as_str())
                } else {
                    i32::MIN
                };
            }
        }
        if (8..=10).contains(&version) {
            response.cluster_authorized_operations =
                if request.include_cluster_authorized_operations {
                    header.authorized_operations(
                        broker,
                        ResourceType::Cluster,
                        super::CLUSTER_RESOURCE_NAME,
                    )
                } else {
                    i32::MIN
                };
        }
    }
    respond(&SPEC, header, &response)
}

/// A broker cut off from the controller for longer than the session timeout has been fenced;
/// where it leads a partition with an ISR member out of reach too, the majority has likely
/// elected another leader. It does not claim such leaderships (LEADER_NOT_AVAILABLE, no
/// leader) and closes the connection after answering, so the client asks another broker:
/// librdkafka asks for metadata on a connection it has, and this one may be its only one.
fn disown_cut_off_leaderships(
    broker: &Broker,
    header: &RequestContext,
    topics: &mut [MetadataResponseTopic],
) {
    let me = broker.node_id();
    let now = crate::partition::now_ms();
    let lag_ms = broker.config().replica_lag_time_max_ms();
    for t in topics.iter_mut().filter(|t| t.error_code == 0) {
        let Some(name) = &t.name else { continue };
        for p in t.partitions.iter_mut().filter(|p| p.leader_id.0 == me) {
            let cut_off = broker
                .replicas()
                .partition(name.0.as_str(), p.partition_index)
                .is_some_and(|local| local.isr_stalled(now, lag_ms));
            if cut_off {
                p.leader_id = BrokerId(-1);
                p.error_code = ErrorCode::LeaderNotAvailable.code();
                header
                    .close_after
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

fn requested_topic(
    image: &MetadataImage,
    name: Option<&str>,
    id: uuid::Uuid,
    version: i16,
) -> MetadataResponseTopic {
    let found = match name {
        Some(name) => image.topic(name),
        None => image.topic_by_id(id),
    };
    if let Some(topic) = found {
        return topic_metadata(image, topic, version);
    }
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(|n| TopicName(StrBytes::from_string(n.to_owned())));
    t.error_code = match name {
        // The metadata log is no topic: a permanent error, so a producer fails at once.
        Some(strom_metadata::CLUSTER_METADATA_TOPIC) => ErrorCode::InvalidTopicException.code(),
        Some(n) if strom_metadata::validate_topic_name(n).is_err() => {
            ErrorCode::InvalidTopicException.code()
        }
        Some(_) => ErrorCode::UnknownTopicOrPartition.code(),
        None => ErrorCode::UnknownTopicId.code(),
    };
    if version >= 10 {
        t.topic_id = id;
    }
    t
}

fn topic_metadata(
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    if version >= 10 {
        t.topic_id = topic.topic_id;
    }
    t.is_internal = strom_metadata::is_internal(&topic.name);
    t.partitions = topic
        .partitions
        .iter()
        .map(|(index, p)| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = *index;
            m.leader_id = BrokerId(p.leader);
            if version >= 7 {
                m.leader_epoch = p.leader_epoch;
            }
            m.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            m.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            if version >= 5 {
                m.offline_replicas =
                    super::describe_topic_partitions::offline_replicas(image, &p.replicas);
            }
            m
        })
        .collect();
    t
}

/// The live brokers with their endpoint on `listener` (a broker without that listener is
/// left out, as Kafka does).
fn brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .unfenced_brokers()
        .filter_map(|b| Some((b, b.endpoint(listener)?)))
        .map(|(b, (host, port))| {
            let mut m = MetadataResponseBroker::default();
            m.node_id = BrokerId(b.broker_id);
            m.host = StrBytes::from_string(host.to_owned());
            m.port = i32::from(port);
            m.rack = b.rack.clone().map(StrBytes::from_string);
            m
        })
        .collect()
}
