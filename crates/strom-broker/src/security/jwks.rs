//! The key set OAUTHBEARER tokens are checked against, as Kafka's broker keeps it: read once
//! from a file, or fetched from `sasl.oauthbearer.jwks.endpoint.url` (http or https) at
//! start-up, again every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and early when a token
//! names a `kid` the set lacks (a rotated key), at most once per [`MISSING_KID_REFRESH_EVERY`].
//! Fetches run on a thread of their own; a failed one is logged and the previous set kept.
//!
//! The HTTP client is a minimal GET (HTTP/1.1, `Connection: close`, Content-Length or chunked
//! bodies, no redirects); https checks the server against the listener's trust store.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use parking_lot::{Condvar, Mutex, RwLock};

/// An unknown `kid` triggers a fetch at most this often (a client cannot make the broker
/// hammer the identity provider).
pub const MISSING_KID_REFRESH_EVERY: Duration = Duration::from_secs(10);

/// How long one fetch may take, per step (connect, TLS, reading).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A key set document larger than this is refused.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The current key set, refreshed in the background when it comes from a URL.
#[derive(Debug)]
pub struct KeySet {
    keys: RwLock<JwkSet>,
    remote: Option<Remote>,
}

#[derive(Debug)]
struct Remote {
    url: String,
    /// Set to ask the refresher for an early fetch.
    wake: Mutex<Wake>,
    signal: Condvar,
}

#[derive(Debug, Default)]
struct Wake {
    requested: bool,
    last_requested: Option<Instant>,
}

impl KeySet {
    /// A key set that never changes.
    pub fn fixed(keys: JwkSet) -> Arc<KeySet> {
        Arc::new(KeySet {
            keys: RwLock::new(keys),
            remote: None,
        })
    }

    /// Fetches `url` now (an error stops start-up, naming the setting) and starts refreshing
    /// it every `refresh`. `tls`: the client settings for an https URL.
    pub fn remote(
        url: &str,
        refresh: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Arc<KeySet>, String> {
        let keys = fetch_key_set(url, tls.as_deref())
            .map_err(|e| format!("sasl.oauthbearer.jwks.endpoint.url={url}: {e}"))?;
        tracing::info!(%url, keys = keys.keys.len(), "OAUTHBEARER key set fetched");
        let set = Arc::new(KeySet {
            keys: RwLock::new(keys),
            remote: Some(Remote {
                url: url.to_owned(),
                wake: Mutex::new(Wake::default()),
                signal: Condvar::new(),
            }),
        });
        let weak = Arc::downgrade(&set);
        std::thread::Builder::new()
            .name("strom-jwks".into())
            .spawn(move || refresh_loop(weak, refresh, tls))
            .map_err(|e| format!("cannot start the key set refresher: {e}"))?;
        Ok(set)
    }

    /// The key `kid` names (or the only key of a set when the token names none). An unknown
    /// `kid` asks for an early refresh of a remote set (rate-limited); this token is still
    /// refused, as Kafka's broker does, and a retry after the refresh gets in.
    pub fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read();
        let found = match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        drop(keys);
        if found.is_none() {
            if let Some(remote) = &self.remote {
                let mut wake = remote.wake.lock();
                if wake
                    .last_requested
                    .is_none_or(|at| at.elapsed() >= MISSING_KID_REFRESH_EVERY)
                {
                    wake.last_requested = Some(Instant::now());
                    wake.requested = true;
                    remote.signal.notify_one();
                    tracing::info!(url = %remote.url, kid = kid.unwrap_or(""), "a token names a key the set lacks: refreshing the key set");
                }
            }
        }
        found
    }

    /// How many keys the set holds now.
    pub fn len(&self) -> usize {
        self.keys.read().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Refreshes the set every `every`, or when woken, until the set is dropped.
fn refresh_loop(set: Weak<KeySet>, every: Duration, tls: Option<Arc<rustls::ClientConfig>>) {
    // Wake at least this often to notice a dropped set.
    const TICK: Duration = Duration::from_secs(1);
    let mut next = Instant::now() + every;
    loop {
        let Some(strong) = set.upgrade() else {
            return;
        };
        let Some(remote) = &strong.remote else {
            return;
        };
        let due = {
            let mut wake = remote.wake.lock();
            if !wake.requested && Instant::now() < next {
                let wait = next.saturating_duration_since(Instant::now()).min(TICK);
                remote.signal.wait_for(&mut wake, wait);
            }
            let due = wake.requested || Instant::now() >= next;
            wake.requested = false;
            due
        };
        if !due {
            continue;
        }
        next = Instant::now() + every;
        let url = remote.url.clone();
        // The fetch runs without holding the set, which may be dropped meanwhile.
        drop(strong);
        let fetched = fetch_key_set(&url, tls.as_deref());
        let Some(strong) = set.upgrade() else {
            return;
        };
        match fetched {
            Ok(keys) => {
                tracing::info!(%url, keys = keys.keys.len(), "OAUTHBEARER key set refreshed");
                *strong.keys.write() = keys;
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "OAUTHBEARER key set not refreshed; keeping the previous one")
            }
        }
    }
}

/// GETs `url` and parses a non-empty JWKS document.
pub fn fetch_key_set(url: &str, tls: Option<&rustls::ClientConfig>) -> Result<JwkSet, String> {
    let body = http_get(url, tls)?;
    let keys: JwkSet =
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
    if keys.keys.is_empty() {
        return Err("the key set has no keys".into());
    }
    Ok(keys)
}

/// The parts of an http(s) URL: (https, host, port, path).
fn parse_url(url: &str) -> Result<(bool, String, u16, String), String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("not an http:// or https:// URL".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("user information in the URL is not supported".into());
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("bad IPv6 host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p}"))?,
            None => default_port,
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse().map_err(|_| format!("bad port {p}"))?,
            ),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    Ok((https, host, port, path.to_owned()))
}

/// A GET of `url`; the body of a 200 answer.
pub fn http_get(url: &str, tls: Option<&rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let (https, host, port, path) = parse_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, FETCH_TIMEOUT)
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    tcp.set_read_timeout(Some(FETCH_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(FETCH_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let host_header = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nUser-Agent: strom\r\nConnection: close\r\n\r\n"
    );
    let raw = if https {
        let config = tls.ok_or("https needs a trust store (the listener's ssl.truststore.*)")?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} is no TLS server name: {e}"))?;
        let conn = rustls::ClientConnection::new(Arc::new(config.clone()), name)
            .map_err(|e| format!("TLS: {e}"))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        read_all(&mut stream)?
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("cannot send the request: {e}"))?;
        read_all(&mut tcp)?
    };
    parse_response(&raw)
}

/// Reads until the peer closes (a TLS peer may close without close_notify: what arrived is
/// kept and the framing checked by [`parse_response`]).
fn read_all(stream: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_BODY_BYTES {
                    return Err(format!("the answer is larger than {MAX_BODY_BYTES} bytes"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(out)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
}

/// The body of an HTTP/1.x response that must be `200`.
fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete HTTP header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the HTTP header is not UTF-8")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP answer: {status}"));
    }
    if code != "200" {
        return Err(format!("the server answered {status}"));
    }
    let header = |name: &str| {
        lines.clone().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body);
    }
    match header("content-length") {
        Some(len) => {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len}"))?;
            body.get(..len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("the body ended before its {len} bytes"))
        }
        None => Ok(body.to_vec()),
    }
}

/// A chunked body (RFC 9112 7.1), without trailers.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        assert_eq!(
            parse_url("https://idp.example/realms/x/certs").unwrap(),
            (true, "idp.example".into(), 443, "/realms/x/certs".into())
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap(),
            (false, "127.0.0.1".into(), 8080, "/".into())
        );
        assert_eq!(
            parse_url("http://[::1]:81/k").unwrap(),
            (false, "::1".into(), 81, "/k".into())
        );
        for bad in ["ftp://x/", "http://:80/", "http://h:port/", "http://u@h/"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_with_length_chunks_or_errors() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk").unwrap(),
            b"{}"
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n"
            )
            .unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nbody").unwrap(),
            b"body"
        );
        for bad in [
            &b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"garbage",
            b"SSH-2.0\r\n\r\n",
        ] {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
    }

    /// One https answer from a server with a certificate for 127.0.0.1; the address.
    fn https_server(
        cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
        answer: &'static [u8],
    ) -> std::net::SocketAddr {
        use rustls::pki_types::PrivateKeyDer;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Arc::new(config);
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 1024];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer);
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        addr
    }

    fn client_trusting(cert: &rustls::pki_types::CertificateDer<'static>) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }

    #[test]
    fn key_sets_are_fetched_over_https_from_a_trusted_server_only() {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let addr = https_server(
            &cert,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"keys\":[{\"kty\":\r\n3f\r\n\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"x\":\"AQ\",\"y\":\"AQ\",\"alg\":\"ES256\"}]}\r\n0\r\n\r\n",
        );
        let url = format!("https://{addr}/jwks");
        let keys = fetch_key_set(&url, Some(&client_trusting(cert.cert.der()))).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(keys.keys[0].common.key_id.as_deref(), Some("k"));

        let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let e = fetch_key_set(&url, Some(&client_trusting(stranger.cert.der()))).unwrap_err();
        assert!(
            e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
            "{e}"
        );
        let e = fetch_key_set(&url, None).unwrap_err();
        assert!(e.contains("trust store"), "{e}");
        let e = fetch_key_set("http://127.0.0.1:1/jwks", None).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }

    #[test]
    fn an_unknown_kid_asks_for_a_refresh_at_most_every_interval() {
        let set = KeySet {
            keys: RwLock::new(JwkSet { keys: Vec::new() }),
            remote: Some(Remote {
                url: "http://127.0.0.1:1/".into(),
                wake: Mutex::new(Wake::default()),
                signal: Condvar::new(),
            }),
        };
        assert!(set.find(Some("a")).is_none());
        let remote = set.remote.as_ref().unwrap();
        assert!(remote.wake.lock().requested);
        remote.wake.lock().requested = false;
        assert!(set.find(Some("b")).is_none());
        assert!(!remote.wake.lock().requested, "rate-limited");
        assert!(set.is_empty());
    }
}
