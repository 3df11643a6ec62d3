//! apk: the installed database `/lib/apk/db/installed` (one `X:value` line per field,
//! packages separated by blank lines).

use super::Entry;
use crate::error::Result;

pub fn wanted(path: &str) -> bool {
    // apk-tools 3 moves the database under /usr when /lib is merged.
    path == "lib/apk/db/installed" || path == "usr/lib/apk/db/installed"
}

/// Installed packages; the origin (source package) is what Alpine's secdb names.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Entry>> {
    let text = String::from_utf8_lossy(data);
    Ok(text
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut version = None;
            let mut origin = None;
            for line in block.lines() {
                match line.split_at_checked(2) {
                    Some(("P:", v)) => name = Some(v),
                    Some(("V:", v)) => version = Some(v),
                    Some(("o:", v)) => origin = Some(v),
                    _ => {}
                }
            }
            Some(Entry {
                name: name.filter(|n| !n.is_empty())?.to_string(),
                version: version.filter(|v| !v.is_empty())?.to_string(),
                source_name: origin.filter(|o| !o.is_empty()).map(str::to_string),
                source_version: None,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_name_version_origin() {
        let db = b"C:Q1abc=\nP:libcrypto3\nV:3.1.0-r4\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.4-r0\n\nP:broken\n";
        let e = super::parse(db).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].name.as_str(), e[0].version.as_str()),
            ("libcrypto3", "3.1.0-r4")
        );
        assert_eq!(e[0].source_name.as_deref(), Some("openssl"));
        assert_eq!(e[1].source_name, None);
    }
}
