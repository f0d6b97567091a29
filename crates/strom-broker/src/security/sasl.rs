//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: the per-listener server settings
//! (`sasl.enabled.mechanisms`, the PLAIN users of the listener's JAAS config) and each
//! connection's session, driven by SaslHandshake and SaslAuthenticate (KIP-152).
//!
//! Until a session is authenticated its connection may send only ApiVersions, SaslHandshake
//! and SaslAuthenticate; a failed authentication is answered and the connection closed.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use strom_metadata::BrokerConfig;
use strom_protocol::ErrorCode;

use super::scram;

/// Mechanisms Strom serves.
pub const SERVED: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Finds a user's SCRAM credential for a mechanism id (from the metadata image).
pub type CredentialLookup<'a> = &'a dyn Fn(&str, i8) -> Option<scram::Credential>;

/// A listener's SASL settings.
#[derive(Debug)]
pub struct SaslServer {
    /// Enabled mechanisms, in the order of `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<String>,
    /// PLAIN users and passwords (`user_NAME="PASSWORD"` in the JAAS config).
    plain_users: HashMap<String, String>,
    /// How OAUTHBEARER tokens are checked, when it is enabled.
    oauth: Option<super::oauth::OAuthValidator>,
    /// `connections.max.reauth.ms` (KIP-368): an authenticated session lasts this long
    /// (0: for ever, unless its token expires sooner).
    pub reauth_ms: u64,
}

impl SaslServer {
    /// The SASL settings of `listener`; an error names the setting.
    pub fn of(config: &BrokerConfig, listener: &str) -> Result<SaslServer, String> {
        let enabled = config
            .listener_setting(listener, "sasl.enabled.mechanisms")
            .unwrap_or("PLAIN");
        let mut mechanisms = Vec::new();
        for m in enabled.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let m = m.to_ascii_uppercase();
            if SERVED.contains(&m.as_str()) {
                mechanisms.push(m);
            } else {
                tracing::warn!(listener, mechanism = %m, "SASL mechanism not served by this Strom; not offered");
            }
        }
        if mechanisms.is_empty() {
            return Err(format!(
                "listener {listener}: none of sasl.enabled.mechanisms={enabled} is served \
                 (Strom serves {})",
                SERVED.join(", ")
            ));
        }
        let mut plain_users = HashMap::new();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let jaas = config
                .listener_setting(listener, "plain.sasl.jaas.config")
                .or_else(|| config.listener_setting(listener, "sasl.jaas.config"));
            match jaas {
                Some(jaas) => plain_users = jaas_users(jaas)?,
                None if mechanisms.len() > 1 => {
                    tracing::warn!(listener, "SASL PLAIN not offered: no PlainLoginModule users (listener.name.{}.plain.sasl.jaas.config)", listener.to_ascii_lowercase());
                    mechanisms.retain(|m| m != "PLAIN");
                }
                None => {
                    return Err(format!(
                        "listener {listener} offers SASL PLAIN but has no users: set \
                         listener.name.{}.plain.sasl.jaas.config to a PlainLoginModule \
                         with user_NAME=\"PASSWORD\" entries",
                        listener.to_ascii_lowercase()
                    ))
                }
            }
        }
        let oauth = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            Some(super::oauth::OAuthValidator::of(config, listener)?)
        } else {
            None
        };
        let reauth_ms = match config.listener_setting(listener, "connections.max.reauth.ms") {
            Some(v) => v.trim().parse().map_err(|_| {
                format!("connections.max.reauth.ms={v} is not a number of milliseconds")
            })?,
            None => 0,
        };
        Ok(SaslServer {
            mechanisms,
            plain_users,
            oauth,
            reauth_ms,
        })
    }
}

/// The `name="value"` options of a JAAS login module config, unescaped.
pub(crate) fn jaas_options(jaas: &str) -> Vec<(String, String)> {
    let option = Regex::new(r#"([A-Za-z0-9_.-]+)\s*=\s*"((?:[^"\\]|\\.)*)""#).expect("valid regex");
    option
        .captures_iter(jaas)
        .map(|c| {
            (
                c[1].to_owned(),
                c[2].replace("\\\"", "\"").replace("\\\\", "\\"),
            )
        })
        .collect()
}

/// The `user_NAME="PASSWORD"` options of a JAAS login module config.
fn jaas_users(jaas: &str) -> Result<HashMap<String, String>, String> {
    let users: HashMap<String, String> = jaas_options(jaas)
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_owned(), v)))
        .collect();
    if users.is_empty() {
        return Err("the PLAIN JAAS config names no user_NAME=\"PASSWORD\" entries".into());
    }
    Ok(users)
}

/// Equal byte strings, in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug)]
enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Handshake done: waiting for SaslAuthenticate with this mechanism.
    Authenticate(String),
    /// SCRAM: the server-first message sent, waiting for the client's proof.
    ScramFinal(Box<scram::Exchange>),
    /// Authenticated as `principal`.
    Done,
    /// Failed: the connection closes once the answer is sent.
    Failed,
}

/// One connection's SASL exchange.
#[derive(Debug)]
pub struct SaslSession {
    server: Arc<SaslServer>,
    state: State,
    principal: Option<String>,
    /// When the authenticated session ends (ms since the epoch): `connections.max.reauth.ms`
    /// after authentication, or the bearer token's expiry if sooner. The client must
    /// re-authenticate on the same connection before then (KIP-368).
    expires_ms: Option<i64>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A failed step: Kafka's error code and the message for the client.
pub type SaslError = (ErrorCode, String);

impl SaslSession {
    pub fn new(server: Arc<SaslServer>) -> SaslSession {
        SaslSession {
            server,
            state: State::Handshake,
            principal: None,
            expires_ms: None,
        }
    }

    pub fn mechanisms(&self) -> &[String] {
        &self.server.mechanisms
    }

    /// SaslHandshake: chooses `mechanism`. After authentication it starts a
    /// re-authentication (KIP-368), which must end with the same principal.
    pub fn handshake(&mut self, mechanism: &str) -> Result<(), SaslError> {
        if matches!(self.state, State::Done) {
            self.state = State::Handshake;
        }
        if !matches!(self.state, State::Handshake) {
            self.state = State::Failed;
            return Err((
                ErrorCode::IllegalSaslState,
                "SaslHandshake after the handshake".into(),
            ));
        }
        if !self.server.mechanisms.iter().any(|m| m == mechanism) {
            self.state = State::Failed;
            return Err((
                ErrorCode::UnsupportedSaslMechanism,
                format!(
                    "unsupported SASL mechanism {mechanism}; enabled: {}",
                    self.server.mechanisms.join(", ")
                ),
            ));
        }
        self.state = State::Authenticate(mechanism.to_owned());
        Ok(())
    }

    /// SaslAuthenticate: one step of the chosen mechanism; the server's token back.
    pub fn authenticate(
        &mut self,
        token: &[u8],
        credentials: CredentialLookup<'_>,
    ) -> Result<Vec<u8>, SaslError> {
        let auth_failed = |message: String| (ErrorCode::SaslAuthenticationFailed, message);
        let mut token_expires_ms = None;
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::Authenticate(mechanism) if mechanism == "PLAIN" => self.plain(token),
            State::Authenticate(mechanism) if mechanism == "OAUTHBEARER" => {
                match &self.server.oauth {
                    Some(validator) => validator
                        .authenticate(token)
                        .map(|(principal, expires_ms)| {
                            token_expires_ms = Some(expires_ms);
                            (principal, Vec::new())
                        })
                        .map_err(|why| auth_failed(format!("Authentication failed: {why}"))),
                    None => Err(auth_failed("OAUTHBEARER is not configured".into())),
                }
            }
            State::Authenticate(mechanism) => {
                let Some(m) = scram::Mechanism::by_name(&mechanism) else {
                    return Err((
                        ErrorCode::UnsupportedSaslMechanism,
                        format!("unsupported SASL mechanism {mechanism}"),
                    ));
                };
                let lookup = |user: &str| credentials(user, m.id);
                match scram::Exchange::start(m, token, &lookup) {
                    Ok((exchange, server_first)) => {
                        self.state = State::ScramFinal(Box::new(exchange));
                        return Ok(server_first);
                    }
                    Err(message) => Err(auth_failed(message)),
                }
            }
            State::ScramFinal(exchange) => exchange
                .finish(token)
                .map(|(user, server_final)| (format!("User:{user}"), server_final))
                .map_err(auth_failed),
            _ => Err((
                ErrorCode::IllegalSaslState,
                "SaslAuthenticate out of turn (before SaslHandshake or after authentication)"
                    .into(),
            )),
        };
        match result {
            Ok((principal, _)) if self.principal.as_ref().is_some_and(|p| *p != principal) => {
                self.state = State::Failed;
                Err(auth_failed(format!(
                    "Cannot change principals during re-authentication from {}: {principal}",
                    self.principal.as_deref().unwrap_or_default()
                )))
            }
            Ok((principal, reply)) => {
                self.principal = Some(principal);
                self.state = State::Done;
                // As Kafka: sessions expire only with connections.max.reauth.ms set, then at
                // that limit or the token's expiry, whichever is sooner.
                self.expires_ms = (self.server.reauth_ms > 0).then(|| {
                    let by_config = now_ms().saturating_add(self.server.reauth_ms as i64);
                    token_expires_ms.map_or(by_config, |t| t.min(by_config))
                });
                Ok(reply)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// RFC 4616: `authzid NUL authcid NUL passwd`.
    fn plain(&self, token: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
        let failed = |why: &str| {
            (
                ErrorCode::SaslAuthenticationFailed,
                format!("Authentication failed: {why}"),
            )
        };
        let mut parts = token.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(failed("malformed PLAIN token"));
        };
        let user = std::str::from_utf8(user).map_err(|_| failed("user name is not UTF-8"))?;
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(failed("the authorization id differs from the user name"));
        }
        match self.server.plain_users.get(user) {
            Some(expected) if constant_time_eq(expected.as_bytes(), password) => {
                Ok((format!("User:{user}"), Vec::new()))
            }
            _ => Err(failed("Invalid username or password")),
        }
    }

    /// The authenticated principal, once there is one.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Milliseconds left of the authenticated session (SaslAuthenticate v1's
    /// `session_lifetime_ms`); 0 when it does not expire.
    pub fn session_lifetime_ms(&self) -> i64 {
        self.expires_ms.map_or(0, |at| (at - now_ms()).max(1))
    }

    /// Whether the authenticated session has ended without a re-authentication.
    pub fn expired(&self) -> bool {
        self.expires_ms.is_some_and(|at| now_ms() >= at)
    }

    /// Whether the exchange failed (the connection must close after its answer).
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str, _: i8) -> Option<scram::Credential> {
        None
    }

    fn server() -> Arc<SaslServer> {
        Arc::new(SaslServer {
            mechanisms: vec!["PLAIN".into()],
            oauth: None,
            reauth_ms: 0,
            plain_users: jaas_users(
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="al\"ice";"#,
            )
            .unwrap(),
        })
    }

    #[test]
    fn jaas_users_are_the_user_options() {
        let s = server();
        assert_eq!(s.plain_users.len(), 2);
        assert_eq!(s.plain_users["alice"], "al\"ice");
        assert!(jaas_users("PlainLoginModule required;").is_err());
    }

    #[test]
    fn plain_accepts_the_right_password_only() {
        let mut s = SaslSession::new(server());
        s.handshake("PLAIN").unwrap();
        assert_eq!(
            s.authenticate(b"\0admin\0admin-secret", &none).unwrap(),
            b""
        );
        assert_eq!(s.principal(), Some("User:admin"));
        assert!(!s.failed());

        for token in [
            &b"\0admin\0wrong"[..],
            b"\0nobody\0admin-secret",
            b"alice\0admin\0admin-secret",
            b"no separators",
            b"\0admin\0admin-secret\0extra",
        ] {
            let mut s = SaslSession::new(server());
            s.handshake("PLAIN").unwrap();
            let (code, _) = s.authenticate(token, &none).unwrap_err();
            assert_eq!(code, ErrorCode::SaslAuthenticationFailed);
            assert!(s.failed() && s.principal().is_none());
        }
    }

    #[test]
    fn out_of_order_steps_and_unknown_mechanisms_fail() {
        let mut s = SaslSession::new(server());
        assert_eq!(
            s.authenticate(b"\0admin\0admin-secret", &none)
                .unwrap_err()
                .0,
            ErrorCode::IllegalSaslState
        );
        let mut s = SaslSession::new(server());
        assert_eq!(
            s.handshake("GSSAPI").unwrap_err().0,
            ErrorCode::UnsupportedSaslMechanism
        );
        assert!(s.failed());
    }

    fn every_mechanism() -> Arc<SaslServer> {
        let mut s = SaslServer {
            mechanisms: SERVED.iter().map(|m| (*m).to_owned()).collect(),
            plain_users: HashMap::new(),
            reauth_ms: 0,
            oauth: Some(super::super::oauth::OAuthValidator::Unsecured {
                principal_claim: "sub".into(),
                required_scopes: Vec::new(),
                skew_s: 30,
            }),
        };
        s.plain_users.insert("admin".into(), "admin-secret".into());
        Arc::new(s)
    }

    fn known(user: &str, mechanism: i8) -> Option<scram::Credential> {
        let m = scram::Mechanism::by_id(mechanism)?;
        let (stored_key, server_key) = m.keys(&scram::salted_password(m, "pw", b"salt", 4096));
        (user == "al").then(|| scram::Credential {
            salt: b"salt".to_vec(),
            stored_key,
            server_key,
            iterations: 4096,
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Hostile tokens, raw or after a well-formed start, never panic: every step is an
        /// answer or an error, and nothing but the right proof authenticates.
        #[test]
        fn hostile_sasl_tokens_never_panic_or_authenticate(
            mechanism in 0usize..3,
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            second in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            well_formed_start in proptest::prelude::any::<bool>(),
        ) {
            let mut s = SaslSession::new(every_mechanism());
            s.handshake(SERVED[mechanism]).unwrap();
            let first = if well_formed_start && mechanism > 0 {
                let mut t = b"n,,n=al,r=".to_vec();
                t.extend_from_slice(&first);
                t
            } else {
                first
            };
            let _ = s.authenticate(&first, &known);
            let _ = s.authenticate(&second, &known);
            proptest::prop_assert!(s.principal().is_none());
        }
    }
}
