//! Rust binaries built with cargo-auditable: the dependency list it embeds (a zlib
//! stream of `{"packages":[{"name","version","source","kind",…}]}` in a `.dep-v0`
//! section). Section headers come last in an ELF file, too late for a stream, so
//! [`super::binary`] tries each zlib header it passes and keeps the one whose first
//! bytes inflate to that JSON.

use std::io::Read;

use flate2::{Decompress, FlushDecompress};
use serde::Deserialize;

use super::Entry;

/// cargo-auditable compresses at level 7: the zlib header is 78 DA.
const ZLIB: [u8; 2] = [0x78, 0xda];
const PREFIX: &[u8] = b"{\"packages\":";
/// Dependency lists are tens of KiB; bound the stream and its JSON well above that.
pub(super) const MAX_COMPRESSED: usize = 1 << 20;
const MAX_JSON: u64 = 8 << 20;

pub fn is_dependency_list(data: &[u8]) -> bool {
    data.starts_with(PREFIX)
}

/// The first zlib stream starting before `end` whose output begins like the list.
pub(super) fn find(window: &[u8], end: usize) -> Option<usize> {
    let end = end.min(window.len().saturating_sub(1));
    (0..end).find(|&i| {
        window[i..].starts_with(&ZLIB) && {
            let mut out = [0u8; 12];
            let input = &window[i..window.len().min(i + 256)];
            Decompress::new(true)
                .decompress(input, &mut out, FlushDecompress::None)
                .is_ok()
                && out.as_slice() == PREFIX
        }
    })
}

/// The inflated JSON, from bytes starting at its zlib stream.
pub(super) fn complete(stream: &[u8], max: u64) -> Option<Vec<u8>> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(stream)
        .take(MAX_JSON.min(max))
        .read_to_end(&mut json)
        .ok()?;
    Some(json)
}

#[derive(Deserialize)]
struct List {
    packages: Vec<Crate>,
}

#[derive(Deserialize)]
struct Crate {
    name: String,
    version: String,
    source: Option<String>,
    kind: Option<String>,
}

/// The crates from crates.io that are compiled into the binary (build dependencies and
/// path or git crates are left out: advisories are about published runtime crates).
pub(crate) fn parse(data: &[u8]) -> Vec<Entry> {
    let Ok(list) = serde_json::from_slice::<List>(data) else {
        return Vec::new();
    };
    list.packages
        .into_iter()
        .filter(|c| c.source.as_deref() == Some("crates.io") && c.kind.as_deref() != Some("build"))
        .map(|c| Entry {
            name: c.name,
            version: c.version,
            source_name: None,
            source_version: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::binary::{ELF, extract};
    use std::io::Write;

    #[test]
    fn finds_the_dependency_list_in_a_stream() {
        let json = br#"{"packages":[{"name":"app","version":"0.1.0","source":"local","root":true},{"name":"smallvec","version":"1.6.0","source":"crates.io","dependencies":[]},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"}]}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(7));
        z.write_all(json).unwrap();
        let stream = z.finish().unwrap();
        assert_eq!(stream[..2], ZLIB);
        let mut binary = ELF.to_vec();
        // A decoy zlib header, then filler past the first chunk, then the list.
        binary.extend_from_slice(&[0x78, 0xda, 1, 2, 3]);
        binary.resize(300_001, 0x42);
        binary.extend_from_slice(&stream);
        binary.extend_from_slice(&[0; 64]);
        let kept = extract(&mut binary.as_slice(), 1 << 20).unwrap().unwrap();
        assert!(is_dependency_list(&kept));
        let e: Vec<(String, String)> = parse(&kept)
            .into_iter()
            .map(|e| (e.name, e.version))
            .collect();
        assert_eq!(e, [("smallvec".to_string(), "1.6.0".to_string())]);
    }
}
