//! Fuzzes the request path's decoders: the request header, then the body of whatever API and
//! version it names, as the broker's connection does. Nothing may panic or abort.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use libfuzzer_sys::fuzz_target;
use strom_protocol::header::decode_request_header;

/// The broker's allocator: declared array lengths become untouched address space.
#[global_allocator]
static ALLOCATOR: strom_alloc::Guard = strom_alloc::Guard;

fuzz_target!(|data: &[u8]| {
    let Ok((header, mut body)) = decode_request_header(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(api) = ApiKey::try_from(header.api_key) else {
        return;
    };
    let _ = RequestKind::decode(api, &mut body, header.api_version);
});
