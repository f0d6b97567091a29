//! SASL OAUTHBEARER (RFC 7628, KIP-255, KIP-768): the client sends a JWT bearer token; the
//! broker checks it and takes the principal from a claim.
//!
//! Two validators, as in Kafka:
//! - **JWKS** (Kafka's `OAuthBearerValidatorCallbackHandler`), when
//!   `sasl.oauthbearer.jwks.endpoint.url` is set (a `file:` URL or a path: the key set is read
//!   at start-up; an `http://` or `https://` URL: fetched at start-up and refreshed, see
//!   [`super::jwks`]): the signature must verify with a key of the set (by `kid`, RS/PS/ES
//!   algorithms), `exp` must be in the future (with `sasl.oauthbearer.clock.skew.seconds`),
//!   and `sasl.oauthbearer.expected.audience` / `.expected.issuer` are checked when set; the
//!   principal is `sasl.oauthbearer.sub.claim.name` (default `sub`).
//! - **Unsecured** (Kafka's default `OAuthBearerUnsecuredValidatorCallbackHandler`, for
//!   development): an `alg: none` token whose `exp` is in the future; the principal is
//!   `unsecuredValidatorPrincipalClaimName` (default `sub`), and
//!   `unsecuredValidatorRequiredScope` lists scopes the `scope` claim must hold (both options
//!   of the listener's OAuthBearerLoginModule JAAS config). A warning says it is unsecured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use regex::Regex;
use serde_json::Value;
use strom_metadata::BrokerConfig;

use super::jwks::KeySet;

/// How a listener checks bearer tokens.
#[derive(Debug)]
pub enum OAuthValidator {
    Jwks {
        keys: Arc<KeySet>,
        audience: Vec<String>,
        issuer: Option<String>,
        sub_claim: String,
        skew_s: u64,
    },
    Unsecured {
        principal_claim: String,
        required_scopes: Vec<String>,
        skew_s: u64,
    },
}

impl OAuthValidator {
    /// The validator of `listener`, from the broker config; an error names the setting.
    pub fn of(config: &BrokerConfig, listener: &str) -> Result<OAuthValidator, String> {
        let setting = |key: &str| {
            config
                .listener_setting(listener, &format!("oauthbearer.{key}"))
                .or_else(|| config.listener_setting(listener, key))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let skew_s = match setting("sasl.oauthbearer.clock.skew.seconds") {
            Some(v) => v.parse().map_err(|_| {
                format!("sasl.oauthbearer.clock.skew.seconds={v} is not a number of seconds")
            })?,
            None => 30,
        };
        if let Some(url) = setting("sasl.oauthbearer.jwks.endpoint.url") {
            let keys = if url.starts_with("http://") || url.starts_with("https://") {
                let refresh_ms: u64 = match setting("sasl.oauthbearer.jwks.endpoint.refresh.ms") {
                    Some(v) => v.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        format!("sasl.oauthbearer.jwks.endpoint.refresh.ms={v} is not a positive number of ms")
                    })?,
                    None => 3_600_000,
                };
                let tls = match url.starts_with("https://") {
                    true => Some(https_client(config, listener, url)?),
                    false => None,
                };
                KeySet::remote(url, Duration::from_millis(refresh_ms), tls)?
            } else {
                let path = url.strip_prefix("file://").unwrap_or(url);
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "sasl.oauthbearer.jwks.endpoint.url={url}: cannot read the key set: {e}"
                    )
                })?;
                let keys: JwkSet = serde_json::from_str(&text).map_err(|e| {
                    format!("sasl.oauthbearer.jwks.endpoint.url={url}: not a JWKS document: {e}")
                })?;
                if keys.keys.is_empty() {
                    return Err(format!(
                        "sasl.oauthbearer.jwks.endpoint.url={url}: the key set has no keys"
                    ));
                }
                KeySet::fixed(keys)
            };
            return Ok(OAuthValidator::Jwks {
                keys,
                audience: setting("sasl.oauthbearer.expected.audience")
                    .map(|a| {
                        a.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                issuer: setting("sasl.oauthbearer.expected.issuer").map(str::to_owned),
                sub_claim: setting("sasl.oauthbearer.sub.claim.name")
                    .unwrap_or("sub")
                    .to_owned(),
                skew_s,
            });
        }
        let jaas = config
            .listener_setting(listener, "oauthbearer.sasl.jaas.config")
            .unwrap_or("");
        let options = jaas_options(jaas);
        tracing::warn!(
            listener,
            "SASL OAUTHBEARER uses the unsecured validator (unsigned tokens are accepted); set \
             sasl.oauthbearer.jwks.endpoint.url to check signatures"
        );
        Ok(OAuthValidator::Unsecured {
            principal_claim: options
                .get("unsecuredValidatorPrincipalClaimName")
                .cloned()
                .unwrap_or_else(|| "sub".into()),
            required_scopes: options
                .get("unsecuredValidatorRequiredScope")
                .map(|s| {
                    s.split([' ', ','])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            skew_s: options
                .get("unsecuredValidatorAllowableClockSkewMs")
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(skew_s, |ms| ms / 1000),
        })
    }

    /// Checks a client's first message; the principal (`User:<claim>`) and the token's
    /// expiry (ms since the epoch), or why it was refused.
    pub fn authenticate(&self, client_first: &[u8]) -> Result<(String, i64), String> {
        let token = bearer_token(client_first)?;
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (claims, claim_name) = match self {
            OAuthValidator::Jwks {
                keys,
                audience,
                issuer,
                sub_claim,
                skew_s,
            } => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|e| format!("malformed token: {e}"))?;
                let jwk = keys
                    .find(header.kid.as_deref())
                    .ok_or_else(|| "no key of the key set matches the token's kid".to_owned())?;
                if !matches!(
                    header.alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                        | Algorithm::ES256
                        | Algorithm::ES384
                ) {
                    return Err(format!("algorithm {:?} is not accepted", header.alg));
                }
                let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
                let mut validation = Validation::new(header.alg);
                validation.leeway = *skew_s;
                validation.set_required_spec_claims(&["exp"]);
                if audience.is_empty() {
                    validation.validate_aud = false;
                } else {
                    validation.set_audience(audience);
                }
                if let Some(issuer) = issuer {
                    validation.set_issuer(&[issuer]);
                }
                let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
                    .map_err(|e| format!("invalid token: {e}"))?;
                (data.claims, sub_claim.as_str())
            }
            OAuthValidator::Unsecured {
                principal_claim,
                required_scopes,
                skew_s,
            } => {
                let claims = unsecured_claims(token)?;
                let exp = claims
                    .get("exp")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| "the token has no numeric exp claim".to_owned())?;
                if exp + (*skew_s as f64) < now_s as f64 {
                    return Err("the token has expired".into());
                }
                if !required_scopes.is_empty() {
                    let scopes: Vec<&str> = match claims.get("scope") {
                        Some(Value::String(s)) => s.split(' ').collect(),
                        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    if let Some(missing) = required_scopes
                        .iter()
                        .find(|s| !scopes.contains(&s.as_str()))
                    {
                        return Err(format!("the token lacks the required scope {missing}"));
                    }
                }
                (Value::Object(claims), principal_claim.as_str())
            }
        };
        let principal = claims
            .get(claim_name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token has no {claim_name} claim"))?;
        let exp_ms = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map_or(i64::MAX, |s| (s * 1000.0) as i64);
        Ok((format!("User:{principal}"), exp_ms))
    }
}

/// The TLS client settings for an https key set URL: the server is checked against the
/// listener's trust store (`ssl.truststore.*`), host name included.
fn https_client(
    config: &BrokerConfig,
    listener: &str,
    url: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = super::tls::trust_roots(config, listener)?.ok_or_else(|| {
        format!(
            "sasl.oauthbearer.jwks.endpoint.url={url}: an https key set is checked against \
             the listener's trust store; set ssl.truststore.location (or \
             listener.name.{}.ssl.truststore.location) to the identity provider's CA",
            listener.to_ascii_lowercase()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}

/// The token of RFC 7628's client first message: `gs2-header kvsep *kvpair kvsep`, with
/// `auth=Bearer <token>` among the pairs.
fn bearer_token(message: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8".to_owned())?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| "malformed OAUTHBEARER message: no key-value part".to_owned())?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) {
        return Err("malformed OAUTHBEARER message: bad GS2 header".into());
    }
    rest.split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "malformed OAUTHBEARER message: no auth=Bearer token".to_owned())
}

/// The claims of an unsecured (`alg: none`) JWT: `header.payload.` with an empty signature.
fn unsecured_claims(token: &str) -> Result<serde_json::Map<String, Value>, String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token: not three dot-separated parts".into());
    };
    let decode = |part: &str| -> Result<serde_json::Map<String, Value>, String> {
        let bytes = b64
            .decode(part.trim_end_matches('='))
            .map_err(|_| "malformed token: bad base64url".to_owned())?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err("malformed token: a part is not a JSON object".into()),
        }
    };
    let header = decode(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("none") || !signature.is_empty() {
        return Err(
            "the unsecured validator accepts only alg=none tokens without a signature".into(),
        );
    }
    decode(payload)
}

/// `name="value"` options of a JAAS login module config.
fn jaas_options(jaas: &str) -> HashMap<String, String> {
    let option = Regex::new(r#"([A-Za-z0-9_.-]+)\s*=\s*"((?:[^"\\]|\\.)*)""#).expect("valid regex");
    option
        .captures_iter(jaas)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsecured(claims: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none"}"#),
            b64.encode(claims)
        );
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    fn validator(scopes: &[&str]) -> OAuthValidator {
        OAuthValidator::Unsecured {
            principal_claim: "sub".into(),
            required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            skew_s: 30,
        }
    }

    #[test]
    fn unsecured_tokens_name_their_subject_until_they_expire() {
        let later = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let (principal, exp) = validator(&[])
            .authenticate(&unsecured(&format!(r#"{{"sub":"alice","exp":{later}}}"#)))
            .unwrap();
        assert_eq!(principal, "User:alice");
        assert_eq!(exp, later as i64 * 1000);
        let expired = validator(&[])
            .authenticate(&unsecured(r#"{"sub":"alice","exp":1000}"#))
            .unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        let scoped = format!(r#"{{"sub":"a","exp":{later},"scope":"read write"}}"#);
        assert!(validator(&["write"])
            .authenticate(&unsecured(&scoped))
            .is_ok());
        assert!(validator(&["admin"])
            .authenticate(&unsecured(&scoped))
            .is_err());
        assert!(validator(&[])
            .authenticate(&unsecured(&format!(r#"{{"exp":{later}}}"#)))
            .is_err());
    }

    #[test]
    fn malformed_messages_are_refused() {
        for m in [
            &b""[..],
            b"n,,",
            b"x,,\x01auth=Bearer a.b.\x01\x01",
            b"n,,\x01auth=Basic abc\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer not-a-jwt\x01\x01",
            b"n,,\x01auth=Bearer e30.e30.sig\x01\x01",
            b"\xff\xfe",
        ] {
            assert!(validator(&[]).authenticate(m).is_err(), "{m:?}");
        }
    }
}
