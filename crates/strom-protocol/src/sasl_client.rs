//! The client side of a SASL exchange (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER; RFC
//! 4616, RFC 5802, RFC 7677 and RFC 7628), shared by strom-client and by brokers talking to
//! each other over SASL listeners: a first token, then one answer per server token.

use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// An unsecured JWT (`alg: none`, no signature) as Kafka's
/// `OAuthBearerUnsecuredLoginCallbackHandler` makes for development: `sub` = `principal`,
/// `iat` now, `exp` after `lifetime_s`, and `claims` (name, JSON value) added.
pub fn unsecured_jwt(principal: &str, lifetime_s: u64, claims: &[(String, String)]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let quote = json_string;
    let mut payload = format!(
        "{{\"sub\":{},\"iat\":{now},\"exp\":{}",
        quote(principal),
        now + lifetime_s
    );
    for (name, value) in claims {
        if !matches!(name.as_str(), "sub" | "iat" | "exp") {
            payload.push_str(&format!(",{}:{value}", quote(name)));
        }
    }
    payload.push('}');
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none"}"#),
        b64.encode(payload)
    )
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The client side of one SASL exchange: the first token, then one reply per server token.
pub enum SaslClient {
    Plain {
        token: Vec<u8>,
    },
    /// RFC 7628's client first message carrying a bearer token.
    OAuthBearer {
        message: Vec<u8>,
    },
    Scram {
        sha512: bool,
        user: String,
        password: String,
        nonce: String,
        /// Set after the server's first message: the server signature to expect.
        expected_server_signature: Option<Vec<u8>>,
    },
}

impl SaslClient {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 for `user` with `password`.
    pub fn new(mechanism: &str, user: &str, password: &str) -> Result<SaslClient, String> {
        Ok(match mechanism {
            "PLAIN" => SaslClient::Plain {
                token: format!("\0{user}\0{password}").into_bytes(),
            },
            "SCRAM-SHA-256" | "SCRAM-SHA-512" => SaslClient::Scram {
                sha512: mechanism == "SCRAM-SHA-512",
                user: user.to_owned(),
                password: password.to_owned(),
                nonce: {
                    let bytes: [u8; 18] = rand::random();
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                },
                expected_server_signature: None,
            },
            other => {
                return Err(format!(
                    "SASL mechanism {other} is not supported by this client"
                ))
            }
        })
    }

    /// OAUTHBEARER presenting `token` (a JWT).
    pub fn oauthbearer(token: &str) -> Result<SaslClient, String> {
        let token = token.trim();
        if token.is_empty() || token.contains(['\u{1}', ' ']) {
            return Err("OAUTHBEARER: the token is empty or not a JWT".into());
        }
        Ok(SaslClient::OAuthBearer {
            message: format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes(),
        })
    }

    /// The client's first message.
    pub fn first(&self) -> Vec<u8> {
        match self {
            SaslClient::Plain { token } => token.clone(),
            SaslClient::OAuthBearer { message } => message.clone(),
            SaslClient::Scram { user, nonce, .. } => {
                format!("n,,{}", client_first_bare(user, nonce)).into_bytes()
            }
        }
    }

    /// The answer to a server message; `None` when the exchange is complete.
    pub fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let failed = |why: &str| format!("SASL: {why}");
        match self {
            SaslClient::Plain { .. } => Ok(None),
            // A challenge after the token is RFC 7628's error report (JSON).
            SaslClient::OAuthBearer { .. } if server.is_empty() => Ok(None),
            SaslClient::OAuthBearer { .. } => Err(failed(&format!(
                "the broker refused the token: {}",
                String::from_utf8_lossy(server)
            ))),
            SaslClient::Scram {
                sha512,
                user,
                password,
                nonce,
                expected_server_signature,
            } => {
                let text =
                    std::str::from_utf8(server).map_err(|_| failed("server message not UTF-8"))?;
                if let Some(expected) = expected_server_signature {
                    // server-final-message: v=<signature> (or e=<error>).
                    let v = text
                        .strip_prefix("v=")
                        .ok_or_else(|| failed(&format!("server refused: {text}")))?;
                    let got = base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|_| failed("bad server signature"))?;
                    if got != *expected {
                        return Err(failed("the server's signature does not verify"));
                    }
                    return Ok(None);
                }
                let attr = |name: &str| {
                    text.split(',')
                        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                        .ok_or_else(|| failed(&format!("no {name}= in the server's first message")))
                };
                let server_nonce = attr("r")?;
                if !server_nonce.starts_with(nonce.as_str()) {
                    return Err(failed("the server's nonce does not extend ours"));
                }
                let salt = base64::engine::general_purpose::STANDARD
                    .decode(attr("s")?)
                    .map_err(|_| failed("bad salt"))?;
                let iterations: u32 = attr("i")?.parse().map_err(|_| failed("bad iterations"))?;
                if !(1..=1_000_000).contains(&iterations) {
                    return Err(failed("iterations out of range"));
                }
                let (alg, hmac_alg, len) = if *sha512 {
                    (pbkdf2::PBKDF2_HMAC_SHA512, hmac::HMAC_SHA512, 64)
                } else {
                    (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, 32)
                };
                let mut salted = vec![0u8; len];
                pbkdf2::derive(
                    alg,
                    std::num::NonZeroU32::new(iterations).expect("checked above"),
                    &salt,
                    password.as_bytes(),
                    &mut salted,
                );
                let mac = |key: &[u8], data: &[u8]| {
                    hmac::sign(&hmac::Key::new(hmac_alg, key), data)
                        .as_ref()
                        .to_vec()
                };
                let client_key = mac(&salted, b"Client Key");
                let stored_key = digest::digest(
                    if *sha512 {
                        &digest::SHA512
                    } else {
                        &digest::SHA256
                    },
                    &client_key,
                );
                let without_proof = format!("c=biws,r={server_nonce}");
                let auth_message =
                    format!("{},{text},{without_proof}", client_first_bare(user, nonce));
                let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
                let proof: Vec<u8> = client_key
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                let server_key = mac(&salted, b"Server Key");
                *expected_server_signature = Some(mac(&server_key, auth_message.as_bytes()));
                Ok(Some(
                    format!(
                        "{without_proof},p={}",
                        base64::engine::general_purpose::STANDARD.encode(proof)
                    )
                    .into_bytes(),
                ))
            }
        }
    }
}

/// `n=<user>,r=<nonce>` with RFC 5802's escaping of ',' and '='.
fn client_first_bare(user: &str, nonce: &str) -> String {
    format!(
        "n={},r={nonce}",
        user.replace('=', "=3D").replace(',', "=2C")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauthbearer_sends_the_token_and_unsecured_tokens_carry_their_claims() {
        let jwt = unsecured_jwt(
            "al\"ice",
            60,
            &[
                ("scope".into(), r#"["read","write"]"#.into()),
                ("sub".into(), "1".into()),
            ],
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(b64.decode(parts[0]).unwrap(), br#"{"alg":"none"}"#);
        let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        assert!(
            payload.starts_with(r#"{"sub":"al\"ice","iat":"#),
            "{payload}"
        );
        assert!(
            payload.ends_with(r#","scope":["read","write"]}"#),
            "{payload}"
        );
        let mut client = SaslClient::oauthbearer(&jwt).unwrap();
        assert_eq!(
            client.first(),
            format!("n,,\u{1}auth=Bearer {jwt}\u{1}\u{1}").into_bytes()
        );
        assert_eq!(client.step(b"").unwrap(), None);
        let mut client = SaslClient::oauthbearer(&jwt).unwrap();
        assert!(client
            .step(br#"{"status":"invalid_token"}"#)
            .unwrap_err()
            .contains("invalid_token"));
        assert!(SaslClient::oauthbearer(" ").is_err());
        assert!(SaslClient::oauthbearer("a b").is_err());
        assert_eq!(json_string("a\\b\n"), r#""a\\b\u000a""#);
    }

    /// RFC 7677's SCRAM-SHA-256 example exchange, with its nonce.
    #[test]
    fn scram_sha_256_matches_the_rfc_example() {
        let mut c = SaslClient::Scram {
            sha512: false,
            user: "user".into(),
            password: "pencil".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            expected_server_signature: None,
        };
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = c.step(server_first).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            None
        );
        // A server that cannot prove it knows the password is refused.
        let mut c2 = SaslClient::Scram {
            sha512: false,
            user: "user".into(),
            password: "pencil".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            expected_server_signature: None,
        };
        c2.step(server_first).unwrap();
        assert!(c2.step(b"v=AAAA").is_err());
    }
}
