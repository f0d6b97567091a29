//! Endpoints in broker configs: listeners (`NAME://host:port`, IPv6 in brackets), quorum
//! voters (`id@host:port`), and the cluster id format.

use crate::config_defs::split_list;

/// A listener `NAME://host:port`. An empty host means every interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased listener name (PLAINTEXT, CONTROLLER, ...).
    pub name: String,
    /// Host or IP as written (IPv6 without brackets); empty = all interfaces.
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port`, `NAME://:port` or `NAME://[::1]:port`.
    pub fn parse(s: &str) -> Result<Listener, String> {
        let (name, rest) = s
            .trim()
            .split_once("://")
            .ok_or_else(|| format!("listener '{s}' is not of the form NAME://host:port"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("listener '{s}' has an invalid name '{name}'"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("listener '{s}' has an unclosed '['"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("listener '{s}' has no port"))?;
            (host, port)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| format!("listener '{s}' has no port"))?
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("listener '{s}' has an invalid port '{port}'"))?;
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host: host.to_string(),
            port,
        })
    }

    /// The address to bind: `host:port`, `0.0.0.0:port` for an empty host, brackets for IPv6.
    pub fn bind_address(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            h if h.contains(':') => format!("[{h}]:{}", self.port),
            h => format!("{h}:{}", self.port),
        }
    }
}

/// One voter of a static controller quorum (`id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
}

pub(crate) fn parse_listeners(value: &str) -> Result<Vec<Listener>, String> {
    let listeners = split_list(value)
        .into_iter()
        .map(Listener::parse)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in listeners.iter().enumerate() {
        for b in &listeners[..i] {
            if a.name == b.name {
                return Err(format!("listener name {} appears twice", a.name));
            }
            if a.port != 0 && a.port == b.port && a.host == b.host {
                return Err(format!(
                    "listeners {} and {} use the same port {}",
                    b.name, a.name, a.port
                ));
            }
        }
    }
    Ok(listeners)
}

/// Validator for `listeners` / `advertised.listeners`.
pub fn validate_listeners(value: &str) -> Result<(), String> {
    parse_listeners(value).map(|_| ())
}

pub(crate) fn parse_voter(v: &str) -> Result<QuorumVoter, String> {
    let (id, endpoint) = v
        .split_once('@')
        .ok_or_else(|| format!("voter '{v}' is not of the form id@host:port"))?;
    let node_id = id
        .parse()
        .map_err(|_| format!("voter '{v}' has an invalid id"))?;
    let listener = Listener::parse(&format!("VOTER://{endpoint}"))?;
    Ok(QuorumVoter {
        node_id,
        host: listener.host,
        port: listener.port,
    })
}

/// Validator for `controller.quorum.voters`.
pub fn validate_voters(value: &str) -> Result<(), String> {
    split_list(value)
        .into_iter()
        .try_for_each(|v| parse_voter(v).map(|_| ()))
}

/// One `controller.quorum.bootstrap.servers` entry (`host:port`, IPv6 in brackets) in the
/// form a socket dials.
pub(crate) fn parse_bootstrap_server(v: &str) -> Result<String, String> {
    if v.contains('@') {
        return Err(format!(
            "'{v}' is host:port, without an id (id@host:port belongs in controller.quorum.voters)"
        ));
    }
    let listener = Listener::parse(&format!("BOOTSTRAP://{v}"))
        .map_err(|_| format!("'{v}' is not of the form host:port"))?;
    if listener.host.is_empty() || listener.port == 0 {
        return Err(format!("'{v}' needs a host and a non-zero port"));
    }
    Ok(if listener.host.contains(':') {
        format!("[{}]:{}", listener.host, listener.port)
    } else {
        format!("{}:{}", listener.host, listener.port)
    })
}

/// Validator for `controller.quorum.bootstrap.servers`.
pub fn validate_bootstrap_servers(value: &str) -> Result<(), String> {
    split_list(value)
        .into_iter()
        .try_for_each(|v| parse_bootstrap_server(v).map(|_| ()))
}

/// Validator for `cluster.id`: 22 characters of base64url, as Kafka's Uuid string.
pub fn validate_cluster_id(value: &str) -> Result<(), String> {
    let ok = value.len() == 22
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err("a 22-character base64url cluster id (like `kafka-storage random-uuid` prints)".into())
    }
}
