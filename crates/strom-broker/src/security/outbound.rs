//! The broker's own connections to other brokers (replica fetches, transaction markers),
//! secured as the inter-broker listener is: TLS with that listener's trust store, presenting
//! its key store as the client certificate (for `ssl.client.auth=required`), then SASL with
//! `sasl.mechanism.inter.broker.protocol` and the `username` / `password` of the listener's
//! JAAS config for that mechanism, as Kafka's brokers do. Built once at start-up, so a bad
//! setting stops `strom server` with a message naming it. The same code secures a node's
//! connections to the controllers' CONTROLLER listener ([`Outbound::to_listener`] with
//! `sasl.mechanism.controller.protocol`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use strom_metadata::BrokerConfig;
use strom_protocol::sasl_client::SaslClient;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::inter_broker;

/// A connection to another broker, plain or TLS.
pub trait BrokerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> BrokerIo for T {}
pub type BrokerStream = Box<dyn BrokerIo>;

/// SASL responses are a few hundred bytes; a larger length prefix is a broken peer.
const MAX_SASL_RESPONSE_BYTES: usize = 64 * 1024;

/// How this broker connects to other brokers' inter-broker listener.
pub struct Outbound {
    /// The inter-broker listener's name, for messages.
    listener: String,
    tls: Option<(tokio_rustls::TlsConnector, bool)>,
    /// (mechanism, username, password)
    sasl: Option<(String, String, String)>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|(m, u, _)| (m, u)))
            .finish()
    }
}

impl Outbound {
    /// Plain TCP.
    pub fn plaintext() -> Outbound {
        Outbound {
            listener: String::new(),
            tls: None,
            sasl: None,
        }
    }

    /// The settings of the inter-broker listener; plaintext when there is none.
    pub fn of(config: &BrokerConfig) -> Result<Outbound, String> {
        let Some(listener) = config.inter_broker_listener() else {
            return Ok(Outbound::plaintext());
        };
        Outbound::to_listener(
            config,
            &listener.name,
            "sasl.mechanism.inter.broker.protocol",
        )
    }

    /// Connections to listener `name` of other nodes, secured as its protocol says, with
    /// the SASL mechanism the config key `mechanism_key` names.
    pub fn to_listener(
        config: &BrokerConfig,
        name: &str,
        mechanism_key: &str,
    ) -> Result<Outbound, String> {
        let name = name.to_owned();
        let protocol = config.security_protocol(&name);
        let tls = match protocol {
            "SSL" | "SASL_SSL" => Some(tls_connector(config, &name)?),
            _ => None,
        };
        let sasl = match protocol {
            "SASL_PLAINTEXT" | "SASL_SSL" => Some(sasl_credentials(config, &name, mechanism_key)?),
            _ => None,
        };
        Ok(Outbound {
            listener: name,
            tls,
            sasl,
        })
    }

    /// Connects to `host:port` (the other broker's inter-broker endpoint), within `timeout`
    /// for each step, and authenticates as configured.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        node_id: i32,
        timeout: Duration,
    ) -> std::io::Result<BrokerStream> {
        let address = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let tcp = within(timeout, TcpStream::connect(&address)).await?;
        tcp.set_nodelay(true)?;
        self.secure(tcp, host, node_id, timeout).await
    }

    /// Runs TLS and SASL, as configured, on a connection dialled to `host`.
    pub async fn secure(
        &self,
        tcp: TcpStream,
        host: &str,
        node_id: i32,
        timeout: Duration,
    ) -> std::io::Result<BrokerStream> {
        let mut stream: BrokerStream = match &self.tls {
            None => Box::new(tcp),
            Some((connector, verify_hostname)) => {
                let name = server_name(host, *verify_hostname)?;
                Box::new(within(timeout, connector.connect(name, tcp)).await?)
            }
        };
        if let Some((mechanism, user, password)) = &self.sasl {
            within(
                timeout,
                authenticate(&mut stream, node_id, mechanism, user, password),
            )
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "SASL {mechanism} as {user} on listener {}: {e}",
                        self.listener
                    ),
                )
            })?;
        }
        Ok(stream)
    }
}

async fn within<T, E: Into<std::io::Error>>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> std::io::Result<T> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        )),
    }
}

/// The name the peer's certificate must carry. Without host name checks
/// (`ssl.endpoint.identification.algorithm` empty) the chain is still verified.
fn server_name(
    host: &str,
    verify_hostname: bool,
) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    let host = if verify_hostname { host } else { "localhost" };
    rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} is no TLS server name: {e}"),
        )
    })
}

fn tls_connector(
    config: &BrokerConfig,
    listener: &str,
) -> Result<(tokio_rustls::TlsConnector, bool), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = super::tls::trust_roots(config, listener)?.ok_or_else(|| {
        format!(
            "listener {listener} uses TLS: nodes need its trust store to check each other \
             (ssl.truststore.location or ssl.truststore.certificates)"
        )
    })?;
    let verify_hostname = !config
        .listener_setting(listener, "ssl.endpoint.identification.algorithm")
        .unwrap_or("https")
        .trim()
        .is_empty();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("ssl.truststore: {e}"))?,
            )))
    };
    let client = match super::tls::key_store(config, listener, &provider)? {
        Some(store) => builder.with_client_cert_resolver(store),
        None => builder.with_no_client_auth(),
    };
    Ok((
        tokio_rustls::TlsConnector::from(Arc::new(client)),
        verify_hostname,
    ))
}

/// The peer's chain must lead to a trusted root; its names are not checked
/// (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn sasl_credentials(
    config: &BrokerConfig,
    listener: &str,
    mechanism_key: &str,
) -> Result<(String, String, String), String> {
    let mechanism = config
        .static_value(mechanism_key)
        .unwrap_or("PLAIN")
        .trim()
        .to_ascii_uppercase();
    // SCRAM credentials live in the metadata log the controllers serve: like Kafka, the
    // controller listener takes PLAIN only.
    let controller = mechanism_key == "sasl.mechanism.controller.protocol";
    let served = match controller {
        true => mechanism == "PLAIN",
        false => matches!(
            mechanism.as_str(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
        ),
    };
    if !served {
        return Err(format!(
            "{mechanism_key}={mechanism}: nodes authenticate to that listener with {}",
            match controller {
                true => "PLAIN",
                false => "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            }
        ));
    }
    let key = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
    let jaas = config
        .listener_setting(listener, &key)
        .or_else(|| config.listener_setting(listener, "sasl.jaas.config"))
        .ok_or_else(|| {
            format!(
                "listener {listener} uses SASL {mechanism}: set \
                 listener.name.{}.{key} with username=\"...\" password=\"...\" for the \
                 nodes' own connections",
                listener.to_ascii_lowercase()
            )
        })?;
    let options = super::sasl::jaas_options(jaas);
    let get = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (get("username"), get("password")) {
        (Some(user), Some(password)) => Ok((mechanism, user, password)),
        _ => Err(format!(
            "listener.name.{}.{key}: brokers need username=\"...\" and password=\"...\" to \
             authenticate to each other",
            listener.to_ascii_lowercase()
        )),
    }
}

/// SaslHandshake v1, then SaslAuthenticate v2 until the mechanism is done.
async fn authenticate(
    stream: &mut BrokerStream,
    node_id: i32,
    mechanism: &str,
    user: &str,
    password: &str,
) -> std::io::Result<()> {
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let mut client = SaslClient::new(mechanism, user, password).map_err(refused)?;
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_string(mechanism.to_owned());
    let h: SaslHandshakeResponse =
        roundtrip(stream, ApiKey::SaslHandshake, 1, 1, node_id, &handshake).await?;
    if h.error_code != 0 {
        return Err(refused(format!(
            "the broker does not offer {mechanism} (it offers {:?})",
            h.mechanisms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
        )));
    }
    let mut token = client.first();
    let mut correlation_id = 1;
    loop {
        correlation_id += 1;
        let mut request = SaslAuthenticateRequest::default();
        request.auth_bytes = Bytes::from(token);
        let r: SaslAuthenticateResponse = roundtrip(
            stream,
            ApiKey::SaslAuthenticate,
            2,
            correlation_id,
            node_id,
            &request,
        )
        .await?;
        if r.error_code != 0 {
            return Err(refused(
                r.error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("error code {}", r.error_code)),
            ));
        }
        match client.step(&r.auth_bytes).map_err(refused)? {
            Some(next) => token = next,
            None => return Ok(()),
        }
    }
}

async fn roundtrip<Req, Resp>(
    stream: &mut BrokerStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    node_id: i32,
    request: &Req,
) -> std::io::Result<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let client_id = format!("strom-broker-{node_id}");
    let frame = inter_broker::encode_request(api, version, correlation_id, &client_id, request)?;
    stream.write_all(&frame).await?;
    let len = inter_broker::response_len(stream.read_i32().await?, MAX_SASL_RESPONSE_BYTES)?;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    inter_broker::decode_response(Bytes::from(buf), version, correlation_id)
}
