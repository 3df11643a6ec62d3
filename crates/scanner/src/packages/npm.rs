//! npm: the `package.json` at the root of each package under `node_modules`
//! (`node_modules/<name>/` or `node_modules/@scope/<name>/`), at any depth.

use serde::Deserialize;

use super::Entry;
use crate::error::Result;

pub fn wanted(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("/package.json") else {
        return false;
    };
    let mut parts = dir.rsplit('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some("node_modules"), _) => !name.starts_with('@'),
        (Some(_), Some(scope), Some("node_modules")) => scope.starts_with('@'),
        _ => false,
    }
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
}

/// A manifest without a name and version (a workspace root, a fixture) is not a package;
/// neither is one that is not JSON, which some packages ship as test data.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Entry>> {
    Ok(match serde_json::from_slice::<Manifest>(data) {
        Ok(Manifest {
            name: Some(name),
            version: Some(version),
        }) if !name.is_empty() && !version.is_empty() => vec![Entry {
            name,
            version,
            source_name: None,
            source_version: None,
        }],
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_roots_only() {
        assert!(wanted("app/node_modules/lodash/package.json"));
        assert!(wanted("node_modules/@babel/core/package.json"));
        assert!(wanted("a/node_modules/x/node_modules/y/package.json"));
        assert!(!wanted("app/node_modules/lodash/lib/package.json"));
        assert!(!wanted("app/package.json"));
        assert!(!wanted("node_modules/@babel/package.json"));
        let e = parse(br#"{"name":"lodash","version":"4.17.20","dependencies":{}}"#).unwrap();
        assert_eq!(
            (e[0].name.as_str(), e[0].version.as_str()),
            ("lodash", "4.17.20")
        );
        assert!(parse(b"{not json").unwrap().is_empty());
    }
}
