//! The tag lifecycle and garbage collection through the registry's own API, over real
//! stores: SQLite with the filesystem, and PostgreSQL with S3 (Garage) as several nodes
//! share them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bulwark_events::{Actor, MemorySink, Origin};
use bulwark_meta::{SqlMetaStore, SqlOptions};
use bulwark_oci::{Digest, ParsedManifest, Reference, RepoName, Tag};
use bulwark_registry::{
    BlobRead, HistoryRequest, LifecycleSettings, Limits, Registry, RegistryError,
};
use bulwark_storage::{BlobStore, FsBlobStore, S3BlobStore, S3Options};
use futures::StreamExt;

/// Stores shared by the nodes of one test.
struct Stores {
    url: String,
    blobs: Arc<dyn BlobStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    async fn sqlite_fs() -> Stores {
        let dir = tempfile::tempdir().unwrap();
        Stores {
            url: format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display()),
            blobs: Arc::new(FsBlobStore::open(dir.path()).await.unwrap()),
            _dir: Some(dir),
        }
    }

    fn postgres_s3() -> Stores {
        let place = bulwark_testkit::s3_place();
        let options = S3Options {
            endpoint: place.endpoint,
            bucket: place.bucket,
            region: place.region,
            access_key_id: place.access_key_id,
            secret_access_key: place.secret_access_key,
            path_style: true,
            prefix: place.prefix,
            ca_bundle: std::env::var_os("AWS_CA_BUNDLE").map(Into::into),
            ..S3Options::default()
        };
        Stores {
            url: bulwark_testkit::postgres_database(),
            blobs: Arc::new(S3BlobStore::new(&options).unwrap()),
            _dir: None,
        }
    }

    /// A registry node over these stores (its own database pool).
    async fn node(&self, settings: &LifecycleSettings, events: Arc<MemorySink>) -> Registry {
        let meta = SqlMetaStore::open(&self.url, &SqlOptions::default())
            .await
            .unwrap();
        Registry::new(Arc::new(meta), self.blobs.clone(), Limits::default())
            .with_lifecycle(settings.clone())
            .with_events(events)
    }
}

/// How long each commit and deletion takes (`common::Faulty`).
const SLOW: Duration = Duration::from_millis(15);

fn repo(name: &str) -> RepoName {
    RepoName::parse(name, 255).unwrap()
}

fn tag(t: &str) -> Tag {
    Tag::parse(t).unwrap()
}

fn body(bytes: Vec<u8>) -> bulwark_registry::ByteStream {
    Box::pin(futures::stream::once(async move {
        Ok(bytes::Bytes::from(bytes))
    }))
}

fn admin() -> (Actor, Origin) {
    (
        Actor {
            kind: "user".into(),
            name: "admin".into(),
            credential: "password".into(),
        },
        Origin::default(),
    )
}

/// Uploads `content` unless the repository already has it (what clients do after a HEAD);
/// chunked (POST, PATCH, PUT) or monolithic by the digest's first bit.
async fn push_blob(reg: &Registry, r: &RepoName, content: &[u8]) -> Result<Digest, RegistryError> {
    let digest = Digest::sha256_of(content);
    if reg.blob_size(r, &digest).await.is_ok() {
        return Ok(digest);
    }
    if digest.hex().as_bytes()[0].is_multiple_of(2) {
        reg.put_blob(
            r,
            &digest,
            Some(content.len() as u64),
            body(content.to_vec()),
        )
        .await?;
    } else {
        let up = reg.start_upload(r).await?;
        reg.append_chunk(r, &up.id, Some(0), None, body(content.to_vec()))
            .await?;
        reg.finish_upload(r, &up.id, &digest, None, None).await?;
    }
    Ok(digest)
}

/// Pushes an image of `layers` (and a config holding `labels`) by tag.
async fn push_image(
    reg: &Registry,
    r: &RepoName,
    t: &str,
    layers: &[Vec<u8>],
    labels: serde_json::Value,
) -> Result<Digest, RegistryError> {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": { "Labels": labels },
    }))
    .unwrap();
    let config_digest = push_blob(reg, r, &config).await?;
    let mut descriptors = Vec::new();
    for layer in layers {
        let d = push_blob(reg, r, layer).await?;
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d.to_string(), "size": layer.len(),
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(), "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    let put = reg
        .put_manifest(
            r,
            &Reference::Tag(tag(t)),
            Some("application/vnd.oci.image.manifest.v1+json"),
            &manifest,
        )
        .await?;
    Ok(put.digest)
}

async fn read_all(reg: &Registry, r: &RepoName, d: &Digest) -> Vec<u8> {
    let BlobRead::Bytes { mut stream, .. } = reg.read_blob(r, d, None).await.unwrap() else {
        panic!("no redirects configured");
    };
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Pulls `r:t` completely, checking every digest; returns the blobs it references.
async fn pull(reg: &Registry, r: &RepoName, t: &str) -> Vec<Digest> {
    let m = reg
        .manifest(r, &Reference::Tag(tag(t)), &[])
        .await
        .unwrap_or_else(|e| panic!("{r}:{t}: {e}"));
    assert_eq!(Digest::sha256_of(&m.content), m.digest);
    let parsed = ParsedManifest::parse(Some(&m.media_type), &m.content).unwrap();
    let mut blobs = Vec::new();
    for d in parsed.required_blobs() {
        let bytes = read_all(reg, r, &d.digest).await;
        assert_eq!(
            Digest::sha256_of(&bytes),
            d.digest,
            "{r}:{t} blob {}",
            d.digest
        );
        blobs.push(d.digest.clone());
    }
    blobs
}

fn settings(window: Duration, grace: Duration) -> LifecycleSettings {
    LifecycleSettings {
        time_machine_options: vec![Duration::ZERO, Duration::from_secs(3600), window],
        time_machine_default: window,
        gc_grace: grace,
    }
}

#[tokio::test]
async fn labels_rules_restore_and_collection_sqlite_fs() {
    lifecycle_end_to_end(Stores::sqlite_fs().await).await
}

#[tokio::test]
async fn labels_rules_restore_and_collection_postgres_s3() {
    lifecycle_end_to_end(Stores::postgres_s3()).await
}

async fn lifecycle_end_to_end(stores: Stores) {
    let events = Arc::new(MemorySink::default());
    let reg = stores
        .node(
            &settings(Duration::from_secs(3600), Duration::ZERO),
            events.clone(),
        )
        .await;
    let (actor, origin) = admin();
    let app = repo("ns/app");

    // An expiry label on the image configuration.
    push_image(
        &reg,
        &app,
        "short",
        &[b"layer".to_vec()],
        serde_json::json!({
            "quay.expires-after": "1s"
        }),
    )
    .await
    .unwrap();
    assert_eq!(reg.tags(&app, None, None).await.unwrap().items, ["short"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(reg.tags(&app, None, None).await.unwrap().items.is_empty());
    assert!(matches!(
        reg.manifest(&app, &Reference::Tag(tag("short")), &[]).await,
        Err(RegistryError::ManifestUnknown)
    ));
    assert_eq!(reg.expire_tags().await.unwrap(), 1);

    // Immutability by rule: the push creates it, a second push to it is refused.
    assert!(matches!(
        reg.add_immutability_rule(
            "ns",
            Some(&app),
            "v[0-9]+(",
            false,
            actor.clone(),
            origin.clone()
        )
        .await,
        Err(RegistryError::InvalidRule(_))
    ));
    reg.add_immutability_rule("ns", None, "v[0-9.]+", false, actor.clone(), origin.clone())
        .await
        .unwrap();
    // A rule allowing expiry: the label's expiry holds on an immutable tag, and a rule
    // without the allowance matching too takes it away (the strictest rule wins).
    reg.add_immutability_rule(
        "ns",
        Some(&app),
        "nightly-.*",
        true,
        actor.clone(),
        origin.clone(),
    )
    .await
    .unwrap();
    let expiring = serde_json::json!({ "quay.expires-after": "1s" });
    push_image(&reg, &app, "nightly-1", &[b"n1".to_vec()], expiring.clone())
        .await
        .unwrap();
    assert!(matches!(
        push_image(&reg, &app, "nightly-1", &[b"n2".to_vec()], expiring.clone()).await,
        Err(RegistryError::TagImmutable(_))
    ));
    push_image(&reg, &app, "v2.0", &[b"v2".to_vec()], expiring.clone())
        .await
        .unwrap();
    reg.add_immutability_rule(
        "ns",
        Some(&app),
        "nightly-2",
        false,
        actor.clone(),
        origin.clone(),
    )
    .await
    .unwrap();
    push_image(&reg, &app, "nightly-2", &[b"n3".to_vec()], expiring)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(reg.expire_tags().await.unwrap(), 1);
    let live = reg.tags(&app, None, None).await.unwrap().items;
    assert!(!live.contains(&"nightly-1".to_owned()), "{live:?}");
    assert!(live.contains(&"nightly-2".to_owned()) && live.contains(&"v2.0".to_owned()));
    assert!(matches!(
        reg.set_tag_expiry(&app, &tag("v2.0"), Some(1), actor.clone(), origin.clone())
            .await,
        Err(RegistryError::TagImmutable(_))
    ));
    let v1 = push_image(
        &reg,
        &app,
        "v1.0",
        &[b"one".to_vec()],
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let err = push_image(
        &reg,
        &app,
        "v1.0",
        &[b"two".to_vec()],
        serde_json::json!({}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistryError::TagImmutable(ref t) if t == "v1.0"));
    assert_eq!(err.code(), Some(bulwark_oci::ErrorCode::Denied));
    assert!(err.to_string().contains("immutable"));
    assert!(matches!(
        reg.delete_manifest(&app, &Reference::Tag(tag("v1.0")))
            .await,
        Err(RegistryError::TagImmutable(_))
    ));

    // Moves and deletes of a mutable tag go to the history; restore brings them back.
    let a = push_image(
        &reg,
        &app,
        "latest",
        &[b"a".to_vec()],
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let b = push_image(
        &reg,
        &app,
        "latest",
        &[b"b".to_vec()],
        serde_json::json!({}),
    )
    .await
    .unwrap();
    reg.delete_manifest(&app, &Reference::Tag(tag("latest")))
        .await
        .unwrap();
    let history = reg
        .tag_history(
            &app,
            HistoryRequest {
                tag: Some(&tag("latest")),
                page: 1,
                limit: 10,
                ..HistoryRequest::default()
            },
        )
        .await
        .unwrap();
    let digests: Vec<_> = history
        .tags
        .iter()
        .map(|t| t.manifest_digest.clone())
        .collect();
    assert_eq!(digests, [b.clone(), a.clone()]);
    reg.restore_tag(&app, &tag("latest"), &a, actor.clone(), origin.clone())
        .await
        .unwrap();
    assert_eq!(pull(&reg, &app, "latest").await.len(), 2);
    assert!(matches!(
        reg.restore_tag(&app, &tag("latest"), &v1, actor.clone(), origin.clone())
            .await,
        Err(RegistryError::NotInHistory { .. })
    ));

    // The window is per namespace, from the allowed options.
    assert!(matches!(
        reg.set_time_machine_window("ns", Duration::from_secs(5), actor.clone(), origin.clone())
            .await,
        Err(RegistryError::WindowNotAllowed { .. })
    ));
    // Within the window nothing the history keeps is collected (grace is zero here).
    let report = reg.collect_garbage().await.unwrap();
    assert_eq!(report.manifests, 0, "{report:?}");
    assert!(
        reg.manifest(&app, &Reference::Digest(b.clone()), &[])
            .await
            .is_ok()
    );
    // A window of zero: the history goes, and with it what only it kept.
    reg.set_time_machine_window("ns", Duration::ZERO, actor.clone(), origin.clone())
        .await
        .unwrap();
    let report = reg.collect_garbage().await.unwrap();
    assert!(report.history_rows >= 2, "{report:?}");
    // `b` (only in the history) and the refused push's manifest-less blobs go; the
    // expired tags' manifests too ("short" and the immutable "nightly-1").
    assert_eq!(report.manifests, 3, "{report:?}");
    assert!(report.blobs >= 3, "{report:?}");
    assert!(report.bytes_reclaimed > 0);
    assert!(matches!(
        reg.manifest(&app, &Reference::Digest(b.clone()), &[]).await,
        Err(RegistryError::ManifestUnknown)
    ));
    assert!(matches!(
        reg.restore_tag(&app, &tag("latest"), &b, actor.clone(), origin.clone())
            .await,
        Err(RegistryError::NotInHistory { .. })
    ));
    assert_eq!(pull(&reg, &app, "latest").await.len(), 2);
    assert_eq!(pull(&reg, &app, "v1.0").await.len(), 2);

    // Permanent deletion by an admin skips the window.
    reg.set_time_machine_window(
        "ns",
        Duration::from_secs(3600),
        actor.clone(),
        origin.clone(),
    )
    .await
    .unwrap();
    reg.purge_tag(&app, &tag("latest"), actor.clone(), origin.clone())
        .await
        .unwrap();
    let report = reg.collect_garbage().await.unwrap();
    assert_eq!(report.manifests, 1, "{report:?}");

    // Bytes a crash left without metadata go once older than the grace period.
    let orphan = b"orphan bytes".to_vec();
    let od = Digest::sha256_of(&orphan);
    let state = stores.blobs.begin_upload("orphan").await.unwrap();
    let appended = stores
        .blobs
        .append_upload("orphan", &state, 0, body(orphan.clone()))
        .await
        .unwrap();
    stores
        .blobs
        .commit_upload("orphan", &appended.state, appended.size, &od)
        .await
        .unwrap();
    // Object stores date objects by the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = reg.collect_garbage().await.unwrap();
    assert_eq!(report.orphans, 1, "{report:?}");
    assert_eq!(stores.blobs.stat(&od).await.unwrap(), None);

    let kinds = events.kinds();
    for kind in [
        "tag.expire",
        "immutability_rule.create",
        "tag.restore",
        "namespace.time_machine",
        "tag.purge",
        "gc.run",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn gc_races_pushes_sqlite_fs() {
    gc_race(Stores::sqlite_fs().await, 1).await
}

#[tokio::test]
async fn gc_races_pushes_on_two_nodes_postgres_s3() {
    gc_race(Stores::postgres_s3(), 2).await
}

/// Pushers share a base layer across repositories and keep deleting their tag and
/// pushing the same image again (so its blobs are re-pushed just as they become
/// unreferenced), while collection runs in a tight loop with a short grace period.
/// Afterwards every tag pulls completely, and storage holds exactly the blobs tags
/// reference.
async fn gc_race(mut stores: Stores, nodes: usize) {
    stores.blobs = Arc::new(common::Faulty::new(stores.blobs, SLOW));
    let grace = Duration::from_millis(300);
    let config = settings(Duration::ZERO, grace);
    let events = Arc::new(MemorySink::default());
    let mut regs = Vec::new();
    for _ in 0..nodes {
        regs.push(Arc::new(stores.node(&config, events.clone()).await));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let collections = Arc::new(AtomicU64::new(0));
    let collector = {
        let (reg, stop, collections) = (regs[0].clone(), stop.clone(), collections.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                reg.collect_garbage().await.unwrap();
                collections.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let retries = Arc::new(AtomicU64::new(0));
    let mut pushers = Vec::new();
    for p in 0..6usize {
        let reg = regs[p % nodes].clone();
        let retries = retries.clone();
        pushers.push(tokio::spawn(async move {
            let r = repo(&format!("ns/r{}", p % 3));
            let t = format!("t{p}");
            for i in 0..12usize {
                let layers = vec![
                    b"shared base layer".to_vec(),
                    format!("pusher {p} variant {}", i % 3).into_bytes(),
                ];
                // A refused push (a blob collected between its HEAD and the manifest, or
                // being collected while committed) is retried as a client would.
                loop {
                    match push_image(&reg, &r, &t, &layers, serde_json::json!({})).await {
                        Ok(_) => break,
                        Err(RegistryError::ManifestReferencesMissing(_) | RegistryError::Busy) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("push {r}:{t}: {e}"),
                    }
                }
                if i % 2 == 0 {
                    reg.delete_manifest(&r, &Reference::Tag(tag(&t)))
                        .await
                        .unwrap();
                    // Around the grace period: the blobs become collectable as they return.
                    let jitter = ((p * 37 + i * 11) % 200) as u64;
                    tokio::time::sleep(
                        grace + Duration::from_millis(jitter) - Duration::from_millis(100),
                    )
                    .await;
                    push_image(&reg, &r, &t, &layers, serde_json::json!({}))
                        .await
                        .or_else(|e| match e {
                            RegistryError::ManifestReferencesMissing(_) | RegistryError::Busy => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                Ok(Digest::sha256_of(b""))
                            }
                            e => Err(e),
                        })
                        .unwrap();
                }
            }
        }));
    }
    for p in pushers {
        p.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    collector.await.unwrap();
    assert!(collections.load(Ordering::Relaxed) > 1);

    // Every tag pulls completely, from every node.
    let reg = &regs[regs.len() - 1];
    let mut referenced = BTreeSet::new();
    let mut tagged = BTreeMap::new();
    for r in 0..3 {
        let r = repo(&format!("ns/r{r}"));
        for t in reg.tags(&r, None, None).await.unwrap().items {
            let blobs = pull(reg, &r, &t).await;
            referenced.extend(blobs);
            tagged.insert(format!("{r}:{t}"), ());
        }
    }
    assert_eq!(tagged.len(), 6, "{tagged:?}");
    // After the grace period, storage holds exactly what tags reference.
    tokio::time::sleep(grace + Duration::from_millis(1100)).await;
    reg.collect_garbage().await.unwrap();
    let stored: BTreeSet<Digest> = stores
        .blobs
        .committed_blobs(Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(stored, referenced);
    for r in 0..3 {
        let r = repo(&format!("ns/r{r}"));
        for t in reg.tags(&r, None, None).await.unwrap().items {
            pull(reg, &r, &t).await;
        }
    }
    eprintln!(
        "{} collections, {} refused pushes retried",
        collections.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed)
    );
}
