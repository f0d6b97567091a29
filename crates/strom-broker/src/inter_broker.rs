//! A small blocking inter-broker client: one request and its response over a fresh connection
//! to another broker's inter-broker listener (secured as `security::outbound` says), with a
//! deadline. The transaction coordinator uses it to send WriteTxnMarkers to partition leaders;
//! the replica fetcher keeps its own long-lived connections (`replica_fetcher.rs`); both share
//! the frame encoding and decoding below.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// The largest response accepted (a marker response is a few bytes per partition).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Sends `request` as `api` v`version` to `host:port` and reads the response, each step
/// bounded by `timeout`, over a connection secured as the inter-broker listener is.
/// Blocking: called off the async runtime.
#[allow(clippy::too_many_arguments)]
pub(crate) fn call<Req, Resp>(
    outbound: &crate::security::outbound::Outbound,
    host: &str,
    port: u16,
    api: ApiKey,
    version: i16,
    node_id: i32,
    request: &Req,
    timeout: Duration,
) -> std::io::Result<Resp>
where
    Req: Encodable + HeaderVersion + Sync,
    Resp: Decodable + HeaderVersion + Send,
{
    let exchange = async {
        let mut stream = outbound.connect(host, port, node_id, timeout).await?;
        // Correlation ids 1.. went to SASL, if any: the request uses a fresh one.
        let correlation_id = 1_000;
        let client_id = format!("strom-broker-{node_id}");
        let frame = encode_request(api, version, correlation_id, &client_id, request)?;
        let answer = async {
            stream.write_all(&frame).await?;
            let len = response_len(stream.read_i32().await?, MAX_RESPONSE_BYTES)?;
            let mut buf = vec![0u8; len];
            stream.read_exact(&mut buf).await?;
            decode_response(Bytes::from(buf), version, correlation_id)
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            )),
        }
    };
    block_on(exchange)
}

/// Runs `f` to completion from blocking code: on the broker's runtime when there is a
/// multi-threaded one (the thread handed to blocking work first), else on a runtime of its
/// own in a scoped thread.
fn block_on<T: Send>(
    f: impl std::future::Future<Output = std::io::Result<T>> + Send,
) -> std::io::Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(f))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(f)
                })
                .join()
                .unwrap_or_else(|_| Err(invalid("the inter-broker call panicked".into())))
        }),
    }
}

fn invalid(e: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// A request frame: size, header (of the version `Req` needs) and body.
pub(crate) fn encode_request<Req: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &Req,
) -> std::io::Result<BytesMut> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_string(client_id.to_owned()));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .map_err(|e| invalid(e.to_string()))?;
    request
        .encode(&mut body, version)
        .map_err(|e| invalid(e.to_string()))?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The size prefix of a response frame, checked against `max`.
pub(crate) fn response_len(len: i32, max: usize) -> std::io::Result<usize> {
    usize::try_from(len)
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| invalid(format!("response frame of {len} bytes")))
}

/// A response frame (without its size prefix): header checked against `correlation_id`, then
/// the body.
pub(crate) fn decode_response<Resp: Decodable + HeaderVersion>(
    mut buf: Bytes,
    version: i16,
    correlation_id: i32,
) -> std::io::Result<Resp> {
    let header = ResponseHeader::decode(&mut buf, Resp::header_version(version))
        .map_err(|e| invalid(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(invalid(format!(
            "correlation id {} for request {correlation_id}",
            header.correlation_id
        )));
    }
    let response = Resp::decode(&mut buf, version).map_err(|e| invalid(e.to_string()))?;
    if buf.has_remaining() {
        tracing::trace!(
            extra = buf.remaining(),
            "bytes after an inter-broker response"
        );
    }
    Ok(response)
}
