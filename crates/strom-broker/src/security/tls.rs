//! TLS on SSL and SASL_SSL listeners, with rustls: Kafka's `ssl.*` settings with PEM key and
//! trust stores (files or inline), TLS versions, and client certificates (`ssl.client.auth`)
//! whose subject becomes the principal through `ssl.principal.mapping.rules`.

use std::sync::Arc;

use regex::Regex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use strom_metadata::BrokerConfig;

/// A listener's TLS settings, ready to accept.
#[derive(Debug)]
pub struct TlsListener {
    pub config: Arc<ServerConfig>,
    pub mapping: PrincipalMapping,
}

impl TlsListener {
    /// The principal of a finished handshake: `User:ANONYMOUS` without a client certificate,
    /// else the certificate's subject through `ssl.principal.mapping.rules`. `Err` carries
    /// the subject no rule matched (Kafka refuses that connection).
    pub fn principal_of(&self, connection: &rustls::ServerConnection) -> Result<String, String> {
        let Some(cert) = connection.peer_certificates().and_then(|c| c.first()) else {
            return Ok(super::ANONYMOUS.to_owned());
        };
        let dn = subject_name(cert).unwrap_or_default();
        match self.mapping.apply(&dn) {
            Some(name) => Ok(format!("User:{name}")),
            None => Err(dn),
        }
    }
}

/// PEM text from a property value: inline PEM may be written on one line with `\n` escapes.
fn pem_text(value: &str) -> Vec<u8> {
    value.replace("\\n", "\n").into_bytes()
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        format!(
            "{what}: no unencrypted PEM private key ({e}); Strom reads PKCS#8, PKCS#1 or SEC1 \
             keys without a password (ssl.key.password is not supported)"
        )
    })
}

fn read(path: &str, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}={path}: {e}"))
}

/// Builds the TLS settings of `listener` from the broker config; an error names the setting.
pub fn listener_tls(config: &BrokerConfig, listener: &str) -> Result<TlsListener, String> {
    let setting = |key: &str| {
        config
            .listener_setting(listener, key)
            .filter(|v| !v.trim().is_empty())
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_store: Arc<dyn rustls::server::ResolvesServerCert> =
        key_store(config, listener, &provider)?.ok_or_else(|| {
            format!(
                "listener {listener} uses TLS but has no key store: set \
                 ssl.keystore.location (a PEM file with the key and certificate chain) or \
                 ssl.keystore.certificate.chain and ssl.keystore.key"
            )
        })?;
    let mut versions = Vec::new();
    for v in setting("ssl.enabled.protocols")
        .unwrap_or("TLSv1.2,TLSv1.3")
        .split(',')
    {
        match v.trim() {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "" => {}
            other => {
                return Err(format!(
                    "ssl.enabled.protocols: {other} is not served (TLSv1.2, TLSv1.3)"
                ))
            }
        }
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("ssl.enabled.protocols: {e}"))?;
    let client_auth = setting("ssl.client.auth").unwrap_or("none");
    let builder = if client_auth == "none" {
        builder.with_no_client_auth()
    } else {
        let roots = trust_roots(config, listener)?.ok_or_else(|| {
            format!(
                "listener {listener}: ssl.client.auth={client_auth} needs a trust store \
                 (ssl.truststore.location or ssl.truststore.certificates)"
            )
        })?;
        let requested = client_auth == "requested";
        let verifier = client_verifier(roots, &provider, requested)?;
        match trust_store_file(config, listener) {
            // A trust store file is reloaded when it changes; inline certificates never do.
            Some((path, password)) => {
                let (file, provider) = (path.clone(), provider.clone());
                let load = move || {
                    load_trust_file(&file, password.as_deref())
                        .and_then(|roots| client_verifier(roots, &provider, requested))
                };
                builder.with_client_cert_verifier(Arc::new(ReloadingClientVerifier {
                    requested,
                    file: ReloadingFile::new(&path, listener, "trust store", verifier, load),
                }))
            }
            None => builder.with_client_cert_verifier(verifier),
        }
    };
    let server = builder.with_cert_resolver(key_store);
    let mapping =
        PrincipalMapping::parse(setting("ssl.principal.mapping.rules").unwrap_or("DEFAULT"))?;
    Ok(TlsListener {
        config: Arc::new(server),
        mapping,
    })
}

/// The key store of `listener` (`ssl.keystore.*`, inline PEM or a PEM/PKCS#12 file reloaded
/// when it changes); `None` when none is set. Listeners serve it; the broker's own
/// connections to other brokers present it as their client certificate.
pub(crate) fn key_store(
    config: &BrokerConfig,
    listener: &str,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<KeyStore>>, String> {
    let setting = |key: &str| {
        config
            .listener_setting(listener, key)
            .filter(|v| !v.trim().is_empty())
    };
    if let (Some(chain), Some(key)) = (
        setting("ssl.keystore.certificate.chain"),
        setting("ssl.keystore.key"),
    ) {
        let certified = rustls::sign::CertifiedKey::from_der(
            certificates(&pem_text(chain), "ssl.keystore.certificate.chain")?,
            private_key(&pem_text(key), "ssl.keystore.key")?,
            provider,
        )
        .map_err(|e| format!("listener {listener}: the key does not fit the certificate: {e}"))?;
        return Ok(Some(Arc::new(KeyStore::Static(Arc::new(certified)))));
    }
    let Some(path) = setting("ssl.keystore.location") else {
        return Ok(None);
    };
    let format = match setting("ssl.keystore.type").unwrap_or("PEM") {
        t if t.eq_ignore_ascii_case("PKCS12") => KeyStoreFormat::Pkcs12 {
            password: setting("ssl.keystore.password")
                .ok_or_else(|| {
                    format!(
                        "listener {listener}: ssl.keystore.type=PKCS12 needs ssl.keystore.password"
                    )
                })?
                .to_owned(),
        },
        _ => KeyStoreFormat::Pem,
    };
    Ok(Some(Arc::new(KeyStore::Reloading(
        ReloadingKeyStore::open(path, listener, format, provider.clone())?,
    ))))
}

/// The trust store of `listener` (`ssl.truststore.*`: inline PEM, or a PEM or PKCS#12 file);
/// `None` when none is set.
pub(crate) fn trust_roots(
    config: &BrokerConfig,
    listener: &str,
) -> Result<Option<RootCertStore>, String> {
    let setting = |key: &str| {
        config
            .listener_setting(listener, key)
            .filter(|v| !v.trim().is_empty())
    };
    let pkcs12 = setting("ssl.truststore.type").is_some_and(|t| t.eq_ignore_ascii_case("PKCS12"));
    let trusted = match (
        setting("ssl.truststore.certificates"),
        setting("ssl.truststore.location"),
    ) {
        (Some(inline), _) => certificates(&pem_text(inline), "ssl.truststore")?,
        (None, Some(path)) if pkcs12 => {
            let password = setting("ssl.truststore.password").ok_or_else(|| {
                format!(
                    "listener {listener}: ssl.truststore.type=PKCS12 needs ssl.truststore.password"
                )
            })?;
            pkcs12_certificates(&read(path, "ssl.truststore.location")?, password, path)?
        }
        (None, Some(path)) => {
            certificates(&read(path, "ssl.truststore.location")?, "ssl.truststore")?
        }
        (None, None) => return Ok(None),
    };
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots
            .add(cert)
            .map_err(|e| format!("ssl.truststore: {e}"))?;
    }
    Ok(Some(roots))
}

/// The verifier of client certificates against `roots` (`requested`: a client without one
/// is let in, as `ssl.client.auth=requested`).
fn client_verifier(
    roots: RootCertStore,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    requested: bool,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if requested {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    verifier.build().map_err(|e| format!("ssl.truststore: {e}"))
}

/// The trust store file of `listener` and its PKCS#12 password, when the trust store is a
/// file (not inline certificates).
fn trust_store_file(config: &BrokerConfig, listener: &str) -> Option<(String, Option<String>)> {
    let setting = |key: &str| {
        config
            .listener_setting(listener, key)
            .filter(|v| !v.trim().is_empty())
    };
    if setting("ssl.truststore.certificates").is_some() {
        return None;
    }
    let path = setting("ssl.truststore.location")?;
    let pkcs12 = setting("ssl.truststore.type").is_some_and(|t| t.eq_ignore_ascii_case("PKCS12"));
    let password = pkcs12.then(|| setting("ssl.truststore.password").unwrap_or("").to_owned());
    Some((path.to_owned(), password))
}

/// The roots of a trust store file (PEM, or PKCS#12 with its password).
fn load_trust_file(path: &str, pkcs12_password: Option<&str>) -> Result<RootCertStore, String> {
    let bytes = read(path, "ssl.truststore.location")?;
    let trusted = match pkcs12_password {
        Some(password) => pkcs12_certificates(&bytes, password, path)?,
        None => certificates(&bytes, "ssl.truststore")?,
    };
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots
            .add(cert)
            .map_err(|e| format!("ssl.truststore: {e}"))?;
    }
    Ok(roots)
}

/// Client certificates checked against a trust store file that is reloaded without a
/// restart when it changes (a CA added or rotated): as the key store, a handshake at most
/// once a second compares the file's modification time and a changed file that loads
/// replaces the roots; one that does not is logged and the previous roots kept. The
/// CertificateRequest names no CAs (the roots may change under it); clients send their
/// certificate anyway.
#[derive(Debug)]
struct ReloadingClientVerifier {
    requested: bool,
    file: ReloadingFile<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

impl ReloadingClientVerifier {
    fn current(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        self.file.current()
    }
}

impl rustls::server::danger::ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.requested
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// A listener's key and certificate chain.
#[derive(Debug)]
pub(crate) enum KeyStore {
    /// Given inline: never changes.
    Static(Arc<rustls::sign::CertifiedKey>),
    /// A file, reloaded when it changes.
    Reloading(ReloadingKeyStore),
}

impl KeyStore {
    fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        match self {
            KeyStore::Static(key) => Arc::clone(key),
            KeyStore::Reloading(store) => store.current(),
        }
    }
}

impl rustls::server::ResolvesServerCert for KeyStore {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for KeyStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How often a handshake may look at a key or trust store file for a change.
const FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A value built from a file (a key store, a trust store's verifier) and built again,
/// without a restart, when the file changes: a handshake at most once a second compares the
/// file's modification time, and a changed file that loads replaces the value. One that does
/// not load is logged and the previous value kept; loading is tried again when the file
/// changes again.
pub(crate) struct ReloadingFile<T> {
    path: String,
    listener: String,
    /// "key store" or "trust store", for the log.
    what: &'static str,
    load: Box<dyn Fn() -> Result<T, String> + Send + Sync>,
    state: parking_lot::Mutex<FileState<T>>,
}

struct FileState<T> {
    value: T,
    modified: Option<std::time::SystemTime>,
    checked: std::time::Instant,
}

impl<T> std::fmt::Debug for ReloadingFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingFile")
            .field("path", &self.path)
            .field("what", &self.what)
            .finish()
    }
}

fn modified(path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl<T: Clone> ReloadingFile<T> {
    /// `initial` is what `load` gave for the file as it is now.
    fn new(
        path: &str,
        listener: &str,
        what: &'static str,
        initial: T,
        load: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> ReloadingFile<T> {
        ReloadingFile {
            path: path.to_owned(),
            listener: listener.to_owned(),
            what,
            state: parking_lot::Mutex::new(FileState {
                value: initial,
                modified: modified(path),
                checked: std::time::Instant::now(),
            }),
            load: Box::new(load),
        }
    }

    fn current(&self) -> T {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= FILE_CHECK {
            state.checked = std::time::Instant::now();
            let now = modified(&self.path);
            if now.is_some() && now != state.modified {
                state.modified = now;
                match (self.load)() {
                    Ok(value) => {
                        state.value = value;
                        tracing::info!(listener = %self.listener, path = %self.path, "TLS {} reloaded", self.what);
                    }
                    Err(e) => {
                        tracing::warn!(listener = %self.listener, error = %e, "TLS {} changed but cannot be loaded; keeping the previous one", self.what)
                    }
                }
            }
        }
        state.value.clone()
    }
}

/// A key store file (PEM or PKCS#12), reloaded without a restart when it changes (a renewed
/// certificate); a changed file must parse and its key fit the certificate.
#[derive(Debug)]
pub(crate) struct ReloadingKeyStore(ReloadingFile<Arc<rustls::sign::CertifiedKey>>);

impl ReloadingKeyStore {
    fn open(
        path: &str,
        listener: &str,
        format: KeyStoreFormat,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ReloadingKeyStore, String> {
        let load = {
            let (path, listener) = (path.to_owned(), listener.to_owned());
            move || Self::load(&path, &listener, &format, &provider).map(Arc::new)
        };
        let initial = load()?;
        Ok(ReloadingKeyStore(ReloadingFile::new(
            path,
            listener,
            "key store",
            initial,
            load,
        )))
    }

    fn load(
        path: &str,
        listener: &str,
        format: &KeyStoreFormat,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<rustls::sign::CertifiedKey, String> {
        let bytes = read(path, "ssl.keystore.location")?;
        let what = format!("ssl.keystore.location={path}");
        let (chain, key) = match format {
            KeyStoreFormat::Pem => (certificates(&bytes, &what)?, private_key(&bytes, &what)?),
            KeyStoreFormat::Pkcs12 { password } => pkcs12_key_chain(&bytes, password, &what)?,
        };
        rustls::sign::CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| format!("listener {listener}: the key does not fit the certificate: {e}"))
    }

    fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        self.0.current()
    }
}

/// How a key store file is written.
#[derive(Debug)]
enum KeyStoreFormat {
    Pem,
    Pkcs12 { password: String },
}

/// The private key and its certificate chain of a PKCS#12 key store (keytool's or openssl's).
fn pkcs12_key_chain(
    bytes: &[u8],
    password: &str,
    what: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| format!("{what}: not a PKCS#12 key store this password opens: {e}"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| format!("{what}: the PKCS#12 store holds no private key"))?;
    if chain.certs().is_empty() {
        return Err(format!("{what}: the private key has no certificate"));
    }
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
    Ok((certs, key))
}

/// Every certificate of a PKCS#12 trust store.
fn pkcs12_certificates(
    bytes: &[u8],
    password: &str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let store =
        p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Raw)
            .map_err(|e| {
                format!(
                    "ssl.truststore.location={path}: not a PKCS#12 store this password opens: {e}"
                )
            })?;
    let certs: Vec<CertificateDer<'static>> = store
        .entries()
        .flat_map(|(_, entry)| match entry {
            p12_keystore::KeyStoreEntry::Certificate(c) => vec![c.as_der().to_vec()],
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                chain.certs().iter().map(|c| c.as_der().to_vec()).collect()
            }
            p12_keystore::KeyStoreEntry::Secret(_) => Vec::new(),
        })
        .map(CertificateDer::from)
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "ssl.truststore.location={path}: no certificate in the store"
        ));
    }
    Ok(certs)
}

/// The distinguished name of a certificate's subject, as Kafka writes it (RFC 2253: the most
/// specific attribute first, `CN=client,OU=eng,O=Example`).
pub fn subject_name(cert: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_owned)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = attr.as_str().unwrap_or("");
                    format!("{name}={}", escape_dn_value(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Kafka's `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries and
/// `DEFAULT`, separated by commas; the first rule whose pattern matches the whole name
/// rewrites it (`L`/`U`: to lower/upper case); `DEFAULT` keeps the name as it is.
#[derive(Debug, Clone)]
pub struct PrincipalMapping {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Rewrite {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl PrincipalMapping {
    pub fn parse(rules: &str) -> Result<PrincipalMapping, String> {
        let mut out = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches([',', ' ', '\n']);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = after;
                continue;
            }
            let body = rest.strip_prefix("RULE:").ok_or_else(|| {
                format!("ssl.principal.mapping.rules: expected RULE:... or DEFAULT at '{rest}'")
            })?;
            let (pattern, after) = split_unescaped(body, '/')
                .ok_or_else(|| format!("ssl.principal.mapping.rules: no '/' after '{body}'"))?;
            let (replacement, after) = split_unescaped(after, '/').ok_or_else(|| {
                format!("ssl.principal.mapping.rules: no closing '/' in '{body}'")
            })?;
            let (case, after) = match after.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                _ => (None, after),
            };
            let pattern = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("ssl.principal.mapping.rules: bad pattern: {e}"))?;
            out.push(Rule::Rewrite {
                pattern,
                replacement: replacement.to_owned(),
                case,
            });
            rest = after;
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(PrincipalMapping { rules: out })
    }

    /// The principal name of distinguished name `dn` (`None`: no rule matched, which Kafka
    /// treats as a failed authentication).
    pub fn apply(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_owned()),
                Rule::Rewrite {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace(dn, replacement.as_str()).into_owned();
                        return Some(match case {
                            Some('L') => name.to_lowercase(),
                            Some('U') => name.to_uppercase(),
                            _ => name,
                        });
                    }
                }
            }
        }
        None
    }
}

/// Splits at the first `sep` not escaped with a backslash.
fn split_unescaped(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            return Some((&s[..i], &s[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules_rewrite_the_first_match_and_default_keeps_the_name() {
        let m = PrincipalMapping::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),.*$/$1/, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.apply("CN=Kafka-Svc,OU=ServiceUsers,O=Example").as_deref(),
            Some("kafka-svc")
        );
        assert_eq!(m.apply("CN=alice,O=Example").as_deref(), Some("alice"));
        assert_eq!(m.apply("O=Example").as_deref(), Some("O=Example"));
        let strict = PrincipalMapping::parse("RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(strict.apply("CN=bob").as_deref(), Some("BOB"));
        assert_eq!(strict.apply("O=x"), None, "no rule matched");
        assert!(PrincipalMapping::parse("RULE:(/x").is_err());
        assert!(PrincipalMapping::parse("NONSENSE").is_err());
    }

    #[test]
    fn subjects_read_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_name(cert.der()).as_deref(),
            Some("CN=alice,O=Example\\, Inc")
        );
        assert_eq!(subject_name(b"not a certificate"), None);
    }
}
