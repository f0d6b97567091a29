//! One client connection: reads length-prefixed frames, handles requests one at a time in
//! arrival order (Kafka clients rely on in-order responses), and hands encoded responses to
//! a writer task so that writing one response overlaps handling the next.
//!
//! Produce acknowledgements are pipelined: a Produce whose answer waits (for its group-commit
//! fsync in durable mode, or for the ISR with acks=all) is appended, then its wait goes to the
//! writer in its place in the response order, and the connection handles the next request
//! while it waits. So a producer with several requests in flight (librdkafka's and Java's
//! `max.in.flight.requests.per.connection`) has them appended back to back and covered by one
//! fsync. At most `MAX_WAITING_ACKS` such answers wait per connection. Every other request is
//! a barrier: it is handled only once the waiting produce answers are decided, so a Fetch,
//! ListOffsets, EndTxn, Metadata or SASL exchange sees what it would see if requests were
//! handled strictly one at a time (e.g. the high watermark past an acks=all append).
//!
//! Memory per connection is bounded: a frame larger than the read buffer is read only once
//! the global request budget (`queued.max.request.bytes`) grants its size, and the next
//! request is handled only while less than `QUEUED_RESPONSE_BYTES` of responses wait to be
//! written (so at most that plus one response). Fetched records are not in those bytes: they
//! stay in the segment files and go to the socket from there (sendfile on plaintext listeners,
//! 64 KiB reads on TLS; see `socket_writer`). While either
//! waits, the socket is not read: the client feels TCP back-pressure, as with Kafka's muted
//! channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use strom_protocol::frame::{complete_frame_len, FRAME_HEADER_LEN};
use strom_protocol::header::decode_request_header;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::frame_pool::{FrameBuffer, FRAME_POOL};
use crate::handlers::{self, Answer, Handled};
use crate::limits::{RequestBudget, RequestPermit};
use crate::metrics::BrokerMetrics;
use crate::response::Response;
use crate::socket_writer::ResponseWriter;

/// Responses encoded but not yet written, per connection (a count bound for small ones).
const MAX_QUEUED_RESPONSES: usize = 64;
/// The next request is handled only while fewer bytes than this wait to be written.
const QUEUED_RESPONSE_BYTES: usize = 1024 * 1024;
/// Read buffer; frames that fit in it are read without asking the request budget (this
/// much per connection is outside `queued.max.request.bytes`, like Kafka's socket buffers).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Produce answers waiting for an fsync or the ISR, per connection. Five is what Kafka's
/// clients allow an idempotent producer (`max.in.flight.requests.per.connection` <= 5), so
/// such a producer never stalls on this bound; a few more lets non-idempotent librdkafka
/// producers (default 1,000,000 in flight) share an fsync among more requests. Each waiting
/// answer holds only its partitions' response fields (the records are appended already).
const MAX_WAITING_ACKS: usize = 8;
/// The API key of Produce, the one request whose answer may wait while the next is handled.
const PRODUCE: i16 = 0;

/// What the connection hands its writer, in request order: a response, or the wait for a
/// produce answer, which the writer awaits before writing anything after it.
enum Outgoing {
    Ready(Response),
    Waiting(std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>),
}

/// What a SASL listener's connection may send before it is authenticated: ApiVersions,
/// SaslHandshake, SaslAuthenticate.
const SASL_PHASE_APIS: [i16; 3] = [18, 17, 36];

/// The connection is to be closed (peer gone, shutdown, bad frame, failed handler); the
/// reason has been logged where it was found.
struct Closed;

/// The byte stream of a connection, in plain text or through TLS, split for the reader and
/// the writer task, with the principal the transport authenticated (a client certificate's
/// on mutual TLS, else anonymous).
pub(crate) struct Transport {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    writer: ResponseWriter,
    pub(crate) principal: Arc<str>,
    /// On SASL listeners: the client authenticates before anything else.
    pub(crate) sasl: Option<Arc<crate::security::sasl::SaslServer>>,
}

impl Transport {
    pub(crate) fn plain(stream: TcpStream) -> Transport {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        Transport {
            reader: Box::new(reader),
            writer: ResponseWriter::Plain(writer),
            principal: Arc::from(crate::security::ANONYMOUS),
            sasl: None,
        }
    }

    pub(crate) fn tls(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        principal: Arc<str>,
    ) -> Transport {
        let (reader, writer) = tokio::io::split(stream);
        Transport {
            reader: Box::new(reader),
            writer: ResponseWriter::Buffered(Box::new(writer)),
            principal,
            sasl: None,
        }
    }
}

pub(crate) async fn serve(
    broker: Arc<Broker>,
    transport: Transport,
    peer: SocketAddr,
    listener: Arc<str>,
    stop: watch::Receiver<bool>,
    budget: Arc<RequestBudget>,
) {
    let Transport {
        reader,
        writer,
        principal,
        sasl,
    } = transport;
    let sasl = sasl.map(|server| {
        Arc::new(parking_lot::Mutex::new(
            crate::security::sasl::SaslSession::new(server),
        ))
    });
    let (tx, rx) = mpsc::channel::<Outgoing>(MAX_QUEUED_RESPONSES);
    let queued = Arc::new(watch::Sender::new(0usize));
    let idle = broker
        .config()
        .connections_max_idle_ms()
        .map(Duration::from_millis);
    let metrics = broker.metrics().clone();
    let writer_task = tokio::spawn(write_responses(
        writer,
        rx,
        peer,
        queued.clone(),
        metrics.clone(),
        idle,
    ));
    let mut conn = Connection {
        max_frame: broker.config().socket_request_max_bytes().max(0) as usize,
        broker,
        reader,
        principal,
        sasl,
        peer,
        listener,
        stop,
        budget,
        tx,
        waiting: Arc::new(Semaphore::new(MAX_WAITING_ACKS)),
        queued: queued.clone(),
        idle,
        buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
        large: None,
        reserved: None,
        last_read: Instant::now(),
        authenticated: false,
    };
    conn.authenticated = conn.sasl.is_none();
    let _ = conn.run().await;
    drop(conn);
    let _ = writer_task.await;
    // What the writer did not write leaves the global gauge with the connection.
    metrics.response_bytes_queued.sub(*queued.borrow() as i64);
}

struct Connection {
    broker: Arc<Broker>,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Who the client is (`User:ANONYMOUS` until authenticated).
    principal: Arc<str>,
    /// The SASL exchange, on SASL listeners; `principal` is set from it once it succeeds.
    sasl: Option<Arc<parking_lot::Mutex<crate::security::sasl::SaslSession>>>,
    /// The SASL exchange succeeded (or there is none).
    authenticated: bool,
    peer: SocketAddr,
    /// The name of the listener this connection came in on.
    listener: Arc<str>,
    stop: watch::Receiver<bool>,
    budget: Arc<RequestBudget>,
    tx: mpsc::Sender<Outgoing>,
    /// One permit per produce answer waiting (`MAX_WAITING_ACKS`).
    waiting: Arc<Semaphore>,
    /// Bytes of responses handed to the writer and not yet written.
    queued: Arc<watch::Sender<usize>>,
    idle: Option<Duration>,
    max_frame: usize,
    /// What is read from the socket; frames are split off it and handled in place.
    buf: BytesMut,
    /// While a frame larger than the read buffer is read: `buf` is a buffer of the frame
    /// pool sized for it, and this holds the read buffer until the frame is handled.
    large: Option<LargeFrame>,
    /// Request budget taken for the frame being read, when it is larger than the buffer.
    reserved: Option<RequestPermit>,
    /// When the last read returned: every complete frame buffered arrived then (frames
    /// are handled before the next read), which starts its queue time.
    last_read: Instant,
}

/// A frame read into a buffer of its own (see `Connection::large`).
struct LargeFrame {
    /// The connection's read buffer, set aside (empty).
    read_buf: BytesMut,
    /// The pool buffer's bookkeeping; its memory is `Connection::buf` meanwhile.
    pooled: FrameBuffer,
    /// Size prefix included: reads stop there, so the buffer holds this frame alone.
    total: usize,
}

impl Connection {
    async fn run(&mut self) -> Result<(), Closed> {
        let mut last_request = Instant::now();
        loop {
            // Handle every complete frame already buffered before reading more.
            while let Some(len) = self.complete_frame()? {
                self.buf.advance(FRAME_HEADER_LEN);
                // Not frozen: a Produce's records are given their offsets in place.
                let frame = self.buf.split_to(len);
                let permit = self.reserved.take();
                self.wait_for_writer().await?;
                self.handle(frame, self.last_read).await?;
                drop(permit);
                self.end_large_frame();
                last_request = Instant::now();
            }
            if *self.stop.borrow() {
                return Ok(());
            }
            self.reserve_budget().await?;
            // A large frame's buffer has room for exactly the rest of it: read no further,
            // so that nothing of the next request shares its memory.
            let limit = match &self.large {
                Some(large) => large.total - self.buf.len(),
                None => {
                    if self.buf.capacity() - self.buf.len() < 4096 {
                        self.buf.reserve(READ_BUFFER_BYTES);
                    }
                    usize::MAX
                }
            };
            let mut into = (&mut self.buf).limit(limit);
            let idle_deadline = self.idle.map(|d| last_request + d);
            let idle_timer = async move {
                match idle_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.reader.read_buf(&mut into) => match read {
                    Ok(0) => return Ok(()),
                    Ok(_) => self.last_read = Instant::now(),
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "read failed");
                        return Ok(());
                    }
                },
                _ = self.stop.changed() => return Ok(()),
                // The writer ended (a failed write, or an answer that closes the connection).
                _ = self.tx.closed() => return Ok(()),
                _ = idle_timer => {
                    self.broker.metrics().idle_connections_closed_total.inc();
                    tracing::debug!(peer = %self.peer, "closing connection idle for connections.max.idle.ms");
                    return Ok(());
                }
            }
        }
    }

    /// The length of the first buffered frame once it is complete.
    fn complete_frame(&self) -> Result<Option<usize>, Closed> {
        complete_frame_len(&self.buf, self.max_frame).map_err(|e| {
            tracing::warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
            Closed
        })
    }

    /// Before reading the body of a frame that does not fit the read buffer, takes its size
    /// from the global request budget (waiting, without reading, while there is none), then
    /// moves what is buffered of it (only this frame: the ones before it were handled) into a
    /// buffer from the frame pool with room for all of it, where the rest is read.
    async fn reserve_budget(&mut self) -> Result<(), Closed> {
        if self.reserved.is_some() || self.buf.len() < FRAME_HEADER_LEN {
            return Ok(());
        }
        // The prefix was checked against socket.request.max.bytes by complete_frame.
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let total = FRAME_HEADER_LEN + len as usize;
        if total <= READ_BUFFER_BYTES {
            return Ok(());
        }
        let permit = match self.budget.try_acquire(total) {
            Some(permit) => permit,
            None => {
                self.broker.metrics().request_budget_waits_total.inc();
                tracing::debug!(peer = %self.peer, bytes = total, "waiting for queued.max.request.bytes budget");
                tokio::select! {
                    permit = self.budget.acquire(total) => permit,
                    _ = self.stop.changed() => return Err(Closed),
                }
            }
        };
        self.reserved = Some(permit);
        let mut pooled = FRAME_POOL.take(total);
        let mut frame_buf = std::mem::take(&mut pooled.buf);
        frame_buf.extend_from_slice(&self.buf);
        self.buf.clear();
        let read_buf = std::mem::replace(&mut self.buf, frame_buf);
        self.large = Some(LargeFrame {
            read_buf,
            pooled,
            total,
        });
        Ok(())
    }

    /// After a large frame is handled (its records written): its buffer goes back to the
    /// pool and reading goes on in the read buffer.
    fn end_large_frame(&mut self) {
        if let Some(LargeFrame {
            read_buf,
            mut pooled,
            ..
        }) = self.large.take()
        {
            debug_assert!(self.buf.is_empty(), "a large frame's buffer holds it alone");
            pooled.buf = std::mem::replace(&mut self.buf, read_buf);
            FRAME_POOL.put(pooled);
        }
    }

    /// Waits until the responses queued for writing are below `QUEUED_RESPONSE_BYTES`.
    async fn wait_for_writer(&mut self) -> Result<(), Closed> {
        let mut queued = self.queued.subscribe();
        tokio::select! {
            _ = queued.wait_for(|q| *q < QUEUED_RESPONSE_BYTES) => Ok(()),
            _ = self.tx.closed() => Err(Closed),
            _ = self.stop.changed() => Err(Closed),
        }
    }

    /// A Produce waits for a free slot among `MAX_WAITING_ACKS`; any other request waits until
    /// every waiting produce answer is decided (see the module doc).
    async fn wait_for_acks(
        &mut self,
        api_key: i16,
    ) -> Result<Option<OwnedSemaphorePermit>, Closed> {
        let wanted = if api_key == PRODUCE {
            1
        } else {
            MAX_WAITING_ACKS as u32
        };
        let permits = tokio::select! {
            permits = self.waiting.clone().acquire_many_owned(wanted) => permits.map_err(|_| Closed)?,
            _ = self.tx.closed() => return Err(Closed),
            _ = self.stop.changed() => return Err(Closed),
        };
        Ok((api_key == PRODUCE).then_some(permits))
    }

    /// Over its quota, a client's connection reads nothing for `ms` (Kafka mutes the channel
    /// for the throttle time, KIP-219).
    async fn mute(&mut self, ms: u32) -> Result<(), Closed> {
        if ms == 0 {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(u64::from(ms))) => Ok(()),
            _ = self.stop.changed() => Err(Closed),
        }
    }

    async fn handle(&mut self, frame: BytesMut, received: Instant) -> Result<(), Closed> {
        let peer = self.peer;
        let (header, body) = decode_request_header(frame).map_err(|e| {
            tracing::warn!(%peer, error = %e, "closing connection: bad request header");
            Closed
        })?;
        if !self.authenticated && !SASL_PHASE_APIS.contains(&header.api_key) {
            tracing::warn!(%peer, listener = %self.listener, api_key = header.api_key, "request before SASL authentication; closing connection");
            return Err(Closed);
        }
        if self.authenticated
            && !SASL_PHASE_APIS.contains(&header.api_key)
            && self.sasl.as_ref().is_some_and(|s| s.lock().expired())
        {
            tracing::info!(%peer, listener = %self.listener, principal = %self.principal, "SASL session expired without re-authentication (connections.max.reauth.ms); closing connection");
            return Err(Closed);
        }
        let slot = self.wait_for_acks(header.api_key).await?;
        let request = handlers::RequestContext {
            header,
            peer,
            listener: self.listener.clone(),
            principal: self.principal.clone(),
            sasl: self.sasl.clone(),
            throttle_ms: Default::default(),
            close_after: Default::default(),
        };
        let started = Instant::now();
        let (result, remote) = crate::metrics::measure_remote(handlers::dispatch_pipelined(
            &self.broker,
            &request,
            body,
        ))
        .await;
        if !matches!(result, Ok(Handled::Waiting(_))) {
            self.broker.metrics().observe_request(
                request.api_key,
                started - received,
                started.elapsed(),
                remote,
                result.is_err(),
            );
        }
        self.broker
            .metrics()
            .count_version(request.api_key, request.api_version);
        // request_percentage: the time spent on this request here (not waiting for the ISR
        // or new records), as Kafka counts request handler time. The SASL exchange is exempt.
        if !SASL_PHASE_APIS.contains(&request.api_key) {
            let local = started.elapsed().saturating_sub(remote);
            request.charge_quota(
                &self.broker,
                crate::client_quotas::QuotaKind::Request,
                local.as_micros() as u64,
            );
        }
        // The SASL exchange moved on: take its principal, or close after a failure.
        let mut sasl_failed = false;
        if !self.authenticated {
            if let Some(session) = &self.sasl {
                let session = session.lock();
                if let Some(principal) = session.principal() {
                    self.principal = Arc::from(principal);
                    self.authenticated = true;
                    tracing::debug!(%peer, principal, "SASL authenticated");
                }
                sasl_failed = session.failed();
            }
        }
        let throttle = request
            .throttle_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(Handled::Waiting(wait)) => {
                // The answer is observed when decided; its slot is freed then.
                let metrics = self.broker.metrics().clone();
                let api_key = request.api_key;
                let wait = async move {
                    let (answer, waited) = crate::metrics::measure_remote(wait).await;
                    metrics.observe_request(
                        api_key,
                        started - received,
                        started.elapsed(),
                        remote + waited,
                        answer.result.is_err(),
                    );
                    drop(slot);
                    answer
                };
                self.tx
                    .send(Outgoing::Waiting(Box::pin(wait)))
                    .await
                    .map_err(|_| Closed)?;
                self.mute(throttle).await
            }
            Ok(Handled::Ready(Some(response))) => {
                let len = response.buffered_len();
                self.queued.send_modify(|q| *q += len);
                self.broker.metrics().response_bytes_queued.add(len as i64);
                self.tx
                    .send(Outgoing::Ready(response))
                    .await
                    .map_err(|_| Closed)?;
                if sasl_failed {
                    return Err(Closed);
                }
                if request
                    .close_after
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!(%peer, client_id = request.client_id.as_deref().unwrap_or(""), "closing the connection: this broker is cut off from the controller and sent the client to look for the new leader elsewhere");
                    return Err(Closed);
                }
                self.mute(throttle).await
            }
            // acks=0 produce: no response
            Ok(Handled::Ready(None)) => self.mute(throttle).await,
            Err(e) => {
                tracing::warn!(
                    %peer,
                    principal = %request.principal,
                    api_key = request.api_key,
                    api_version = request.api_version,
                    client_id = request.client_id.as_deref().unwrap_or(""),
                    error = %e,
                    "closing connection"
                );
                Err(Closed)
            }
        }
    }
}

/// Writes responses in order, awaiting each waiting produce answer in its turn. A response
/// that cannot be written within `connections.max.idle.ms` (the client stopped reading)
/// closes the connection.
async fn write_responses(
    mut writer: ResponseWriter,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    queued: Arc<watch::Sender<usize>>,
    metrics: Arc<BrokerMetrics>,
    idle: Option<Duration>,
) {
    while let Some(outgoing) = rx.recv().await {
        let (response, close_after) = match outgoing {
            Outgoing::Ready(response) => (response, false),
            Outgoing::Waiting(wait) => match wait.await {
                Answer {
                    result: Ok(Some(response)),
                    close_after,
                } => {
                    let len = response.buffered_len();
                    queued.send_modify(|q| *q += len);
                    metrics.response_bytes_queued.add(len as i64);
                    (response, close_after)
                }
                Answer {
                    result: Ok(None), ..
                } => continue,
                Answer { result: Err(e), .. } => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break;
                }
            },
        };
        let len = response.buffered_len();
        let write = writer.write_response(response, &metrics);
        let written = match idle {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
            None => write.await,
        };
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
        queued.send_modify(|q| *q -= len);
        metrics.response_bytes_queued.sub(len as i64);
        if close_after {
            tracing::info!(%peer, "closing the connection: this broker is cut off from the controller and sent the client to look for the new leader elsewhere");
            break;
        }
    }
    let _ = writer.shutdown().await;
}
