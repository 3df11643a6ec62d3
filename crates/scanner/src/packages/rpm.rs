//! rpm: the package database in its SQLite form (`rpmdb.sqlite`, RHEL 9, Fedora 33+),
//! whose `Packages` table holds one RPM header blob per package.

use rusqlite::Connection;

use super::Entry;
use crate::error::{Result, ScanError};

const SQLITE_PATHS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

pub fn wanted(path: &str) -> bool {
    SQLITE_PATHS.contains(&path)
}

pub(crate) fn parse(path: &str, data: &[u8]) -> Result<Vec<Entry>> {
    let blobs = sqlite_blobs(data).map_err(|e| ScanError::malformed(format!("/{path}"), e))?;
    blobs
        .iter()
        .filter_map(|blob| match Header::parse(blob) {
            Ok(h) => h.entry().map(Ok),
            Err(e) => Some(Err(ScanError::malformed(format!("/{path}"), e))),
        })
        .collect()
}

/// The header blobs of the `Packages` table, read from the database bytes in memory
/// (SQLite's deserialize: no file is written).
fn sqlite_blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut db = Connection::open_in_memory().map_err(|e| e.to_string())?;
    db.deserialize_read_exact("main", data, data.len(), true)
        .map_err(|e| e.to_string())?;
    // A hostile schema could make `Packages` a view with an endless query: read only a
    // real table, and let no schema-defined function run.
    db.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;")
        .map_err(|e| e.to_string())?;
    let kind: Option<String> = db
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .ok();
    if kind.as_deref() != Some("table") {
        return Err("no Packages table".into());
    }
    let mut stmt = db
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;

/// rpm refuses headers with more index entries or data than these (rpmlib's
/// `HEADER_TAGS_MAX` and `HEADER_DATA_MAX`); so does this reader.
const MAX_TAGS: usize = 0xffff;
const MAX_DATA: usize = 256 << 20;

/// An RPM header in its exported ("blob") form: entry count and data size as big-endian
/// u32s, the index entries (tag, type, offset, count; 16 bytes each), then the data.
/// The same blob is the value of BerkeleyDB `Packages` and NDB `Packages.db` records.
pub struct Header<'a> {
    index: &'a [u8],
    data: &'a [u8],
}

impl<'a> Header<'a> {
    pub fn parse(blob: &'a [u8]) -> Result<Self, String> {
        let word = |at: usize| -> Option<usize> {
            let b = blob.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (Some(count), Some(size)) = (word(0), word(4)) else {
            return Err("truncated RPM header".into());
        };
        if count > MAX_TAGS || size > MAX_DATA {
            return Err("RPM header too large".into());
        }
        let index_end = 8 + count * 16;
        let index = blob.get(8..index_end).ok_or("truncated RPM header index")?;
        let data = blob
            .get(index_end..index_end + size)
            .ok_or("truncated RPM header data")?;
        Ok(Header { index, data })
    }

    /// (type, offset, count) of a tag, if present.
    fn lookup(&self, tag: u32) -> Option<(u32, usize, usize)> {
        self.index.chunks_exact(16).find_map(|e| {
            let w = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            (w(0) == tag).then(|| (w(4), w(8) as usize, w(12) as usize))
        })
    }

    pub fn string(&self, tag: u32) -> Option<&'a str> {
        let (kind, offset, _) = self.lookup(tag)?;
        if kind != TYPE_STRING {
            return None;
        }
        let rest = self.data.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    pub fn int32(&self, tag: u32) -> Option<u32> {
        let (kind, offset, count) = self.lookup(tag)?;
        if kind != TYPE_INT32 || count == 0 {
            return None;
        }
        let b = self.data.get(offset..offset + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The package as advisories see it: `[epoch:]version-release`, and the source RPM
    /// (`curl-7.61.1-22.el8.src.rpm` → `curl`, `7.61.1-22.el8`). `gpg-pubkey` entries are
    /// keys, not packages.
    pub(crate) fn entry(&self) -> Option<Entry> {
        let name = self.string(TAG_NAME)?;
        if name == "gpg-pubkey" {
            return None;
        }
        let version = self.string(TAG_VERSION)?;
        let release = self.string(TAG_RELEASE)?;
        let epoch = self.int32(TAG_EPOCH);
        let evr = match epoch {
            Some(e) => format!("{e}:{version}-{release}"),
            None => format!("{version}-{release}"),
        };
        let source = self.string(TAG_SOURCERPM).and_then(|s| {
            let nvr = s
                .strip_suffix(".src.rpm")
                .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
            let (nv, release) = nvr.rsplit_once('-')?;
            let (n, v) = nv.rsplit_once('-')?;
            let version = match epoch {
                Some(e) => format!("{e}:{v}-{release}"),
                None => format!("{v}-{release}"),
            };
            Some((n.to_string(), version))
        });
        let (source_name, source_version) = source.unzip();
        Some(Entry {
            name: name.to_string(),
            version: evr,
            source_name,
            source_version,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a header blob from (tag, type, payload) entries.
    pub(crate) fn blob(entries: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, payload) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for w in [*tag, *kind, data.len() as u32, 1] {
                index.extend_from_slice(&w.to_be_bytes());
            }
            data.extend_from_slice(payload);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn s(v: &str) -> Vec<u8> {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        b
    }

    #[test]
    fn header_with_epoch_and_source() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, s("openssl-libs")),
            (TAG_VERSION, TYPE_STRING, s("1.1.1k")),
            (TAG_RELEASE, TYPE_STRING, s("5.el8_5")),
            (TAG_EPOCH, TYPE_INT32, 1u32.to_be_bytes().to_vec()),
            (
                TAG_SOURCERPM,
                TYPE_STRING,
                s("openssl-1.1.1k-5.el8_5.src.rpm"),
            ),
        ]);
        let e = Header::parse(&b).unwrap().entry().unwrap();
        assert_eq!(e.name, "openssl-libs");
        assert_eq!(e.version, "1:1.1.1k-5.el8_5");
        assert_eq!(e.source_name.as_deref(), Some("openssl"));
        assert_eq!(e.source_version.as_deref(), Some("1:1.1.1k-5.el8_5"));
    }

    #[test]
    fn hostile_headers_are_errors() {
        assert!(Header::parse(&[0, 0]).is_err());
        assert!(Header::parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        let mut b = blob(&[(TAG_NAME, TYPE_STRING, s("x"))]);
        b.truncate(b.len() - 1);
        assert!(Header::parse(&b).is_err());
        // An offset past the data yields no string rather than a panic.
        let mut b = blob(&[(TAG_NAME, TYPE_STRING, s("x"))]);
        b[8 + 8..8 + 12].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(Header::parse(&b).unwrap().string(TAG_NAME), None);
        assert!(parse("x", b"not a database").is_err());
    }
}
