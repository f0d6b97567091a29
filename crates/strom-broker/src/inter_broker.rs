//! A small blocking inter-broker client: one request and its response over a fresh connection
//! to another broker's client listener, with a deadline. The transaction coordinator uses it to
//! send WriteTxnMarkers to partition leaders; the replica fetcher keeps its own long-lived
//! async connections (`replica_fetcher.rs`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// The largest response accepted (a marker response is a few bytes per partition).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Sends `request` as `api` v`version` to `host:port` and reads the response, each step
/// bounded by `timeout`.
pub(crate) fn call<Req, Resp>(
    host: &str,
    port: u16,
    api: ApiKey,
    version: i16,
    node_id: i32,
    request: &Req,
    timeout: Duration,
) -> std::io::Result<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{host}:{port} resolves to nothing")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let correlation_id = 1;
    let client_id = format!("strom-broker-{node_id}");
    let frame = encode_request(api, version, correlation_id, &client_id, request)?;
    stream.write_all(&frame)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; response_len(i32::from_be_bytes(len), MAX_RESPONSE_BYTES)?];
    stream.read_exact(&mut buf)?;
    decode_response(Bytes::from(buf), version, correlation_id)
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
