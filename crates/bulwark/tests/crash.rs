//! Crash and shutdown tests against the real binary: SIGKILL in the middle of a chunked
//! upload, of manifest pushes and of skopeo copies, then a restart on the same port and data
//! directory; and SIGTERM with requests in flight.

#[path = "common/clients.rs"]
mod clients;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_testkit::{TestServer, pseudo_random};
use clients::*;
use futures::StreamExt;
use tokio::sync::mpsc;

const MIB: usize = 1024 * 1024;

/// How many bytes of upload `id` the server has written to disk: the largest file under the
/// data directory whose path names the upload (today `uploads/<id>`, see
/// crates/storage/src/fs.rs). Watched to know that the server holds bytes of a chunk it has
/// not acknowledged.
fn upload_bytes_on_disk(server: &TestServer, id: &str) -> u64 {
    fn walk(dir: &std::path::Path, id: &str, max: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                walk(&path, id, max);
            } else if path.to_string_lossy().contains(id) {
                *max = (*max).max(meta.len());
            }
        }
    }
    let mut max = 0;
    walk(server.data_dir(), id, &mut max);
    max
}

/// Starts a request whose body is `data`, sends it piece by piece until the server has
/// written more than `committed` bytes of the upload to disk, and leaves it in flight.
/// Returns the request's task and the body's sender (dropping it ends the request).
async fn stream_until_written(
    server: &TestServer,
    id: &str,
    committed: u64,
    request: reqwest::RequestBuilder,
    data: &[u8],
) -> (
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let (tx, body) = channel_body();
    let task = tokio::spawn(
        request
            .header("content-length", data.len())
            .body(body)
            .send(),
    );
    let piece = 64 * 1024;
    // Everything but the last piece, so that the request cannot complete.
    for part in data[..data.len() - piece].chunks(piece) {
        if upload_bytes_on_disk(server, id) > committed {
            break;
        }
        feed(&tx, part).await;
    }
    wait_until(
        "the server to write part of the in-flight chunk",
        Duration::from_secs(60),
        || async { upload_bytes_on_disk(server, id) > committed },
    )
    .await;
    (task, tx)
}

/// SIGKILL while a chunk of a chunked upload is streaming, and again while the final PUT's
/// chunk is streaming. After each restart the blob is not visible, the upload reports only
/// the chunks it acknowledged, a chunk at the wrong offset is refused with the right range,
/// the client resumes and finishes with the right digest, and earlier content is intact.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_chunked_upload_then_resume() {
    let mut server = TestServer::start(bulwark_bin());
    let http = http();
    let base = server.url.clone();

    let kept_layer = pseudo_random(200_000, 1);
    let kept = push_image(
        &http,
        &base,
        "crash/kept",
        "v1",
        b"{\"kept\":true}",
        &[&kept_layer],
    )
    .await;

    let data = pseudo_random(12 * MIB, 2);
    let digest = sha256_hex(&data);
    let repo = "crash/big";
    let location = start_upload(&http, &base, repo).await;
    let id = location.rsplit('/').next().unwrap().to_owned();
    let upload_url = format!("{base}{location}");
    for (start, end) in [(0, MIB), (MIB, 2 * MIB)] {
        let resp = patch_chunk(&http, &upload_url, &data, start..end).await;
        assert_eq!(resp.status(), 202);
        assert_eq!(upload_range(&resp), end as u64);
    }

    // Kill while the third chunk (2 MiB..12 MiB) streams.
    let request = http
        .patch(&upload_url)
        .header("content-range", format!("{}-{}", 2 * MIB, data.len() - 1));
    let (inflight, tx) =
        stream_until_written(&server, &id, 2 * MIB as u64, request, &data[2 * MIB..]).await;
    server.kill();
    drop(tx);
    assert!(
        inflight.await.unwrap().is_err(),
        "the in-flight chunk cannot have been acknowledged"
    );
    server.restart();
    assert_eq!(server.url, base, "restarted on the same port");
    let http = crate::clients::http();

    assert_eq!(
        head_blob(&http, &base, repo, &digest).await,
        404,
        "a partial blob is visible"
    );
    // Sessions live in the metadata database with their hash state, so an upload resumes
    // across a restart from the last acknowledged chunk.
    assert_eq!(
        uploaded(&http, &upload_url).await,
        2 * MIB as u64,
        "the committed range survives, nothing more"
    );

    // A chunk that skips ahead is refused, and the answer says where to resume.
    let resp = patch_chunk(&http, &upload_url, &data, 3 * MIB..4 * MIB).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(upload_range(&resp), 2 * MIB as u64);

    let resp = patch_chunk(&http, &upload_url, &data, 2 * MIB..8 * MIB).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(upload_range(&resp), 8 * MIB as u64);

    // Kill again while the closing PUT's last chunk streams.
    let request = http.put(format!("{upload_url}?digest={digest}"));
    let (inflight, tx) =
        stream_until_written(&server, &id, 8 * MIB as u64, request, &data[8 * MIB..]).await;
    server.kill();
    drop(tx);
    assert!(
        inflight.await.unwrap().is_err(),
        "the closing PUT cannot have been acknowledged"
    );
    server.restart();
    let http = crate::clients::http();
    assert_eq!(
        head_blob(&http, &base, repo, &digest).await,
        404,
        "a partial blob is visible"
    );
    assert_eq!(uploaded(&http, &upload_url).await, 8 * MIB as u64);

    finish_upload(&http, &upload_url, &data, 8 * MIB).await;
    assert_eq!(
        http.get(&upload_url).send().await.unwrap().status(),
        404,
        "finished session is gone"
    );

    let http = crate::clients::http();
    pull_blob_verified(&http, &base, repo, &digest, data.len() as u64).await;
    assert_eq!(pull_verified(&http, &base, "crash/kept", "v1").await, kept);
    let tags = catalog_with_tags(&http, &base).await;
    assert_eq!(tags["crash/kept"], ["v1"]);
}

/// SIGKILL while eight clients push manifests (each with a fresh config blob) as fast as
/// they can. After the restart every acknowledged tag is there and points at what was
/// pushed, every tag that exists resolves to a manifest whose blobs pull whole, and the
/// registry takes pushes again.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_manifest_pushes_keeps_acknowledged_tags() {
    let mut server = TestServer::start(bulwark_bin());
    let http = http();
    let base = server.url.clone();
    let repo = "storm/app";
    let layer = pseudo_random(MIB, 3);
    push_blob(&http, &base, repo, &layer).await;

    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let attempted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (http, base, layer) = (http.clone(), base.clone(), layer.clone());
        let (acked, attempted) = (acked.clone(), attempted.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let config = format!("{{\"worker\":{w},\"push\":{i}}}").into_bytes();
                let digest = sha256_hex(&config);
                let ok = http
                    .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
                    .body(config.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 201);
                if !ok {
                    return;
                }
                let tag = format!("w{w}-{i}");
                let manifest = image_manifest(&config, &[&layer]);
                attempted.lock().unwrap().push(tag.clone());
                match put_manifest(&http, &base, repo, &tag, &manifest).await {
                    Ok(r) if r.status() == 201 => {
                        acked.lock().unwrap().push((tag, sha256_hex(&manifest)))
                    }
                    _ => return,
                }
            }
        }));
    }
    wait_until(
        "40 acknowledged manifest pushes",
        Duration::from_secs(120),
        || async { acked.lock().unwrap().len() >= 40 },
    )
    .await;
    server.kill();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("pushers stop once the server is gone")
            .unwrap();
    }
    server.restart();
    let http = crate::clients::http();

    let acked = acked.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    let tags = catalog_with_tags(&http, &base).await;
    let present = &tags[repo];
    for (tag, digest) in &acked {
        assert!(
            present.contains(tag),
            "acknowledged tag {tag} lost in the crash"
        );
        let served = get_manifest(&http, &base, repo, tag)
            .await
            .expect("acknowledged tag");
        assert_eq!(&served.digest, digest, "{tag}");
    }
    for tag in present {
        assert!(attempted.contains(tag), "tag {tag} was never pushed");
        pull_verified(&http, &base, repo, tag).await;
    }
    // Writable again, including the tags whose push was cut off.
    let cut_off = attempted.iter().filter(|t| !present.contains(t));
    for tag in cut_off.map(String::as_str).chain(["after-restart"]) {
        let config = format!("{{\"again\":\"{tag}\"}}");
        let digest = push_image(&http, &base, repo, tag, config.as_bytes(), &[&layer]).await;
        assert_eq!(pull_verified(&http, &base, repo, tag).await, digest);
    }
}

/// SIGKILL while six skopeo copies (every fixture image) run at once. After the restart
/// every tag that exists resolves to the fixture's manifest and all its blobs pull whole,
/// every copy skopeo reported done is there, any blob the registry admits to pulls whole,
/// and running the copies again succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_skopeo_copies_leaves_a_consistent_registry() {
    let mut server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let base = server.url.clone();
    let host = server.host.clone();
    let copy_args = |tag: &str| {
        [
            "--quiet".to_owned(),
            format!("oci:{}:{tag}", fixtures.root.display()),
            format!("docker://{host}/crash/{tag}:{tag}"),
        ]
    };

    let mut copies = Vec::new();
    for tag in FIXTURE_TAGS {
        let mut cmd = skopeo("copy");
        cmd.args(copy_args(tag)).kill_on_drop(true);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        copies.push((tag, cmd.spawn().expect("start skopeo")));
    }
    // Kill once two images are fully pushed: the large ones are then still uploading.
    wait_until("two manifest pushes", Duration::from_secs(180), || async {
        requests(&http, &base, "manifest_write", "PUT", 201).await >= 2.0
    })
    .await;
    server.kill();
    let mut finished = Vec::new();
    for (tag, mut child) in copies {
        let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
            .await
            .expect("skopeo gives up once the registry is gone")
            .unwrap();
        if status.success() {
            finished.push(tag);
        }
    }
    assert!(
        finished.len() < FIXTURE_TAGS.len(),
        "the kill came after every copy finished: {finished:?}"
    );
    server.restart();
    let http = crate::clients::http();

    let check = |finished: Vec<&'static str>| {
        let (http, base, fixtures) = (&http, &base, &fixtures);
        async move {
            let tags = catalog_with_tags(http, base).await;
            for tag in &finished {
                let repo = format!("crash/{tag}");
                assert_eq!(
                    tags.get(&repo).map(Vec::as_slice),
                    Some([tag.to_string()].as_slice()),
                    "copy of {tag} reported done"
                );
            }
            for (repo, repo_tags) in &tags {
                let fixture_tag = repo
                    .strip_prefix("crash/")
                    .expect("only crash/ repositories");
                let want = fixtures.image(fixture_tag);
                for tag in repo_tags {
                    assert_eq!(tag, fixture_tag);
                    assert_eq!(
                        pull_verified(http, base, repo, tag).await,
                        want.manifest_digest,
                        "{repo}:{tag}"
                    );
                }
                // Nothing partial: any fixture blob the repository admits to is whole.
                for tag in FIXTURE_TAGS {
                    for b in fixtures.image(tag).blobs() {
                        if head_blob(http, base, repo, &b.digest).await == 200 {
                            pull_blob_verified(http, base, repo, &b.digest, b.size).await;
                        }
                    }
                }
            }
        }
    };
    check(finished).await;

    // The same copies again, all at once: each completes.
    let again = FIXTURE_TAGS.map(|tag| {
        let mut cmd = skopeo("copy");
        cmd.args(copy_args(tag));
        async move { run(&mut cmd).await }
    });
    futures::future::join_all(again).await;
    check(FIXTURE_TAGS.to_vec()).await;
}

/// SIGTERM while a large blob download and a blob upload are in flight: the server stops
/// accepting connections, both requests complete correctly, the process exits 0, and after
/// a restart the uploaded blob is there.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish() {
    let mut server = TestServer::start(bulwark_bin());
    let http = http();
    let base = server.url.clone();
    let host = server.host.clone();
    let repo = "graceful/blobs";
    // Larger than every socket buffer between the two ends, so the server is still sending.
    let big = pseudo_random(64 * MIB, 4);
    let big_digest = push_blob(&http, &base, repo, &big).await;
    let upload = pseudo_random(8 * MIB, 5);
    let upload_digest = sha256_hex(&upload);

    let download = http
        .get(format!("{base}/v2/{repo}/blobs/{big_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut download = download.bytes_stream();
    let mut hasher = bulwark_oci::DigestHasher::new(bulwark_oci::Algorithm::Sha256);
    let mut received = 0usize;
    while received < 256 * 1024 {
        let chunk = download.next().await.expect("more bytes").expect("body");
        received += chunk.len();
        hasher.update(&chunk);
    }

    let (tx, body) = channel_body();
    let uploading = tokio::spawn(
        http.post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={upload_digest}"
        ))
        .header("content-length", upload.len())
        .body(body)
        .send(),
    );
    let mut parts = upload.chunks(256 * 1024);
    for part in parts.by_ref().take(4) {
        feed(&tx, part).await;
    }

    let terminated = tokio::task::spawn_blocking(move || {
        let clean = server.terminate();
        (server, clean)
    });
    // Shutdown has begun once new connections are refused.
    wait_until(
        "the listener to close after SIGTERM",
        Duration::from_secs(60),
        || async { std::net::TcpStream::connect(&host).is_err() },
    )
    .await;
    assert!(
        !terminated.is_finished(),
        "the server exited with requests in flight"
    );

    for part in parts {
        feed(&tx, part).await;
    }
    drop(tx);
    while let Some(chunk) = download.next().await {
        let chunk = chunk.expect("download completes after SIGTERM");
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, big.len());
    assert_eq!(hasher.finish().to_string(), big_digest);
    let resp = uploading
        .await
        .unwrap()
        .expect("upload completes after SIGTERM");
    assert_eq!(resp.status(), 201);

    let (mut server, clean) = tokio::time::timeout(Duration::from_secs(60), terminated)
        .await
        .expect("the server exits once in-flight requests are done")
        .unwrap();
    assert!(clean, "exit status after SIGTERM is not 0");
    server.restart();
    let http = crate::clients::http();
    pull_blob_verified(&http, &base, repo, &upload_digest, upload.len() as u64).await;
    pull_blob_verified(&http, &base, repo, &big_digest, big.len() as u64).await;
}
