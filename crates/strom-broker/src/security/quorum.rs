//! The CONTROLLER listener secured as `listener.security.protocol.map` says (SSL,
//! SASL_PLAINTEXT, SASL_SSL): the quorum's TCP transport (votes, appends, forwarded
//! operations, heartbeats, observers' fetches) runs TLS and SASL before its first frame.
//!
//! Dialling side: [`Outbound`] for that listener (its trust store, its key store as the client
//! certificate, SASL with `sasl.mechanism.controller.protocol` and the JAAS username and
//! password), as the inter-broker connections do. Accepting side: the listener's TLS settings
//! and SASL server, as a client listener's; the SASL exchange is Kafka's SaslHandshake v1 and
//! SaslAuthenticate frames, after which the connection carries quorum frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_metadata::quorum::tcp_transport::{QuorumHandshake, QuorumSecurity, QuorumStream};
use strom_metadata::BrokerConfig;
use strom_protocol::header::{decode_request_header, encode_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::outbound::Outbound;
use super::sasl::{SaslServer, SaslSession};
use super::tls::TlsListener;

/// SASL requests are a few hundred bytes; a larger frame is not a quorum peer.
const MAX_SASL_FRAME_BYTES: usize = 64 * 1024;

/// How long one side of the handshake may take (the transport bounds the whole).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How this node secures the quorum's connections on the CONTROLLER listener.
pub struct ControllerListenerSecurity {
    protocol: String,
    node_id: i32,
    outbound: Arc<Outbound>,
    /// Accepting side (controllers only: a broker-only node dials and never accepts).
    tls: Option<Arc<TlsListener>>,
    sasl: Option<Arc<SaslServer>>,
    /// With an authorizer configured, the principals a peer must be one of (`super.users`).
    members: Option<Arc<[String]>>,
}

impl std::fmt::Debug for ControllerListenerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerListenerSecurity")
            .field("protocol", &self.protocol)
            .field("outbound", &self.outbound)
            .finish()
    }
}

impl ControllerListenerSecurity {
    /// The security of the CONTROLLER listener (the first of `controller.listener.names`);
    /// `None` when it is PLAINTEXT. `accepts`: this node serves that listener (a controller).
    pub fn of(
        config: &BrokerConfig,
        accepts: bool,
    ) -> Result<Option<Arc<dyn QuorumSecurity>>, String> {
        let Some(name) = config.controller_listener_names().first() else {
            return Ok(None);
        };
        let name = name.to_ascii_uppercase();
        let protocol = config.security_protocol(&name).to_owned();
        if protocol == "PLAINTEXT" {
            if accepts && quorum_members(config).is_some() {
                tracing::warn!(listener = %name, "the CONTROLLER listener is PLAINTEXT: quorum peers are not authenticated, so super.users cannot be checked on it; secure it with SSL or SASL");
            }
            return Ok(None);
        }
        let outbound = Outbound::to_listener(config, &name, "sasl.mechanism.controller.protocol")
            .map_err(|e| format!("controller listener {name}: {e}"))?;
        let (tls, sasl) = match accepts {
            false => (None, None),
            true => {
                let inbound = super::ListenerSecurity::of(config, &name)
                    .map_err(|e| format!("controller listener {name}: {e}"))?;
                (inbound.tls, inbound.sasl)
            }
        };
        tracing::info!(listener = %name, %protocol, "the metadata quorum's connections are secured");
        Ok(Some(Arc::new(ControllerListenerSecurity {
            protocol,
            node_id: config.node_id(),
            outbound: Arc::new(outbound),
            tls,
            sasl,
            members: quorum_members(config),
        })))
    }
}

impl QuorumSecurity for ControllerListenerSecurity {
    fn connect(&self, tcp: TcpStream, addr: &str) -> QuorumHandshake {
        let outbound = Arc::clone(&self.outbound);
        let node_id = self.node_id;
        let host = host_of(addr).to_owned();
        Box::pin(async move {
            let stream = outbound.secure(tcp, &host, node_id, STEP_TIMEOUT).await?;
            Ok(Box::new(stream) as QuorumStream)
        })
    }

    fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> QuorumHandshake {
        let tls = self.tls.clone();
        let sasl = self.sasl.clone();
        let members = self.members.clone();
        Box::pin(async move {
            let mut principal = super::ANONYMOUS.to_owned();
            let mut stream: QuorumStream = match tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config));
                    let stream = acceptor.accept(tcp).await.map_err(|e| {
                        std::io::Error::new(e.kind(), format!("TLS handshake with {peer}: {e}"))
                    })?;
                    principal = tls.principal_of(stream.get_ref().1).map_err(|dn| {
                        std::io::Error::new(
                            std::io::ErrorKind::PermissionDenied,
                            format!("no ssl.principal.mapping.rules rule matches {peer}'s certificate subject {dn}"),
                        )
                    })?;
                    Box::new(stream)
                }
            };
            if let Some(server) = sasl {
                principal = serve_sasl(&mut stream, server)
                    .await
                    .map_err(|e| std::io::Error::new(e.kind(), format!("SASL with {peer}: {e}")))?;
            }
            if let Some(members) = members {
                if !members.contains(&principal) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "{peer} authenticated as {principal}, which is not in super.users: \
                             with an authorizer configured, only super users may join the \
                             metadata quorum (CLUSTER_ACTION)"
                        ),
                    ));
                }
            }
            tracing::debug!(%peer, %principal, "quorum peer authenticated");
            Ok(stream)
        })
    }

    fn protocol(&self) -> &str {
        &self.protocol
    }
}

/// With `authorizer.class.name` set, the principals allowed on the quorum's connections:
/// `super.users`. Kafka checks CLUSTER_ACTION there; the ACLs live in the metadata log the
/// quorum itself replicates, so, as Kafka's KRaft documentation asks of controller
/// principals, only super users count (no ACL can grant it). `None`: no authorizer, every
/// authenticated peer is a member.
fn quorum_members(config: &BrokerConfig) -> Option<Arc<[String]>> {
    let value = |key: &str| config.value_and_source(key).0.unwrap_or("").trim();
    if value("authorizer.class.name").is_empty() {
        return None;
    }
    Some(strom_metadata::acl::AuthorizerSettings::parse_super_users(value("super.users")).into())
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The server side of the SASL exchange on a quorum connection: SaslHandshake v1, then
/// SaslAuthenticate until the mechanism is done. Returns the principal. Any other request,
/// or a failed step (answered first), ends the connection. SCRAM credentials are not
/// served here (they live in the metadata log).
async fn serve_sasl(stream: &mut QuorumStream, server: Arc<SaslServer>) -> std::io::Result<String> {
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let mut session = SaslSession::new(server);
    loop {
        let len = stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_SASL_FRAME_BYTES)
            .ok_or_else(|| refused(format!("a {len}-byte frame where SASL belongs")))?;
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        let (header, mut body) = decode_request_header(Bytes::from(buf))
            .map_err(|e| refused(format!("bad request header: {e}")))?;
        let version = header.api_version;
        if header.api_key == ApiKey::SaslHandshake as i16 && version == 1 {
            let request = SaslHandshakeRequest::decode(&mut body, version)
                .map_err(|e| refused(format!("bad request body: {e}")))?;
            let outcome = session.handshake(request.mechanism.as_str());
            let mut response = SaslHandshakeResponse::default();
            response.mechanisms = session
                .mechanisms()
                .iter()
                .map(|m| StrBytes::from_string(m.clone()))
                .collect();
            if let Err((code, _)) = &outcome {
                response.error_code = code.code();
            }
            send(
                stream,
                ApiKey::SaslHandshake,
                version,
                header.correlation_id,
                &response,
            )
            .await?;
            outcome.map_err(|(_, why)| refused(why))?;
        } else if header.api_key == ApiKey::SaslAuthenticate as i16 && (0..=2).contains(&version) {
            let request = SaslAuthenticateRequest::decode(&mut body, version)
                .map_err(|e| refused(format!("bad request body: {e}")))?;
            let outcome = session.authenticate(&request.auth_bytes, &|_: &str, _: i8| None);
            let mut response = SaslAuthenticateResponse::default();
            match &outcome {
                Ok(reply) => {
                    response.auth_bytes = Bytes::from(reply.clone());
                    response.session_lifetime_ms = session.session_lifetime_ms();
                }
                Err((code, why)) => {
                    response.error_code = code.code();
                    response.error_message = Some(StrBytes::from_string(why.clone()));
                }
            }
            send(
                stream,
                ApiKey::SaslAuthenticate,
                version,
                header.correlation_id,
                &response,
            )
            .await?;
            outcome.map_err(|(_, why)| refused(why))?;
            if let Some(principal) = session.principal() {
                return Ok(principal.to_owned());
            }
        } else {
            return Err(refused(format!(
                "request {} v{version} before SASL authentication",
                header.api_key
            )));
        }
    }
}

async fn send<R>(
    stream: &mut QuorumStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> std::io::Result<()>
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
{
    let frame = encode_response(api, version, correlation_id, response)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    stream.write_all(&frame).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> BrokerConfig {
        let text = format!(
            "node.id=1\nprocess.roles=broker,controller\ncontroller.quorum.voters=1@127.0.0.1:9093\n\
             listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
             controller.listener.names=CONTROLLER\n{extra}"
        );
        BrokerConfig::parse(&text, &[]).unwrap().0
    }

    #[test]
    fn the_controller_listener_security_follows_the_protocol_map() {
        let plain =
            config("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        assert!(ControllerListenerSecurity::of(&plain, true)
            .unwrap()
            .is_none());
        let jaas = "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"c\" password=\"p\" user_c=\"p\";";
        let sasl = config(&format!(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
             listener.name.controller.sasl.enabled.mechanisms=PLAIN\n{jaas}"
        ));
        let security = ControllerListenerSecurity::of(&sasl, true)
            .unwrap()
            .unwrap();
        assert_eq!(security.protocol(), "SASL_PLAINTEXT");
        let scram = config(&format!(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
             sasl.mechanism.controller.protocol=SCRAM-SHA-256\n{jaas}"
        ));
        let e = ControllerListenerSecurity::of(&scram, true).unwrap_err();
        assert!(
            e.contains("sasl.mechanism.controller.protocol=SCRAM-SHA-256"),
            "{e}"
        );
        let no_users =
            config("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT");
        let e = ControllerListenerSecurity::of(&no_users, true).unwrap_err();
        assert!(e.contains("controller listener CONTROLLER"), "{e}");
        let tls_without_stores =
            config("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL");
        let e = ControllerListenerSecurity::of(&tls_without_stores, false).unwrap_err();
        assert!(e.contains("trust store"), "{e}");
    }

    /// A SASL_PLAINTEXT quorum handshake between the two sides: the right password passes,
    /// a wrong one is refused with the broker's reason on both sides.
    #[tokio::test]
    async fn quorum_connections_authenticate_with_plain() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server_side = config(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
             listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
             listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"c\" password=\"p\" user_c=\"p\";",
        );
        let server = ControllerListenerSecurity::of(&server_side, true)
            .unwrap()
            .unwrap();
        for (password, ok) in [("p", true), ("wrong", false)] {
            let client_side = config(&format!(
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
                 listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"c\" password=\"{password}\";"
            ));
            let client = ControllerListenerSecurity::of(&client_side, false)
                .unwrap()
                .unwrap();
            let tcp = TcpStream::connect(&addr).await.unwrap();
            let (accepted, peer) = listener.accept().await.unwrap();
            let (dialled, served) =
                tokio::join!(client.connect(tcp, &addr), server.accept(accepted, peer));
            assert_eq!(dialled.is_ok(), ok, "{:?}", dialled.err());
            assert_eq!(served.is_ok(), ok, "{:?}", served.err());
            if !ok {
                let why = served.err().unwrap().to_string();
                assert!(why.contains("Invalid username or password"), "{why}");
            }
        }
    }

    /// With an authorizer configured, a peer that authenticates must also be in
    /// `super.users` to join the quorum; without one, authenticating is enough.
    #[tokio::test]
    async fn with_an_authorizer_only_super_users_join_the_quorum() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sasl = "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
                    listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
                    listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"c\" password=\"p\" user_c=\"p\";";
        let client = ControllerListenerSecurity::of(&config(sasl), false)
            .unwrap()
            .unwrap();
        let authorizer =
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";
        for (extra, ok) in [
            ("", true),
            (&format!("{authorizer}\nsuper.users=User:admin")[..], false),
            (
                &format!("{authorizer}\nsuper.users=User:admin;User:c")[..],
                true,
            ),
        ] {
            let server = ControllerListenerSecurity::of(&config(&format!("{sasl}\n{extra}")), true)
                .unwrap()
                .unwrap();
            let tcp = TcpStream::connect(&addr).await.unwrap();
            let (accepted, peer) = listener.accept().await.unwrap();
            let (_, served) =
                tokio::join!(client.connect(tcp, &addr), server.accept(accepted, peer));
            assert_eq!(served.is_ok(), ok, "{extra}: {:?}", served.err());
            if !ok {
                let why = served.err().unwrap().to_string();
                assert!(why.contains("User:c, which is not in super.users"), "{why}");
            }
        }
    }

    /// Hostile bytes where the SASL exchange belongs are refused, never a panic: a huge or
    /// negative length, a truncated header, an unknown API, a request other than SASL, a
    /// garbled SaslHandshake body, random bytes.
    #[tokio::test]
    async fn malformed_sasl_input_on_a_quorum_connection_is_refused() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ControllerListenerSecurity::of(
            &config(
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
                 listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
                 listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"c\" password=\"p\" user_c=\"p\";",
            ),
            true,
        )
        .unwrap()
        .unwrap();
        let framed = |body: &[u8]| {
            let mut f = (body.len() as i32).to_be_bytes().to_vec();
            f.extend_from_slice(body);
            f
        };
        let mut inputs = vec![
            i32::MAX.to_be_bytes().to_vec(),
            (-1i32).to_be_bytes().to_vec(),
            framed(&[0, 17]),
            framed(&[0x7f, 0x7f, 0, 1, 0, 0, 0, 1, 0, 0]),
            // Metadata v1 before authentication.
            framed(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
            // SaslHandshake v1 whose mechanism claims 300 bytes.
            framed(&[0, 17, 0, 1, 0, 0, 0, 1, 0, 0, 1, 44, b'P']),
            // SaslHandshake v0 (raw tokens) is not served here.
            framed(&[
                0, 17, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N',
            ]),
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..40 {
            let mut bytes = Vec::new();
            for _ in 0..(n * 7 % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            inputs.push(framed(&bytes));
        }
        for input in inputs {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let (accepted, peer) = listener.accept().await.unwrap();
            tcp.write_all(&input).await.unwrap();
            tcp.shutdown().await.unwrap();
            let served = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                server.accept(accepted, peer),
            )
            .await
            .expect("the server gave up on the input");
            assert!(served.is_err(), "{input:?} was let through");
        }
    }

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("controller-1.example:9093"), "controller-1.example");
    }
}
