//! The blob store's behaviour, run against every backend: each test below runs once on the
//! filesystem store and once on the S3 store over a real S3-compatible server (Garage:
//! `scripts/test.sh` starts one and exports `BULWARK_TEST_S3_*`; each test gets a key
//! prefix of its own). The S3 store uses the smallest part size, so that a few MiB of test
//! data cross part boundaries and leave tails.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bulwark_oci::Digest;
use bulwark_storage::{
    Appended, BlobStore, ByteStream, FsBlobStore, MIN_PART_SIZE, S3BlobStore, S3Options,
    StorageError,
};
use bulwark_testkit::pseudo_random;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

const MIB: usize = 1024 * 1024;

/// A store on fresh, empty storage.
struct Fixture {
    store: Arc<dyn BlobStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn fs() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            store: Arc::new(FsBlobStore::open(dir.path()).await.unwrap()),
            _dir: Some(dir),
        }
    }

    async fn s3() -> Fixture {
        Fixture {
            store: Arc::new(S3BlobStore::new(&s3_options()).unwrap()),
            _dir: None,
        }
    }
}

/// The test bucket under a fresh prefix, with the smallest parts and the environment's
/// `AWS_CA_BUNDLE` (set on these machines; the store must cope with it on plain HTTP).
fn s3_options() -> S3Options {
    let place = bulwark_testkit::s3_place();
    S3Options {
        endpoint: place.endpoint,
        bucket: place.bucket,
        region: place.region,
        access_key_id: place.access_key_id,
        secret_access_key: place.secret_access_key,
        path_style: true,
        prefix: place.prefix,
        part_size: MIN_PART_SIZE,
        ca_bundle: std::env::var_os("AWS_CA_BUNDLE").map(Into::into),
        ..S3Options::default()
    }
}

/// Runs each named test on every backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::Fixture::fs().await).await
            })*
        }
        mod s3 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::Fixture::s3().await).await
            })*
        }
    };
}

on_every_backend!(
    chunked_upload_commits_reads_ranges_and_deletes,
    a_failed_append_leaves_the_recorded_state_valid,
    a_dropped_append_never_writes_beside_its_retry,
    a_lost_compare_and_set_keeps_the_recorded_state,
    committing_an_existing_blob_dedups_and_leaves_nothing_behind,
    read_upload_then_commit,
    a_commit_retried_after_a_crash_completes,
    empty_blob,
    an_upload_never_written_is_empty_and_stores_nothing,
    aborted_and_idle_uploads,
    bad_upload_ids_are_refused,
    committed_blobs_are_listed_by_age,
);

/// `data` as a request body arriving in pieces of at most 256 KiB.
fn body(data: &[u8]) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

/// `data`, then a failure, as a client that goes away would send.
fn failing_body(data: &[u8]) -> ByteStream {
    Box::pin(
        body(data).chain(futures::stream::iter([Err(io::Error::other(
            "client went away",
        ))])),
    )
}

async fn read_all(store: &dyn BlobStore, d: &Digest, r: Range<u64>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store.read(d, r).await.unwrap().try_collect().await.unwrap();
    chunks.concat()
}

/// Appends `data` and records the result as the registry does: the new state is kept and
/// the one it superseded released.
async fn append(
    store: &dyn BlobStore,
    id: &str,
    state: &[u8],
    offset: u64,
    data: &[u8],
) -> Appended {
    let appended = store
        .append_upload(id, state, offset, body(data))
        .await
        .unwrap();
    assert_eq!(appended.size, offset + data.len() as u64);
    store
        .release_upload_state(id, state, &appended.state)
        .await
        .unwrap();
    appended
}

/// Uploads `pieces` one append each and commits them; returns the content and its digest.
async fn upload(store: &dyn BlobStore, id: &str, pieces: &[Vec<u8>]) -> (Vec<u8>, Digest) {
    let mut state = store.begin_upload(id).await.unwrap();
    let mut size = 0;
    for piece in pieces {
        let a = append(store, id, &state, size, piece).await;
        (size, state) = (a.size, a.state);
    }
    let content = pieces.concat();
    let digest = Digest::sha256_of(&content);
    store
        .commit_upload(id, &state, size, &digest)
        .await
        .unwrap();
    (content, digest)
}

/// Commits the upload (of `content`, in `state`) and checks the blob reads back whole.
async fn commit_and_read_back(store: &dyn BlobStore, id: &str, state: &[u8], content: &[u8]) {
    let digest = Digest::sha256_of(content);
    let len = content.len() as u64;
    store.commit_upload(id, state, len, &digest).await.unwrap();
    assert_eq!(read_all(store, &digest, 0..len).await, content);
}

async fn chunked_upload_commits_reads_ranges_and_deletes(f: &Fixture) {
    let store = &*f.store;
    // Pieces smaller than, equal to and larger than a part, an empty one, and an end that
    // leaves a tail: on S3 every boundary case of parts and tails.
    let sizes = [
        1,
        3 * MIB,
        0,
        4 * MIB,
        MIN_PART_SIZE,
        2 * MIN_PART_SIZE + 7,
        100_000,
    ];
    let pieces: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pseudo_random(n, i as u64))
        .collect();
    let id = "chunked";
    let mut state = store.begin_upload(id).await.unwrap();
    let mut size = 0;
    for piece in &pieces {
        let a = append(store, id, &state, size, piece).await;
        (size, state) = (a.size, a.state);
    }
    let content = pieces.concat();
    let digest = Digest::sha256_of(&content);
    assert_eq!(
        store.stat(&digest).await.unwrap(),
        None,
        "invisible before commit"
    );
    store
        .commit_upload(id, &state, size, &digest)
        .await
        .unwrap();
    let len = content.len() as u64;
    assert_eq!(store.stat(&digest).await.unwrap(), Some(len));
    assert_eq!(read_all(store, &digest, 0..len).await, content);
    let part = MIN_PART_SIZE as u64;
    for r in [0..1, part - 3..part + 5, len - 10..len, 7..len] {
        assert_eq!(
            read_all(store, &digest, r.clone()).await,
            content[r.start as usize..r.end as usize],
            "range {r:?}"
        );
    }
    assert!(
        store
            .append_upload(id, &state, size, body(b"x"))
            .await
            .is_err(),
        "a committed upload takes no more bytes"
    );
    store.delete(&digest).await.unwrap();
    store.delete(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(
        store.read(&digest, 0..1).await,
        Err(StorageError::NotFound)
    ));
}

async fn a_failed_append_leaves_the_recorded_state_valid(f: &Fixture) {
    let store = &*f.store;
    let id = "retried";
    // On S3: a 1 MiB tail; then the retry fills part 1 and leaves a tail again.
    let first = pseudo_random(MIB, 1);
    let retry = pseudo_random(MIN_PART_SIZE, 2);
    let garbage = pseudo_random(MIN_PART_SIZE + MIB, 3);
    let state = store.begin_upload(id).await.unwrap();
    let a = append(store, id, &state, 0, &first).await;
    // Fails after more than a part: on S3 a part was sent (under the multipart upload this
    // call created) before the failure.
    assert!(
        store
            .append_upload(id, &a.state, a.size, failing_body(&garbage))
            .await
            .is_err()
    );
    let b = append(store, id, &a.state, a.size, &retry).await;
    // Fails again, now that a multipart upload is recorded, after sending part 2; the
    // retry sends part 2 again, which must replace the failed attempt's.
    assert!(
        store
            .append_upload(id, &b.state, b.size, failing_body(&garbage))
            .await
            .is_err()
    );
    let c = append(store, id, &b.state, b.size, &retry).await;
    let content = [first, retry.clone(), retry].concat();
    commit_and_read_back(store, id, &c.state, &content).await;
}

async fn a_dropped_append_never_writes_beside_its_retry(f: &Fixture) {
    let id = "dropped";
    let state = f.store.begin_upload(id).await.unwrap();
    // A client that sends a few MiB and stalls; its request is then dropped.
    let stalled: ByteStream =
        Box::pin(body(&pseudo_random(3 * MIB, 4)).chain(futures::stream::pending()));
    let store = f.store.clone();
    let s = state.clone();
    let task = tokio::spawn(async move { store.append_upload(id, &s, 0, stalled).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let _ = task.await;
    let retry = pseudo_random(MIN_PART_SIZE + 5, 5);
    let a = append(&*f.store, id, &state, 0, &retry).await;
    commit_and_read_back(&*f.store, id, &a.state, &retry).await;
}

async fn a_lost_compare_and_set_keeps_the_recorded_state(f: &Fixture) {
    let store = &*f.store;
    let id = "raced";
    let state = store.begin_upload(id).await.unwrap();
    let first = pseudo_random(MIB, 6);
    let recorded = append(store, id, &state, 0, &first).await;
    // An append whose state was not recorded (another request won): its objects go, the
    // recorded state's stay.
    let lost = store
        .append_upload(
            id,
            &recorded.state,
            recorded.size,
            body(&pseudo_random(MIN_PART_SIZE, 7)),
        )
        .await
        .unwrap();
    store
        .release_upload_state(id, &lost.state, &recorded.state)
        .await
        .unwrap();
    let second = pseudo_random(2 * MIB, 8);
    let won = append(store, id, &recorded.state, recorded.size, &second).await;
    commit_and_read_back(store, id, &won.state, &[first, second].concat()).await;
}

async fn committing_an_existing_blob_dedups_and_leaves_nothing_behind(f: &Fixture) {
    let store = &*f.store;
    let pieces = [pseudo_random(MIN_PART_SIZE + 10, 9), pseudo_random(10, 10)];
    let (content, digest) = upload(store, "dup1", &pieces).await;
    let (_, again) = upload(store, "dup2", &pieces).await;
    assert_eq!(again, digest);
    let small = upload(store, "dup3", &[b"tiny".to_vec()]).await;
    upload(store, "dup4", &[b"tiny".to_vec()]).await;
    assert_eq!(read_all(store, &small.1, 0..4).await, b"tiny");
    assert_eq!(
        read_all(store, &digest, 0..content.len() as u64).await,
        content
    );
    assert!(
        store.idle_uploads(Duration::ZERO).await.unwrap().is_empty(),
        "committed uploads leave no temporary bytes"
    );
}

async fn read_upload_then_commit(f: &Fixture) {
    let store = &*f.store;
    for (id, len) in [("reread-big", MIN_PART_SIZE + MIB), ("reread-small", 1000)] {
        let content = pseudo_random(len, len as u64);
        let state = store.begin_upload(id).await.unwrap();
        let a = append(store, id, &state, 0, &content).await;
        let read = store.read_upload(id, &a.state, a.size).await.unwrap();
        let chunks: Vec<Bytes> = read.stream.try_collect().await.unwrap();
        assert_eq!(chunks.concat(), content);
        commit_and_read_back(store, id, &read.state, &content).await;
    }
}

async fn a_commit_retried_after_a_crash_completes(f: &Fixture) {
    let store = &*f.store;
    for (id, len) in [
        ("recommit-big", MIN_PART_SIZE + MIB),
        ("recommit-small", 1000),
    ] {
        let content = pseudo_random(len, len as u64 + 1);
        let state = store.begin_upload(id).await.unwrap();
        let a = append(store, id, &state, 0, &content).await;
        // `read_upload` assembles the upload as a commit does first (on S3: completes the
        // multipart upload); its state is lost, as when the node died right there.
        drop(store.read_upload(id, &a.state, a.size).await.unwrap());
        commit_and_read_back(store, id, &a.state, &content).await;
    }
}

async fn empty_blob(f: &Fixture) {
    let store = &*f.store;
    let state = store.begin_upload("empty").await.unwrap();
    let a = store
        .append_upload("empty", &state, 0, body(b""))
        .await
        .unwrap();
    assert_eq!(a.size, 0);
    let digest = Digest::sha256_of(b"");
    store
        .commit_upload("empty", &a.state, 0, &digest)
        .await
        .unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(0));
    assert!(read_all(store, &digest, 0..0).await.is_empty());
    assert_eq!(store.download_url(&digest).await.unwrap(), None);
}

/// A session begun and never written to holds nothing in storage (beginning one costs no
/// storage operation), reads as empty and commits as the empty blob.
async fn an_upload_never_written_is_empty_and_stores_nothing(f: &Fixture) {
    let store = &*f.store;
    let state = store.begin_upload("unwritten").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.idle_uploads(Duration::ZERO).await.unwrap().is_empty());
    assert!(
        store
            .append_upload("unwritten", &state, 5, body(b"x"))
            .await
            .is_err(),
        "nothing is there to append after"
    );
    let mut read = store.read_upload("unwritten", &state, 0).await.unwrap();
    assert!(read.stream.next().await.is_none());
    let digest = Digest::sha256_of(b"");
    store
        .commit_upload("unwritten", &read.state, 0, &digest)
        .await
        .unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(0));
    assert!(store.idle_uploads(Duration::ZERO).await.unwrap().is_empty());
}

async fn aborted_and_idle_uploads(f: &Fixture) {
    let store = &*f.store;
    let mut states = Vec::new();
    for id in ["idle-a", "idle-b"] {
        let state = store.begin_upload(id).await.unwrap();
        states.push(append(store, id, &state, 0, &pseudo_random(MIN_PART_SIZE + 1, 11)).await);
    }
    assert!(
        store
            .idle_uploads(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    // Untouched for longer than nothing: once the clock has moved past the last write
    // (S3 stamps objects to the millisecond, and the listing can follow within one).
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.idle_uploads(Duration::ZERO).await.unwrap(),
        ["idle-a", "idle-b"]
    );
    store
        .abort_upload("idle-a", Some(&states[0].state))
        .await
        .unwrap();
    // An upload found without a recorded state (its session is gone) is removed by id.
    store.abort_upload("idle-b", None).await.unwrap();
    store.abort_upload("idle-b", None).await.unwrap();
    assert!(store.idle_uploads(Duration::ZERO).await.unwrap().is_empty());
}

async fn committed_blobs_are_listed_by_age(f: &Fixture) {
    let store = &*f.store;
    assert!(
        store
            .committed_blobs(Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let (a, da) = upload(store, "listed-a", &[b"first".to_vec()]).await;
    let (_, db) = upload(store, "listed-b", &[b"second blob".to_vec()]).await;
    // Uploads in progress are not blobs.
    store.begin_upload("listed-c").await.unwrap();
    let mut listed = store.committed_blobs(Duration::ZERO).await.unwrap();
    listed.sort();
    let mut expected = vec![(da.clone(), a.len() as u64), (db, 11)];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        store
            .committed_blobs(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    store.delete(&da).await.unwrap();
    assert_eq!(
        store.committed_blobs(Duration::ZERO).await.unwrap().len(),
        1
    );
}

async fn bad_upload_ids_are_refused(f: &Fixture) {
    for id in ["", "../escape", "a/b"] {
        assert!(matches!(
            f.store.begin_upload(id).await,
            Err(StorageError::UploadNotFound)
        ));
    }
}

/// S3 only: presigned download URLs, when configured, serve the blob and its ranges.
#[tokio::test]
async fn s3_presigned_download_urls() {
    let store = S3BlobStore::new(&S3Options {
        presign_ttl: Some(Duration::from_secs(60)),
        ..s3_options()
    })
    .unwrap();
    let (content, digest) = upload(&store, "presigned", &[pseudo_random(3000, 12)]).await;
    let url = store.download_url(&digest).await.unwrap().expect("a URL");
    let http = reqwest::Client::new();
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap(), content);
    let part = http
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), content[10..20]);
}

/// S3 only: a blob above the single-copy limit goes into place part by part.
#[tokio::test]
async fn s3_large_blobs_are_copied_in_parts() {
    let store = S3BlobStore::new(&S3Options {
        max_copy_bytes: MIB as u64,
        ..s3_options()
    })
    .unwrap();
    let pieces = [pseudo_random(2 * MIN_PART_SIZE + 3, 13)];
    let (content, digest) = upload(&store, "large", &pieces).await;
    assert_eq!(
        read_all(&store, &digest, 0..content.len() as u64).await,
        content
    );
    assert!(store.idle_uploads(Duration::ZERO).await.unwrap().is_empty());
}

/// The filesystem store opens an upload with its first write. An append with an empty body
/// still opens it: a retry from an earlier offset drops the bytes past it, and an offset
/// past the end is refused.
#[tokio::test]
async fn fs_an_empty_append_still_checks_its_offset() {
    let f = Fixture::fs().await;
    let store = &*f.store;
    let state = store.begin_upload("offsets").await.unwrap();
    let a = append(store, "offsets", &state, 0, b"0123456789").await;
    assert!(matches!(
        store
            .append_upload("offsets", &a.state, 11, body(b""))
            .await,
        Err(StorageError::UploadSizeMismatch {
            expected: 11,
            actual: 10
        })
    ));
    let b = store
        .append_upload("offsets", &a.state, 4, body(b""))
        .await
        .unwrap();
    assert_eq!(b.size, 4);
    // The six bytes past offset 4 are gone.
    assert!(matches!(
        store.append_upload("offsets", &b.state, 5, body(b"")).await,
        Err(StorageError::UploadSizeMismatch {
            expected: 5,
            actual: 4
        })
    ));
    commit_and_read_back(store, "offsets", &b.state, b"0123").await;
}
