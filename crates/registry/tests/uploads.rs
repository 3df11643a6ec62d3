//! Upload completion through the registry's own API, over SQLite and the filesystem, with a
//! blob store that can fail its next commit (`common::Faulty`: a real store underneath, the
//! failure injected).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bulwark_meta::{SqlMetaStore, SqlOptions};
use bulwark_oci::{Digest, RepoName};
use bulwark_registry::{BlobRead, Limits, Registry};
use bulwark_storage::{ByteStream, FsBlobStore};
use common::Faulty;
use futures::StreamExt;

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
    let blobs = Arc::new(Faulty::new(
        Arc::new(FsBlobStore::open(dir.path()).await.unwrap()),
        Duration::ZERO,
    ));
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
