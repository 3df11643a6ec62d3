//! Scanning a manifest, and re-matching scanned ones.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{LayerIndexRow, ManifestScan, ScanStatus, now_millis};
use bulwark_oci::{Digest, ParsedManifest, Reference};
use bulwark_scanner::{Date, INDEX_FORMAT_VERSION, Inventory, LayerIndex, ScanError};

use crate::report::StoredFinding;
use crate::vulndb::Loaded;
use crate::{ScanRequest, Security, SecurityError, image_layers};

/// A reader that notes whether its source (the blob store) failed, so that a storage error
/// is told apart from a layer the scanner refuses.
struct Tracked<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner
            .read(buf)
            .inspect_err(|_| self.failed.store(true, Ordering::Relaxed))
    }
}

/// One indexing of a layer at a time on this node: images sharing a new layer, scanned at
/// once, read it once (the second finds the first's stored index).
#[derive(Default)]
pub(crate) struct LayerLocks(Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>);

impl LayerLocks {
    fn of(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = locks.get(digest).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(digest.clone(), Arc::downgrade(&lock));
        lock
    }
}

/// Scans matched per read when re-matching.
const REMATCH_PAGE: u32 = 100;

/// A layer's index, or why the layer cannot be indexed (kept for every image sharing it).
enum LayerOutcome {
    Indexed(LayerIndex),
    Refused(ScanStatus, String),
}

/// What scanning an input the scanner refuses gives: `unsupported` for a format it does
/// not read or a limit crossed (the "unsupported/too large"), else `failed`.
fn refusal(e: &ScanError) -> ScanStatus {
    match e {
        ScanError::TooLarge { .. } | ScanError::Unsupported(_) => ScanStatus::Unsupported,
        _ => ScanStatus::Failed,
    }
}

impl Security {
    /// Runs a [`crate::SCAN_MANIFEST`] job. A layer that cannot be read from storage is an
    /// error (the job retries); what the scanner refuses is a result.
    pub async fn run_scan(&self, request: &ScanRequest) -> Result<(), SecurityError> {
        let digest: Digest = request
            .digest
            .parse()
            .map_err(|_| SecurityError::Corrupt(format!("scan job digest {:?}", request.digest)))?;
        let Some(stored) = self
            .store
            .manifest(&request.repository, &Reference::Digest(digest.clone()))
            .await?
        else {
            // Deleted since its push: another repository holding it queues its own scan
            // only on a new push, so the row says why nothing came.
            return self
                .finish(
                    request,
                    &digest,
                    ScanStatus::Failed,
                    "the manifest was deleted before its scan",
                )
                .await;
        };
        let parsed = match ParsedManifest::parse(Some(&stored.media_type), &stored.content) {
            Ok(parsed) => parsed,
            Err(e) => {
                return self
                    .finish(request, &digest, ScanStatus::Unsupported, &e.to_string())
                    .await;
            }
        };
        if let Err(reason) = image_layers(&parsed) {
            return self
                .finish(request, &digest, ScanStatus::Unsupported, &reason)
                .await;
        }
        let limits = &self.settings.limits;
        if parsed.layers.len() as u64 > limits.max_layers {
            let reason = format!(
                "too large: {} layers exceed max_layers ({})",
                parsed.layers.len(),
                limits.max_layers
            );
            return self
                .finish(request, &digest, ScanStatus::Unsupported, &reason)
                .await;
        }
        let mut indexes = Vec::with_capacity(parsed.layers.len());
        for layer in &parsed.layers {
            match self.layer_index(&layer.digest, Some(layer.size)).await? {
                LayerOutcome::Indexed(index) => indexes.push(index),
                LayerOutcome::Refused(status, reason) => {
                    let reason = format!("layer {}: {reason}", layer.digest);
                    return self.finish(request, &digest, status, &reason).await;
                }
            }
        }
        let layers: Vec<Digest> = parsed.layers.iter().map(|l| l.digest.clone()).collect();
        let inventory = match self.assemble(indexes).await? {
            Ok(inventory) => inventory,
            Err(e) => {
                return self
                    .finish(request, &digest, refusal(&e), &e.to_string())
                    .await;
            }
        };
        let loaded = self.database.current(self.store.as_ref()).await?;
        let previous = self.store.manifest_scan(&digest).await?;
        let scan = self
            .match_and_store(&digest, layers, inventory, &loaded, previous.as_ref())
            .await?;
        let findings = StoredFinding::parse_all(&scan.findings)?;
        self.emit(
            Event::new("scan.completed", Actor::system(), Origin::default())
                .repository(&request.repository)
                .target(digest.to_string())
                .details(serde_json::json!({
                    "status": scan.status.as_str(),
                    "vulnerabilities": findings.len(),
                    "grade": scan.grade,
                    "generation": scan.generation,
                })),
        );
        Ok(())
    }

    /// Records a scan that ended without findings: unsupported or failed, with the reason.
    async fn finish(
        &self,
        request: &ScanRequest,
        digest: &Digest,
        status: ScanStatus,
        reason: &str,
    ) -> Result<(), SecurityError> {
        self.store
            .put_manifest_scan(&ManifestScan {
                status,
                reason: Some(reason.to_owned()),
                ..ManifestScan::queued(digest.clone())
            })
            .await?;
        let kind = match status {
            ScanStatus::Failed => "scan.failed",
            _ => "scan.completed",
        };
        self.emit(
            Event::new(kind, Actor::system(), Origin::default())
                .repository(&request.repository)
                .target(digest.to_string())
                .details(serde_json::json!({ "status": status.as_str(), "reason": reason })),
        );
        Ok(())
    }

    /// The layer's stored index, or a new one read from the blob store (counted in
    /// `bulwark_scanner_layers_indexed_total`) and stored. `size` as the manifest declares
    /// it; without it, as stored.
    async fn layer_index(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<LayerOutcome, SecurityError> {
        let lock = self.layer_locks.of(digest);
        let _indexing = lock.lock().await;
        let limits = self.settings.limits.clone();
        if let Some(row) = self.store.layer_index(digest).await?
            && row.format == i64::from(INDEX_FORMAT_VERSION)
        {
            match (row.status, row.data) {
                (ScanStatus::Scanned, Some(data)) => {
                    match tokio::task::spawn_blocking(move || {
                        LayerIndex::from_bytes(&data, &limits)
                    })
                    .await
                    .map_err(|e| SecurityError::Internal(e.to_string()))?
                    {
                        Ok(index) => return Ok(LayerOutcome::Indexed(index)),
                        Err(e) => {
                            tracing::warn!(layer = %digest, error = %e, "stored layer index unreadable: indexing again")
                        }
                    }
                }
                (status, _) => {
                    return Ok(LayerOutcome::Refused(
                        status,
                        row.reason.unwrap_or_default(),
                    ));
                }
            }
        }
        let limits = self.settings.limits.clone();
        let size = match size {
            Some(size) => size,
            None => self.blobs.stat(digest).await?.ok_or_else(|| {
                SecurityError::Corrupt(format!("layer {digest} is no longer stored"))
            })?,
        };
        let stream = self.blobs.read(digest, 0..size).await?;
        // The scanner reads synchronously: it pulls the stream on a blocking thread, one
        // chunk at a time, so memory stays bounded whatever the layer's size.
        let storage_failed = Arc::new(AtomicBool::new(false));
        let reader = Tracked {
            inner: tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream)),
            failed: storage_failed.clone(),
        };
        let name = digest.to_string();
        let indexed = tokio::task::spawn_blocking(move || {
            bulwark_scanner::index_layer(&name, reader, &limits)
        })
        .await
        .map_err(|e| SecurityError::Internal(e.to_string()))?;
        metrics::counter!("bulwark_scanner_layers_indexed_total").increment(1);
        let (row, outcome) = match indexed {
            Ok(index) => (
                LayerIndexRow {
                    digest: digest.clone(),
                    format: i64::from(INDEX_FORMAT_VERSION),
                    status: ScanStatus::Scanned,
                    reason: None,
                    data: Some(index.to_bytes()),
                    created_at: now_millis(),
                },
                LayerOutcome::Indexed(index),
            ),
            // Storage failed under the scanner: not the layer's fault, and maybe passing.
            // Nothing is kept; the job retries.
            Err(e) if storage_failed.load(Ordering::Relaxed) => {
                return Err(SecurityError::Internal(format!(
                    "reading layer {digest}: {e}"
                )));
            }
            // The bytes themselves are refused (corrupt, too large, unsupported): that
            // holds for every image with this layer.
            Err(e) => {
                let status = refusal(&e);
                let reason = e.to_string();
                (
                    LayerIndexRow {
                        digest: digest.clone(),
                        format: i64::from(INDEX_FORMAT_VERSION),
                        status,
                        reason: Some(reason.clone()),
                        data: None,
                        created_at: now_millis(),
                    },
                    LayerOutcome::Refused(status, reason),
                )
            }
        };
        self.store.put_layer_index(&row).await?;
        Ok(outcome)
    }

    /// The inventory from layer indexes, bottom first (CPU work: on a blocking thread).
    async fn assemble(
        &self,
        indexes: Vec<LayerIndex>,
    ) -> Result<Result<Inventory, ScanError>, SecurityError> {
        let limits = self.settings.limits.clone();
        tokio::task::spawn_blocking(move || {
            bulwark_scanner::inventory_from_layers(&indexes, &limits)
        })
        .await
        .map_err(|e| SecurityError::Internal(e.to_string()))
    }

    /// The inventory of a scanned manifest from its stored layer indexes (a layer whose
    /// index a former scanner version wrote is indexed again).
    pub(crate) async fn stored_inventory(
        &self,
        scan: &ManifestScan,
    ) -> Result<Inventory, SecurityError> {
        let mut indexes = Vec::with_capacity(scan.layers.len());
        for digest in &scan.layers {
            match self.layer_index(digest, None).await? {
                LayerOutcome::Indexed(index) => indexes.push(index),
                LayerOutcome::Refused(_, reason) => {
                    return Err(SecurityError::Corrupt(format!("layer {digest}: {reason}")));
                }
            }
        }
        self.assemble(indexes)
            .await?
            .map_err(|e| SecurityError::Corrupt(e.to_string()))
    }

    /// Matches and grades an inventory, stores the scan, and reports each vulnerability
    /// the manifest did not have before (`vulnerability.found`, once per repository
    /// holding it).
    async fn match_and_store(
        &self,
        digest: &Digest,
        layers: Vec<Digest>,
        inventory: Inventory,
        loaded: &Loaded,
        previous: Option<&ManifestScan>,
    ) -> Result<ManifestScan, SecurityError> {
        let database = loaded.database.clone();
        let report = tokio::task::spawn_blocking(move || {
            bulwark_scanner::report(inventory, &database, Date::today())
        })
        .await
        .map_err(|e| SecurityError::Internal(e.to_string()))?;
        let findings = serde_json::to_string(&report.vulnerabilities).expect("findings serialize");
        let scan = ManifestScan {
            digest: digest.clone(),
            status: ScanStatus::Scanned,
            reason: None,
            layers,
            findings,
            grade: serde_json::to_value(report.grade.current_grade)
                .ok()
                .and_then(|g| g.as_str().map(str::to_owned)),
            next_drop_date: report.grade.next_drop_date.map(|d| d.to_string()),
            generation: loaded.generation,
            updated_at: now_millis(),
        };
        self.store.put_manifest_scan(&scan).await?;

        let known: HashSet<(String, String, String)> = match previous {
            Some(p) if p.status == ScanStatus::Scanned => StoredFinding::parse_all(&p.findings)?
                .into_iter()
                .map(|f| f.key())
                .collect(),
            _ => HashSet::new(),
        };
        let new: Vec<StoredFinding> = StoredFinding::parse_all(&scan.findings)?
            .into_iter()
            .filter(|f| !known.contains(&f.key()))
            .collect();
        if !new.is_empty() {
            for repository in self.store.manifest_repositories(digest).await? {
                for f in &new {
                    self.emit(
                        Event::new("vulnerability.found", Actor::system(), Origin::default())
                            .repository(&repository)
                            .target(digest.to_string())
                            .details(serde_json::json!({
                                "id": f.id,
                                "severity": f.severity,
                                "package": f.package,
                                "version": f.version,
                                "fixed_version": f.fixed_version,
                            })),
                    );
                }
            }
        }
        Ok(scan)
    }

    /// Re-matches one scanned manifest against `loaded` from its stored layer indexes.
    pub(crate) async fn rematch_one(
        &self,
        scan: &ManifestScan,
        loaded: &Loaded,
    ) -> Result<ManifestScan, SecurityError> {
        let inventory = self.stored_inventory(scan).await?;
        self.match_and_store(
            &scan.digest,
            scan.layers.clone(),
            inventory,
            loaded,
            Some(scan),
        )
        .await
    }

    /// Runs a [`crate::REMATCH`] job: every scanned manifest matched against older data
    /// is matched against the current data. Returns how many were.
    pub async fn rematch(&self) -> Result<usize, SecurityError> {
        let loaded = self.database.current(self.store.as_ref()).await?;
        let mut after: Option<Digest> = None;
        let mut count = 0;
        loop {
            let page = self
                .store
                .scans_to_rematch(loaded.generation, after.as_ref(), REMATCH_PAGE)
                .await?;
            for scan in &page {
                match self.rematch_one(scan, &loaded).await {
                    Ok(_) => count += 1,
                    // One manifest's broken row must not stop the others.
                    Err(e) => tracing::warn!(digest = %scan.digest, error = %e, "re-match failed"),
                }
            }
            match page.last() {
                Some(last) if page.len() == REMATCH_PAGE as usize => {
                    after = Some(last.digest.clone())
                }
                _ => break,
            }
        }
        Ok(count)
    }
}
