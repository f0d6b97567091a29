//! One client connection: reads length-prefixed frames, handles requests one at a time in
//! arrival order (Kafka clients rely on in-order responses), and hands encoded responses to
//! a writer task so that writing one response overlaps handling the next.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use strom_protocol::frame::{complete_frame_len, FRAME_HEADER_LEN};
use strom_protocol::header::decode_request_header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::handlers;

/// Responses encoded but not yet written, per connection.
const MAX_QUEUED_RESPONSES: usize = 64;
/// Initial read buffer; grows to the largest frame seen (bounded by socket.request.max.bytes).
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<BytesMut>(MAX_QUEUED_RESPONSES);
    let writer_task = tokio::spawn(write_responses(writer, rx, peer));
    let max_frame = broker.config().socket_request_max_bytes().max(0) as usize;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    'conn: loop {
        // Handle every complete frame already buffered before reading more.
        loop {
            let len = match complete_frame_len(&buf, max_frame) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                    break 'conn;
                }
            };
            buf.advance(FRAME_HEADER_LEN);
            let frame = buf.split_to(len).freeze();
            let (header, body) = match decode_request_header(frame) {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                    break 'conn;
                }
            };
            let request = handlers::RequestContext { header, peer };
            match handlers::dispatch(&broker, &request, body).await {
                Ok(Some(response)) => {
                    if tx.send(response).await.is_err() {
                        break 'conn;
                    }
                }
                Ok(None) => {} // acks=0 produce: no response
                Err(e) => {
                    tracing::warn!(
                        %peer,
                        api_key = request.api_key,
                        api_version = request.api_version,
                        client_id = request.client_id.as_deref().unwrap_or(""),
                        error = %e,
                        "closing connection"
                    );
                    break 'conn;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER_BYTES);
        }
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<BytesMut>,
    peer: SocketAddr,
) {
    while let Some(response) = rx.recv().await {
        if let Err(e) = writer.write_all(&response).await {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}
