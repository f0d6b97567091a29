//! The request decoders never panic or abort on any byte string, for every API and version
//! Strom advertises (STYLE.md #9). Run longer with PROPTEST_CASES=100000.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use proptest::prelude::*;

/// Declared array lengths from the wire are pre-allocated by the codec crate; the guard
/// allocator turns those into untouched address space instead of an abort.
#[global_allocator]
static ALLOCATOR: strom_alloc::Guard = strom_alloc::Guard;

fn api_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    let apis = strom_broker::supported_apis();
    (0..apis.len()).prop_flat_map(move |i| {
        let spec = apis[i];
        let min = spec.min_version.max(spec.key.valid_versions().min);
        (Just(spec.key), min..=spec.max_version)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bodies_decode_or_fail_cleanly(
        (api, version) in api_and_version(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = Bytes::from(body);
        let _ = RequestKind::decode(api, &mut bytes, version);
    }

    #[test]
    fn huge_array_lengths_are_refused_without_aborting(
        (api, version) in api_and_version(),
        prefix in proptest::collection::vec(any::<u8>(), 0..16),
        len in 0x1000_0000u32..=0x7fff_ffff,
    ) {
        let mut body = prefix;
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&[0xff; 8]);
        let mut bytes = Bytes::from(body);
        let _ = RequestKind::decode(api, &mut bytes, version);
    }
}
