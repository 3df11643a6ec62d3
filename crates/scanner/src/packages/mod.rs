//! Package readers: each knows the files of one package format and reads them from the
//! walked image.

pub mod apk;
mod binary;
pub mod dpkg;
pub mod go;
pub mod java;
pub mod npm;
pub mod python;
pub mod rpm;
pub mod rust;

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::walker::{FileTree, Keep};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageType {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Rust,
    Java,
}

impl PackageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Deb => "deb",
            PackageType::Apk => "apk",
            PackageType::Rpm => "rpm",
            PackageType::Python => "python",
            PackageType::Npm => "npm",
            PackageType::Go => "go",
            PackageType::Rust => "rust",
            PackageType::Java => "java",
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    #[serde(rename = "type")]
    pub kind: PackageType,
    pub name: String,
    pub version: String,
    /// The package that advisories name: the Debian source package, the Alpine origin,
    /// the source RPM. Equal to `name` when the format has no such notion.
    pub source_name: String,
    pub source_version: String,
    /// Digest of the layer that introduced the package at this version.
    pub layer: String,
    /// The file it was read from, absolute in the image.
    pub path: String,
}

/// Name, version and source of a package, before the layer is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub version: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
}

impl Entry {
    fn into_package(self, kind: PackageType, layer: &str, path: &str) -> Package {
        Package {
            kind,
            source_name: self.source_name.unwrap_or_else(|| self.name.clone()),
            source_version: self.source_version.unwrap_or_else(|| self.version.clone()),
            name: self.name,
            version: self.version,
            layer: layer.to_string(),
            path: format!("/{path}"),
        }
    }
}

/// What the readers keep of the file at `path` (normalized, no leading `/`) with
/// permission bits `mode`: package databases whole, the build info or dependency list of
/// executables, the Maven metadata of Java archives.
pub fn select(path: &str, mode: u32) -> Keep {
    if dpkg::wanted(path)
        || apk::wanted(path)
        || rpm::wanted(path)
        || python::wanted(path)
        || npm::wanted(path)
    {
        Keep::Whole
    } else if java::is_archive(path) {
        Keep::Extract(java::extract)
    } else if mode & 0o111 != 0 {
        Keep::Extract(binary::extract)
    } else {
        Keep::Nothing
    }
}

/// Every package of the image, in a stable order (type, name, version, path).
pub fn read_all(tree: &FileTree) -> Result<Vec<Package>> {
    let mut packages = Vec::new();
    for path in tree.paths() {
        if dpkg::is_status_file(path) {
            packages.extend(from_database(tree, path, PackageType::Deb, dpkg::parse)?);
        } else if dpkg::wanted(path) {
            packages.extend(from_file(tree, path, PackageType::Deb, dpkg::parse)?);
        } else if apk::wanted(path) {
            packages.extend(from_database(tree, path, PackageType::Apk, apk::parse)?);
        } else if rpm::wanted(path) {
            packages.extend(from_database(tree, path, PackageType::Rpm, |data| {
                rpm::parse(path, data)
            })?);
        } else if python::wanted(path) {
            packages.extend(from_file(tree, path, PackageType::Python, python::parse)?);
        } else if npm::wanted(path) {
            packages.extend(from_file(tree, path, PackageType::Npm, npm::parse)?);
        } else if java::is_archive(path) {
            packages.extend(from_file(tree, path, PackageType::Java, |d| {
                Ok(java::parse(d))
            })?);
        } else if tree.get(path).is_some_and(|f| go::is_build_info(&f.data)) {
            packages.extend(from_file(tree, path, PackageType::Go, |d| {
                Ok(go::parse(d))
            })?);
        } else if tree
            .get(path)
            .is_some_and(|f| rust::is_dependency_list(&f.data))
        {
            packages.extend(from_file(tree, path, PackageType::Rust, |d| {
                Ok(rust::parse(d))
            })?);
        }
    }
    packages.sort_by(|a, b| {
        (a.kind, &a.name, &a.version, &a.path).cmp(&(b.kind, &b.name, &b.version, &b.path))
    });
    Ok(packages)
}

/// A file that describes its packages by itself: they come from the layer that wrote it.
fn from_file(
    tree: &FileTree,
    path: &str,
    kind: PackageType,
    parse: impl Fn(&[u8]) -> Result<Vec<Entry>>,
) -> Result<Vec<Package>> {
    let Some(file) = tree.get(path) else {
        return Ok(Vec::new());
    };
    let layer = tree.layer_digest(file.layer);
    Ok(parse(&file.data)?
        .into_iter()
        .map(|e| e.into_package(kind, layer, path))
        .collect())
}

/// A database that every installing layer rewrites: a package is attributed to the
/// oldest layer from which on every version of the database lists it at that version.
fn from_database(
    tree: &FileTree,
    path: &str,
    kind: PackageType,
    parse: impl Fn(&[u8]) -> Result<Vec<Entry>>,
) -> Result<Vec<Package>> {
    let history = tree.history(path);
    let Some((last, older)) = history.split_last() else {
        return Ok(Vec::new());
    };
    let entries = parse(&last.data)?;
    let mut layers = vec![last.layer; entries.len()];
    let mut open: Vec<usize> = (0..entries.len()).collect();
    for version in older.iter().rev() {
        if open.is_empty() {
            break;
        }
        // An older version that no longer parses ends every package's history there.
        let Ok(previous) = parse(&version.data) else {
            break;
        };
        let present: HashSet<(&str, &str)> = previous
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_str()))
            .collect();
        open.retain(|&i| {
            let here = present.contains(&(entries[i].name.as_str(), entries[i].version.as_str()));
            if here {
                layers[i] = version.layer;
            }
            here
        });
    }
    Ok(entries
        .into_iter()
        .zip(layers)
        .map(|(e, layer)| e.into_package(kind, tree.layer_digest(layer), path))
        .collect())
}

/// Splits RFC 822-style `Key: value` stanzas (dpkg status, Python METADATA), ignoring
/// continuation lines. Keys are compared case-insensitively by the callers.
pub(crate) fn stanzas(text: &str) -> impl Iterator<Item = Vec<(&str, &str)>> {
    text.split("\n\n").filter_map(|block| {
        let fields: Vec<(&str, &str)> = block
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        (!fields.is_empty()).then_some(fields)
    })
}

pub(crate) fn field<'a>(fields: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty())
}
