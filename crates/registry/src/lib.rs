//! The registry's domain services: the rules of the OCI distribution spec over the metadata
//! and blob stores. Knows no HTTP, no SQL, no paths.

mod body;
mod error;
mod gc;
mod lifecycle;
mod manifests;
mod quota;
mod retention;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use bulwark_events::{EventSink, LogSink};
use bulwark_meta::{MetaError, MetaStore};
use bulwark_oci::{Digest, OciError, ParsedManifest, RepoName};
use bulwark_storage::BlobStore;

pub use bulwark_meta::{
    ImmutabilityRule, Keep, QuotaLimitChange, QuotaLimitKind, RetentionPolicy, TagRecord,
};
pub use bulwark_storage::ByteStream;
pub use error::RegistryError;
pub use gc::GcReport;
pub use lifecycle::{
    EXPIRES_AFTER_KEYS, HistoryPage, HistoryRequest, LifecycleSettings, RuleView, WindowView,
    parse_duration,
};
pub use manifests::{ListPage, ManifestPut, ReferrersIndex};
pub use quota::{LimitView, QuotaReport, QuotaView, kind_name, parse_kind};
pub use retention::{PolicyView, Pruned};
pub use uploads::{BlobRead, ByteRange, MountOutcome, UploadState};

/// Input limits; each has a configuration key in the binary.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest manifest accepted (bytes).
    pub max_manifest_bytes: usize,
    /// Longest repository name (bytes).
    pub max_name_len: usize,
    /// Largest blob accepted (bytes).
    pub max_blob_bytes: u64,
    /// Upload sessions untouched for this long are purged.
    pub upload_ttl: Duration,
    /// Largest page of tags or repositories in one response.
    pub max_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_name_len: 255,
            max_blob_bytes: 64 * 1024 * 1024 * 1024,
            upload_ttl: Duration::from_secs(24 * 3600),
            max_page: 10_000,
        }
    }
}

/// Answers whether the caller may read a repository; used where the registry itself picks a
/// source repository (cross-repository mounts), so that a mount never leaks a blob.
pub type ReadCheck<'a> =
    &'a (dyn Fn(RepoName) -> futures::future::BoxFuture<'static, bool> + Send + Sync);

pub struct Registry {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    limits: Limits,
    /// Serializes requests on one upload session within this process (see `uploads`).
    upload_locks: uploads::UploadLocks,
    lifecycle: LifecycleSettings,
    /// Where lifecycle changes and collections are reported.
    events: Arc<dyn EventSink>,
    /// Told of every manifest stored (vulnerability scanning queues its scans there).
    observers: Vec<Arc<dyn ManifestObserver>>,
    /// Asked before a manifest is served (the vulnerability policy).
    pull_gate: Option<Arc<dyn PullGate>>,
}

/// Decides whether a stored manifest may be served: `Some(reason)` refuses the pull
/// (`DENIED`, naming the reason); an error fails the request rather than letting it by.
#[async_trait::async_trait]
pub trait PullGate: Send + Sync + 'static {
    async fn refuse_pull(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<String>, MetaError>;
}

/// Learns of each manifest once it is stored. Called after the push succeeded and before
/// it is answered; it must not fail the push (log instead) and should be quick.
#[async_trait::async_trait]
pub trait ManifestObserver: Send + Sync + 'static {
    async fn manifest_stored(&self, repo: &RepoName, digest: &Digest, manifest: &ParsedManifest);
}

impl Registry {
    pub fn new(meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, limits: Limits) -> Self {
        Registry {
            meta,
            blobs,
            limits,
            upload_locks: uploads::UploadLocks::default(),
            lifecycle: LifecycleSettings::default(),
            events: Arc::new(LogSink),
            observers: Vec::new(),
            pull_gate: None,
        }
    }

    pub fn with_lifecycle(mut self, settings: LifecycleSettings) -> Self {
        self.lifecycle = settings;
        self
    }

    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn ManifestObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    pub fn with_pull_gate(mut self, gate: Arc<dyn PullGate>) -> Self {
        self.pull_gate = Some(gate);
        self
    }

    pub fn lifecycle(&self) -> &LifecycleSettings {
        &self.lifecycle
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates a repository name from a request path.
    pub fn repo_name(&self, name: &str) -> Result<RepoName, OciError> {
        RepoName::parse(name, self.limits.max_name_len)
    }
}

impl Registry {
    /// Whether the metadata store and blob storage answer: for load balancers.
    pub async fn check_ready(&self) -> Result<(), RegistryError> {
        self.meta.repository_exists("").await?;
        self.blobs
            .stat(&bulwark_oci::Digest::sha256_of(b""))
            .await?;
        Ok(())
    }
}
