//! Archives of the entries retention removes. Before the signed cut deletes entries from the
//! store, they are written to a JSON Lines file: one line per entry with its position and
//! both hashes, then the signed cut that ends them. An archive therefore verifies on its own
//! (`bulwark logs verify --archive FILE`), and consecutive archives chain into each other and
//! into the stored log, whose walk starts from the same cut.
//!
//! The file is written to a temporary name, synced and renamed before anything is deleted;
//! a crash in between leaves the entries in the store, and the next run archives them again
//! (in a file covering at least the same positions).

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use bulwark_auth::jwt::KeyRing;
use bulwark_meta::{
    AuditCheckpoint, AuditEntry, AuditFilter, AuditRecord, AuditStore, CheckpointKind,
};
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::search::walk_entries;
use crate::verify::{Report, Walk, check_signature};

/// One line of an archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Entry(Box<ArchivedEntry>),
    Cut(ArchivedCut),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivedEntry {
    seq: i64,
    prev_hash: String,
    hash: String,
    time: i64,
    kind: String,
    actor_kind: String,
    actor_name: String,
    actor_credential: String,
    address: Option<String>,
    user_agent: Option<String>,
    namespace: Option<String>,
    repository: Option<String>,
    target: Option<String>,
    /// As stored (and hashed): JSON text.
    details: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivedCut {
    seq: i64,
    hash: String,
    time: i64,
    signature: String,
}

impl From<AuditRecord> for ArchivedEntry {
    fn from(r: AuditRecord) -> ArchivedEntry {
        let e = r.entry;
        ArchivedEntry {
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
            time: e.time,
            kind: e.kind,
            actor_kind: e.actor_kind,
            actor_name: e.actor_name,
            actor_credential: e.actor_credential,
            address: e.address,
            user_agent: e.user_agent,
            namespace: e.namespace,
            repository: e.repository,
            target: e.target,
            details: e.details,
        }
    }
}

impl From<ArchivedEntry> for AuditRecord {
    fn from(a: ArchivedEntry) -> AuditRecord {
        AuditRecord {
            seq: a.seq,
            prev_hash: a.prev_hash,
            hash: a.hash,
            entry: AuditEntry {
                time: a.time,
                kind: a.kind,
                actor_kind: a.actor_kind,
                actor_name: a.actor_name,
                actor_credential: a.actor_credential,
                address: a.address,
                user_agent: a.user_agent,
                namespace: a.namespace,
                repository: a.repository,
                target: a.target,
                details: a.details,
            },
        }
    }
}

impl From<&AuditCheckpoint> for ArchivedCut {
    fn from(c: &AuditCheckpoint) -> ArchivedCut {
        ArchivedCut {
            seq: c.seq,
            hash: c.hash.clone(),
            time: c.time,
            signature: c.signature.clone(),
        }
    }
}

impl From<ArchivedCut> for AuditCheckpoint {
    fn from(c: ArchivedCut) -> AuditCheckpoint {
        AuditCheckpoint {
            kind: CheckpointKind::Cut,
            seq: c.seq,
            hash: c.hash,
            time: c.time,
            signature: c.signature,
        }
    }
}

/// Writes the stored entries up to `cut.seq` and `cut` itself to a new file in `dir`;
/// returns its path, or `None` when no entry is stored up to the cut.
pub async fn write(
    store: &dyn AuditStore,
    dir: &Path,
    cut: &AuditCheckpoint,
) -> Result<Option<PathBuf>, AuditError> {
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".audit-{}.partial", cut.seq));
    let mut out = BufWriter::new(std::fs::File::create(&partial)?);
    let mut first = None;
    walk_entries(store, &AuditFilter::default(), None, |row| {
        if row.seq > cut.seq {
            return Ok(ControlFlow::Break(()));
        }
        first.get_or_insert(row.seq);
        serde_json::to_writer(&mut out, &Line::Entry(Box::new(row.into())))?;
        out.write_all(b"\n")?;
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    let Some(first) = first else {
        drop(out);
        std::fs::remove_file(&partial)?;
        return Ok(None);
    };
    serde_json::to_writer(&mut out, &Line::Cut(cut.into()))?;
    out.write_all(b"\n")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let path = dir.join(format!("audit-{first:012}-{:012}.jsonl", cut.seq));
    std::fs::rename(&partial, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Some(path))
}

/// Verifies archives given oldest first: each entry's hash, the links between entries and
/// from one archive to the next, and that each archive ends exactly at its signed cut.
pub fn verify(paths: &[PathBuf], keys: &KeyRing) -> Result<Report, AuditError> {
    let mut walk: Option<Walk> = None;
    let mut findings = Vec::new();
    let mut checkpoints = 0;
    let mut end = None;
    for path in paths {
        let reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut cut = None;
        for (number, line) in reader.lines().enumerate() {
            let line = line?;
            let parsed: Line = serde_json::from_str(&line).map_err(|e| {
                AuditError::Archive(format!("{}:{}: {e}", path.display(), number + 1))
            })?;
            if cut.is_some() {
                return Err(AuditError::Archive(format!(
                    "{}:{}: a line after the cut",
                    path.display(),
                    number + 1
                )));
            }
            match parsed {
                Line::Cut(c) => cut = Some(AuditCheckpoint::from(c)),
                Line::Entry(e) => {
                    let record = AuditRecord::from(*e);
                    walk.get_or_insert_with(|| {
                        Walk::new((record.seq, record.prev_hash.clone()), HashMap::new())
                    })
                    .push(record);
                }
            }
        }
        let Some(cut) = cut else {
            return Err(AuditError::Archive(format!(
                "{}: no signed cut at the end (truncated?)",
                path.display()
            )));
        };
        match check_signature(keys, &cut) {
            Ok(()) => checkpoints += 1,
            Err(finding) => findings.push(finding),
        }
        if let Some(walk) = walk.as_mut() {
            walk.check_end(cut.seq, &cut.hash);
        }
        end = Some(cut.seq);
    }
    let Some(walk) = walk else {
        return Ok(Report {
            findings,
            checkpoints,
            ..Report::default()
        });
    };
    let mut report = walk.finish();
    report.checkpoints = checkpoints;
    report.cut = end;
    report.findings.extend(findings);
    report.findings.sort_by_key(|f| f.seq);
    Ok(report)
}
