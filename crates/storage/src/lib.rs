//! Where blob bytes live. Only this crate knows paths, files and (later) object stores.
//!
//! A blob store holds committed blobs by digest and in-progress uploads by id. It never
//! hashes: the registry layer hashes bytes as they stream through and only asks the store
//! to commit an upload once the digest matched.

mod fs;

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use bulwark_oci::Digest;
use bytes::Bytes;
use futures::Stream;

pub use fs::FsBlobStore;

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
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a committed blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError>;

    /// The bytes of a committed blob in `range` (already clamped to its size by the caller).
    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<ByteStream, StorageError>;

    /// Removes a committed blob; absent blobs are not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), StorageError>;

    /// Creates an empty upload.
    async fn begin_upload(&self, id: &str) -> Result<(), StorageError>;

    /// Writes `data` at `offset`, which is the size the caller last committed for this upload:
    /// bytes past it (from a chunk that failed half-way) are dropped first. Returns the new
    /// size. An error leaves the upload at some size ≥ `offset` that the next call truncates.
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64, StorageError>;

    /// Makes the first `size` bytes of the upload durable and visible under `digest`, which
    /// the caller verified, and removes the upload. Idempotent if the blob already exists.
    async fn commit_upload(&self, id: &str, size: u64, digest: &Digest)
    -> Result<(), StorageError>;

    /// Discards an upload; absent uploads are not an error.
    async fn abort_upload(&self, id: &str) -> Result<(), StorageError>;

    /// The first `size` bytes of an upload, for the rare final digest whose algorithm differs
    /// from the one the upload was hashed with as it arrived.
    async fn read_upload(&self, id: &str, size: u64) -> Result<ByteStream, StorageError>;

    /// Uploads untouched for longer than `age`: abandoned, or orphaned by a crash.
    async fn idle_uploads(&self, age: Duration) -> Result<Vec<String>, StorageError>;
}
