//! The error codes of the OCI Distribution Specification, and this crate's validation errors.

/// The error codes of the distribution spec, which says an error's code MUST be one of them.
/// The HTTP status belongs to the `api` crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
        }
    }
}

/// What can be wrong with untrusted OCI input, before any storage is touched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciError {
    #[error("invalid digest: {0:?}")]
    DigestInvalid(String),
    #[error("unsupported digest algorithm: {0:?}")]
    UnsupportedDigest(String),
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("invalid tag: {0:?}")]
    TagInvalid(String),
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    #[error("unsupported manifest media type: {0:?}")]
    ManifestMediaTypeUnsupported(String),
}

impl OciError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OciError::DigestInvalid(_) => ErrorCode::DigestInvalid,
            OciError::UnsupportedDigest(_) => ErrorCode::Unsupported,
            OciError::NameInvalid(_) => ErrorCode::NameInvalid,
            OciError::TagInvalid(_) => ErrorCode::ManifestInvalid,
            OciError::ManifestInvalid(_) => ErrorCode::ManifestInvalid,
            OciError::ManifestMediaTypeUnsupported(_) => ErrorCode::ManifestInvalid,
        }
    }
}
