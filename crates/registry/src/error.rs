use bulwark_meta::MetaError;
use bulwark_oci::{Digest, ErrorCode, OciError};
use bulwark_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] OciError),
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    #[error("manifest unknown to registry")]
    ManifestUnknown,
    #[error("manifest is not available in any media type the client accepts")]
    ManifestNotAcceptable,
    #[error("repository name not known to registry")]
    NameUnknown,
    #[error("provided digest {expected} did not match uploaded content ({actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("chunk starts at {start} but the upload holds {size} bytes")]
    ChunkOutOfOrder { start: u64, size: u64 },
    #[error("requested range is not satisfiable (blob has {size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    #[error("content length {received} does not match the declared {declared}")]
    LengthMismatch { declared: u64, received: u64 },
    #[error("blob exceeds the size limit of {limit} bytes")]
    BlobTooLarge { limit: u64 },
    #[error("manifest exceeds the size limit of {limit} bytes")]
    ManifestTooLarge { limit: usize },
    #[error("manifest references unknown content: {0:?}")]
    ManifestReferencesMissing(Vec<Digest>),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("tag {0:?} is immutable: it cannot be moved, deleted or expire")]
    TagImmutable(String),
    #[error("tag {tag:?} did not point at {digest} within the time machine window")]
    NotInHistory { tag: String, digest: Digest },
    #[error("a time machine window of {secs} seconds is not allowed (allowed: {allowed:?})")]
    WindowNotAllowed { secs: u64, allowed: Vec<u64> },
    #[error("invalid immutability rule: {0}")]
    InvalidRule(String),
    #[error("immutability rule {0} not found")]
    RuleUnknown(i64),
    #[error("invalid retention policy: {0}")]
    InvalidPolicy(String),
    #[error("retention policy {0} not found")]
    PolicyUnknown(i64),
    #[error("invalid quota: {0}")]
    InvalidQuota(String),
    #[error("quota {0} not found")]
    QuotaUnknown(i64),
    #[error("quota limit {0} not found")]
    QuotaLimitUnknown(i64),
    #[error("{}", quota_exceeded(namespace, *usage, *limit))]
    QuotaExceeded {
        namespace: String,
        usage: u64,
        limit: u64,
    },
    #[error("the blob is being garbage collected; retry")]
    Busy,
    #[error("the request body could not be read: {0}")]
    Body(std::io::Error),
    #[error("pull refused by the vulnerability policy: {0}")]
    PullDenied(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(MetaError),
}

/// What a refused push is told: the namespace, what it would hold, its limit.
fn quota_exceeded(namespace: &str, usage: u64, limit: u64) -> String {
    if usage > limit {
        format!(
            "quota exceeded: namespace {namespace} would hold {usage} bytes, over its limit of \
             {limit} bytes"
        )
    } else {
        format!(
            "quota exceeded: namespace {namespace} holds {usage} bytes, its limit is {limit} bytes"
        )
    }
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::MissingReferences(d) => RegistryError::ManifestReferencesMissing(d),
            e @ MetaError::SizeMismatch { .. } => RegistryError::ManifestInvalid(e.to_string()),
            MetaError::ImmutableTag(tag) => RegistryError::TagImmutable(tag),
            MetaError::BlobDeleting(_) => RegistryError::Busy,
            e => RegistryError::Meta(e),
        }
    }
}

impl RegistryError {
    /// The distribution-spec code for this error; `None` for server faults.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            RegistryError::Invalid(e) => e.code(),
            RegistryError::BlobUnknown => ErrorCode::BlobUnknown,
            RegistryError::UploadUnknown => ErrorCode::BlobUploadUnknown,
            RegistryError::ManifestUnknown | RegistryError::ManifestNotAcceptable => {
                ErrorCode::ManifestUnknown
            }
            RegistryError::NameUnknown => ErrorCode::NameUnknown,
            RegistryError::DigestMismatch { .. } => ErrorCode::DigestInvalid,
            // The spec has no range code: an out-of-order chunk makes the upload invalid, and
            // a range outside the blob does not fit its length.
            RegistryError::ChunkOutOfOrder { .. } => ErrorCode::BlobUploadInvalid,
            RegistryError::RangeNotSatisfiable { .. } => ErrorCode::SizeInvalid,
            RegistryError::LengthMismatch { .. } => ErrorCode::SizeInvalid,
            RegistryError::BlobTooLarge { .. } => ErrorCode::SizeInvalid,
            RegistryError::ManifestTooLarge { .. } => ErrorCode::SizeInvalid,
            RegistryError::ManifestReferencesMissing(_) => ErrorCode::ManifestBlobUnknown,
            RegistryError::ManifestInvalid(_) => ErrorCode::ManifestInvalid,
            RegistryError::Body(_) => ErrorCode::BlobUploadInvalid,
            RegistryError::TagImmutable(_) | RegistryError::PullDenied(_) => ErrorCode::Denied,
            // As Quay and Harbor answer: the push is refused, whoever pushes.
            RegistryError::QuotaExceeded { .. } => ErrorCode::Denied,
            RegistryError::NotInHistory { .. } => ErrorCode::ManifestUnknown,
            RegistryError::Busy => ErrorCode::TooManyRequests,
            // Management API only: no distribution-spec code says "bad setting".
            RegistryError::WindowNotAllowed { .. }
            | RegistryError::InvalidRule(_)
            | RegistryError::InvalidPolicy(_)
            | RegistryError::InvalidQuota(_) => ErrorCode::Unsupported,
            RegistryError::RuleUnknown(_)
            | RegistryError::PolicyUnknown(_)
            | RegistryError::QuotaUnknown(_)
            | RegistryError::QuotaLimitUnknown(_) => ErrorCode::NameUnknown,
            RegistryError::Storage(StorageError::UploadNotFound) => ErrorCode::BlobUploadUnknown,
            RegistryError::Storage(_) | RegistryError::Meta(_) => return None,
        })
    }
}
