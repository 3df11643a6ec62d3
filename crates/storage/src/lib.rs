//! Where blob bytes live. Only this crate knows paths, files and object stores.
//!
//! A blob store holds committed blobs by digest and in-progress uploads by id. It never
//! hashes: the registry layer hashes bytes as they stream through and only asks the store
//! to commit an upload once the digest matched.
//!
//! An upload in progress may need state beyond its bytes: for S3, the multipart upload's id,
//! its parts and a temporary tail object. The store hands that state back, as opaque bytes,
//! from every call that changes it; the caller records it with the upload's size and hash
//! state in one compare-and-set and passes it to the next call, on whichever node takes it.
//! So no node keeps anything about an upload in memory or on its disk between requests.

mod file_read;
mod fs;
mod s3;

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use bulwark_oci::Digest;
use bytes::Bytes;
use futures::Stream;

pub use fs::FsBlobStore;
pub use s3::{DEFAULT_PART_SIZE, MIN_PART_SIZE, S3BlobStore, S3Options};

/// A stream of blob bytes, in either direction.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob not found")]
    NotFound,
    #[error("upload not found")]
    UploadNotFound,
    #[error("upload holds {actual} bytes, expected {expected}")]
    UploadSizeMismatch { expected: u64, actual: u64 },
    #[error("upload exceeds {parts} parts of {part_size} bytes")]
    UploadTooLarge { parts: usize, part_size: usize },
    #[error("stored upload state is corrupt: {0}")]
    CorruptState(String),
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

/// An upload after an append: its size and the state to record with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub size: u64,
    pub state: Vec<u8>,
}

/// The bytes of an upload, read back before it is committed.
pub struct UploadRead {
    pub stream: ByteStream,
    /// The upload's state after the read, to pass to `commit_upload` or `abort_upload`.
    pub state: Vec<u8>,
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a committed blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError>;

    /// The bytes of a committed blob in `range` (already clamped to its size by the caller).
    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<ByteStream, StorageError>;

    /// A time-limited URL the client may fetch a committed blob from directly, if this store
    /// offers such URLs and was configured to hand them out.
    async fn download_url(&self, digest: &Digest) -> Result<Option<String>, StorageError>;

    /// Removes a committed blob; absent blobs are not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), StorageError>;

    /// Creates an empty upload and returns its initial state.
    async fn begin_upload(&self, id: &str) -> Result<Vec<u8>, StorageError>;

    /// Writes `data` at `offset`, which is the size the caller last recorded for this upload
    /// together with `state`: whatever a failed call wrote past it is ignored or dropped.
    /// Returns the new size and state; on error the recorded state stays valid.
    async fn append_upload(
        &self,
        id: &str,
        state: &[u8],
        offset: u64,
        data: ByteStream,
    ) -> Result<Appended, StorageError>;

    /// Called once the caller recorded `kept` and will never use `dropped` again (the state
    /// an append superseded, or the result of an append whose recording failed): removes
    /// the temporary objects `dropped` names that `kept` does not.
    async fn release_upload_state(
        &self,
        id: &str,
        dropped: &[u8],
        kept: &[u8],
    ) -> Result<(), StorageError>;

    /// Makes the first `size` bytes of the upload durable and visible under `digest`, which
    /// the caller verified, and removes the upload. Idempotent if the blob already exists.
    async fn commit_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
        digest: &Digest,
    ) -> Result<(), StorageError>;

    /// Discards an upload; absent uploads are not an error. Without `state` (an upload found
    /// by `idle_uploads` with no recorded session) only what can be found by its id goes.
    async fn abort_upload(&self, id: &str, state: Option<&[u8]>) -> Result<(), StorageError>;

    /// The first `size` bytes of an upload, for the rare final digest whose algorithm differs
    /// from the one the upload was hashed with as it arrived.
    async fn read_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
    ) -> Result<UploadRead, StorageError>;

    /// Uploads untouched for longer than `age`: abandoned, or orphaned by a crash.
    async fn idle_uploads(&self, age: Duration) -> Result<Vec<String>, StorageError>;

    /// Committed blobs written longer than `age` ago, with their sizes: what garbage
    /// collection compares with the metadata to find bytes nothing names.
    async fn committed_blobs(&self, age: Duration) -> Result<Vec<(Digest, u64)>, StorageError>;
}

/// Upload ids are generated by the registry; refuse anything that could name another path.
fn valid_upload_id(id: &str) -> Result<&str, StorageError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(StorageError::UploadNotFound);
    }
    Ok(id)
}
