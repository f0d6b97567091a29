//! Fuzzes the produce path's storage side: arbitrary bytes appended to a partition log (on the
//! simulated disk), compacted or not, with each framed batch's length and CRC fixed up first so
//! the fuzzer reaches record validation, key checks and bounded decompression behind them.
//! Appends may fail; they must never panic, abort or allocate without bound, and whatever was
//! accepted must read back.
#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom_storage::{CleanupPolicy, Fs, LogConfig, ManualClock, PartitionLog, SimFs};

#[global_allocator]
static ALLOCATOR: strom_alloc::Guard = strom_alloc::Guard;

/// Offsets in a magic-2 batch (Kafka's layout).
const LENGTH: usize = 8;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const HEADER: usize = 61;

/// Sets each batch's length field to what follows (when the input says how long it is) and
/// its CRC32C to the bytes it covers.
fn fix_up(mut data: Vec<u8>, lengths: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    let mut lengths = lengths.iter();
    while pos + HEADER <= data.len() {
        let want = usize::from(*lengths.next().unwrap_or(&255)) * 8 + HEADER;
        let size = want.min(data.len() - pos);
        let batch_length = (size - 12) as i32;
        data[pos + LENGTH..pos + LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
        data[pos + 16] = 2; // magic
        let crc = crc32c::crc32c(&data[pos + ATTRIBUTES..pos + size]);
        data[pos + CRC..pos + CRC + 4].copy_from_slice(&crc.to_be_bytes());
        pos += size;
    }
    data
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let split = rest.len().min(usize::from(mode >> 4));
    let (lengths, body) = rest.split_at(split);
    let config = LogConfig {
        cleanup_policy: CleanupPolicy {
            compact: mode & 1 == 1,
            delete: mode & 2 == 2,
        },
        segment_bytes: 4096,
        max_message_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let fs: Arc<dyn Fs> = Arc::new(SimFs::new(u64::from(mode)));
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let log = PartitionLog::open_with_fs(PathBuf::from("/d/t-0"), config, clock, fs)
        .expect("open on the simulated disk");
    let body = if mode & 4 == 4 { fix_up(body.to_vec(), lengths) } else { body.to_vec() };
    for _ in 0..2 {
        if let Ok(info) = log.append(BytesMut::from(&body[..])) {
            let read = log.read(info.base_offset, 1 << 20, None).expect("read what was appended");
            assert!(read.slice.is_some(), "an accepted append reads back");
        }
    }
});
