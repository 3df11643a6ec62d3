//! Vulnerability scanning in the registry. Every image manifest pushed is queued for a
//! scan job; a scan reads each layer once (its index is stored by layer digest and reused
//! by every image sharing it), assembles the inventory, matches it against the
//! vulnerability data and grades the image. When the data changes (an import on any node)
//! a re-match job re-matches every scanned manifest from the stored layer indexes — no
//! layer is read again — and reports each newly affecting vulnerability as an event.
//!
//! The scanner itself (`bulwark-scanner`) is synchronous; this crate feeds it layers from
//! the blob store as streams on blocking threads and keeps its results in the metadata
//! store (`ScanStore`).

mod policy;
mod report;
mod scan;
pub mod vulndb;

use std::path::Path;
use std::sync::Arc;

use bulwark_events::{Actor, Event, EventSink, Origin};
use bulwark_meta::{
    JobStore, MetaError, MetaStore, NewJob, ScanStore, VulnerabilityImport, VulnerabilityRecord,
    now_millis,
};
use bulwark_oci::{Digest, ManifestKind, ParsedManifest, RepoName};
use bulwark_registry::ManifestObserver;
use bulwark_scanner::Limits;
use bulwark_storage::{BlobStore, StorageError};
use serde::{Deserialize, Serialize};

pub use bulwark_scanner::INDEX_FORMAT_VERSION;
pub use policy::PolicyRequest;
pub use report::{Feature, SbomFormat, ScanReport, StoredFinding};

/// The job that scans one manifest; its payload is a [`ScanRequest`].
pub const SCAN_MANIFEST: &str = "scan_manifest";
/// The job that re-matches every scanned manifest against newer vulnerability data.
pub const REMATCH: &str = "rematch_vulnerabilities";

/// The job that deletes the scans of manifests and the indexes of layers that garbage
/// collection removed.
pub const PRUNE_SCANS: &str = "prune_scans";

/// Attempts of a scan job: a failure to read a layer may be passing.
const SCAN_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("blob storage: {0}")]
    Storage(#[from] StorageError),
    #[error("vulnerability data: {0}")]
    InvalidVulnerabilityData(String),
    #[error("manifest {0} not found in the repository")]
    ManifestUnknown(Digest),
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    #[error("manifest {0} has no successful scan yet")]
    NotScanned(Digest),
    #[error("stored scan data is corrupt: {0}")]
    Corrupt(String),
    #[error("scanning is disabled")]
    Disabled,
    #[error("{0}")]
    Internal(String),
}

/// Reading vulnerability data files fails as invalid data, naming the file.
impl From<bulwark_scanner::ScanError> for SecurityError {
    fn from(e: bulwark_scanner::ScanError) -> Self {
        SecurityError::InvalidVulnerabilityData(e.to_string())
    }
}

/// How scanning runs (the `[scanner]` configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Scan pushed images; off, pushes queue nothing (imports and reads still work).
    pub enabled: bool,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            limits: Limits::default(),
        }
    }
}

/// What the metadata store must offer: manifests, scan rows and the job queue.
pub trait SecurityStore: MetaStore + ScanStore + JobStore {}
impl<T: MetaStore + ScanStore + JobStore> SecurityStore for T {}

/// The payload of a [`SCAN_MANIFEST`] job: the repository it was pushed to (events name
/// it) and the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanRequest {
    pub repository: String,
    pub digest: String,
}

pub struct Security {
    store: Arc<dyn SecurityStore>,
    blobs: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
    settings: Settings,
    database: vulndb::DatabaseCache,
    layer_locks: scan::LayerLocks,
    policies: policy::PolicyCache,
}

impl Security {
    pub fn new(
        store: Arc<dyn SecurityStore>,
        blobs: Arc<dyn BlobStore>,
        events: Arc<dyn EventSink>,
        settings: Settings,
    ) -> Security {
        Security {
            store,
            blobs,
            events,
            settings,
            database: vulndb::DatabaseCache::default(),
            layer_locks: scan::LayerLocks::default(),
            policies: policy::PolicyCache::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// Queues a scan of `digest`, pushed to `repository`: a `queued` row for the API and
    /// a job, unique per digest so that re-pushes (to any repository) add nothing.
    pub async fn queue_scan(&self, repository: &str, digest: &Digest) -> Result<(), SecurityError> {
        if !self.settings.enabled {
            return Err(SecurityError::Disabled);
        }
        let payload = serde_json::to_string(&ScanRequest {
            repository: repository.to_owned(),
            digest: digest.to_string(),
        })
        .expect("strings serialize");
        let key = format!("{SCAN_MANIFEST}:{digest}");
        let job = NewJob {
            kind: SCAN_MANIFEST,
            payload: &payload,
            unique_key: Some(&key),
            run_after: now_millis(),
            max_attempts: SCAN_ATTEMPTS,
        };
        self.store.queue_manifest_scan(digest, job).await?;
        Ok(())
    }

    /// Imports the OSV records at `path` (see [`vulndb::read_records`]); `source` names
    /// where they came from (the path, or the URL the file was downloaded from).
    pub async fn import(
        &self,
        path: &Path,
        source: &str,
        actor: Actor,
        origin: Origin,
    ) -> Result<VulnerabilityImport, SecurityError> {
        let owned = path.to_owned();
        let records = tokio::task::spawn_blocking(move || vulndb::read_records(&owned))
            .await
            .map_err(|e| SecurityError::Internal(format!("reading vulnerability data: {e}")))??;
        self.import_records(&records, source, actor, origin).await
    }

    /// Stores `records` (read from `source`). An import that changes something advances
    /// the data's generation and queues a re-match.
    pub async fn import_records(
        &self,
        records: &[VulnerabilityRecord],
        source: &str,
        actor: Actor,
        origin: Origin,
    ) -> Result<VulnerabilityImport, SecurityError> {
        let outcome = self.store.import_vulnerabilities(records).await?;
        self.emit(
            Event::new("vulnerability_data.import", actor, origin).details(serde_json::json!({
                "source": source,
                "records": records.len(),
                "added": outcome.added,
                "updated": outcome.updated,
                "unchanged": outcome.unchanged,
                "generation": outcome.generation,
            })),
        );
        if outcome.added + outcome.updated > 0 {
            self.queue_rematch(outcome.generation).await?;
        }
        Ok(outcome)
    }

    /// Runs a [`PRUNE_SCANS`] job; returns the rows deleted.
    pub async fn prune(&self) -> Result<u64, SecurityError> {
        Ok(self.store.prune_scans().await?)
    }

    async fn queue_rematch(&self, generation: i64) -> Result<(), SecurityError> {
        let key = format!("{REMATCH}@{generation}");
        self.store
            .enqueue(NewJob {
                kind: REMATCH,
                payload: "{}",
                unique_key: Some(&key),
                run_after: now_millis(),
                max_attempts: SCAN_ATTEMPTS,
            })
            .await?;
        Ok(())
    }
}

/// Pushes queue scans of images (and of indexes, which answer `unsupported` with their
/// platforms scanned on their own); a failure to queue is logged, never fails the push.
#[async_trait::async_trait]
impl ManifestObserver for Security {
    async fn manifest_stored(&self, repo: &RepoName, digest: &Digest, _manifest: &ParsedManifest) {
        if !self.settings.enabled {
            return;
        }
        if let Err(e) = self.queue_scan(repo.as_str(), digest).await {
            tracing::warn!(repository = %repo, %digest, error = %e, "could not queue a scan");
        }
    }
}

/// Whether a manifest is an image the scanner reads; else why it is not.
pub(crate) fn image_layers(manifest: &ParsedManifest) -> Result<(), String> {
    if manifest.kind == ManifestKind::Index {
        return Err("an image index: each platform's manifest is scanned on its own".into());
    }
    let config = manifest.config.as_ref().map(|c| c.media_type.as_str());
    if !matches!(
        config,
        Some(
            "application/vnd.oci.image.config.v1+json"
                | "application/vnd.docker.container.image.v1+json"
        )
    ) {
        return Err(format!(
            "an artifact ({}), not a container image",
            manifest.effective_artifact_type().unwrap_or("no config")
        ));
    }
    if let Some(layer) = manifest.layers.iter().find(|l| l.urls.is_some()) {
        return Err(format!(
            "layer {} is a foreign layer, not stored here",
            layer.digest
        ));
    }
    if manifest.layers.is_empty() {
        return Err("an image without layers".into());
    }
    if let Some(layer) = manifest.layers.iter().find(|l| !is_layer(&l.media_type)) {
        return Err(format!(
            "layer {} is of type {}, not a filesystem layer",
            layer.digest, layer.media_type
        ));
    }
    Ok(())
}

fn is_layer(media_type: &str) -> bool {
    let oci = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.tar")
        .or_else(|| {
            media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.tar")
        });
    let docker = media_type
        .strip_prefix("application/vnd.docker.image.rootfs.diff.tar")
        .or_else(|| {
            media_type.strip_prefix("application/vnd.docker.image.rootfs.foreign.diff.tar")
        });
    matches!(oci, Some("" | "+gzip" | "+zstd")) || matches!(docker, Some(".gzip" | ""))
}
