//! Python distributions: `*.dist-info/METADATA` (wheels, pip) and `*.egg-info/PKG-INFO`
//! or a bare `*.egg-info` file (setuptools, distutils).

use super::{Entry, field, stanzas};
use crate::error::Result;

pub fn wanted(path: &str) -> bool {
    path.ends_with(".dist-info/METADATA")
        || path.ends_with(".egg-info/PKG-INFO")
        || path.ends_with(".egg-info")
}

/// The name is normalized as PEP 503 does (`Jinja2` → `jinja2`, `zope.interface` →
/// `zope-interface`), the form advisories use.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Entry>> {
    let text = String::from_utf8_lossy(data);
    // Only the header block: the description after the first blank line is free text.
    let Some(fields) = stanzas(&text).next() else {
        return Ok(Vec::new());
    };
    Ok(match (field(&fields, "Name"), field(&fields, "Version")) {
        (Some(name), Some(version)) => vec![Entry {
            name: normalize_name(name),
            version: version.to_string(),
            source_name: None,
            source_version: None,
        }],
        _ => Vec::new(),
    })
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_header_only() {
        let m = b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 2.11.2\n\nName: not-this\n";
        let e = parse(m).unwrap();
        assert_eq!(
            (e[0].name.as_str(), e[0].version.as_str()),
            ("jinja2", "2.11.2")
        );
        assert_eq!(normalize_name("Zope.__Interface"), "zope-interface");
        assert!(wanted("usr/lib/python3/dist-packages/six-1.16.0.egg-info"));
        assert!(!wanted(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD"
        ));
    }
}
