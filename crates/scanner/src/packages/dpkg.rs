//! dpkg: `/var/lib/dpkg/status`, and `/var/lib/dpkg/status.d/<package>` files that
//! distroless images carry instead of a status database.

use super::{Entry, field, stanzas};
use crate::error::Result;

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d/";

pub fn wanted(path: &str) -> bool {
    is_status_file(path)
        || path.strip_prefix(STATUS_D).is_some_and(|name| {
            !name.contains('/') && !name.ends_with(".md5sums") && !name.starts_with('.')
        })
}

/// The one database that layers rewrite (status.d files are one per package).
pub fn is_status_file(path: &str) -> bool {
    path == STATUS
}

/// Installed packages of a status file. Advisories name source packages, so each entry
/// keeps its `Source:` name and version (`Source: glibc (2.36-9)` when they differ).
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Entry>> {
    let text = String::from_utf8_lossy(data);
    Ok(stanzas(&text)
        .filter(|f| {
            // status.d files have no Status field; in the database, removed packages
            // linger as `deinstall ok config-files`.
            field(f, "Status").is_none_or(|s| s.split_whitespace().last() == Some("installed"))
        })
        .filter_map(|f| {
            let name = field(&f, "Package")?;
            let version = field(&f, "Version")?;
            let (source_name, source_version) = match field(&f, "Source") {
                Some(source) => match source.split_once('(') {
                    Some((n, v)) => (Some(n.trim()), Some(v.trim_end_matches(')').trim())),
                    None => (Some(source), None),
                },
                None => (None, None),
            };
            Some(Entry {
                name: name.to_string(),
                version: version.to_string(),
                source_name: source_name.map(str::to_string),
                source_version: source_version.map(str::to_string),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_binary_to_source() {
        let status = b"Package: libc6\nStatus: install ok installed\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4+b1\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\n";
        let e = parse(status).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "libc6");
        assert_eq!(e[0].source_name.as_deref(), Some("glibc"));
        assert_eq!(e[0].source_version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(e[1].name, "bash");
        assert_eq!(e[1].source_name, None);
    }

    #[test]
    fn distroless_status_d() {
        assert!(wanted("var/lib/dpkg/status.d/base-files"));
        assert!(!wanted("var/lib/dpkg/status.d/base-files.md5sums"));
        assert!(!wanted("var/lib/dpkg/status-old"));
        let e = parse(b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n").unwrap();
        assert_eq!(e[0].name, "tzdata");
    }
}
