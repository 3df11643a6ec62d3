//! Go binaries: the build information the Go toolchain (1.18+) embeds in every binary —
//! the Go version and the module list (`mod`, `dep`, `=>` replacement lines). Its header
//! sits at a 16-byte aligned file offset; [`super::binary`] finds it while the executable
//! streams by.

use super::Entry;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
/// The version and module strings follow the header (flag bit 1; older toolchains
/// stored pointers, which this reader does not follow).
const FLAG_INLINE: u8 = 2;
/// Build info larger than this is not real (module lists are a few KiB).
pub(super) const MAX_INFO: usize = 1 << 20;

/// True for what [`complete`] keeps.
pub fn is_build_info(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// The first build-info header starting before `end` in `window`, whose start is at an
/// aligned file offset.
pub(super) fn find(window: &[u8], end: usize) -> Option<usize> {
    (0..end.min(window.len().saturating_sub(MAGIC.len() - 1)))
        .step_by(16)
        .find(|&i| window[i..].starts_with(MAGIC))
}

/// The header and its inline strings, from bytes starting at a header.
pub(super) fn complete(mut info: Vec<u8>) -> Option<Vec<u8>> {
    let n = inline_len(&info)?;
    info.truncate(HEADER + n);
    Some(info)
}

fn uvarint(data: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: usize = 0;
    for (i, &b) in data.iter().enumerate().take(4) {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

fn string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = uvarint(data)?;
    Some((rest.get(..len)?, &rest[len..]))
}

/// (version, module info) of kept build info.
fn strings(data: &[u8]) -> Option<(&[u8], &[u8])> {
    if data.get(15)? & FLAG_INLINE == 0 {
        return None;
    }
    let (version, rest) = string(data.get(HEADER..)?)?;
    let (modinfo, _) = string(rest)?;
    Some((version, modinfo))
}

/// The length of the inline strings after the header.
fn inline_len(data: &[u8]) -> Option<usize> {
    let (_, modinfo) = strings(data)?;
    Some(modinfo.as_ptr() as usize + modinfo.len() - data[HEADER..].as_ptr() as usize)
}

/// The standard library (as `stdlib`, the name Go advisories use) and every module.
pub(crate) fn parse(data: &[u8]) -> Vec<Entry> {
    let Some((version, modinfo)) = strings(data) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    let version = String::from_utf8_lossy(version);
    if let Some(v) = version
        .split_whitespace()
        .next()
        .and_then(|v| v.strip_prefix("go"))
    {
        entries.push(entry("stdlib", v));
    }
    // The module list is framed by 16-byte sentinels.
    let modinfo = if modinfo.len() >= 33 {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    for line in String::from_utf8_lossy(modinfo).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] if *version != "(devel)" => {
                entries.push(entry(path, version));
            }
            // A replacement applies to the module listed just before it.
            ["=>", path, version, ..] => {
                if let Some(last) = entries.last_mut() {
                    *last = entry(path, version);
                }
            }
            _ => {}
        }
    }
    entries
}

fn entry(name: &str, version: &str) -> Entry {
    Entry {
        name: name.to_string(),
        version: version.to_string(),
        source_name: None,
        source_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::binary::{ELF, extract};

    fn build_info(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[8, FLAG_INLINE]);
        b.resize(HEADER, 0);
        for s in [version.as_bytes(), modinfo.as_bytes()] {
            let mut n = s.len();
            while n >= 0x80 {
                b.push(n as u8 | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
            b.extend_from_slice(s);
        }
        b
    }

    #[test]
    fn finds_build_info_in_a_stream() {
        let sentinel = "0123456789abcdef";
        let modinfo = format!(
            "{sentinel}path\tx\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/text\tv0.3.7\th1:x\ndep\tgithub.com/a/b\tv1.0.0\th1:y\n=>\tgithub.com/c/b\tv1.1.0\th1:z\n{sentinel}"
        );
        let info = build_info("go1.21.5", &modinfo);
        let mut binary = ELF.to_vec();
        binary.resize(300_016, 0x11); // past the first chunk
        binary.extend_from_slice(&info);
        binary.extend_from_slice(&[0; 100]);
        let kept = extract(&mut binary.as_slice(), 1 << 20).unwrap().unwrap();
        assert_eq!(kept.len(), info.len());
        assert_eq!(kept, info);
        assert!(is_build_info(&kept));
        let e: Vec<(String, String)> = parse(&kept)
            .into_iter()
            .map(|e| (e.name, e.version))
            .collect();
        let want = [
            ("stdlib", "1.21.5"),
            ("golang.org/x/text", "v0.3.7"),
            ("github.com/c/b", "v1.1.0"),
        ];
        assert_eq!(e, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn other_files_keep_nothing() {
        assert_eq!(
            extract(&mut &b"#!/bin/sh\necho"[..], 1 << 20).unwrap(),
            None
        );
        assert_eq!(extract(&mut &ELF[..], 1 << 20).unwrap(), None);
        // Unaligned magic does not count; truncated build info keeps nothing.
        let mut binary = ELF.to_vec();
        binary.extend_from_slice(&build_info("go1.20", "x"));
        assert_eq!(extract(&mut binary.as_slice(), 1 << 20).unwrap(), None);
        let mut binary = ELF.to_vec();
        binary.resize(16, 0);
        binary.extend_from_slice(&build_info("go1.20", "x")[..HEADER + 3]);
        assert_eq!(extract(&mut binary.as_slice(), 1 << 20).unwrap(), None);
    }
}
