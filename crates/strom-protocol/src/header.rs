//! Request and response headers (Kafka protocol guide, "Headers"): request header v1 is
//! key, version, correlation id and client id; v2 adds tagged fields. Response header v0 is
//! the correlation id; v1 adds tagged fields. Bodies are left as bytes for the caller.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use thiserror::Error;

/// A decoded request header; `body` is the rest of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Why a request header could not be read; the connection is closed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("request header truncated")]
    Truncated,
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("client id is not valid UTF-8")]
    InvalidClientId,
    #[error("malformed tagged fields in request header")]
    MalformedTaggedFields,
}

/// Maximum number of tagged fields accepted in a header; real clients send none.
const MAX_HEADER_TAGS: u32 = 64;

/// Splits a request frame body into its header and the message body (a `Bytes`, or a
/// `BytesMut` when the body is to be modified in place, as a Produce's records are).
pub fn decode_request_header<B: Buf>(mut frame: B) -> Result<(RequestHeader, B), HeaderError> {
    if frame.remaining() < 8 {
        return Err(HeaderError::Truncated);
    }
    let api_key = frame.get_i16();
    let api_version = frame.get_i16();
    let correlation_id = frame.get_i32();
    let key = ApiKey::try_from(api_key).map_err(|_| HeaderError::UnknownApiKey {
        api_key,
        correlation_id,
    })?;
    let header_version = key.request_header_version(api_version);
    let client_id = if header_version >= 1 {
        read_nullable_string(&mut frame)?
    } else {
        None
    };
    if header_version >= 2 {
        skip_tagged_fields(&mut frame)?;
    }
    let header = RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
    };
    Ok((header, frame))
}

fn read_nullable_string(buf: &mut impl Buf) -> Result<Option<String>, HeaderError> {
    if buf.remaining() < 2 {
        return Err(HeaderError::Truncated);
    }
    let len = buf.get_i16();
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return Err(HeaderError::Truncated);
    }
    let mut raw = vec![0; len];
    buf.copy_to_slice(&mut raw);
    String::from_utf8(raw)
        .map(Some)
        .map_err(|_| HeaderError::InvalidClientId)
}

/// Reads an unsigned varint (at most 5 bytes for a u32).
pub fn read_unsigned_varint(buf: &mut impl Buf) -> Option<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn skip_tagged_fields(buf: &mut impl Buf) -> Result<(), HeaderError> {
    let count = read_unsigned_varint(buf).ok_or(HeaderError::MalformedTaggedFields)?;
    if count > MAX_HEADER_TAGS {
        return Err(HeaderError::MalformedTaggedFields);
    }
    for _ in 0..count {
        read_unsigned_varint(buf).ok_or(HeaderError::MalformedTaggedFields)?;
        let size = read_unsigned_varint(buf).ok_or(HeaderError::MalformedTaggedFields)? as usize;
        if buf.remaining() < size {
            return Err(HeaderError::MalformedTaggedFields);
        }
        buf.advance(size);
    }
    Ok(())
}

/// Why a response could not be encoded: a bug (a field this version cannot carry).
#[derive(Debug, Error)]
#[error("cannot encode {api:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a whole response frame: size prefix, response header, body.
pub fn encode_response<R: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut, EncodeError> {
    let header_version = api.response_header_version(version);
    encode_response_with_header_version(api, version, header_version, correlation_id, body)
}

/// As [`encode_response`] with an explicit header version (the ApiVersions v0 fallback).
pub fn encode_response_with_header_version<R: Encodable>(
    api: ApiKey,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut, EncodeError> {
    let err = |e: anyhow::Error| EncodeError {
        api,
        version,
        reason: e.to_string(),
    };
    let body_len = body.compute_size(version).map_err(err)?;
    let header_len = if header_version >= 1 { 5 } else { 4 };
    let mut out = BytesMut::with_capacity(4 + header_len + body_len);
    out.put_i32((header_len + body_len) as i32);
    out.put_i32(correlation_id);
    if header_version >= 1 {
        out.put_u8(0); // no tagged fields
    }
    body.encode(&mut out, version).map_err(err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::ApiVersionsResponse;

    fn frame(api_key: i16, version: i16, client: Option<&str>, flexible: bool) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(api_key);
        b.put_i16(version);
        b.put_i32(42);
        match client {
            Some(c) => {
                b.put_i16(c.len() as i16);
                b.put_slice(c.as_bytes());
            }
            None => b.put_i16(-1),
        }
        if flexible {
            b.put_u8(0);
        }
        b.put_slice(b"body");
        b.freeze()
    }

    #[test]
    fn decodes_v1_and_v2_headers() {
        let (h, body) = decode_request_header(frame(3, 4, Some("rdkafka"), false)).unwrap();
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (3, 4, 42));
        assert_eq!(h.client_id.as_deref(), Some("rdkafka"));
        assert_eq!(&body[..], b"body");
        let (h, body) = decode_request_header(frame(3, 12, None, true)).unwrap();
        assert_eq!(h.client_id, None);
        assert_eq!(&body[..], b"body");
    }

    #[test]
    fn unknown_key_and_truncation_are_errors() {
        assert!(matches!(
            decode_request_header(frame(999, 0, None, false)),
            Err(HeaderError::UnknownApiKey { api_key: 999, .. })
        ));
        assert_eq!(
            decode_request_header(Bytes::from_static(&[0, 3, 0])),
            Err(HeaderError::Truncated)
        );
        let mut f = BytesMut::new();
        f.put_i16(3);
        f.put_i16(4);
        f.put_i32(1);
        f.put_i16(100); // client id longer than the frame
        assert_eq!(
            decode_request_header(f.freeze()),
            Err(HeaderError::Truncated)
        );
    }

    #[test]
    fn response_frame_has_size_and_correlation_id() {
        let body = ApiVersionsResponse::default();
        let out = encode_response(ApiKey::ApiVersions, 3, 7, &body).unwrap();
        let size = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(size, out.len() - 4);
        assert_eq!(&out[4..8], &7i32.to_be_bytes());
    }

    proptest::proptest! {
        #[test]
        fn header_decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_request_header(Bytes::from(bytes));
        }
    }
}
