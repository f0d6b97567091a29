//! The network path's resource limits (Kafka's names): idle timeout, per-IP connection
//! limits, the global budget of queued request bytes, and the Fetch response cap.
//! Kept apart from the main struct so these knobs travel together.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{BrokerConfig, BrokerConfigError, Lookup};
use crate::config_defs::split_list;

/// Resolved network limits; read through the accessors on [`BrokerConfig`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NetworkLimits {
    connections_max_idle_ms: i64,
    max_connections_per_ip: i32,
    max_connections_per_ip_overrides: BTreeMap<IpAddr, i32>,
    queued_max_request_bytes: i64,
    fetch_max_bytes: i32,
}

pub(super) fn resolve(l: &Lookup<'_>) -> Result<NetworkLimits, BrokerConfigError> {
    let overrides = l.raw("max.connections.per.ip.overrides").unwrap_or("");
    Ok(NetworkLimits {
        connections_max_idle_ms: l.get("connections.max.idle.ms")?,
        max_connections_per_ip: l.get("max.connections.per.ip")?,
        max_connections_per_ip_overrides: parse_per_ip_overrides(overrides).map_err(
            |expected| BrokerConfigError::InvalidValue {
                key: "max.connections.per.ip.overrides".into(),
                value: overrides.to_string(),
                expected,
            },
        )?,
        queued_max_request_bytes: l.get("queued.max.request.bytes")?,
        fetch_max_bytes: l.get("fetch.max.bytes")?,
    })
}

/// Validator for `max.connections.per.ip.overrides`: `ip:count,...` (IP addresses only;
/// Kafka also accepts host names, which would need a resolver on the accept path).
pub fn validate_per_ip_overrides(value: &str) -> Result<(), String> {
    parse_per_ip_overrides(value).map(|_| ())
}

fn parse_per_ip_overrides(value: &str) -> Result<BTreeMap<IpAddr, i32>, String> {
    split_list(value)
        .into_iter()
        .map(|entry| {
            let expected = || format!("ip:count entries, not '{entry}'");
            // rsplit: an IPv6 address contains colons itself.
            let (ip, count) = entry.rsplit_once(':').ok_or_else(expected)?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = ip.parse().map_err(|_| expected())?;
            let count: i32 = count.parse().map_err(|_| expected())?;
            if count < 0 {
                return Err(expected());
            }
            Ok((ip, count))
        })
        .collect()
}

impl BrokerConfig {
    /// `connections.max.idle.ms`: a connection without a request for this long is closed;
    /// `None` when it is <= 0 (never).
    pub fn connections_max_idle_ms(&self) -> Option<u64> {
        let ms = self.network.connections_max_idle_ms;
        (ms > 0).then_some(ms as u64)
    }

    /// `max.connections.per.ip`, or its override for `ip`.
    pub fn max_connections_per_ip(&self, ip: IpAddr) -> i32 {
        let n = &self.network;
        n.max_connections_per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(n.max_connections_per_ip)
    }

    /// `queued.max.request.bytes`: the global budget of request bytes read but not yet
    /// handled; `None` when unbounded (-1).
    pub fn queued_max_request_bytes(&self) -> Option<u64> {
        let v = self.network.queued_max_request_bytes;
        (v >= 0).then_some(v as u64)
    }

    /// `fetch.max.bytes`: the broker's cap on the record bytes of one Fetch response.
    pub fn fetch_max_bytes(&self) -> i32 {
        self.network.fetch_max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(overrides: &[(&str, &str)]) -> Result<BrokerConfig, BrokerConfigError> {
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::parse("", &overrides).map(|(c, _)| c)
    }

    #[test]
    fn defaults_are_bounded() {
        let c = BrokerConfig::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(c.connections_max_idle_ms(), Some(600_000));
        assert_eq!(c.max_connections_per_ip(ip), 1000);
        assert_eq!(c.queued_max_request_bytes(), Some(256 << 20));
        assert_eq!(c.fetch_max_bytes(), 57_671_680);
        assert_eq!(c.max_connections(), 10_000);
    }

    #[test]
    fn per_ip_overrides_apply_to_their_address_only() {
        let c = parse(&[
            ("max.connections.per.ip", "5"),
            ("max.connections.per.ip.overrides", "127.0.0.1:50,[::1]:7"),
        ])
        .unwrap();
        assert_eq!(c.max_connections_per_ip("127.0.0.1".parse().unwrap()), 50);
        assert_eq!(c.max_connections_per_ip("::1".parse().unwrap()), 7);
        assert_eq!(c.max_connections_per_ip("10.1.1.1".parse().unwrap()), 5);
    }

    #[test]
    fn unbounded_and_disabled_values() {
        let c = parse(&[
            ("queued.max.request.bytes", "-1"),
            ("connections.max.idle.ms", "-1"),
        ])
        .unwrap();
        assert_eq!(c.queued_max_request_bytes(), None);
        assert_eq!(c.connections_max_idle_ms(), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse(&[("max.connections.per.ip.overrides", "localhost:x")]).unwrap_err();
        assert!(
            e.to_string().contains("max.connections.per.ip.overrides"),
            "{e}"
        );
        assert!(parse(&[("fetch.max.bytes", "10")]).is_err());
        assert!(parse(&[("queued.max.request.bytes", "-2")]).is_err());
    }
}
