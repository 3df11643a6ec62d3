//! Executables, streamed once and never held: an ELF file may carry Go build info
//! ([`super::go`]) or a cargo-auditable dependency list ([`super::rust`]); the first one
//! found, with the bytes that follow it, is what the walker keeps.

use std::io::{self, Read};

use super::{go, rust};

pub(crate) const ELF: &[u8] = b"\x7fELF";
const CHUNK: usize = 256 << 10;
/// Bytes a candidate needs after it to be recognized.
const LOOKAHEAD: usize = 256;

pub(crate) fn extract(file: &mut dyn Read, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut window = Vec::with_capacity(CHUNK + LOOKAHEAD);
    if (&mut *file).take(4).read_to_end(&mut window)? < 4 || window != ELF {
        return Ok(None);
    }
    // `window[0]` is at a 16-byte aligned file offset throughout, as Go's search needs.
    loop {
        let got = (&mut *file).take(CHUNK as u64).read_to_end(&mut window)?;
        // Look only where a candidate can be told apart, unless the file has ended.
        let end = if got == 0 {
            window.len()
        } else {
            window.len().saturating_sub(LOOKAHEAD)
        };
        let found = match (go::find(&window, end), rust::find(&window, end)) {
            (Some(g), Some(r)) if r < g => Some((r, rust::MAX_COMPRESSED)),
            (Some(g), _) => Some((g, go::MAX_INFO)),
            (None, Some(r)) => Some((r, rust::MAX_COMPRESSED)),
            (None, None) => None,
        };
        if let Some((at, size)) = found {
            window.drain(..at);
            (&mut *file)
                .take(size.saturating_sub(window.len()) as u64)
                .read_to_end(&mut window)?;
            window.truncate(size);
            return Ok(if go::is_build_info(&window) {
                go::complete(window)
            } else {
                rust::complete(&window, max)
            });
        }
        if got == 0 {
            return Ok(None);
        }
        let keep_from = end / 16 * 16;
        window.drain(..keep_from);
    }
}
