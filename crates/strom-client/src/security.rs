//! Client-side security: TLS (rustls) and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512, set
//! with the names Kafka's Java client and librdkafka use, so a `client.properties` (or
//! `--command-config` file) written for Kafka's tools works unchanged:
//! `security.protocol`, `ssl.truststore.location` / `ssl.ca.location` (PEM),
//! `ssl.keystore.location` (PEM key and chain) or `ssl.certificate.location` +
//! `ssl.key.location`, `ssl.endpoint.identification.algorithm`, `sasl.mechanism(s)`,
//! `sasl.username` / `sasl.password` or `sasl.jaas.config`; for OAUTHBEARER a token file
//! (`sasl.oauthbearer.token.endpoint.url=file:///path`) or an unsecured development token
//! (OAuthBearerLoginModule's `unsecuredLogin*` options or librdkafka's
//! `sasl.oauthbearer.config`), see [`OAuthBearerToken`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// How a client secures its connections.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub protocol: SecurityProtocol,
    /// PEM file of the CA certificates to trust.
    pub ca_location: Option<PathBuf>,
    /// PEM file(s) of the client certificate chain and its key (mutual TLS).
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    /// Check the broker's certificate names its host (`ssl.endpoint.identification.algorithm`
    /// = `https`, the default); empty turns the check off (the chain is still verified).
    pub verify_hostname: bool,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    pub sasl_mechanism: String,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// The bearer token OAUTHBEARER presents.
    pub oauthbearer: Option<OAuthBearerToken>,
}

/// Where an OAUTHBEARER client's token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuthBearerToken {
    /// A JWT read from this file at each connection (Kafka's
    /// `sasl.oauthbearer.token.endpoint.url=file:///path`, a token obtained out of band).
    File(PathBuf),
    /// An unsecured JWT (`alg: none`) made at each connection, for development against a
    /// broker with the unsecured validator: Kafka's OAuthBearerLoginModule JAAS options
    /// `unsecuredLoginStringClaim_sub` (and other `...Claim_<name>`),
    /// `unsecuredLoginLifetimeSeconds`, or librdkafka's `sasl.oauthbearer.config`
    /// (`principal=... scope=... lifeSeconds=...`).
    Unsecured {
        principal: String,
        lifetime_s: u64,
        /// Further claims: name and JSON value.
        claims: Vec<(String, String)>,
    },
}

impl OAuthBearerToken {
    /// The token to present now.
    pub fn token(&self) -> Result<String> {
        match self {
            OAuthBearerToken::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_owned())
                .map_err(|e| {
                    Error::InvalidArgument(format!(
                        "cannot read the OAUTHBEARER token {}: {e}",
                        path.display()
                    ))
                }),
            OAuthBearerToken::Unsecured {
                principal,
                lifetime_s,
                claims,
            } => Ok(strom_protocol::sasl_client::unsecured_jwt(
                principal,
                *lifetime_s,
                claims,
            )),
        }
    }

    /// From Kafka's OAuthBearerLoginModule JAAS options (`unsecuredLogin*`).
    fn from_jaas(jaas: &str) -> Result<Option<OAuthBearerToken>> {
        let invalid = |why: String| Error::InvalidArgument(format!("sasl.jaas.config: {why}"));
        let options = jaas_options(jaas);
        let get = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let principal_claim = get("unsecuredLoginPrincipalClaimName")
            .cloned()
            .unwrap_or_else(|| "sub".into());
        let lifetime_s = match get("unsecuredLoginLifetimeSeconds") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid(format!("unsecuredLoginLifetimeSeconds={v}")))?,
            None => 3600,
        };
        let mut principal = None;
        let mut claims = Vec::new();
        for (k, v) in &options {
            if let Some(name) = k.strip_prefix("unsecuredLoginStringClaim_") {
                if name == principal_claim {
                    principal = Some(v.clone());
                }
                claims.push((name.to_owned(), strom_protocol::sasl_client::json_string(v)));
            } else if let Some(name) = k.strip_prefix("unsecuredLoginNumberClaim_") {
                let n: f64 = v
                    .parse()
                    .map_err(|_| invalid(format!("{k}={v} is not a number")))?;
                claims.push((name.to_owned(), n.to_string()));
            } else if let Some(name) = k.strip_prefix("unsecuredLoginListClaim_") {
                // The first character is the separator (Kafka's convention).
                let mut chars = v.chars();
                let items: Vec<String> = match chars.next() {
                    Some(sep) => chars
                        .as_str()
                        .split(sep)
                        .filter(|s| !s.is_empty())
                        .map(strom_protocol::sasl_client::json_string)
                        .collect(),
                    None => Vec::new(),
                };
                claims.push((name.to_owned(), format!("[{}]", items.join(","))));
            }
        }
        match principal {
            Some(principal) => Ok(Some(OAuthBearerToken::Unsecured {
                principal,
                lifetime_s,
                claims,
            })),
            None if options.iter().any(|(k, _)| k.starts_with("unsecuredLogin")) => Err(invalid(
                format!("unsecuredLoginStringClaim_{principal_claim}=\"...\" names the principal"),
            )),
            None => Ok(None),
        }
    }

    /// From librdkafka's `sasl.oauthbearer.config`: `principal=... scope=a,b lifeSeconds=N`.
    fn from_librdkafka(config: &str) -> Result<OAuthBearerToken> {
        let invalid = |why: String| {
            Error::InvalidArgument(format!("sasl.oauthbearer.config={config}: {why}"))
        };
        let mut principal = None;
        let mut lifetime_s = 3600;
        let mut claims = Vec::new();
        for pair in config.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("expected key=value, got {pair}")))?;
            match k {
                "principal" => principal = Some(v.to_owned()),
                "lifeSeconds" => {
                    lifetime_s = v.parse().map_err(|_| invalid(format!("lifeSeconds={v}")))?
                }
                "scope" => {
                    let items: Vec<String> = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(strom_protocol::sasl_client::json_string)
                        .collect();
                    claims.push(("scope".to_owned(), format!("[{}]", items.join(","))));
                }
                other => return Err(invalid(format!("{other} is not served"))),
            }
        }
        let principal = principal.ok_or_else(|| invalid("principal=... is missing".into()))?;
        Ok(OAuthBearerToken::Unsecured {
            principal,
            lifetime_s,
            claims,
        })
    }
}

/// `name="value"` options of a JAAS login module config.
fn jaas_options(jaas: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = jaas;
    while let Some(eq) = rest.find("=\"") {
        let name_start = rest[..eq]
            .rfind(|c: char| c.is_whitespace() || c == ';')
            .map_or(0, |i| i + 1);
        let name = rest[name_start..eq].trim().to_owned();
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        out.push((name, rest[value_start..value_start + len].to_owned()));
        rest = &rest[value_start + len + 1..];
    }
    out
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::Plaintext,
            ca_location: None,
            certificate_location: None,
            key_location: None,
            verify_hostname: true,
            sasl_mechanism: "PLAIN".into(),
            sasl_username: None,
            sasl_password: None,
            oauthbearer: None,
        }
    }
}

impl SecurityConfig {
    /// Applies one Kafka-named security setting; `Ok(false)` if it is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let invalid = |why: &str| Error::InvalidArgument(format!("{key}={value}: {why}"));
        match key {
            "security.protocol" => {
                self.protocol = match value.trim().to_ascii_uppercase().as_str() {
                    "PLAINTEXT" => SecurityProtocol::Plaintext,
                    "SSL" => SecurityProtocol::Ssl,
                    "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                    "SASL_SSL" => SecurityProtocol::SaslSsl,
                    _ => {
                        return Err(invalid(
                            "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                        ))
                    }
                }
            }
            "ssl.truststore.location" | "ssl.ca.location" => {
                self.ca_location = Some(PathBuf::from(value.trim()))
            }
            "ssl.truststore.type" | "ssl.keystore.type" => {
                if !value.trim().eq_ignore_ascii_case("PEM") {
                    return Err(invalid("Strom's client reads PEM files only"));
                }
            }
            // A PEM key store holds the key and the chain: both come from it.
            "ssl.keystore.location" => {
                self.certificate_location = Some(PathBuf::from(value.trim()));
                self.key_location = Some(PathBuf::from(value.trim()));
            }
            "ssl.certificate.location" => {
                self.certificate_location = Some(PathBuf::from(value.trim()))
            }
            "ssl.key.location" => self.key_location = Some(PathBuf::from(value.trim())),
            "ssl.endpoint.identification.algorithm" => {
                self.verify_hostname = match value.trim().to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    _ => return Err(invalid("expected https or empty")),
                }
            }
            // Passwords of encrypted stores are not needed for PEM files without encryption.
            "ssl.truststore.password" | "ssl.keystore.password" | "ssl.key.password" => {}
            "sasl.mechanism" | "sasl.mechanisms" => {
                let m = value.trim().to_ascii_uppercase();
                if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"].contains(&m.as_str())
                {
                    return Err(invalid(
                        "Strom's client speaks PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER",
                    ));
                }
                self.sasl_mechanism = m;
            }
            "sasl.username" => self.sasl_username = Some(value.to_owned()),
            "sasl.password" => self.sasl_password = Some(value.to_owned()),
            "sasl.jaas.config" if value.contains("OAuthBearerLoginModule") => {
                if let Some(token) = OAuthBearerToken::from_jaas(value)? {
                    self.oauthbearer = Some(token);
                }
            }
            "sasl.oauthbearer.config" => {
                self.oauthbearer = Some(OAuthBearerToken::from_librdkafka(value)?)
            }
            "sasl.oauthbearer.token.endpoint.url" => {
                let path = value.trim().strip_prefix("file://").ok_or_else(|| {
                    invalid(
                        "Strom's client reads a token from a file (file:///path); fetching one \
                         from an identity provider is not served",
                    )
                })?;
                self.oauthbearer = Some(OAuthBearerToken::File(PathBuf::from(path)));
            }
            // Kafka's handler classes for the two token sources above.
            "sasl.login.callback.handler.class" => {
                let known = [
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
                    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
                    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredLoginCallbackHandler",
                ];
                if !known.contains(&value.trim()) {
                    return Err(invalid("Strom's client has no such login callback handler"));
                }
            }
            "enable.sasl.oauthbearer.unsecure.jwt" => {}
            "sasl.jaas.config" => {
                let option = |name: &str| {
                    let start = value.find(&format!("{name}=\""))? + name.len() + 2;
                    let end = value[start..].find('"')? + start;
                    Some(value[start..end].to_owned())
                };
                self.sasl_username = Some(
                    option("username")
                        .ok_or_else(|| invalid("no username=\"...\" in the JAAS config"))?,
                );
                self.sasl_password = Some(
                    option("password")
                        .ok_or_else(|| invalid("no password=\"...\" in the JAAS config"))?,
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rustls connector, when the protocol uses TLS.
    pub(crate) fn tls_connector(&self) -> Result<Option<tokio_rustls::TlsConnector>> {
        if !self.protocol.tls() {
            return Ok(None);
        }
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).map_err(|e| {
                Error::InvalidArgument(format!("cannot read {what} {}: {e}", path.display()))
            })
        };
        let ca = self.ca_location.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "TLS needs the CA to trust: set ssl.truststore.location (or ssl.ca.location) \
                 to a PEM file"
                    .into(),
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&read(ca, "the CA file")?) {
            let cert = cert
                .map_err(|e| Error::InvalidArgument(format!("bad CA PEM {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::InvalidArgument(format!("bad CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("TLS trust: {e}")))?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
        };
        let config = match (&self.certificate_location, &self.key_location) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&read(cert, "the certificate")?)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| Error::InvalidArgument(format!("bad certificate PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(&read(key, "the key")?)
                    .map_err(|e| Error::InvalidArgument(format!("bad key PEM: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::InvalidArgument(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
    }
}

/// The host part of `host:port`, as a TLS server name.
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| Error::InvalidArgument(format!("{host} is no TLS server name: {e}")))
}

/// Verifies the chain but not the name (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_and_librdkafka_names_both_set_the_same_things() {
        let mut a = SecurityConfig::default();
        a.set("security.protocol", "sasl_ssl").unwrap();
        a.set("sasl.mechanism", "SCRAM-SHA-512").unwrap();
        a.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";"#,
        )
        .unwrap();
        a.set("ssl.truststore.location", "/ca.pem").unwrap();
        assert_eq!(a.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(a.sasl_username.as_deref(), Some("alice"));
        assert_eq!(a.sasl_password.as_deref(), Some("s3cret"));
        assert_eq!(a.ca_location, Some(PathBuf::from("/ca.pem")));
        assert!(a.set("sasl.mechanism", "GSSAPI").is_err());
        assert!(a.set("ssl.keystore.type", "PKCS12").is_err());
        assert!(!a.set("linger.ms", "5").unwrap());
    }

    #[test]
    fn oauthbearer_tokens_come_from_a_file_or_unsecured_login_options() {
        let mut a = SecurityConfig::default();
        a.set("sasl.mechanism", "OAUTHBEARER").unwrap();
        a.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginListClaim_scope=",read,write" unsecuredLoginNumberClaim_n="2" unsecuredLoginLifetimeSeconds="60";"#,
        )
        .unwrap();
        assert_eq!(
            a.oauthbearer,
            Some(OAuthBearerToken::Unsecured {
                principal: "alice".into(),
                lifetime_s: 60,
                claims: vec![
                    ("sub".into(), r#""alice""#.into()),
                    ("scope".into(), r#"["read","write"]"#.into()),
                    ("n".into(), "2".into()),
                ],
            })
        );
        a.set(
            "sasl.oauthbearer.config",
            "principal=bob scope=a,b lifeSeconds=9",
        )
        .unwrap();
        assert_eq!(
            a.oauthbearer,
            Some(OAuthBearerToken::Unsecured {
                principal: "bob".into(),
                lifetime_s: 9,
                claims: vec![("scope".into(), r#"["a","b"]"#.into())],
            })
        );
        a.set(
            "sasl.oauthbearer.token.endpoint.url",
            "file:///run/token.jwt",
        )
        .unwrap();
        assert_eq!(
            a.oauthbearer,
            Some(OAuthBearerToken::File("/run/token.jwt".into()))
        );
        assert!(a
            .set("sasl.oauthbearer.token.endpoint.url", "https://idp/token")
            .is_err());
        assert!(a
            .set(
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginLifetimeSeconds="60";"#
            )
            .is_err());
        assert!(a.set("sasl.oauthbearer.config", "nonsense").is_err());
        assert!(a
            .set(
                "sasl.login.callback.handler.class",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
            )
            .unwrap());
        assert!(a.set("sasl.login.callback.handler.class", "x.Y").is_err());
    }
}
