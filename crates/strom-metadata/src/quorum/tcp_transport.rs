//! [`QuorumTransport`] over TCP (KRaft's CONTROLLER listener): one connection per peer carrying
//! many RPCs at once, paired with their replies by correlation id, re-dialled with backoff after
//! a failure; and [`serve_tcp`], the receiving side. The bytes are [`super::tcp_codec`]'s. A
//! secured CONTROLLER listener (SSL, SASL_PLAINTEXT, SASL_SSL) wraps each connection, on both
//! sides, in a [`QuorumSecurity`] handshake before the first frame; the broker crate provides
//! it (TLS with rustls, SASL as Kafka's clients speak it).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::tcp_codec::{decode, encode, frame_len, Body, Envelope, LENGTH_PREFIX_BYTES};
use super::transport::{serve, QuorumReply, QuorumRpc, QuorumTransport, Receiver, TransportError};
use super::QuorumNodeId;
use crate::controller::ControllerOp;

/// A quorum connection after its security handshake: plain TCP, or TLS over it.
pub trait QuorumIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> QuorumIo for T {}

/// A connection ready for quorum frames.
pub type QuorumStream = Box<dyn QuorumIo>;

/// A security handshake in progress; its error says why the peer was refused.
pub type QuorumHandshake = Pin<Box<dyn Future<Output = std::io::Result<QuorumStream>> + Send>>;

/// How the CONTROLLER listener secures its connections (Kafka's `listener.security.protocol.map`
/// for that listener): TLS and SASL before the first quorum frame, on both sides.
pub trait QuorumSecurity: std::fmt::Debug + Send + Sync {
    /// Secures a connection this node dialled to `addr` (`host:port`).
    fn connect(&self, tcp: TcpStream, addr: &str) -> QuorumHandshake;
    /// Secures a connection accepted from `peer`; an error closes it.
    fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> QuorumHandshake;
    /// The security protocol, for messages (`SSL`, `SASL_SSL`, ...).
    fn protocol(&self) -> &str;
}

/// How long a security handshake may take, on either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A refused handshake is logged at warn level at most this often (per peer when dialling, per
/// listener when accepting): a refused peer re-dials every second or so.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Limits and timeouts of the TCP transport, client and server side. Names follow Kafka's
/// client configs where one exists.
#[derive(Debug, Clone)]
pub struct TcpTransportConfig {
    /// TLS / SASL of the CONTROLLER listener; `None`: PLAINTEXT.
    pub security: Option<std::sync::Arc<dyn QuorumSecurity>>,
    /// The largest frame sent or accepted (a whole snapshot must fit).
    pub max_frame_bytes: u32,
    pub connect_timeout: Duration,
    /// How long an append-entries or vote RPC waits for its reply (Kafka's
    /// `controller.quorum.request.timeout.ms`).
    pub request_timeout: Duration,
    /// How long a whole-snapshot RPC waits for its reply.
    pub snapshot_timeout: Duration,
    /// How long a forwarded controller operation waits (it commits through the quorum;
    /// Kafka's `request.timeout.ms`).
    pub controller_timeout: Duration,
    /// First wait before re-dialling a peer that could not be reached (`reconnect.backoff.ms`).
    pub reconnect_backoff: Duration,
    /// The wait doubles per failure up to this (`reconnect.backoff.max.ms`).
    pub reconnect_backoff_max: Duration,
    /// Requests one connection may have in flight (client queue and server handlers).
    pub max_in_flight_per_connection: usize,
    /// Inbound connections the server accepts at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for TcpTransportConfig {
    fn default() -> Self {
        TcpTransportConfig {
            security: None,
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            snapshot_timeout: Duration::from_secs(30),
            controller_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            max_in_flight_per_connection: 128,
            max_connections: 64,
        }
    }
}

/// What a waiting RPC receives: the reply, or the error the peer reported.
type ReplySender = oneshot::Sender<Result<QuorumReply, String>>;

/// Waiting RPCs of one client connection by correlation id; `None` once the connection is dead.
type Waiting = Option<HashMap<u64, ReplySender>>;

/// The state both tasks of a client connection share with the senders.
struct Pending {
    waiting: Mutex<Waiting>,
    next_id: AtomicU64,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .expect("quorum connection mutex poisoned")
    }

    /// A correlation id and the receiver of its reply, or `None` if the connection is dead.
    fn register(&self) -> Option<(u64, oneshot::Receiver<Result<QuorumReply, String>>)> {
        let mut waiting = self.lock();
        let map = waiting.as_mut()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        map.insert(id, tx);
        Some((id, rx))
    }

    fn forget(&self, id: u64) {
        if let Some(map) = self.lock().as_mut() {
            map.remove(&id);
        }
    }

    /// Hands a reply to its waiter; a reply nobody waits for (timed out) is dropped.
    fn complete(&self, id: u64, reply: Result<QuorumReply, String>) {
        let waiter = self.lock().as_mut().and_then(|map| map.remove(&id));
        if let Some(tx) = waiter {
            let _ = tx.send(reply);
        }
    }

    fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Marks the connection dead: every waiter learns at once (its sender drops).
    fn close(&self) {
        self.lock().take();
    }
}

/// An open client connection; dropping it aborts its tasks and closes the socket.
struct ClientConn {
    outbox: mpsc::Sender<Vec<u8>>,
    pending: Arc<Pending>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl ClientConn {
    fn start(stream: QuorumStream, peer: QuorumNodeId, config: &TcpTransportConfig) -> ClientConn {
        let (rd, wr) = tokio::io::split(stream);
        let pending = Arc::new(Pending {
            waiting: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(0),
        });
        let (outbox, rx) = mpsc::channel(config.max_in_flight_per_connection);
        let reader = tokio::spawn(read_replies(
            rd,
            Arc::clone(&pending),
            peer,
            config.max_frame_bytes,
        ));
        let writer = tokio::spawn(write_frames(wr, rx, Some(Arc::clone(&pending))));
        ClientConn {
            outbox,
            pending,
            reader,
            writer,
        }
    }
}

/// What a sender knows about one peer.
#[derive(Default)]
struct PeerState {
    conn: Option<Arc<ClientConn>>,
    /// After a failed dial, no new one before this instant.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// When a refused security handshake was last logged.
    refusal_logged: Option<Instant>,
}

struct Peer {
    addr: String,
    state: tokio::sync::Mutex<PeerState>,
}

/// The TCP transport of one quorum node: how to reach each voter. The address book changes at
/// runtime in a dynamic quorum (KIP-853): Raft hands over each member's endpoint as it learns
/// it from the membership, and an observer learns the leader's from the voters' answers.
pub struct TcpTransport {
    config: TcpTransportConfig,
    peers: parking_lot::RwLock<BTreeMap<QuorumNodeId, Arc<Peer>>>,
    /// A static quorum's addresses come from this node's `controller.quorum.voters` and
    /// stay: as in Kafka, each node dials the voters where its own configuration says (which
    /// may differ per node, e.g. through a proxy or NAT), whatever the membership records.
    pinned: bool,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: BTreeMap<_, _> = self
            .peers
            .read()
            .iter()
            .map(|(id, p)| (*id, p.addr.clone()))
            .collect();
        f.debug_struct("TcpTransport")
            .field("peers", &addrs)
            .finish()
    }
}

impl TcpTransport {
    /// A transport that reaches node `id` at `host:port` for each entry of `peers`.
    pub fn new(peers: BTreeMap<QuorumNodeId, String>, config: TcpTransportConfig) -> TcpTransport {
        let peers = peers
            .into_iter()
            .map(|(id, addr)| {
                let state = tokio::sync::Mutex::new(PeerState::default());
                (id, Arc::new(Peer { addr, state }))
            })
            .collect();
        TcpTransport {
            config,
            peers: parking_lot::RwLock::new(peers),
            pinned: false,
        }
    }

    /// This transport with the addresses it was built with fixed: later learned addresses
    /// apply only to nodes it has none for.
    pub fn with_pinned_peers(mut self) -> TcpTransport {
        self.pinned = true;
        self
    }

    /// Reaches node `id` at `addr` from now on. A changed address drops the old connection
    /// (its RPCs in flight fail as unreachable); an unchanged one keeps it.
    pub fn set_peer(&self, id: QuorumNodeId, addr: &str) {
        if addr.is_empty() {
            return;
        }
        let mut peers = self.peers.write();
        if peers
            .get(&id)
            .is_some_and(|p| p.addr == addr || self.pinned)
        {
            return;
        }
        tracing::debug!(peer = id, addr, "quorum peer address learned");
        let state = tokio::sync::Mutex::new(PeerState::default());
        peers.insert(
            id,
            Arc::new(Peer {
                addr: addr.to_string(),
                state,
            }),
        );
    }

    /// The address this transport dials for `id`, if it knows one.
    pub fn peer_addr(&self, id: QuorumNodeId) -> Option<String> {
        self.peers.read().get(&id).map(|p| p.addr.clone())
    }

    /// The open connection to `to`, dialling it unless a recent failure says to wait.
    async fn connection(&self, to: QuorumNodeId) -> Result<Arc<ClientConn>, TransportError> {
        let unreachable = TransportError::Unreachable { target: to };
        let peer = self
            .peers
            .read()
            .get(&to)
            .cloned()
            .ok_or(unreachable.clone())?;
        let mut state = peer.state.lock().await;
        if let Some(conn) = &state.conn {
            if conn.pending.is_open() {
                return Ok(Arc::clone(conn));
            }
            state.conn = None;
        }
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(unreachable);
        }
        let dialled = self.dial(&peer.addr).await;
        match dialled {
            Ok(stream) => {
                state.retry_at = None;
                state.backoff = Duration::ZERO;
                let conn = Arc::new(ClientConn::start(stream, to, &self.config));
                state.conn = Some(Arc::clone(&conn));
                Ok(conn)
            }
            Err(refusal) => {
                let backoff = (state.backoff * 2)
                    .max(self.config.reconnect_backoff)
                    .min(self.config.reconnect_backoff_max);
                state.backoff = backoff;
                state.retry_at = Some(Instant::now() + backoff);
                match refusal {
                    Some(why)
                        if state
                            .refusal_logged
                            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) =>
                    {
                        state.refusal_logged = Some(Instant::now());
                        tracing::warn!(peer = to, addr = %peer.addr, error = %why, "cannot join the quorum peer: secure connection refused");
                    }
                    _ => {
                        tracing::debug!(peer = to, addr = %peer.addr, ?backoff, "quorum peer unreachable")
                    }
                }
                Err(unreachable)
            }
        }
    }

    /// Dials `addr` and runs the listener's security handshake. `Err(None)`: not reachable
    /// (nothing listens yet); `Err(Some(why))`: reached, but the handshake failed.
    async fn dial(&self, addr: &str) -> Result<QuorumStream, Option<String>> {
        let tcp = tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| None)?
            .map_err(|_| None)?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(addr, error = %e, "quorum connection: TCP_NODELAY not set");
        }
        let Some(security) = &self.config.security else {
            return Ok(Box::new(tcp));
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, security.connect(tcp, addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(Some(format!("{} handshake: {e}", security.protocol()))),
            Err(_) => Err(Some(format!(
                "{} handshake: no answer in {HANDSHAKE_TIMEOUT:?}",
                security.protocol()
            ))),
        }
    }
}

impl QuorumTransport for TcpTransport {
    fn learn_addr(&self, to: QuorumNodeId, addr: &str) {
        self.set_peer(to, addr);
    }

    async fn send(
        &self,
        _from: QuorumNodeId,
        to: QuorumNodeId,
        rpc: QuorumRpc,
    ) -> Result<QuorumReply, TransportError> {
        let after = match rpc {
            QuorumRpc::Snapshot { .. } => self.config.snapshot_timeout,
            // A heartbeat is answered at once by a live controller. Waiting longer for one
            // sent to a controller that became unreachable would hold the broker's next
            // heartbeat back past the session timeout of the controller elected meanwhile,
            // which would then fence a healthy broker.
            QuorumRpc::Controller(ControllerOp::BrokerHeartbeat { .. }) => {
                self.config.request_timeout
            }
            QuorumRpc::Controller(_) | QuorumRpc::ChangeVoters(_) => self.config.controller_timeout,
            QuorumRpc::FetchMetadata { max_wait_ms, .. } => {
                self.config.request_timeout + Duration::from_millis(u64::from(max_wait_ms))
            }
            QuorumRpc::AppendEntries(_) | QuorumRpc::Vote(_) => self.config.request_timeout,
        };
        let conn = self.connection(to).await?;
        let unreachable = TransportError::Unreachable { target: to };
        let (id, reply) = conn.pending.register().ok_or(unreachable.clone())?;
        let envelope = Envelope {
            correlation_id: id,
            body: Body::Request(rpc),
        };
        let frame = match encode(&envelope, self.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                conn.pending.forget(id);
                return Err(TransportError::Remote {
                    target: to,
                    reason: format!("request not sent: {e}"),
                });
            }
        };
        let exchange = async {
            conn.outbox
                .send(frame)
                .await
                .map_err(|_| unreachable.clone())?;
            // A dropped sender means the connection died with the request in flight.
            reply.await.map_err(|_| unreachable.clone())
        };
        match tokio::time::timeout(after, exchange).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(reason))) => Err(TransportError::Remote { target: to, reason }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                conn.pending.forget(id);
                Err(TransportError::Timeout { target: to, after })
            }
        }
    }
}

/// Reads one frame's payload; `Ok(None)` at a clean end of stream. The buffer grows with the
/// bytes that actually arrive, so an announced length costs nothing until it is sent.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max_frame_bytes: u32,
) -> Result<Option<Vec<u8>>, String> {
    let mut prefix = [0; LENGTH_PREFIX_BYTES];
    match rd.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = frame_len(prefix, max_frame_bytes).map_err(|e| e.to_string())?;
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let read = rd
        .take(len as u64)
        .read_to_end(&mut payload)
        .await
        .map_err(|e| e.to_string())?;
    if read < len {
        return Err(format!(
            "stream ended {} bytes into a {len}-byte frame",
            read
        ));
    }
    Ok(Some(payload))
}

/// Writes queued frames until the queue closes or the socket fails, then marks the connection
/// dead (client side) so senders stop waiting.
async fn write_frames(
    mut wr: WriteHalf<QuorumStream>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    pending: Option<Arc<Pending>>,
) {
    while let Some(frame) = outbox.recv().await {
        if let Err(e) = wr.write_all(&frame).await {
            tracing::debug!(error = %e, "quorum connection: write failed");
            break;
        }
    }
    if let Some(pending) = pending {
        pending.close();
    }
}

/// The client's receiving half: hands each reply to its waiting RPC.
async fn read_replies(
    mut rd: ReadHalf<QuorumStream>,
    pending: Arc<Pending>,
    peer: QuorumNodeId,
    max_frame_bytes: u32,
) {
    loop {
        let payload = match read_frame(&mut rd, max_frame_bytes).await {
            Ok(Some(payload)) => payload,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(peer, error = %e, "closing quorum connection: bad frame");
                break;
            }
        };
        match decode(&payload) {
            Ok(Envelope {
                correlation_id,
                body: Body::Reply(r),
            }) => pending.complete(correlation_id, Ok(r)),
            Ok(Envelope {
                correlation_id,
                body: Body::Error(reason),
            }) => pending.complete(correlation_id, Err(reason)),
            Ok(Envelope {
                body: Body::Request(_),
                ..
            }) => {
                tracing::warn!(
                    peer,
                    "closing quorum connection: peer sent a request as a reply"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(peer, error = %e, "closing quorum connection: undecodable reply");
                break;
            }
        }
    }
    pending.close();
}

/// Accepts quorum connections on `listener` and hands their requests to `raft` until
/// `shutdown` resolves; then the listener and every connection are closed.
pub async fn serve_tcp(
    listener: TcpListener,
    receiver: Receiver,
    config: TcpTransportConfig,
    shutdown: impl Future<Output = ()>,
) {
    /// Pause after a failed accept (out of file descriptors...) instead of spinning.
    const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
    let admitted = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(parking_lot::Mutex::new(None::<Instant>));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let Ok(permit) = Arc::clone(&admitted).try_acquire_owned() else {
                        tracing::warn!(%addr, limit = config.max_connections, "quorum connection refused: too many");
                        continue;
                    };
                    let receiver = receiver.clone();
                    let config = config.clone();
                    let refusals = Arc::clone(&refusals);
                    connections.spawn(async move {
                        if let Some(stream) = secure_accepted(stream, addr, &config, &refusals).await {
                            serve_connection(stream, addr, receiver, &config).await;
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "quorum listener: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts every connection; dropping the listener closes the port.
}

/// Runs the listener's security handshake on an accepted connection; `None` (logged, at most
/// every [`REFUSAL_LOG_EVERY`] at warn level) when the peer is refused.
async fn secure_accepted(
    stream: TcpStream,
    addr: SocketAddr,
    config: &TcpTransportConfig,
    refusals: &parking_lot::Mutex<Option<Instant>>,
) -> Option<QuorumStream> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %e, "quorum connection: TCP_NODELAY not set");
    }
    let Some(security) = &config.security else {
        return Some(Box::new(stream));
    };
    let why = match tokio::time::timeout(HANDSHAKE_TIMEOUT, security.accept(stream, addr)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake in {HANDSHAKE_TIMEOUT:?}"),
    };
    let protocol = security.protocol();
    let mut last = refusals.lock();
    if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
        *last = Some(Instant::now());
        tracing::warn!(%addr, error = %why, "quorum connection refused: {protocol} handshake failed");
    } else {
        tracing::debug!(%addr, error = %why, "quorum connection refused: {protocol} handshake failed");
    }
    None
}

/// Serves one inbound connection: requests are handled concurrently (up to the in-flight
/// limit) and answered with the same correlation id. Bad input closes the connection.
async fn serve_connection(
    stream: QuorumStream,
    addr: SocketAddr,
    receiver: Receiver,
    config: &TcpTransportConfig,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (replies, rx) = mpsc::channel(config.max_in_flight_per_connection);
    let writer = tokio::spawn(write_frames(wr, rx, None));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight_per_connection));
    let mut handlers = JoinSet::new();
    loop {
        let payload = match read_frame(&mut rd, config.max_frame_bytes).await {
            Ok(Some(payload)) => payload,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "closing quorum connection: bad frame");
                break;
            }
        };
        let (correlation_id, rpc) = match decode(&payload) {
            Ok(Envelope {
                correlation_id,
                body: Body::Request(rpc),
            }) => (correlation_id, rpc),
            Ok(_) => {
                tracing::warn!(%addr, "closing quorum connection: a reply where a request belongs");
                break;
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "closing quorum connection: undecodable request");
                break;
            }
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let receiver = receiver.clone();
        let replies = replies.clone();
        let max_frame_bytes = config.max_frame_bytes;
        handlers.spawn(async move {
            let body = match serve(&receiver, rpc).await {
                Ok(reply) => Body::Reply(reply),
                Err(reason) => Body::Error(reason),
            };
            let envelope = Envelope {
                correlation_id,
                body,
            };
            let frame = encode(&envelope, max_frame_bytes).or_else(|e| {
                let body = Body::Error(format!("reply not encodable: {e}"));
                encode(
                    &Envelope {
                        correlation_id,
                        body,
                    },
                    max_frame_bytes,
                )
            });
            match frame {
                Ok(frame) => {
                    let _ = replies.send(frame).await;
                }
                Err(e) => tracing::warn!(%addr, error = %e, "quorum reply dropped"),
            }
            drop(permit);
        });
        while handlers.try_join_next().is_some() {}
    }
    // Requests still being served are abandoned with the connection: their sender re-sends.
    handlers.abort_all();
    writer.abort();
}
