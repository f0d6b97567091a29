//! Fuzz target: every record-batch parser in strom-protocol over arbitrary bytes (splitting,
//! header/CRC validation, record and header iteration) must return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strom_protocol::record_batch::fuzz_one(data);
});
