//! The layer walker: reads each layer on its own into a [`LayerIndex`] (keeping in memory
//! only the files a scanner asked for, or the part of them it extracts while they stream
//! by), then applies the indexes in order into a [`FileTree`], as a container runtime
//! would apply the layers.
//!
//! Nothing is ever written to disk and no path is ever resolved on the host: every tar
//! path is normalized into a virtual tree rooted at `/` (`..` stops at the root, leading
//! `/` and `./` are dropped). Symlinks are never followed; a hard link is resolved only
//! to a file read earlier from the same layer. Whiteouts (`.wh.<name>`) and opaque
//! directories (`.wh..wh..opq`) hide what lower layers wrote, and so does any entry of
//! an upper layer at the same path (a file also hides a lower directory's contents).
//!
//! Every resource a hostile layer could exhaust has a limit in [`Limits`]; crossing one
//! stops the walk with [`ScanError::TooLarge`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::rc::Rc;

use tar::{EntryType, PaxExtensions};

use crate::error::{Limit, Result, ScanError};
use crate::layer::{Hide, LayerIndex};

/// Bounds on what one image may make the walker do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Layers per image.
    pub max_layers: u64,
    /// Decompressed bytes per layer: stops decompression bombs.
    pub max_layer_bytes: u64,
    /// Tar entries per layer (extension headers count too).
    pub max_entries: u64,
    /// Size of one file read into memory (package databases can be tens of MiB).
    pub max_file_bytes: u64,
    /// All the bytes read into memory from one image, every layer's versions included;
    /// within one layer, the paths its index records count too.
    pub max_total_read_bytes: u64,
    /// One PAX extended header or GNU long name/link, which the walker buffers.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layers: 1_000,
            max_layer_bytes: 16 << 30,
            max_entries: 1_000_000,
            max_file_bytes: 256 << 20,
            max_total_read_bytes: 1 << 30,
            max_header_bytes: 1 << 20,
        }
    }
}

/// The bytes one layer wrote at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// Index of the layer in [`FileTree::layers`].
    pub layer: usize,
    pub data: Vec<u8>,
}

/// Counters of one walk, for reports and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub entries: u64,
    pub decompressed_bytes: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    /// Entries whose `..` components tried to climb above the root.
    pub clamped_paths: u64,
}

/// The wanted files of the final image, each with the versions the layers wrote.
#[derive(Debug, Default)]
pub struct FileTree {
    /// Layer digests, in the order they were applied.
    pub layers: Vec<String>,
    /// Normalized path (no leading `/`) → versions, oldest first. A version is dropped
    /// when an upper layer deletes or replaces the file by something else, so the list
    /// is the unbroken history of the file as it is in the final image.
    files: BTreeMap<String, Vec<FileVersion>>,
    pub stats: WalkStats,
}

impl FileTree {
    /// The file as it is in the final image.
    pub fn get(&self, path: &str) -> Option<&FileVersion> {
        self.files.get(path).and_then(|v| v.last())
    }

    /// Every version of the file since it was last created, oldest first.
    pub fn history(&self, path: &str) -> &[FileVersion] {
        self.files.get(path).map_or(&[], Vec::as_slice)
    }

    /// Paths of the files present in the final image, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The digest of the layer at `index`.
    pub fn layer_digest(&self, index: usize) -> &str {
        &self.layers[index]
    }

    /// Applies the next layer on top of those applied before: its removals first (they
    /// concern lower layers only), then the files it wrote. The image-wide limits (layer
    /// count, bytes held) are checked here.
    pub fn apply(&mut self, layer: LayerIndex, limits: &Limits) -> Result<()> {
        if self.layers.len() as u64 >= limits.max_layers {
            return Err(ScanError::TooLarge {
                limit: Limit::Layers,
                max: limits.max_layers,
                context: "image".into(),
            });
        }
        self.stats.add(&layer.stats);
        if self.stats.bytes_read > limits.max_total_read_bytes {
            return Err(ScanError::TooLarge {
                limit: Limit::TotalReadBytes,
                max: limits.max_total_read_bytes,
                context: format!("layer {}", layer.digest),
            });
        }
        for (path, hide) in &layer.hidden {
            if hide.contains(Hide::FILE) {
                self.files.remove(path);
            }
            if hide.contains(Hide::CHILDREN) {
                self.hide_children(path);
            }
        }
        let index = self.layers.len();
        self.layers.push(layer.digest);
        for (path, data) in layer.written {
            self.files
                .entry(path)
                .or_default()
                .push(FileVersion { layer: index, data });
        }
        Ok(())
    }

    /// Removes everything below directory `dir` ("" is the root).
    fn hide_children(&mut self, dir: &str) {
        if dir.is_empty() {
            self.files.clear();
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in doomed {
            self.files.remove(&key);
        }
    }
}

impl WalkStats {
    fn add(&mut self, other: &WalkStats) {
        self.entries += other.entries;
        self.decompressed_bytes += other.decompressed_bytes;
        self.files_read += other.files_read;
        self.bytes_read += other.bytes_read;
        self.clamped_paths += other.clamped_paths;
    }
}

/// What the walker keeps of a regular file.
#[derive(Clone, Copy)]
pub enum Keep {
    Nothing,
    /// The whole file (a package database, a manifest), up to `max_file_bytes`.
    Whole,
    /// What the extractor takes from the file's stream: a small part of a large file (a
    /// Go binary's build info, a jar's `pom.properties`), so that the file itself is
    /// never held. `None` keeps nothing.
    Extract(Extractor),
}

/// Reads what it needs from a file's bytes; its result is limited to `max` bytes.
pub type Extractor = fn(file: &mut dyn Read, max: u64) -> io::Result<Option<Vec<u8>>>;

/// Decides from a normalized path and its permission bits what to keep of a file.
pub type Selector<'a> = &'a dyn Fn(&str, u32) -> Keep;

/// Reads one layer on its own: a gzip, zstd or uncompressed tar stream, told apart by its
/// first bytes (media types lie often enough that magic bytes are the safer guide).
pub fn index_layer(
    digest: &str,
    reader: impl Read,
    limits: &Limits,
    select: Selector<'_>,
) -> Result<LayerIndex> {
    let (head, reader) = peek(reader, 6).map_err(|e| layer_err(digest, e))?;
    let stream: Box<dyn Read + '_> = match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
            reader,
        ))),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::Decoder::new(reader).map_err(|e| layer_err(digest, e))?)
        }
        [b'B', b'Z', b'h', ..] => return Err(unsupported_compression(digest, "bzip2")),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => {
            return Err(unsupported_compression(digest, "xz"));
        }
        _ => Box::new(reader),
    };
    let counted = Rc::new(Cell::new(0u64));
    let capped = Capped {
        inner: stream,
        count: counted.clone(),
        max: limits.max_layer_bytes,
    };
    let mut layer = LayerIndex {
        digest: digest.to_string(),
        hidden: BTreeMap::new(),
        written: BTreeMap::new(),
        stats: WalkStats::default(),
    };
    let result = walk_tar(&mut layer, capped, limits, select);
    layer.stats.decompressed_bytes = counted.get();
    result.map_err(|e| match e {
        WalkError::Scan(e) => e,
        WalkError::Io(_) if counted.get() > limits.max_layer_bytes => ScanError::TooLarge {
            limit: Limit::LayerBytes,
            max: limits.max_layer_bytes,
            context: format!("layer {digest}"),
        },
        WalkError::Io(e) => layer_err(digest, e),
    })?;
    Ok(layer)
}

fn walk_tar(
    layer: &mut LayerIndex,
    stream: impl Read,
    limits: &Limits,
    select: Selector<'_>,
) -> Result<(), WalkError> {
    let digest = layer.digest.clone();
    let mut archive = tar::Archive::new(stream);
    // Raw mode: PAX and GNU long-name headers come to us, so their size is bounded
    // here instead of being buffered whole by the tar crate.
    let entries = archive.entries()?.raw(true);
    let mut pending = Pending::default();
    // What the index holds (file data and recorded paths), against max_total_read_bytes.
    let mut held = 0u64;
    for entry in entries {
        let mut entry = entry?;
        layer.stats.entries += 1;
        if layer.stats.entries > limits.max_entries {
            return Err(too_large(Limit::Entries, limits.max_entries, &digest));
        }
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size()?;
        if matches!(
            kind,
            EntryType::GNULongName
                | EntryType::GNULongLink
                | EntryType::XHeader
                | EntryType::XGlobalHeader
        ) {
            if size > limits.max_header_bytes {
                return Err(too_large(
                    Limit::HeaderBytes,
                    limits.max_header_bytes,
                    &digest,
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data)?;
            pending.absorb(kind, data, &digest)?;
            continue;
        }
        let (path_bytes, link_bytes, pax_size) = pending.take();
        if pax_size.is_some_and(|s| s != size) {
            return Err(WalkError::Scan(ScanError::Unsupported(format!(
                "layer {digest}: PAX size override (files over 8 GiB)"
            ))));
        }
        let path_bytes = path_bytes.unwrap_or_else(|| entry.path_bytes().into_owned());
        let (path, clamped) = normalize(&path_bytes);
        layer.stats.clamped_paths += u64::from(clamped);
        if path.is_empty() {
            continue; // the root directory itself
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                held += layer.hide(parent, Hide::CHILDREN);
            } else if !hidden.starts_with(".wh.") {
                // (other `.wh..wh.` names are AUFS bookkeeping, not whiteouts)
                let target = if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                };
                held += layer.hide(&target, Hide::FILE | Hide::CHILDREN);
            }
        } else {
            let regular = matches!(
                kind,
                EntryType::Regular | EntryType::Continuous | EntryType::Link
            );
            let keep = if regular {
                select(&path, entry.header().mode().unwrap_or(0))
            } else {
                Keep::Nothing
            };
            // A kept file rewritten by this layer keeps its history; anything else at the
            // path replaces the lower file.
            let data = if let Keep::Nothing = keep {
                None
            } else if kind == EntryType::Link {
                let link = link_bytes
                    .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()))
                    .unwrap_or_default();
                let (target, _) = normalize(&link);
                // None when the target was not kept or is not in this layer.
                layer.written.get(&target).cloned()
            } else if let Keep::Extract(extract) = keep {
                let data = extract(&mut entry, limits.max_file_bytes)?;
                if data
                    .as_ref()
                    .is_some_and(|d| d.len() as u64 > limits.max_file_bytes)
                {
                    return Err(file_too_large(limits, &path, &digest));
                }
                data
            } else {
                if size > limits.max_file_bytes {
                    return Err(file_too_large(limits, &path, &digest));
                }
                let mut data = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut data)?;
                Some(data)
            };
            // Anything but a directory hides what was below its path.
            let hide = match (kind.is_dir(), data.is_some()) {
                (true, _) => Hide::FILE,
                (false, false) => Hide::FILE | Hide::CHILDREN,
                (false, true) => Hide::CHILDREN,
            };
            held += layer.hide(&path, hide);
            if let Some(data) = data {
                layer.stats.bytes_read += data.len() as u64;
                layer.stats.files_read += 1;
                held += (path.len() + data.len()) as u64;
                layer.written.insert(path, data);
            }
        }
        if held > limits.max_total_read_bytes {
            return Err(too_large(
                Limit::TotalReadBytes,
                limits.max_total_read_bytes,
                &digest,
            ));
        }
    }
    Ok(())
}

/// Extension headers waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pending {
    fn absorb(&mut self, kind: EntryType, data: Vec<u8>, digest: &str) -> Result<(), WalkError> {
        let trim = |mut d: Vec<u8>| {
            while d.last() == Some(&0) {
                d.pop();
            }
            d
        };
        match kind {
            EntryType::GNULongName => self.path = Some(trim(data)),
            EntryType::GNULongLink => self.link = Some(trim(data)),
            EntryType::XHeader => {
                for ext in PaxExtensions::new(&data) {
                    let ext = ext.map_err(|e| WalkError::Scan(layer_err(digest, e)))?;
                    match ext.key_bytes() {
                        b"path" => self.path = Some(ext.value_bytes().to_vec()),
                        b"linkpath" => self.link = Some(ext.value_bytes().to_vec()),
                        b"size" => {
                            self.size = std::str::from_utf8(ext.value_bytes())
                                .ok()
                                .and_then(|s| s.parse().ok());
                        }
                        _ => {}
                    }
                }
            }
            _ => {} // global PAX headers carry nothing the walker needs
        }
        Ok(())
    }

    fn take(&mut self) -> (Option<Vec<u8>>, Option<Vec<u8>>, Option<u64>) {
        let p = std::mem::take(self);
        (p.path, p.link, p.size)
    }
}

/// Normalizes a tar path into the virtual tree: no leading `/`, no `.`, `..` resolved
/// and stopped at the root. Returns whether a `..` tried to climb above the root.
pub fn normalize(raw: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    let mut clamped = false;
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => clamped |= parts.pop().is_none(),
            p => parts.push(p),
        }
    }
    (parts.join("/"), clamped)
}

/// Reads up to `n` bytes from the start of `reader` and gives them back with a reader
/// that yields the whole stream again.
fn peek<R: Read>(mut reader: R, n: usize) -> io::Result<(Vec<u8>, impl Read)> {
    let mut head = Vec::with_capacity(n);
    (&mut reader).take(n as u64).read_to_end(&mut head)?;
    Ok((head.clone(), io::Cursor::new(head).chain(reader)))
}

/// Counts decompressed bytes and fails the read once they pass `max`.
struct Capped<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    max: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        if self.count.get() > self.max {
            return Err(io::Error::other(
                "decompressed layer exceeds max_layer_bytes",
            ));
        }
        Ok(n)
    }
}

/// Inside a walk an I/O error may really be a crossed limit; [`index_layer`] tells them
/// apart.
enum WalkError {
    Scan(ScanError),
    Io(io::Error),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

fn too_large(limit: Limit, max: u64, digest: &str) -> WalkError {
    WalkError::Scan(ScanError::TooLarge {
        limit,
        max,
        context: format!("layer {digest}"),
    })
}

fn file_too_large(limits: &Limits, path: &str, digest: &str) -> WalkError {
    WalkError::Scan(ScanError::TooLarge {
        limit: Limit::FileBytes,
        max: limits.max_file_bytes,
        context: format!("/{path} in layer {digest}"),
    })
}

fn layer_err(digest: &str, source: io::Error) -> ScanError {
    ScanError::Layer {
        layer: digest.to_string(),
        source,
    }
}

fn unsupported_compression(digest: &str, what: &str) -> ScanError {
    ScanError::Unsupported(format!("layer {digest}: {what} compression"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_stays_inside_the_root() {
        assert_eq!(
            normalize(b"./var/lib/dpkg/status"),
            ("var/lib/dpkg/status".into(), false)
        );
        assert_eq!(
            normalize(b"/etc//os-release"),
            ("etc/os-release".into(), false)
        );
        assert_eq!(normalize(b"../../etc/passwd"), ("etc/passwd".into(), true));
        assert_eq!(normalize(b"usr/../../lib/x"), ("lib/x".into(), true));
        assert_eq!(normalize(b"a/b/../c"), ("a/c".into(), false));
        assert_eq!(normalize(b"./"), (String::new(), false));
    }
}
