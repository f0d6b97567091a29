//! MQTT source and sink (issue 14's IoT ingestion), on `rumqttc`, with the config names of
//! Confluent's MQTT connectors where they exist (`mqtt.server.uri`, `mqtt.topics`,
//! `kafka.topic`, `mqtt.qos`, `mqtt.username`, `mqtt.password`, `mqtt.clean.session.enabled`,
//! `mqtt.client.id`, `mqtt.retain.enabled`).
//!
//! The source subscribes to topic filters (`+` and `#`) and sends each message to the Kafka
//! topic of the first matching `mqtt.kafka.topic.mapping` entry, else `kafka.topic`, keyed by
//! the MQTT topic. It acknowledges QoS 1 messages itself (manual acks) and only once the
//! records are handed off: the runtime asks for the next batch only after Kafka acknowledged
//! the previous one, so a message is acknowledged to the MQTT broker at the next `poll` (or
//! at `commit`); a task that dies before leaves them unacknowledged, and a persistent session
//! (`mqtt.clean.session.enabled=false`) has the broker send them again.
//!
//! The sink publishes each record's value to the topic `mqtt.topic` names (`${topic}` and
//! `${key}` replaced), or to the record key when `mqtt.topic` is unset, with `mqtt.qos` 0 or 1
//! and the retain flag; `flush` waits until the broker acknowledged every QoS 1 publish.

mod sink;
mod source;

pub use sink::{MqttSinkConnector, MqttSinkTask};
pub use source::{MqttSourceConnector, MqttSourceTask};

use std::time::Duration;

use rumqttc::{MqttOptions, QoS};

use crate::config::{get_bool, get_parsed, Props};
use crate::error::{ConnectError, Result};

pub const MQTT_SOURCE_CLASS: &str = "io.confluent.connect.mqtt.MqttSourceConnector";
pub const MQTT_SINK_CLASS: &str = "io.confluent.connect.mqtt.MqttSinkConnector";

/// The wait before polling a failed MQTT connection again (rumqttc then reconnects).
const RECONNECT_WAIT: Duration = Duration::from_millis(500);

/// `host` and `port` of `tcp://host:port` (also `mqtt://`; the port defaults to 1883).
pub fn parse_server_uri(uri: &str) -> Result<(String, u16)> {
    let uri = uri.trim();
    let rest = uri
        .strip_prefix("tcp://")
        .or_else(|| uri.strip_prefix("mqtt://"))
        .ok_or_else(|| {
            ConnectError::InvalidConfig(format!(
                "Invalid value {uri} for configuration mqtt.server.uri: only tcp:// (or mqtt://) URIs are supported"
            ))
        })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| {
                ConnectError::InvalidConfig(format!(
                    "Invalid value {uri} for configuration mqtt.server.uri: bad port {p}"
                ))
            })?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(ConnectError::InvalidConfig(format!(
            "Invalid value {uri} for configuration mqtt.server.uri: no host"
        )));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// `mqtt.qos` as rumqttc's QoS (0 or 1; 2 is refused, as neither connector needs it).
pub fn parse_qos(props: &Props, default: u8) -> Result<QoS> {
    match get_parsed(props, "mqtt.qos", default)? {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        q => Err(ConnectError::InvalidConfig(format!(
            "Invalid value {q} for configuration mqtt.qos: must be 0 or 1"
        ))),
    }
}

/// The connection options common to source and sink.
fn options(props: &Props, default_client_id: &str) -> Result<MqttOptions> {
    let uri = props.get("mqtt.server.uri").ok_or_else(|| {
        ConnectError::InvalidConfig("Missing required configuration \"mqtt.server.uri\"".into())
    })?;
    let (host, port) = parse_server_uri(uri)?;
    let client_id = props
        .get("mqtt.client.id")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default_client_id.to_owned());
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_clean_session(get_bool(props, "mqtt.clean.session.enabled", true)?);
    let keep_alive: u64 = get_parsed(props, "mqtt.keepalive.interval.seconds", 60)?;
    o.set_keep_alive(Duration::from_secs(keep_alive.max(5)));
    let max_packet: usize = get_parsed(props, "mqtt.max.packet.bytes", 16 << 20)?;
    o.set_max_packet_size(max_packet, max_packet);
    if let Some(user) = props.get("mqtt.username").filter(|u| !u.is_empty()) {
        let password = props.get("mqtt.password").cloned().unwrap_or_default();
        o.set_credentials(user, password);
    }
    Ok(o)
}

/// Whether MQTT topic `topic` matches filter `filter` (`+` one level, `#` the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    // Filters starting with a wildcard do not match `$`-topics (MQTT 3.1.1, 4.7.2).
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A config value that is a list of MQTT topic filters: checks each.
fn check_filter(filter: &str) -> std::result::Result<(), String> {
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "'#' must be a whole last level in the filter {filter}"
            ));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!("'+' must be a whole level in the filter {filter}"));
        }
    }
    if filter.is_empty() {
        return Err("an empty topic filter".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_mqtt_says() {
        assert!(topic_matches("sensors/+/temp", "sensors/a/temp"));
        assert!(!topic_matches("sensors/+/temp", "sensors/a/b/temp"));
        assert!(topic_matches("sensors/#", "sensors"));
        assert!(topic_matches("sensors/#", "sensors/a/b"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
        assert!(topic_matches("+/+", "/x"));
        assert!(check_filter("a/#").is_ok());
        assert!(check_filter("a/#/b").is_err());
        assert!(check_filter("a/b+").is_err());
    }

    #[test]
    fn validation_names_the_bad_fields() {
        let props: Props = [
            ("connector.class", "MqttSource"),
            ("name", "m"),
            ("mqtt.server.uri", "ssl://h:8883"),
            ("mqtt.topics", "a/#/b,ok/+"),
            ("mqtt.qos", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let v = crate::plugins::Plugins::builtin()
            .validate_connector_config(&props)
            .unwrap();
        let errs = |name: &str| {
            v.entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(_, v)| v.errors.clone())
                .unwrap()
        };
        assert_eq!(
            errs("mqtt.server.uri"),
            vec!["Invalid value ssl://h:8883 for configuration mqtt.server.uri: only tcp:// (or mqtt://) URIs are supported"]
        );
        assert_eq!(
            errs("mqtt.topics"),
            vec!["'#' must be a whole last level in the filter a/#/b"]
        );
        assert_eq!(errs("mqtt.qos").len(), 1);
        assert_eq!(
            errs("kafka.topic"),
            vec![
                "kafka.topic is required: the filter a/#/b has no mqtt.kafka.topic.mapping entry",
                "kafka.topic is required: the filter ok/+ has no mqtt.kafka.topic.mapping entry",
            ]
        );
        assert_eq!(v.error_count(), 5);
    }

    #[test]
    fn server_uris() {
        assert_eq!(
            parse_server_uri("tcp://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".to_owned(), 1884)
        );
        assert_eq!(
            parse_server_uri("mqtt://broker").unwrap(),
            ("broker".to_owned(), 1883)
        );
        assert!(parse_server_uri("ssl://broker:8883").is_err());
        assert!(parse_server_uri("tcp://:1").is_err());
    }
}
