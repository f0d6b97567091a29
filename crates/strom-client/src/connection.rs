//! One TCP connection to one broker: requests are pipelined (many in flight, each tagged with a
//! correlation id) and Kafka answers them in order, so a FIFO of waiters matches responses.
//! A writer task batches frames into the socket; a reader task splits response frames.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_protocol::frame::complete_frame_len;
use strom_protocol::header::read_unsigned_varint;
use strom_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader,
};
use strom_protocol::kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::util::sb;
use crate::versions::BrokerVersions;

/// Largest response frame accepted (fetch responses are bounded by fetch.max.bytes anyway).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

struct Pending {
    correlation_id: i32,
    response_header_version: i16,
    reply: oneshot::Sender<Result<Bytes>>,
}

struct State {
    next_correlation_id: i32,
    pending: VecDeque<Pending>,
    /// Set once the socket failed; every later request fails with it.
    closed: Option<String>,
}

/// A live connection. Cheap to share (`Arc`); dropped when the last user lets go.
pub(crate) struct Connection {
    addr: String,
    client_id: StrBytes,
    state: Arc<Mutex<State>>,
    writer: mpsc::UnboundedSender<Bytes>,
    versions: BrokerVersions,
    request_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Connection {
    /// Connects (with TLS when the security protocol says so), negotiates versions with
    /// ApiVersions, and authenticates with SASL when the protocol says so.
    pub(crate) async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        security: &crate::security::SecurityConfig,
    ) -> Result<Arc<Connection>> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("no answer in {} ms", connect_timeout.as_millis())))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
        type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
        let (read_half, write_half): (Reader, Writer) = match security.tls_connector()? {
            Some(tls) => {
                let name = crate::security::server_name(addr)?;
                let stream = tokio::time::timeout(connect_timeout, tls.connect(name, stream))
                    .await
                    .map_err(|_| connect_err("TLS handshake timed out".into()))?
                    .map_err(|e| connect_err(format!("TLS handshake failed: {e}")))?;
                let (r, w) = tokio::io::split(stream);
                (Box::new(r), Box::new(w))
            }
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
        };
        let state = Arc::new(Mutex::new(State {
            next_correlation_id: 1,
            pending: VecDeque::new(),
            closed: None,
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(write_half, rx, state.clone()));
        tokio::spawn(read_loop(read_half, state.clone()));
        let mut conn = Connection {
            addr: addr.to_owned(),
            client_id: sb(client_id),
            state,
            writer: tx,
            versions: BrokerVersions::default(),
            request_timeout,
        };
        conn.versions = conn.negotiate().await?;
        if security.protocol.sasl() {
            conn.authenticate(security)
                .await
                .map_err(|e| connect_err(format!("SASL authentication failed: {e}")))?;
        }
        Ok(Arc::new(conn))
    }

    /// SaslHandshake v1, then SaslAuthenticate steps until the mechanism is done.
    async fn authenticate(&self, security: &crate::security::SecurityConfig) -> Result<()> {
        use strom_protocol::kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslHandshakeRequest,
        };
        let mut client = if security.sasl_mechanism == "OAUTHBEARER" {
            let token = security.oauthbearer.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "OAUTHBEARER needs a token: sasl.oauthbearer.token.endpoint.url=file:///path, \
                     or for development an OAuthBearerLoginModule sasl.jaas.config with \
                     unsecuredLoginStringClaim_sub=\"...\" (or sasl.oauthbearer.config=principal=...)"
                        .into(),
                )
            })?;
            strom_protocol::sasl_client::SaslClient::oauthbearer(&token.token()?)
                .map_err(Error::InvalidArgument)?
        } else {
            let (Some(user), Some(password)) = (&security.sasl_username, &security.sasl_password)
            else {
                return Err(Error::InvalidArgument(
                    "SASL needs sasl.username and sasl.password (or sasl.jaas.config)".into(),
                ));
            };
            strom_protocol::sasl_client::SaslClient::new(&security.sasl_mechanism, user, password)
                .map_err(Error::InvalidArgument)?
        };
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = sb(&security.sasl_mechanism);
        let h = self.send(&handshake, 1).await?;
        Error::check(h.error_code, || {
            format!(
                "SASL mechanism {} (the broker offers {:?})",
                security.sasl_mechanism,
                h.mechanisms
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
            )
        })?;
        let mut token = client.first();
        loop {
            let mut req = SaslAuthenticateRequest::default();
            req.auth_bytes = Bytes::from(token);
            let r = self.send(&req, 2).await?;
            if r.error_code != 0 {
                return Err(Error::InvalidArgument(
                    r.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("error code {}", r.error_code)),
                ));
            }
            match client.step(&r.auth_bytes).map_err(Error::InvalidArgument)? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ApiVersions v3; a broker that does not know v3 answers in the v0 format with its list,
    /// and then v0 is used (KIP-511).
    async fn negotiate(&self) -> Result<BrokerVersions> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = sb("strom-client");
        req.client_software_version = sb(env!("CARGO_PKG_VERSION"));
        let resp = match self.send(&req, 3).await {
            Ok(r) => r,
            Err(Error::Protocol { .. }) => self.send(&ApiVersionsRequest::default(), 0).await?,
            Err(e) => return Err(e),
        };
        let resp: ApiVersionsResponse = if resp.error_code == 35 {
            self.send(&ApiVersionsRequest::default(), 0).await?
        } else {
            resp
        };
        Error::check(resp.error_code, || {
            format!("ApiVersions from {}", self.addr)
        })?;
        Ok(BrokerVersions::new(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version)),
        ))
    }

    /// The version to use for `api` with this broker.
    pub(crate) fn version(&self, api: ApiKey) -> Result<i16> {
        self.versions.choose(api)
    }

    fn encode<R: Request>(&self, req: &R, version: i16, correlation_id: i32) -> Result<Bytes> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| Error::InvalidArgument("api key".into()))?;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let header_version = api.request_header_version(version);
        let fail = |e: String| Error::InvalidArgument(format!("{api:?} v{version}: {e}"));
        let size = header
            .compute_size(header_version)
            .map_err(|e| fail(e.to_string()))?
            + req.compute_size(version).map_err(|e| fail(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size as i32);
        header
            .encode(&mut buf, header_version)
            .map_err(|e| fail(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| fail(e.to_string()))?;
        Ok(buf.freeze())
    }

    /// Sends a request and waits for its response (bounded by request.timeout.ms).
    pub(crate) async fn send<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.start(req, version)?.await
    }

    /// Queues a request on the socket now (so requests leave in call order) and returns a
    /// future for its response.
    pub(crate) fn start<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| Error::InvalidArgument("api key".into()))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if let Some(reason) = &st.closed {
                return Err(self.disconnected(reason.clone()));
            }
            let correlation_id = st.next_correlation_id;
            st.next_correlation_id = st.next_correlation_id.wrapping_add(1);
            let frame = self.encode(req, version, correlation_id)?;
            st.pending.push_back(Pending {
                correlation_id,
                response_header_version: api.response_header_version(version),
                reply: tx,
            });
            // Queued under the lock so the socket order equals the pending order.
            if self.writer.send(frame).is_err() {
                st.closed = Some("writer stopped".into());
            }
        }
        let timeout = self.request_timeout;
        let addr = self.addr.clone();
        let state = self.state.clone();
        Ok(async move {
            let mut body = match tokio::time::timeout(timeout, rx).await {
                Err(_) => {
                    fail_all(&state, "request timed out");
                    return Err(Error::Timeout {
                        what: format!("{api:?} request to {addr}"),
                        ms: timeout.as_millis() as u64,
                    });
                }
                Ok(Err(_)) => {
                    return Err(Error::Disconnected {
                        addr,
                        reason: "connection closed".into(),
                    })
                }
                Ok(Ok(r)) => r?,
            };
            R::Response::decode(&mut body, version).map_err(|e| Error::Protocol {
                api: format!("{api:?} v{version}"),
                reason: e.to_string(),
            })
        })
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub(crate) fn send_no_response<R: Request>(&self, req: &R, version: i16) -> Result<()> {
        let mut st = self.lock();
        if let Some(reason) = &st.closed {
            return Err(self.disconnected(reason.clone()));
        }
        let correlation_id = st.next_correlation_id;
        st.next_correlation_id = st.next_correlation_id.wrapping_add(1);
        let frame = self.encode(req, version, correlation_id)?;
        self.writer
            .send(frame)
            .map_err(|_| self.disconnected("writer stopped".into()))
    }

    fn disconnected(&self, reason: String) -> Error {
        Error::Disconnected {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Marks the connection dead and fails everything waiting on it.
    pub(crate) fn close(&self, reason: &str) {
        fail_all(&self.state, reason);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        fail_all(&self.state, "connection dropped");
    }
}

fn fail_all(state: &Mutex<State>, reason: &str) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if st.closed.is_none() {
        st.closed = Some(reason.to_owned());
    }
    for p in st.pending.drain(..) {
        let _ = p.reply.send(Err(Error::Disconnected {
            addr: String::new(),
            reason: reason.to_owned(),
        }));
    }
}

async fn write_loop(
    mut sock: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<Mutex<State>>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        buf.extend_from_slice(&frame);
        // Coalesce whatever else is queued into one write.
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if let Err(e) = sock.write_all(&buf).await {
            fail_all(&state, &format!("write failed: {e}"));
            return;
        }
        buf.clear();
    }
    let _ = sock.shutdown().await;
}

async fn read_loop(
    mut sock: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    state: Arc<Mutex<State>>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let len = match complete_frame_len(&buf, MAX_RESPONSE_BYTES) {
            Ok(Some(len)) => len,
            Ok(None) => {
                match sock.read_buf(&mut buf).await {
                    Ok(0) => return fail_all(&state, "broker closed the connection"),
                    Ok(_) => {}
                    Err(e) => return fail_all(&state, &format!("read failed: {e}")),
                }
                continue;
            }
            Err(e) => return fail_all(&state, &e.to_string()),
        };
        buf.advance(4);
        let mut frame = buf.split_to(len).freeze();
        if frame.len() < 4 {
            return fail_all(&state, "response frame shorter than its header");
        }
        let correlation_id = frame.get_i32();
        let pending = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.pending.pop_front()
        };
        let Some(p) = pending else {
            return fail_all(&state, "response to no request");
        };
        if p.correlation_id != correlation_id {
            let reason = format!(
                "correlation id {correlation_id} where {} was expected",
                p.correlation_id
            );
            let _ = p.reply.send(Err(Error::Protocol {
                api: "response".into(),
                reason: reason.clone(),
            }));
            return fail_all(&state, &reason);
        }
        if p.response_header_version >= 1 && skip_tagged_fields(&mut frame).is_none() {
            return fail_all(&state, "malformed response header tagged fields");
        }
        let _ = p.reply.send(Ok(frame));
    }
}

fn skip_tagged_fields(buf: &mut Bytes) -> Option<()> {
    let count = read_unsigned_varint(buf)?;
    for _ in 0..count {
        read_unsigned_varint(buf)?;
        let size = read_unsigned_varint(buf)? as usize;
        if buf.remaining() < size {
            return None;
        }
        buf.advance(size);
    }
    Some(())
}
