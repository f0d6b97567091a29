//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's brokers serve them: the
//! server's side of the two round trips, checking the client's proof against the StoredKey in
//! the metadata image, and the key derivations AlterUserScramCredentials needs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, rand::SecureRandom};

/// A SCRAM mechanism: its Kafka type id and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanism {
    /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512 (Kafka's ScramMechanism ids).
    pub id: i8,
    pub name: &'static str,
    hmac: hmac::Algorithm,
    digest: &'static digest::Algorithm,
}

pub const SHA_256: Mechanism = Mechanism {
    id: 1,
    name: "SCRAM-SHA-256",
    hmac: hmac::HMAC_SHA256,
    digest: &digest::SHA256,
};

pub const SHA_512: Mechanism = Mechanism {
    id: 2,
    name: "SCRAM-SHA-512",
    hmac: hmac::HMAC_SHA512,
    digest: &digest::SHA512,
};

impl Mechanism {
    pub fn by_name(name: &str) -> Option<Mechanism> {
        [SHA_256, SHA_512].into_iter().find(|m| m.name == name)
    }

    pub fn by_id(id: i8) -> Option<Mechanism> {
        [SHA_256, SHA_512].into_iter().find(|m| m.id == id)
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac, key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest, data).as_ref().to_vec()
    }

    /// (StoredKey, ServerKey) of a salted password (what AlterUserScramCredentials carries).
    pub fn keys(&self, salted_password: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let client_key = self.hmac(salted_password, b"Client Key");
        (
            self.hash(&client_key),
            self.hmac(salted_password, b"Server Key"),
        )
    }
}

/// The stored credential the server checks against.
#[derive(Debug, Clone)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// The server's side of one exchange, between the client's first and final messages.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    user: String,
    credential: Credential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

const FAILED: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism";

fn failed(mechanism: Mechanism) -> String {
    format!("{FAILED} {}", mechanism.name)
}

/// `=2C` and `=3D` back to `,` and `=` (RFC 5802's saslname); `None` if malformed.
fn unescape_name(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The value of attribute `key` (`k=value`) among comma-separated `parts`.
fn attr<'a>(parts: &[&'a str], key: char) -> Option<&'a str> {
    parts.iter().find_map(|p| {
        let mut chars = p.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &p[2..])
    })
}

impl Exchange {
    /// Reads the client-first message and answers the server-first one. `lookup` finds the
    /// user's credential; an unknown user fails the same way as a wrong password.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: &dyn Fn(&str) -> Option<Credential>,
    ) -> Result<(Exchange, Vec<u8>), String> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| format!("{}: not UTF-8", failed(mechanism)))?;
        // gs2-header: "n,," or "y,," (no channel binding), optionally "n,a=authzid,".
        let mut fields = text.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "{}: malformed client-first message",
                failed(mechanism)
            ));
        };
        if cbind != "n" && cbind != "y" {
            return Err(format!(
                "{}: channel binding is not supported",
                failed(mechanism)
            ));
        }
        let parts: Vec<&str> = bare.split(',').collect();
        let user = attr(&parts, 'n')
            .and_then(unescape_name)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| format!("{}: no user name", failed(mechanism)))?;
        let client_nonce = attr(&parts, 'r')
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{}: no nonce", failed(mechanism)))?;
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if unescape_name(authzid).as_deref() != Some(user.as_str()) {
                return Err(format!(
                    "{}: the authorization id differs from the user name",
                    failed(mechanism)
                ));
            }
        }
        if parts.iter().any(|p| p.starts_with("tokenauth=")) {
            return Err(format!(
                "{}: delegation tokens are not served",
                failed(mechanism)
            ));
        }
        let credential = lookup(&user).ok_or_else(|| failed(mechanism))?;
        let mut random = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| "no secure random bytes for a SCRAM nonce".to_owned())?;
        let nonce = format!("{client_nonce}{}", B64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = Exchange {
            mechanism,
            user,
            credential,
            gs2_header: format!("{cbind},{authzid},"),
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first.into_bytes()))
    }

    /// Checks the client-final message's proof; the server-final message and the user.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), String> {
        let m = self.mechanism;
        let text =
            std::str::from_utf8(client_final).map_err(|_| format!("{}: not UTF-8", failed(m)))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| format!("{}: no proof", failed(m)))?;
        let parts: Vec<&str> = without_proof.split(',').collect();
        if attr(&parts, 'c') != Some(&B64.encode(self.gs2_header.as_bytes())) {
            return Err(format!("{}: channel binding mismatch", failed(m)));
        }
        if attr(&parts, 'r') != Some(self.nonce.as_str()) {
            return Err(format!("{}: nonce mismatch", failed(m)));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| format!("{}: proof is not base64", failed(m)))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed(m));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored = m.hash(&client_key);
        if !super::sasl::constant_time_eq(&stored, &self.credential.stored_key) {
            return Err(failed(m));
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok((
            self.user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

/// The salted password of RFC 5802 (Hi = PBKDF2 with the mechanism's HMAC): what a client
/// (and `strom user`) computes; the server never sees the password.
pub fn salted_password(m: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let algorithm = if m.id == SHA_256.id {
        ring::pbkdf2::PBKDF2_HMAC_SHA256
    } else {
        ring::pbkdf2::PBKDF2_HMAC_SHA512
    };
    let mut out = vec![0u8; m.digest.output_len()];
    let iterations = std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1");
    ring::pbkdf2::derive(algorithm, iterations, salt, password.as_bytes(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side, written from RFC 5802, to drive the server.
    fn client_proof(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        without_proof: &str,
    ) -> String {
        let parts: Vec<&str> = server_first.split(',').collect();
        let salt = B64.decode(attr(&parts, 's').unwrap()).unwrap();
        let iterations: u32 = attr(&parts, 'i').unwrap().parse().unwrap();
        let salted = salted_password(m, password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        B64.encode(proof)
    }

    fn credential(m: Mechanism, password: &str) -> Credential {
        let salt = b"salty-salt".to_vec();
        let (stored_key, server_key) = m.keys(&salted_password(m, password, &salt, 4096));
        Credential {
            salt,
            stored_key,
            server_key,
            iterations: 4096,
        }
    }

    fn exchange(m: Mechanism, user: &str, password: &str) -> Result<String, String> {
        let cred = credential(m, "right");
        let lookup = |u: &str| (u == "al,ice").then(|| cred.clone());
        let bare = format!("n={user},r=clientnonce");
        let (ex, server_first) = Exchange::start(m, format!("n,,{bare}").as_bytes(), &lookup)?;
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = attr(&server_first.split(',').collect::<Vec<_>>(), 'r')
            .unwrap()
            .to_owned();
        assert!(nonce.starts_with("clientnonce") && nonce.len() > "clientnonce".len());
        let without_proof = format!("c=biws,r={nonce}");
        let proof = client_proof(m, password, &bare, &server_first, &without_proof);
        let (who, server_final) = ex.finish(format!("{without_proof},p={proof}").as_bytes())?;
        // The client checks the server's signature the same way.
        let expected = m.hmac(
            &m.keys(&salted_password(m, "right", b"salty-salt", 4096)).1,
            format!("{bare},{server_first},{without_proof}").as_bytes(),
        );
        assert_eq!(
            server_final,
            format!("v={}", B64.encode(expected)).into_bytes()
        );
        Ok(who)
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_and_only_it() {
        for m in [SHA_256, SHA_512] {
            assert_eq!(exchange(m, "al=2Cice", "right").unwrap(), "al,ice");
            assert!(exchange(m, "al=2Cice", "wrong").is_err());
            assert!(exchange(m, "bob", "right").is_err(), "unknown user");
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        let lookup = |_: &str| Some(credential(SHA_256, "x"));
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=a,r=b",
            b"n,,r=nonce",
            b"n,,n=,r=nonce",
            b"n,,n=a=ZZ,r=nonce",
            b"n,a=other,n=a,r=nonce",
            b"n,,n=a,r=x,tokenauth=true",
            b"\xff\xfe",
        ] {
            assert!(Exchange::start(SHA_256, bad, &lookup).is_err(), "{bad:?}");
        }
        let (ex, _) = Exchange::start(SHA_256, b"n,,n=a,r=nonce", &lookup).unwrap();
        assert!(ex.finish(b"c=biws,r=wrongnonce,p=AAAA").is_err());
    }
}
