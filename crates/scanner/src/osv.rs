//! Vulnerability records in the OSV schema (<https://ossf.github.io/osv-schema/>), read
//! from JSON (one record or an array), JSON lines, a directory of those, or a zip of
//! them (as osv.dev publishes per ecosystem). Only the fields matching and reporting
//! use are kept; serde structs of our own are lighter than the `osv` crate's chrono and
//! regex dependencies.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::error::{Result, ScanError};
use crate::packages::python::normalize_name;

/// A JSON document of records (a file, a zip member, a request body) is read into memory
/// whole: cap it against zip bombs and runaway inputs.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

/// Calls `each` with every JSON document under `path`, in name order: the file itself
/// (`.json`, `.jsonl`), each `.json`/`.jsonl` member of a `.zip`, or those of every such
/// file below a directory. `each` gets a name for errors and the document's bytes.
pub fn read_documents<E: From<ScanError>>(
    path: &Path,
    each: &mut impl FnMut(&str, &[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let io = |e| ScanError::io(path.display(), e);
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::result::Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for entry in entries {
            let known = matches!(
                entry.extension().and_then(|e| e.to_str()),
                Some("json" | "jsonl" | "zip")
            );
            if entry.is_dir() || known {
                read_documents(&entry, each)?;
            }
        }
        return Ok(());
    }
    let file = File::open(path).map_err(io)?;
    let name = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) != Some("zip") {
        return each(&name, &read_capped(file, &name)?);
    }
    let malformed = |e: zip::result::ZipError| ScanError::malformed(&name, e);
    let mut archive = zip::ZipArchive::new(file).map_err(malformed)?;
    for i in 0..archive.len() {
        let member = archive.by_index(i).map_err(malformed)?;
        let member_name = format!("{name}!{}", member.name().map_err(malformed)?);
        if member.is_file() && (member_name.ends_with(".json") || member_name.ends_with(".jsonl")) {
            let data = read_capped(member, &member_name)?;
            each(&member_name, &data)?;
        }
    }
    Ok(())
}

fn read_capped(source: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    source
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| ScanError::io(name, e))?;
    if data.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(ScanError::malformed(
            name,
            format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    Ok(data)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    pub published: Option<String>,
    pub modified: Option<String>,
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<SeverityScore>,
    #[serde(default, deserialize_with = "nullable")]
    pub affected: Vec<Affected>,
    #[serde(default, deserialize_with = "nullable")]
    pub references: Vec<Reference>,
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: Option<AffectedPackage>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<SeverityScore>,
    #[serde(default, deserialize_with = "nullable")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "nullable")]
    pub versions: Vec<String>,
    pub ecosystem_specific: Option<serde_json::Value>,
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AffectedPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub url: String,
}

/// Some producers write `null` for an empty list.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The records loaded, indexed by (ecosystem, package name) for matching.
#[derive(Debug, Default)]
pub struct Database {
    records: Vec<Record>,
    /// (ecosystem, name as [`index_name`] gives it) → (record, affected entry) indexes.
    index: HashMap<(String, String), Vec<(usize, usize)>>,
}

/// The form ecosystems are compared in: Ubuntu's records say `Ubuntu:22.04:LTS` where
/// the image says `Ubuntu:22.04`.
pub fn index_ecosystem(ecosystem: &str) -> &str {
    match ecosystem.strip_prefix("Ubuntu:") {
        Some(_) => ecosystem.strip_suffix(":LTS").unwrap_or(ecosystem),
        None => ecosystem,
    }
}

/// The form names are compared in: PyPI names are normalized (PEP 503), others exact.
pub fn index_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        normalize_name(name)
    } else {
        name.to_string()
    }
}

impl Database {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Loads a file (`.json`, `.jsonl`, `.zip`) or every such file under a directory.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        read_documents(path, &mut |name, data| self.add_json(name, data))
    }

    /// Adds the records of one JSON document: a record, an array of records, or records
    /// one after the other (JSON lines). `source` names it in errors.
    pub fn add_json(&mut self, source: &str, data: &[u8]) -> Result<()> {
        let malformed = |e: serde_json::Error| ScanError::malformed(source, e);
        if data.trim_ascii_start().starts_with(b"[") {
            let records: Vec<Record> = serde_json::from_slice(data).map_err(malformed)?;
            records.into_iter().for_each(|r| self.add(r));
            return Ok(());
        }
        for record in serde_json::Deserializer::from_slice(data).into_iter::<Record>() {
            self.add(record.map_err(malformed)?);
        }
        Ok(())
    }

    pub fn add(&mut self, record: Record) {
        if record.withdrawn.is_some() {
            return;
        }
        let at = self.records.len();
        for (i, affected) in record.affected.iter().enumerate() {
            if let Some(p) = &affected.package {
                let key = (
                    index_ecosystem(&p.ecosystem).to_string(),
                    index_name(&p.ecosystem, &p.name),
                );
                self.index.entry(key).or_default().push((at, i));
            }
        }
        self.records.push(record);
    }

    /// The affected entries naming this package in this ecosystem.
    pub fn affecting<'a>(
        &'a self,
        ecosystem: &str,
        name: &str,
    ) -> impl Iterator<Item = (&'a Record, &'a Affected)> + 'a {
        let key = (
            index_ecosystem(ecosystem).to_string(),
            index_name(ecosystem, name),
        );
        self.index
            .get(&key)
            .into_iter()
            .flatten()
            .map(|&(r, a)| (&self.records[r], &self.records[r].affected[a]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"id":"X-1","aliases":null,"affected":[{"package":{"ecosystem":"PyPI","name":"Jinja2"},"versions":["2.11.2"]}]}"#;

    #[test]
    fn directories_and_zips() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut zip = zip::ZipWriter::new(File::create(dir.path().join("PyPI.zip")).unwrap());
        for name in ["a.json", "nested/b.jsonl", "README.txt"] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(RECORD.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        std::fs::create_dir(dir.path().join("more")).unwrap();
        std::fs::write(dir.path().join("more/c.json"), RECORD).unwrap();
        std::fs::write(dir.path().join("notes.md"), "not OSV").unwrap();
        let mut db = Database::new();
        db.load(dir.path()).unwrap();
        assert_eq!(db.len(), 3);
    }

    #[test]
    fn json_jsonl_and_arrays() {
        let mut db = Database::new();
        db.add_json("one", RECORD.as_bytes()).unwrap();
        db.add_json("lines", format!("{RECORD}\n{RECORD}\n").as_bytes())
            .unwrap();
        db.add_json("array", format!("[{RECORD}]").as_bytes())
            .unwrap();
        assert_eq!(db.len(), 4);
        assert_eq!(db.affecting("PyPI", "jinja2").count(), 4);
        assert!(db.add_json("bad", b"{\"id\": 1}").is_err());
        let withdrawn = RECORD.replace("\"aliases\"", "\"withdrawn\":\"2024-01-01\",\"aliases\"");
        db.add_json("withdrawn", withdrawn.as_bytes()).unwrap();
        assert_eq!(db.len(), 4);
        let ubuntu = RECORD.replace("PyPI", "Ubuntu:22.04:LTS");
        db.add_json("ubuntu", ubuntu.as_bytes()).unwrap();
        assert_eq!(db.affecting("Ubuntu:22.04", "Jinja2").count(), 1);
    }
}
