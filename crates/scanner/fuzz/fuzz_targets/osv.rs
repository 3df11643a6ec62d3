//! Arbitrary bytes as OSV JSON / JSON lines.
#![no_main]

use bulwark_scanner::Database;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut db = Database::new();
    let _ = db.add_json("fuzz", data);
});
