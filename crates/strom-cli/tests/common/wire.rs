//! A bare Kafka wire client for tests that need exact request versions and error codes:
//! one connection, one request at a time, messages from the `kafka-protocol` crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

pub struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
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

    /// Sends `req` as `key` v`version` and decodes the response of the same version.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        self.stream
            .write_all(&(body.len() as i32).to_be_bytes())
            .unwrap();
        self.stream.write_all(&body).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header_len = if key.response_header_version(version) >= 1 {
            5
        } else {
            4
        };
        assert_eq!(&frame[..4], &self.correlation.to_be_bytes());
        let _ = frame.split_to(header_len);
        Resp::decode(&mut frame, version).unwrap()
    }
}
