//! `bulwark logs verify`: walks the chain from the last signed cut (or its start) and says
//! where it breaks and how.
//!
//! Each entry stores its predecessor's hash as well as its own, so a break can be told
//! apart: an entry whose content no longer gives its hash was **edited**; a gap in the
//! positions means entries were **deleted**; an entry whose successor links to the entry
//! before it was **inserted**; an entry that links to another entry than the one before it
//! was **moved** (reordered). Signed head checkpoints catch a chain rewritten from an edit
//! onwards (its hashes recomputed) and entries deleted from the end; entries after the last
//! checkpoint are protected by the chain alone, so the checkpoint interval bounds that
//! window. Memory: one map entry (8 bytes of hash, the position) per entry walked.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;

use bulwark_auth::jwt::KeyRing;
use bulwark_meta::{AuditCheckpoint, AuditFilter, AuditRecord, AuditStore, CheckpointKind};

use crate::search::walk_entries;
use crate::store::{CHECKPOINT_TYPE, CheckpointClaims};
use crate::{AuditError, chain};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// The entry's content does not give its hash.
    Edited,
    /// Entries are missing at these positions.
    Deleted,
    /// The entry is not part of the chain: the next one links past it.
    Inserted,
    /// The entry links to another entry than the one before it.
    Moved,
    /// The entry links to an entry that is nowhere (deleted, and the rest renumbered).
    Unlinked,
    /// A signed checkpoint does not match the chain (rewritten, or cut from the end).
    Checkpoint,
    /// A checkpoint's signature does not verify or does not cover its fields.
    Signature,
}

/// One finding, at a position of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub seq: i64,
    pub tamper: Tamper,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: {:?}: {}", self.seq, self.tamper, self.detail)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// The position up to which retention cut the log (signed), if it did.
    pub cut: Option<i64>,
    pub checkpoints: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

fn key(hash: &str) -> u64 {
    u64::from_str_radix(hash.get(..16).unwrap_or(hash), 16).unwrap_or(0)
}

/// Checks the signature of `checkpoint`: `Err` is the finding when it does not verify or
/// does not cover the checkpoint's fields.
pub(crate) fn check_signature(keys: &KeyRing, checkpoint: &AuditCheckpoint) -> Result<(), Finding> {
    let signed = keys.verify_statement::<CheckpointClaims>(CHECKPOINT_TYPE, &checkpoint.signature);
    if signed.as_ref().ok() == Some(&CheckpointClaims::of(checkpoint)) {
        return Ok(());
    }
    Err(Finding {
        seq: checkpoint.seq,
        tamper: Tamper::Signature,
        detail: format!(
            "the {} checkpoint's signature does not verify",
            checkpoint.kind.as_str()
        ),
    })
}

pub async fn verify(store: &dyn AuditStore, keys: &KeyRing) -> Result<Report, AuditError> {
    let mut heads: HashMap<i64, String> = HashMap::new();
    let mut cut: Option<(i64, String)> = None;
    let mut findings = Vec::new();
    let mut checkpoints = 0;
    for c in store.audit_checkpoints().await? {
        if let Err(finding) = check_signature(keys, &c) {
            findings.push(finding);
            continue;
        }
        checkpoints += 1;
        match c.kind {
            CheckpointKind::Head => {
                heads.insert(c.seq, c.hash);
            }
            CheckpointKind::Cut if cut.as_ref().is_none_or(|(seq, _)| c.seq > *seq) => {
                cut = Some((c.seq, c.hash));
            }
            CheckpointKind::Cut => {}
        }
    }
    let start = match &cut {
        Some((seq, hash)) => (seq + 1, hash.clone()),
        None => (1, chain::GENESIS.to_owned()),
    };
    let mut walk = Walk::new(start, heads);
    walk.report.cut = cut.as_ref().map(|c| c.0);
    walk.report.checkpoints = checkpoints;
    walk.report.findings = findings;
    let after = Some(walk.expected_seq - 1);
    walk_entries(store, &AuditFilter::default(), after, |row| {
        walk.push(row);
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    let (head_seq, head_hash) = store.audit_head().await?;
    walk.check_end(head_seq, &head_hash);
    Ok(walk.finish())
}

/// Walks entries in position order and records where the chain breaks (see the module
/// documentation); shared by the stored log and archives.
pub(crate) struct Walk {
    report: Report,
    expected_seq: i64,
    prev_hash: String,
    prev: Option<AuditRecord>,
    /// Signed head checkpoints: position → hash.
    heads: HashMap<i64, String>,
    seen: HashMap<u64, i64>,
    /// Links to hashes not seen yet: the entry they name may come later (a move).
    pending: HashMap<u64, i64>,
}

impl Walk {
    /// A walk whose first entry should be at `start.0` and link to hash `start.1`.
    pub(crate) fn new(start: (i64, String), heads: HashMap<i64, String>) -> Walk {
        Walk {
            report: Report::default(),
            expected_seq: start.0,
            prev_hash: start.1,
            prev: None,
            heads,
            seen: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    pub(crate) fn push(&mut self, row: AuditRecord) {
        let report = &mut self.report;
        let found = |tamper, detail: String| Finding {
            seq: row.seq,
            tamper,
            detail,
        };
        report.entries += 1;
        report.first.get_or_insert(row.seq);
        report.last = Some(row.seq);
        let expected_seq = self.expected_seq;
        let gap = row.seq != expected_seq;
        if gap {
            report.findings.push(Finding {
                seq: expected_seq,
                tamper: Tamper::Deleted,
                detail: format!("entries {expected_seq} to {} are missing", row.seq - 1),
            });
        }
        if chain::hash(&row.prev_hash, &row.entry) != row.hash {
            report.findings.push(found(
                Tamper::Edited,
                "its content does not match its hash".into(),
            ));
        }
        if row.prev_hash != self.prev_hash && !gap {
            if let Some(p) = self.prev.as_ref().filter(|p| p.prev_hash == row.prev_hash) {
                report.findings.push(Finding {
                    seq: p.seq,
                    tamper: Tamper::Inserted,
                    detail: format!("entry {} links past it", row.seq),
                });
            } else if let Some(&s) = self.seen.get(&key(&row.prev_hash)) {
                report.findings.push(found(
                    Tamper::Moved,
                    format!("it was written after entry {s}"),
                ));
            } else {
                self.pending.insert(key(&row.prev_hash), row.seq);
            }
        }
        if let Some(hash) = self.heads.get(&row.seq)
            && *hash != row.hash
        {
            report.findings.push(found(
                Tamper::Checkpoint,
                "the signed checkpoint of this entry names another hash (the chain was rewritten)"
                    .into(),
            ));
        }
        let k = key(&row.hash);
        if let Some(moved) = self.pending.remove(&k) {
            report.findings.push(Finding {
                seq: moved,
                tamper: Tamper::Moved,
                detail: format!("it was written after entry {}", row.seq),
            });
        }
        self.seen.insert(k, row.seq);
        self.expected_seq = row.seq + 1;
        self.prev_hash = row.hash.clone();
        self.prev = Some(row);
    }

    /// Checks that the entries walked so far end at position `seq` with hash `hash` (the
    /// chain head, or a signed cut).
    pub(crate) fn check_end(&mut self, seq: i64, hash: &str) {
        let report = &mut self.report;
        let (head_seq, head_hash) = (seq, hash);
        let end = self.expected_seq - 1;
        if head_seq > end {
            report.findings.push(Finding {
                seq: end + 1,
                tamper: Tamper::Deleted,
                detail: format!("entries {} to {head_seq} are missing from the end", end + 1),
            });
        } else if head_seq < end {
            report.findings.push(Finding {
                seq: head_seq + 1,
                tamper: Tamper::Inserted,
                detail: format!(
                    "entries {} to {end} were added after the head (or signed cut)",
                    head_seq + 1
                ),
            });
        } else if head_hash != self.prev_hash {
            report.findings.push(Finding {
                seq: end,
                tamper: Tamper::Edited,
                detail: "the chain head (or signed cut) names another hash".into(),
            });
        }
    }

    /// Ends the walk: links to entries never seen, checkpoints past the end.
    pub(crate) fn finish(mut self) -> Report {
        let report = &mut self.report;
        for (_, seq) in self.pending {
            report.findings.push(Finding {
                seq,
                tamper: Tamper::Unlinked,
                detail: "it links to an entry that is not in the log".into(),
            });
        }
        let end = self.expected_seq - 1;
        for (&seq, _) in self.heads.iter().filter(|(seq, _)| **seq > end) {
            report.findings.push(Finding {
                seq,
                tamper: Tamper::Checkpoint,
                detail: format!("a signed checkpoint names this entry but the log ends at {end}"),
            });
        }
        report.findings.sort_by_key(|f| f.seq);
        self.report
    }
}
