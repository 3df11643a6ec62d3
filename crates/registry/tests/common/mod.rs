//! A blob store over a real one whose commits and deletions can be slowed down, or whose
//! next commit can be made to fail, for tests of how pushes, uploads and collection meet.
//! Only the delay and the failure are injected: the store underneath is real (a real disk
//! or S3 server cannot be made slow or failing on cue).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bulwark_oci::Digest;
use bulwark_storage::{Appended, BlobStore, ByteStream, StorageError, UploadRead};

pub struct Faulty {
    inner: Arc<dyn BlobStore>,
    /// Added after each commit and before each deletion, as on a loaded object store: it
    /// widens the windows in which a push (commit, then link) and a collection (mark,
    /// delete, forget) can interleave.
    delay: Duration,
    /// Set, the next commit fails (once) before reaching the store.
    pub fail_next_commit: AtomicBool,
}

impl Faulty {
    pub fn new(inner: Arc<dyn BlobStore>, delay: Duration) -> Self {
        Faulty {
            inner,
            delay,
            fail_next_commit: AtomicBool::new(false),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for Faulty {
    async fn stat(&self, d: &Digest) -> Result<Option<u64>, StorageError> {
        self.inner.stat(d).await
    }
    async fn read(&self, d: &Digest, r: Range<u64>) -> Result<ByteStream, StorageError> {
        self.inner.read(d, r).await
    }
    async fn download_url(&self, d: &Digest) -> Result<Option<String>, StorageError> {
        self.inner.download_url(d).await
    }
    async fn delete(&self, d: &Digest) -> Result<(), StorageError> {
        tokio::time::sleep(self.delay).await;
        self.inner.delete(d).await
    }
    async fn begin_upload(&self, id: &str) -> Result<Vec<u8>, StorageError> {
        self.inner.begin_upload(id).await
    }
    async fn append_upload(
        &self,
        id: &str,
        state: &[u8],
        offset: u64,
        data: ByteStream,
    ) -> Result<Appended, StorageError> {
        self.inner.append_upload(id, state, offset, data).await
    }
    async fn release_upload_state(
        &self,
        id: &str,
        dropped: &[u8],
        kept: &[u8],
    ) -> Result<(), StorageError> {
        self.inner.release_upload_state(id, dropped, kept).await
    }
    async fn commit_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
        d: &Digest,
    ) -> Result<(), StorageError> {
        if self.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Io(std::io::Error::other("injected failure")));
        }
        self.inner.commit_upload(id, state, size, d).await?;
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn abort_upload(&self, id: &str, state: Option<&[u8]>) -> Result<(), StorageError> {
        self.inner.abort_upload(id, state).await
    }
    async fn read_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
    ) -> Result<UploadRead, StorageError> {
        self.inner.read_upload(id, state, size).await
    }
    async fn idle_uploads(&self, age: Duration) -> Result<Vec<String>, StorageError> {
        self.inner.idle_uploads(age).await
    }
    async fn committed_blobs(&self, age: Duration) -> Result<Vec<(Digest, u64)>, StorageError> {
        self.inner.committed_blobs(age).await
    }
}
