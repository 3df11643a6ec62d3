//! Arbitrary bytes as a layer (any compression): the walker must end in Ok or an error,
//! within small limits, never panic.
#![no_main]

use bulwark_scanner::{Limits, index_layers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_layer_bytes: 16 << 20,
        max_entries: 10_000,
        max_file_bytes: 1 << 20,
        max_total_read_bytes: 4 << 20,
        max_header_bytes: 64 << 10,
        ..Limits::default()
    };
    let _ = index_layers([("sha256:fuzz".to_string(), data)], &limits);
});
