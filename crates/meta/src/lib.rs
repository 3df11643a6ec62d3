//! The metadata store. Only this crate knows SQL.
//!
//! `MetaStore` is what the registry layer needs; `SqlMetaStore` implements it over sqlx's
//! `Any` driver so that one body of SQL and one test suite serve SQLite (the embedded
//! default) and PostgreSQL (scale-out), each with its own migrations.

/// A query with a row while the blob whose digest is the parameter `$digest` (e.g. `"$1"`)
/// is being collected. Writes that would keep or link such a blob carry `NOT EXISTS (…)`
/// of it, so that the check and the write are one statement.
macro_rules! blob_being_collected {
    ($digest:literal) => {
        concat!(
            "SELECT 1 FROM blobs WHERE digest = ",
            $digest,
            " AND deleting_at IS NOT NULL"
        )
    };
}

mod audit;
mod batch;
mod identity;
mod jobs;
mod lifecycle;
mod quota;
mod scan;
mod sql;
mod sql_identity;
mod sql_lifecycle;
mod sql_manifest;
mod sql_quota;

use bulwark_oci::{Digest, Reference};

pub use audit::{
    AuditCheckpoint, AuditCount, AuditEntry, AuditFilter, AuditPage, AuditRecord, AuditStore,
    ChainHash, CheckpointKind,
};
pub use identity::{
    Account, AccountKind, Grant, Grantee, IdentityStore, NewAccount, PasswordRecord, RepoRole,
    RepositoryAccessFacts, RepositoryInfo, RobotRecord, SigningKey, Team, TeamRole, TokenKind,
    TokenRecord, Visibility,
};
pub use jobs::{Job, JobStatus, JobStore, NewJob, SingletonGuard};
pub use lifecycle::{
    ExpiredTag, GraphManifest, HistoryQuery, ImmutabilityRule, Keep, LifecycleStore,
    RepositoryCollected, RepositoryCutoffs, RetentionPolicy, TagOptions, TagRecord, UnreachableFn,
};
pub use quota::{NamespaceQuota, QuotaLimit, QuotaLimitChange, QuotaLimitKind, QuotaStore};
pub use scan::{
    LayerIndexRow, ManifestScan, ScanPolicy, ScanStatus, ScanStore, VulnerabilityImport,
    VulnerabilityRecord,
};
pub use sql::{SqlMetaStore, SqlOptions};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database URL {0:?} (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("too many concurrent changes to one {0}; retry")]
    Contention(&'static str),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the manifest references content missing from the repository: {}", list(.0))]
    MissingReferences(Vec<Digest>),
    #[error("tag {0:?} is immutable")]
    ImmutableTag(String),
    #[error("blob {0} is being garbage collected")]
    BlobDeleting(Digest),
    #[error("descriptor for {digest} declares {declared} bytes but the blob has {actual}")]
    SizeMismatch {
        digest: Digest,
        declared: u64,
        actual: u64,
    },
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An upload session: bytes received so far, the hash state over them, and what the blob
/// store needs to find them (its own opaque state, e.g. an S3 multipart upload's parts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repository: String,
    pub size: u64,
    pub hash_state: Vec<u8>,
    pub storage_state: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A manifest as stored: its bytes exactly as pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub subject: Option<Digest>,
    pub content: Vec<u8>,
}

/// A manifest to store, with what the registry extracted from it.
#[derive(Clone, Debug)]
pub struct NewManifest<'a> {
    pub repository: &'a str,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a Digest>,
    /// The manifest's annotations as a JSON object, for referrers responses.
    pub annotations_json: Option<String>,
    pub content: &'a [u8],
    /// Blobs that must be visible in the repository, with the sizes the manifest declares.
    pub blobs: Vec<(&'a Digest, u64)>,
    /// Manifests (of an index) that must exist in the repository.
    pub children: Vec<&'a Digest>,
    /// The tag to point at this manifest, if pushed by tag.
    pub tag: Option<&'a str>,
}

/// A manifest that names a subject, as the referrers API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations_json: Option<String>,
}

/// One page of a lexically ordered listing.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// Entries strictly after this one.
    pub last: Option<&'a str>,
    pub limit: u32,
}

/// The registry's store; the lifecycle and quota operations come with it, since pushes
/// apply them.
#[async_trait::async_trait]
pub trait MetaStore: LifecycleStore + QuotaStore + Send + Sync + 'static {
    async fn repository_exists(&self, repository: &str) -> Result<bool, MetaError>;

    /// Size of `digest` if it is visible in `repository`.
    async fn repository_blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError>;

    /// Repositories in which `digest` is visible, up to `limit`, for mounts without `from`.
    async fn repositories_with_blob(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<String>, MetaError>;

    /// Size of `digest` if any repository holds it (its bytes are committed).
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetaError>;

    /// Records a committed blob and makes it visible in `repository` (created if new).
    async fn link_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError>;

    /// Completes an upload: links the committed blob into `repository` and removes the
    /// session, in one transaction.
    async fn complete_upload(
        &self,
        id: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError>;

    /// Hides a blob from a repository. Returns whether it was visible there.
    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, MetaError>;

    async fn create_upload(&self, session: &UploadSession) -> Result<(), MetaError>;

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, MetaError>;

    /// Records that the upload grew from `from_size` to `to_size`, with its new hash and
    /// storage states. Returns false (and changes nothing) if another request moved it
    /// meanwhile.
    async fn advance_upload(
        &self,
        id: &str,
        from_size: u64,
        to_size: u64,
        hash_state: &[u8],
        storage_state: &[u8],
    ) -> Result<bool, MetaError>;

    async fn delete_upload(&self, id: &str) -> Result<bool, MetaError>;

    /// Ids of uploads not touched since `before` (milliseconds since the epoch).
    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, MetaError>;

    /// Stores a manifest (idempotent) after checking, in the same transaction, that every
    /// blob and child it references is in the repository; then moves the tag, if any.
    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<(), MetaError>;

    async fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError>;

    /// Deletes a manifest and ends the tags that point at it. Returns whether it existed.
    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, MetaError>;

    /// Ends a live tag. Returns whether it was live.
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, MetaError>;

    /// Live tags in lexical order, or `None` if the repository does not exist.
    async fn tags(
        &self,
        repository: &str,
        page: Page<'_>,
    ) -> Result<Option<Vec<String>>, MetaError>;

    /// Repository names in lexical order.
    async fn repositories(&self, page: Page<'_>) -> Result<Vec<String>, MetaError>;

    /// Manifests in `repository` whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError>;
}

/// Milliseconds since the Unix epoch: the time unit of every stored timestamp.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
