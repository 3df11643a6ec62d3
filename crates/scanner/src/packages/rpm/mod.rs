//! rpm: the package database in its three forms, each a store of RPM header blobs —
//! SQLite `rpmdb.sqlite` (RHEL 9, Fedora 33+), BerkeleyDB `Packages` (RHEL 8 and
//! older, CentOS 7) and NDB `Packages.db` (SUSE).

mod bdb;
mod ndb;
mod sqlite;

use super::Entry;
use crate::error::{Result, ScanError};

/// Reads the header blobs out of one database format.
type BlobReader = fn(&[u8]) -> Result<Vec<Vec<u8>>, String>;

/// The database paths, with the reader of each format.
const DATABASES: [(&str, BlobReader); 6] = [
    ("var/lib/rpm/rpmdb.sqlite", sqlite::blobs),
    ("usr/lib/sysimage/rpm/rpmdb.sqlite", sqlite::blobs),
    ("var/lib/rpm/Packages", bdb::blobs),
    ("usr/lib/sysimage/rpm/Packages", bdb::blobs),
    ("var/lib/rpm/Packages.db", ndb::blobs),
    ("usr/lib/sysimage/rpm/Packages.db", ndb::blobs),
];

pub fn wanted(path: &str) -> bool {
    DATABASES.iter().any(|(p, _)| *p == path)
}

pub(crate) fn parse(path: &str, data: &[u8]) -> Result<Vec<Entry>> {
    let malformed = |e| ScanError::malformed(format!("/{path}"), e);
    let (_, read) = DATABASES
        .iter()
        .find(|(p, _)| *p == path)
        .ok_or_else(|| malformed("not an rpm database".to_string()))?;
    let blobs = read(data).map_err(malformed)?;
    blobs
        .iter()
        .filter_map(|blob| match Header::parse(blob) {
            Ok(h) => h.entry().map(Ok),
            Err(e) => Some(Err(malformed(e))),
        })
        .collect()
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
        assert!(parse("var/lib/rpm/rpmdb.sqlite", b"not a database").is_err());
        assert!(parse("var/lib/rpm/Packages", b"not a database").is_err());
        assert!(parse("var/lib/rpm/Packages.db", b"not a database").is_err());
    }

    #[test]
    fn every_database_format() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, s("zlib")),
            (TAG_VERSION, TYPE_STRING, s("1.2.11")),
            (TAG_RELEASE, TYPE_STRING, s("17.el8")),
        ]);
        let bdb = super::bdb::tests::database(std::slice::from_ref(&b));
        let ndb = super::ndb::tests::database(&[b]);
        for (path, db) in [
            ("var/lib/rpm/Packages", bdb),
            ("usr/lib/sysimage/rpm/Packages.db", ndb),
        ] {
            let e = parse(path, &db).unwrap();
            assert_eq!(
                (e[0].name.as_str(), e[0].version.as_str()),
                ("zlib", "1.2.11-17.el8"),
                "{path}"
            );
        }
    }
}
