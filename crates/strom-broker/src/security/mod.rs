//! Listener security: TLS (`tls`) on SSL and SASL_SSL listeners, and the principal a
//! connection acts as. Built once per listener at start-up from the broker config, so a bad
//! key store stops `strom server` with a message naming the setting, never a client.

pub mod authz;
pub mod jwks;
pub mod oauth;
pub mod outbound;
pub mod quorum;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::sync::Arc;

use strom_metadata::BrokerConfig;

/// Kafka's name of an unauthenticated client.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// How one listener secures its connections.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    /// The security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub protocol: String,
    /// TLS settings (SSL and SASL_SSL).
    pub tls: Option<Arc<tls::TlsListener>>,
    /// SASL settings (SASL_PLAINTEXT and SASL_SSL).
    pub sasl: Option<Arc<sasl::SaslServer>>,
}

impl ListenerSecurity {
    pub fn plaintext() -> ListenerSecurity {
        ListenerSecurity {
            protocol: "PLAINTEXT".into(),
            tls: None,
            sasl: None,
        }
    }

    /// The security of listener `name`, from the broker config.
    pub fn of(config: &BrokerConfig, name: &str) -> Result<ListenerSecurity, String> {
        let protocol = config.security_protocol(name).to_owned();
        let tls = match protocol.as_str() {
            "SSL" | "SASL_SSL" => Some(Arc::new(tls::listener_tls(config, name)?)),
            _ => None,
        };
        let sasl = match protocol.as_str() {
            "SASL_PLAINTEXT" | "SASL_SSL" => Some(Arc::new(sasl::SaslServer::of(config, name)?)),
            _ => None,
        };
        Ok(ListenerSecurity {
            protocol,
            tls,
            sasl,
        })
    }

    /// Whether clients must authenticate with SASL first.
    pub fn is_sasl(&self) -> bool {
        self.protocol.starts_with("SASL_")
    }
}
