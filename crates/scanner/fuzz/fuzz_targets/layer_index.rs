//! Arbitrary bytes as a stored layer index: decoding must end in Ok or an error, never
//! panic, and what decodes must replay. The first byte picks the input as it is, or as
//! the record payload wrapped in a valid header and checksummed zstd frame (which random
//! bytes would almost never pass, leaving the record decoder unexercised).
#![no_main]

use std::io::Write;

use bulwark_scanner::{INDEX_FORMAT_VERSION, LayerIndex, Limits, inventory_from_layers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut out = b"BWLI".to_vec();
        out.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
        let mut encoder = zstd::Encoder::new(out, 1).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(rest).unwrap();
        encoder.finish().unwrap()
    };
    let limits = Limits {
        max_entries: 10_000,
        max_file_bytes: 1 << 20,
        max_total_read_bytes: 4 << 20,
        ..Limits::default()
    };
    if let Ok(index) = LayerIndex::from_bytes(&bytes, &limits) {
        let _ = inventory_from_layers(&[index], &limits);
    }
});
