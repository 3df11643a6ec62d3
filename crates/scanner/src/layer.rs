//! What one layer contributes to an image, computed without the other layers, so that it
//! is indexed once and reused by every image that shares the layer; and its storable
//! encoding.
//!
//! Encoding: `BWLI`, the format version (u32, little endian), then a zstd frame with a
//! content checksum of: the
//! digest, the walk counters, the removals (path, what) and the written files (path,
//! data), strings and numbers as LEB128 lengths/values, maps in path order.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::BitOr;

use crate::error::{Limit, Result, ScanError};
use crate::walker::{Limits, WalkStats};

/// Version of what [`LayerIndex::to_bytes`] writes and of what indexing keeps. Bump it
/// whenever either changes (the encoding, the walker, what `select` or an extractor
/// keeps): stored indexes of another version are refused and must be rebuilt.
pub const INDEX_FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 4] = b"BWLI";
/// zstd level: indexes are written once and read many times.
const ZSTD_LEVEL: i32 = 9;

/// What a layer removes at a path from the layers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hide(u8);

impl Hide {
    /// The file at the path itself.
    pub(crate) const FILE: Hide = Hide(1);
    /// Everything below the path ("" is the root).
    pub(crate) const CHILDREN: Hide = Hide(2);

    pub(crate) fn contains(self, other: Hide) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Hide {
    type Output = Hide;
    fn bitor(self, other: Hide) -> Hide {
        Hide(self.0 | other.0)
    }
}

/// One layer, indexed on its own: the kept files (or extracts) it writes and what it
/// removes from the layers below (whiteouts, opaque directories, entries replacing a lower
/// file or directory). Applying the indexes of an image's layers bottom-up
/// ([`crate::inventory_from_layers`]) gives the same tree as walking the layers in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerIndex {
    pub(crate) digest: String,
    /// Removals; they apply to lower layers only, never to this layer's own files.
    pub(crate) hidden: BTreeMap<String, Hide>,
    /// Kept files written by this layer (a later entry at the same path wins).
    pub(crate) written: BTreeMap<String, Vec<u8>>,
    pub(crate) stats: WalkStats,
}

impl LayerIndex {
    /// The layer's digest, as given when it was indexed.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The counters of the layer's walk.
    pub fn stats(&self) -> &WalkStats {
        &self.stats
    }

    /// Records a removal at `path`; returns the bytes newly held for it.
    pub(crate) fn hide(&mut self, path: &str, hide: Hide) -> u64 {
        match self.hidden.get_mut(path) {
            Some(h) => {
                *h = *h | hide;
                0
            }
            None => {
                self.hidden.insert(path.to_string(), hide);
                path.len() as u64
            }
        }
    }

    /// The storable encoding (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        put_bytes(&mut payload, self.digest.as_bytes());
        let s = &self.stats;
        for n in [
            s.entries,
            s.decompressed_bytes,
            s.files_read,
            s.bytes_read,
            s.clamped_paths,
        ] {
            put_uint(&mut payload, n);
        }
        put_uint(&mut payload, self.hidden.len() as u64);
        for (path, hide) in &self.hidden {
            put_bytes(&mut payload, path.as_bytes());
            payload.push(hide.0);
        }
        put_uint(&mut payload, self.written.len() as u64);
        for (path, data) in &self.written {
            put_bytes(&mut payload, path.as_bytes());
            put_bytes(&mut payload, data);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
        // A checksummed frame, so that a corrupt index is refused rather than misread.
        // Writing to memory cannot fail.
        let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL).expect("zstd encoder");
        encoder.include_checksum(true).expect("zstd parameter");
        encoder.write_all(&payload).expect("write to memory");
        encoder.finish().expect("write to memory")
    }

    /// Decodes [`LayerIndex::to_bytes`]. Another format version is
    /// [`ScanError::IndexVersion`]; anything not written by `to_bytes` is
    /// [`ScanError::Malformed`]; an index holding more than indexing within `limits`
    /// could have kept is [`ScanError::TooLarge`].
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<LayerIndex> {
        let malformed = |reason: &str| ScanError::malformed("layer index", reason);
        let (magic, rest) = bytes
            .split_at_checked(MAGIC.len())
            .ok_or_else(|| malformed("not a layer index"))?;
        let (version, frame) = rest
            .split_at_checked(4)
            .filter(|_| magic == MAGIC)
            .ok_or_else(|| malformed("not a layer index"))?;
        let found = u32::from_le_bytes(version.try_into().expect("4 bytes"));
        if found != INDEX_FORMAT_VERSION {
            return Err(ScanError::IndexVersion {
                found,
                supported: INDEX_FORMAT_VERSION,
            });
        }
        // The most an index within the limits encodes: the bytes it held plus, per
        // record (at most two per tar entry), two lengths and a flag.
        let max_payload = limits
            .max_total_read_bytes
            .saturating_add(limits.max_entries.saturating_mul(2 * 21))
            .saturating_add(1024);
        let mut payload = Vec::new();
        zstd::Decoder::new(frame)
            .and_then(|d| {
                d.take(max_payload.saturating_add(1))
                    .read_to_end(&mut payload)
            })
            .map_err(|e| malformed(&format!("corrupt compression: {e}")))?;
        if payload.len() as u64 > max_payload {
            return Err(ScanError::TooLarge {
                limit: Limit::TotalReadBytes,
                max: limits.max_total_read_bytes,
                context: "layer index".into(),
            });
        }
        decode(&payload, limits).map_err(|e| match e {
            Decode::Malformed(reason) => malformed(reason),
            Decode::TooLarge(limit, max, digest) => ScanError::TooLarge {
                limit,
                max,
                context: format!("layer index of {digest}"),
            },
        })
    }
}

enum Decode {
    Malformed(&'static str),
    TooLarge(Limit, u64, String),
}

fn decode(payload: &[u8], limits: &Limits) -> Result<LayerIndex, Decode> {
    let mut r = Reader(payload);
    let digest = r.string()?;
    let mut stats = WalkStats {
        entries: r.uint()?,
        decompressed_bytes: r.uint()?,
        files_read: r.uint()?,
        bytes_read: r.uint()?,
        clamped_paths: r.uint()?,
    };
    let too_large = |limit, max| Decode::TooLarge(limit, max, digest.clone());
    let max_records = limits.max_entries.saturating_mul(2);
    let mut held = 0u64;
    let mut hidden = BTreeMap::new();
    let count = r.uint()?;
    if count > max_records {
        return Err(too_large(Limit::Entries, limits.max_entries));
    }
    for _ in 0..count {
        let path = r.string()?;
        let hide = match r.byte()? {
            flags @ 1..=3 => Hide(flags),
            _ => return Err(Decode::Malformed("unknown removal")),
        };
        held += path.len() as u64;
        if hidden
            .last_key_value()
            .is_some_and(|(last, _)| *last >= path)
        {
            return Err(Decode::Malformed("removals out of order"));
        }
        hidden.insert(path, hide);
    }
    let mut written = BTreeMap::new();
    let count = r.uint()?;
    if count > max_records {
        return Err(too_large(Limit::Entries, limits.max_entries));
    }
    let mut data_bytes = 0u64;
    for _ in 0..count {
        let path = r.string()?;
        let data = r.bytes()?.to_vec();
        if data.len() as u64 > limits.max_file_bytes {
            return Err(too_large(Limit::FileBytes, limits.max_file_bytes));
        }
        held += (path.len() + data.len()) as u64;
        data_bytes += data.len() as u64;
        if written
            .last_key_value()
            .is_some_and(|(last, _)| *last >= path)
        {
            return Err(Decode::Malformed("files out of order"));
        }
        written.insert(path, data);
    }
    if !r.0.is_empty() {
        return Err(Decode::Malformed("trailing bytes"));
    }
    if held > limits.max_total_read_bytes {
        return Err(too_large(
            Limit::TotalReadBytes,
            limits.max_total_read_bytes,
        ));
    }
    // The image-wide byte count is checked against what the index really holds.
    stats.bytes_read = stats.bytes_read.max(data_bytes);
    Ok(LayerIndex {
        digest,
        hidden,
        written,
        stats,
    })
}

fn put_uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, data: &[u8]) {
    put_uint(out, data.len() as u64);
    out.extend_from_slice(data);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Decode> {
        let (&b, rest) = self.0.split_first().ok_or(Decode::Malformed("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, Decode> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Decode::Malformed("number too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Decode> {
        let len = usize::try_from(self.uint()?).map_err(|_| Decode::Malformed("truncated"))?;
        let (data, rest) = self
            .0
            .split_at_checked(len)
            .ok_or(Decode::Malformed("truncated"))?;
        self.0 = rest;
        Ok(data)
    }

    fn string(&mut self) -> Result<String, Decode> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Decode::Malformed("path is not UTF-8"))
    }
}
