//! A bare Kafka wire client for tests that need exact request versions and error codes:
//! one connection, one request at a time, messages from the `kafka-protocol` crate.
//! `request_frame` and `read_response` serve tests that pipeline by hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

pub struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
    /// InitProducerId v4 for an idempotent (non-transactional) producer: (id, epoch).
    pub fn init_producer_id(&mut self) -> (i64, i16) {
        let r: InitProducerIdResponse = self.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        );
        assert_eq!(r.error_code, 0, "InitProducerId");
        (r.producer_id.0, r.producer_epoch)
    }

    pub fn connect(bootstrap: &str) -> Wire {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Wire {
            stream,
            correlation: 0,
        }
    }

    /// Writes a raw frame and reports whether the broker closed the connection instead of
    /// answering (EOF or a reset within the read timeout).
    pub fn send_raw_and_expect_close(&mut self, frame: &[u8]) -> bool {
        if self.stream.write_all(frame).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// Sends `req` as `key` v`version` and decodes the response of the same version.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation += 1;
        let frame = request_frame(key, version, self.correlation, req);
        self.stream.write_all(&frame).unwrap();
        let (correlation, resp) = read_response(&mut self.stream, key, version);
        assert_eq!(correlation, self.correlation);
        resp
    }
}

/// `req` as `key` v`version` with `correlation`, as one frame with its length prefix.
pub fn request_frame<Req: Encodable>(
    key: ApiKey,
    version: i16,
    correlation: i32,
    req: &Req,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation;
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Reads one response frame of `key` v`version`: its correlation id and decoded body.
pub fn read_response<Resp: Decodable>(
    stream: &mut impl Read,
    key: ApiKey,
    version: i16,
) -> (i32, Resp) {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).unwrap();
    let mut frame = Bytes::from(frame);
    let header_len = if key.response_header_version(version) >= 1 {
        5
    } else {
        4
    };
    let correlation = i32::from_be_bytes(frame[..4].try_into().unwrap());
    let _ = frame.split_to(header_len);
    (correlation, Resp::decode(&mut frame, version).unwrap())
}
