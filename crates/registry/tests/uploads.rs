//! Upload completion through the registry's own API, over SQLite and the filesystem, with a
//! blob store that can fail its next commit (a real store underneath; the failure is
//! injected, since a real disk cannot be made to fail on cue).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bulwark_meta::{SqlMetaStore, SqlOptions};
use bulwark_oci::{Digest, RepoName};
use bulwark_registry::{BlobRead, Limits, Registry};
use bulwark_storage::{Appended, BlobStore, ByteStream, FsBlobStore, StorageError, UploadRead};
use futures::StreamExt;

/// The filesystem store, but its next commit fails once `fail_next_commit` is set.
struct FailingCommit {
    inner: FsBlobStore,
    fail_next_commit: AtomicBool,
}

#[async_trait::async_trait]
impl BlobStore for FailingCommit {
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
            return Err(StorageError::Io(std::io::Error::other("injected")));
        }
        self.inner.commit_upload(id, state, size, d).await
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

fn body(bytes: &[u8]) -> ByteStream {
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

async fn read_all(reg: &Registry, repo: &RepoName, digest: &Digest) -> Vec<u8> {
    let BlobRead::Bytes { mut stream, .. } = reg.read_blob(repo, digest, None).await.unwrap()
    else {
        panic!("the filesystem store serves bytes")
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

/// The closing `PUT` carries the last chunk, which the session records only if the
/// completion fails: then the session names every byte stored, and a retried `PUT` without
/// a body completes the upload.
#[tokio::test]
async fn a_failed_completion_keeps_the_last_chunk_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let meta = SqlMetaStore::open(&url, &SqlOptions::default())
        .await
        .unwrap();
    let blobs = Arc::new(FailingCommit {
        inner: FsBlobStore::open(dir.path()).await.unwrap(),
        fail_next_commit: AtomicBool::new(false),
    });
    let reg = Registry::new(Arc::new(meta), blobs.clone(), Limits::default());
    let repo = RepoName::parse("ns/app", 255).unwrap();
    let content = b"first chunk, then the last one".to_vec();
    let digest = Digest::sha256_of(&content);

    // Completed at once: the session goes, and so does the last chunk's record.
    let up = reg.start_upload(&repo).await.unwrap();
    reg.append_chunk(&repo, &up.id, Some(0), None, body(&content[..12]))
        .await
        .unwrap();
    reg.finish_upload(
        &repo,
        &up.id,
        &digest,
        Some(12),
        Some((body(&content[12..]), None)),
    )
    .await
    .unwrap();
    assert!(reg.upload_status(&repo, &up.id).await.is_err());
    assert_eq!(read_all(&reg, &repo, &digest).await, content);

    // The commit fails: the session holds all the bytes, and the retry needs no body.
    let other = RepoName::parse("ns/other", 255).unwrap();
    let up = reg.start_upload(&other).await.unwrap();
    reg.append_chunk(&other, &up.id, Some(0), None, body(&content[..12]))
        .await
        .unwrap();
    blobs.fail_next_commit.store(true, Ordering::SeqCst);
    assert!(
        reg.finish_upload(
            &other,
            &up.id,
            &digest,
            Some(12),
            Some((body(&content[12..]), None))
        )
        .await
        .is_err()
    );
    assert_eq!(
        reg.upload_status(&other, &up.id).await.unwrap().size,
        content.len() as u64
    );
    assert!(reg.read_blob(&other, &digest, None).await.is_err());
    reg.finish_upload(&other, &up.id, &digest, None, None)
        .await
        .unwrap();
    assert_eq!(read_all(&reg, &other, &digest).await, content);
}
