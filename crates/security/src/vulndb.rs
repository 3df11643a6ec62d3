//! Vulnerability data: OSV records read from files into the store (each record's JSON kept
//! as imported), and the in-memory matching database, reloaded when the stored generation
//! moves (an import on any node).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bulwark_meta::{ScanStore, VulnerabilityRecord};
use bulwark_scanner::Database;
/// The cap on one file, zip member or request body of records (the scanner's).
pub use bulwark_scanner::osv::MAX_DOCUMENT_BYTES;
use bulwark_scanner::osv::{self, Record};

use crate::SecurityError;

/// Records per read when loading the database from the store.
const LOAD_PAGE: u32 = 1_000;

/// Reads the OSV records of a file (`.json` — one record or an array —, `.jsonl`, `.zip`)
/// or of every such file under a directory, by id (the last of duplicates wins). Each
/// record must parse as the scanner's [`Record`]; its JSON text is kept as read.
pub fn read_records(path: &Path) -> Result<Vec<VulnerabilityRecord>, SecurityError> {
    let mut records = BTreeMap::new();
    osv::read_documents(path, &mut |name, data| {
        read_document(name, data, &mut records)
    })?;
    Ok(records.into_values().collect())
}

/// Reads the OSV records of one document already in memory (a request body): a record, an
/// array of records or JSON lines, by id; `source` names it in errors.
pub fn parse_records(source: &str, data: &[u8]) -> Result<Vec<VulnerabilityRecord>, SecurityError> {
    let mut records = BTreeMap::new();
    read_document(source, data, &mut records)?;
    Ok(records.into_values().collect())
}

fn invalid(source: impl std::fmt::Display, reason: impl std::fmt::Display) -> SecurityError {
    SecurityError::InvalidVulnerabilityData(format!("{source}: {reason}"))
}

/// A record, an array of records, or records one after the other (JSON lines).
fn read_document(
    source: &str,
    data: &[u8],
    records: &mut BTreeMap<String, VulnerabilityRecord>,
) -> Result<(), SecurityError> {
    let values: Vec<serde_json::Value> = if data.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice(data).map_err(|e| invalid(source, e))?
    } else {
        serde_json::Deserializer::from_slice(data)
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(source, e))?
    };
    for value in values {
        let record: Record =
            serde_json::from_value(value.clone()).map_err(|e| invalid(source, e))?;
        records.insert(
            record.id.clone(),
            VulnerabilityRecord {
                id: record.id,
                modified: record.modified,
                record: value.to_string(),
            },
        );
    }
    Ok(())
}

/// The matching database of one generation.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub generation: i64,
    pub database: Arc<Database>,
}

/// The database this node matches with, reloaded from the store when its generation moved.
#[derive(Default)]
pub(crate) struct DatabaseCache(tokio::sync::Mutex<Option<Loaded>>);

impl DatabaseCache {
    pub async fn current(&self, store: &dyn ScanStore) -> Result<Loaded, SecurityError> {
        let generation = store.vulnerability_generation().await?;
        let mut cached = self.0.lock().await;
        if let Some(loaded) = cached.as_ref().filter(|l| l.generation == generation) {
            return Ok(loaded.clone());
        }
        // Records read while another import commits may be of the next generation: the
        // generation read first is the older one, so a re-match of the next still comes.
        let database = load(store).await?;
        tracing::info!(
            generation,
            records = database.len(),
            "loaded vulnerability data"
        );
        let loaded = Loaded {
            generation,
            database: Arc::new(database),
        };
        *cached = Some(loaded.clone());
        Ok(loaded)
    }
}

/// Every stored record as a matching database (also what `bulwark scan` matches with when
/// given no files).
pub async fn load(store: &dyn ScanStore) -> Result<Database, SecurityError> {
    let mut database = Database::new();
    let mut after = None;
    loop {
        let page = store
            .vulnerability_records(after.as_deref(), LOAD_PAGE)
            .await?;
        for r in &page {
            database
                .add_json(&r.id, r.record.as_bytes())
                .map_err(|e| SecurityError::Corrupt(format!("stored record {}: {e}", r.id)))?;
        }
        match page.last() {
            Some(last) if page.len() == LOAD_PAGE as usize => after = Some(last.id.clone()),
            _ => return Ok(database),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"jinja2"},"versions":["2.11.2"]}]}"#;

    #[test]
    fn files_lines_arrays_directories_and_zips() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.json"), RECORD).unwrap();
        let two = RECORD.replace("X-1", "X-2");
        let three = RECORD.replace("X-1", "X-3");
        std::fs::write(dir.path().join("lines.jsonl"), format!("{two}\n{three}\n")).unwrap();
        std::fs::write(dir.path().join("notes.md"), "not OSV").unwrap();
        let mut zip =
            zip::ZipWriter::new(std::fs::File::create(dir.path().join("db.zip")).unwrap());
        zip.start_file("x/four.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(format!("[{}]", RECORD.replace("X-1", "X-4")).as_bytes())
            .unwrap();
        zip.finish().unwrap();
        let records = read_records(dir.path()).unwrap();
        let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["X-1", "X-2", "X-3", "X-4"]);
        assert_eq!(records[0].modified.as_deref(), Some("2024-01-01T00:00:00Z"));
        let text: serde_json::Value = serde_json::from_str(&records[0].record).unwrap();
        assert_eq!(
            text,
            serde_json::from_str::<serde_json::Value>(RECORD).unwrap()
        );
    }

    #[test]
    fn a_body_is_an_array_or_json_lines() {
        let two = RECORD.replace("X-1", "X-2");
        let array = parse_records("body", format!("[{RECORD}, {two}]").as_bytes()).unwrap();
        let lines = parse_records("body", format!("{RECORD}\n{two}\n").as_bytes()).unwrap();
        let ids = |r: &[VulnerabilityRecord]| r.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&array), ["X-1", "X-2"]);
        assert_eq!(ids(&lines), ids(&array));
        let err = parse_records("the body", b"{\"id\": 1}").unwrap_err();
        assert!(err.to_string().contains("the body"), "{err}");
    }

    #[test]
    fn a_record_that_is_not_osv_is_refused_with_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"id": 1}"#).unwrap();
        let err = read_records(&path).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
