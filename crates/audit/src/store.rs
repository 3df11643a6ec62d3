//! The persistent action log: batches appended to the hash chain in the metadata store,
//! checkpoints of its head signed with the registry's key, and the retention cut.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bulwark_auth::jwt::KeyRing;
use bulwark_events::Event;
use bulwark_meta::{AuditCheckpoint, AuditStore, CheckpointKind};
use serde::{Deserialize, Serialize};

use crate::buffer::Deliver;
use crate::{AuditError, chain};

/// The `typ` of checkpoint signatures.
pub const CHECKPOINT_TYPE: &str = "bulwark-audit-checkpoint";

/// What a checkpoint's signature covers: all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub time: i64,
}

impl CheckpointClaims {
    pub fn of(checkpoint: &AuditCheckpoint) -> CheckpointClaims {
        CheckpointClaims {
            kind: checkpoint.kind.as_str().to_owned(),
            seq: checkpoint.seq,
            hash: checkpoint.hash.clone(),
            time: checkpoint.time,
        }
    }
}

fn signed(
    keys: &KeyRing,
    kind: CheckpointKind,
    seq: i64,
    hash: String,
) -> Result<AuditCheckpoint, AuditError> {
    let mut checkpoint = AuditCheckpoint {
        kind,
        seq,
        hash,
        time: bulwark_meta::now_millis(),
        signature: String::new(),
    };
    checkpoint.signature =
        keys.sign_statement(CHECKPOINT_TYPE, &CheckpointClaims::of(&checkpoint))?;
    Ok(checkpoint)
}

/// Writes batches to the store, retrying while the database is away (the queue in front
/// fills meanwhile and counts what it drops); while closing, gives up after a few tries.
pub struct StoreWriter {
    store: Arc<dyn AuditStore>,
}

impl StoreWriter {
    pub fn new(store: Arc<dyn AuditStore>) -> StoreWriter {
        StoreWriter { store }
    }
}

const CLOSING_ATTEMPTS: u32 = 3;

#[async_trait::async_trait]
impl Deliver for StoreWriter {
    async fn deliver(&mut self, batch: Vec<Event>, closing: bool) -> u64 {
        let entries: Vec<_> = batch.iter().map(chain::entry_of).collect();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.append_audit(&entries, &chain::hash).await {
                Ok(_) => {
                    metrics::counter!("bulwark_audit_entries_written_total")
                        .increment(entries.len() as u64);
                    return 0;
                }
                Err(e) if closing && attempt >= CLOSING_ATTEMPTS => {
                    tracing::error!(error = %e, lost = entries.len(), "could not write the last action log entries");
                    return entries.len() as u64;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "writing action log entries failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// Signs the chain head if it moved since the last head checkpoint. Returns the checkpoint
/// made, if any.
pub async fn checkpoint(
    store: &dyn AuditStore,
    keys: &KeyRing,
) -> Result<Option<AuditCheckpoint>, AuditError> {
    let (seq, hash) = store.audit_head().await?;
    let last = store
        .audit_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.kind == CheckpointKind::Head)
        .map(|c| c.seq)
        .max();
    if seq == 0 || last.is_some_and(|last| last >= seq) {
        return Ok(None);
    }
    let checkpoint = signed(keys, CheckpointKind::Head, seq, hash)?;
    store.add_audit_checkpoint(&checkpoint).await?;
    Ok(Some(checkpoint))
}

/// Deletes entries older than `before` (ms) behind a signed cut checkpoint, so that the
/// rest still verifies; with `archive`, first writes them to a file in that directory (see
/// [`crate::archive`]). Returns how many entries went.
pub async fn retain(
    store: &dyn AuditStore,
    keys: &KeyRing,
    before: i64,
    archive: Option<&Path>,
) -> Result<u64, AuditError> {
    let Some((seq, hash)) = store.audit_cut_point(before).await? else {
        return Ok(0);
    };
    let cut = signed(keys, CheckpointKind::Cut, seq, hash)?;
    if let Some(dir) = archive {
        crate::archive::write(store, dir, &cut).await?;
    }
    Ok(store.cut_audit(&cut).await?)
}
