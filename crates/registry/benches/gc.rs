//! Garbage collection over 10,000 manifests and 50,000 blobs (SQLite and the filesystem):
//! how long one collection takes, and what it does to the throughput of pulls running
//! beside it. `cargo bench -p bulwark-registry --bench gc` (sizes: `GC_BENCH_REPOS`,
//! `GC_BENCH_MANIFESTS` per repository; each manifest has a config and four layers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_meta::{MetaStore, NewManifest, SqlMetaStore, SqlOptions};
use bulwark_oci::{Digest, Reference, RepoName, Tag};
use bulwark_registry::{BlobRead, LifecycleSettings, Limits, Registry};
use bulwark_storage::{BlobStore, FsBlobStore};
use futures::StreamExt;

const BLOBS_PER_MANIFEST: usize = 5;
const PULLERS: usize = 8;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Commits `content` as a blob.
async fn commit(store: &dyn BlobStore, id: &str, content: Vec<u8>) -> Digest {
    let digest = Digest::sha256_of(&content);
    let state = store.begin_upload(id).await.unwrap();
    let body: bulwark_storage::ByteStream = Box::pin(futures::stream::once(async move {
        Ok(bytes::Bytes::from(content))
    }));
    let a = store.append_upload(id, &state, 0, body).await.unwrap();
    store
        .commit_upload(id, &a.state, a.size, &digest)
        .await
        .unwrap();
    digest
}

/// Pushes manifest `m` of repository `r`: five blobs of its own, tagged if `tagged`.
async fn populate_one(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    r: usize,
    m: usize,
    tagged: bool,
) {
    let repo = format!("bench/r{r}");
    let mut digests = Vec::new();
    for b in 0..BLOBS_PER_MANIFEST {
        let content = format!("repository {r} manifest {m} blob {b}").into_bytes();
        let size = content.len() as u64;
        let d = commit(blobs, &format!("u{r}x{m}x{b}"), content).await;
        meta.link_blob(&repo, &d, size).await.unwrap();
        digests.push((d, size));
    }
    let content = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digests[0].0.to_string(), "size": digests[0].1 },
        "layers": digests[1..].iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d.to_string(), "size": s })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let digest = Digest::sha256_of(&content);
    let tag = format!("t{m}");
    meta.put_manifest(NewManifest {
        repository: &repo,
        digest: &digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        annotations_json: None,
        content: &content,
        blobs: digests.iter().map(|(d, s)| (d, *s)).collect(),
        children: vec![],
        tag: tagged.then_some(tag.as_str()),
    })
    .await
    .unwrap();
}

/// Pulls random tagged images (manifest and every blob) until `stop`; counts pulls.
async fn pull_loop(
    reg: Arc<Registry>,
    repos: usize,
    manifests: usize,
    seed: usize,
    stop: Arc<AtomicBool>,
    pulls: Arc<AtomicU64>,
) {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = RepoName::parse(&format!("bench/r{}", x % repos), 255).unwrap();
        // Even manifests are tagged.
        let m = (x / repos % manifests) & !1;
        let tag = Tag::parse(&format!("t{m}")).unwrap();
        let got = reg.manifest(&r, &Reference::Tag(tag), &[]).await.unwrap();
        let parsed =
            bulwark_oci::ParsedManifest::parse(Some(&got.media_type), &got.content).unwrap();
        for d in parsed.required_blobs() {
            let BlobRead::Bytes { mut stream, .. } =
                reg.read_blob(&r, &d.digest, None).await.unwrap()
            else {
                unreachable!("no redirects on the filesystem")
            };
            while let Some(chunk) = stream.next().await {
                chunk.unwrap();
            }
        }
        pulls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Pulls per second over `secs` seconds, or until `during` finishes if given.
async fn measure_pulls<F: std::future::Future<Output = ()>>(
    reg: &Arc<Registry>,
    repos: usize,
    manifests: usize,
    during: Option<F>,
    secs: u64,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let pulls = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..PULLERS)
        .map(|i| {
            tokio::spawn(pull_loop(
                reg.clone(),
                repos,
                manifests,
                i + 1,
                stop.clone(),
                pulls.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    match during {
        Some(f) => f.await,
        None => tokio::time::sleep(Duration::from_secs(secs)).await,
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    pulls.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let repos = env("GC_BENCH_REPOS", 100);
    let manifests = env("GC_BENCH_MANIFESTS", 100);
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(
        SqlMetaStore::open_sqlite(&dir.path().join("meta.db"), &SqlOptions::default())
            .await
            .unwrap(),
    );
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());

    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..repos {
        let (meta, blobs) = (meta.clone(), blobs.clone());
        tasks.push(tokio::spawn(async move {
            for m in 0..manifests {
                populate_one(&*meta, &*blobs, r, m, m % 2 == 0).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "populated {} manifests, {} blobs in {:.1} s",
        repos * manifests,
        repos * manifests * BLOBS_PER_MANIFEST,
        started.elapsed().as_secs_f64()
    );

    // No window, no grace: the untagged half is garbage at once.
    let settings = LifecycleSettings {
        time_machine_options: vec![Duration::ZERO],
        time_machine_default: Duration::ZERO,
        gc_grace: Duration::ZERO,
    };
    let reg = Arc::new(
        Registry::new(meta.clone(), blobs.clone(), Limits::default()).with_lifecycle(settings),
    );
    let baseline = measure_pulls::<std::future::Ready<()>>(&reg, repos, manifests, None, 5).await;
    println!("pulls alone: {baseline:.0} images/s ({PULLERS} pullers, manifest + 5 blobs each)");

    let report = Arc::new(std::sync::Mutex::new(None));
    let during = {
        let (reg, report) = (reg.clone(), report.clone());
        async move {
            let r = reg.collect_garbage().await.unwrap();
            *report.lock().unwrap() = Some(r);
        }
    };
    let beside = measure_pulls(&reg, repos, manifests, Some(during), 0).await;
    let report = report.lock().unwrap().take().unwrap();
    println!("collection beside pulls: {report:?}");
    println!(
        "pulls during collection: {beside:.0} images/s ({:.0}% of alone)",
        100.0 * beside / baseline
    );
    let started = Instant::now();
    let idle = reg.collect_garbage().await.unwrap();
    println!(
        "a second collection with nothing to do: {} ms ({} repositories)",
        started.elapsed().as_millis(),
        idle.repositories
    );
}
