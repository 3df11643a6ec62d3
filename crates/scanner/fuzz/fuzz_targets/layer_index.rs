//! Arbitrary bytes as a stored layer index: decoding must end in Ok or an error, never
//! panic, and what decodes must replay.
#![no_main]

use bulwark_scanner::{LayerIndex, Limits, inventory_from_layers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_entries: 10_000,
        max_file_bytes: 1 << 20,
        max_total_read_bytes: 4 << 20,
        ..Limits::default()
    };
    if let Ok(index) = LayerIndex::from_bytes(data, &limits) {
        let _ = inventory_from_layers(&[index], &limits);
    }
});
