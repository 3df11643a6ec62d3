//! Several `bulwark` processes over one PostgreSQL database and one S3 bucket (Garage), as
//! in a scale-out deployment: real clients push through one node and pull through another,
//! a chunked upload moves between nodes, tags are visible everywhere at once, and a node
//! killed in the middle of a push or of a job loses nothing that the survivor cannot
//! complete.
//! `scripts/test.sh` starts PostgreSQL and Garage; every test gets a database and a key
//! prefix of its own, every node a data directory of its own (it holds only the lock).

#[path = "common/clients.rs"]
mod clients;

use std::time::Duration;

use bulwark_testkit::{ADMIN_PASSWORD, TestServer, postgres_database, pseudo_random, s3_place};
use clients::*;

const MIB: usize = 1024 * 1024;

/// The configuration nodes of one cluster share: a fresh database and bucket prefix.
fn cluster_env() -> Vec<(String, String)> {
    let mut env = s3_place().server_env();
    env.push(("BULWARK_DATABASE__URL".into(), postgres_database()));
    // The smallest part S3 allows, so that test-sized blobs span several parts.
    env.push((
        "BULWARK_STORAGE__S3__PART_SIZE".into(),
        (5 * MIB).to_string(),
    ));
    env
}

/// A node of the cluster described by `env`, with `extra` configuration.
fn start_node(env: &[(String, String)], extra: &[(&str, &str)]) -> TestServer {
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    TestServer::start_with(bulwark_bin(), &[], &env)
}

/// `count` nodes sharing one fresh database and one fresh bucket prefix, with `extra`
/// configuration for the last node only.
fn cluster(count: usize, extra: &[(&str, &str)]) -> Vec<TestServer> {
    let env = cluster_env();
    (0..count)
        .map(|i| start_node(&env, if i + 1 == count { extra } else { &[] }))
        .collect()
}

/// The fixture image `tag` pushed with skopeo to `node` as `repo:tag`.
async fn skopeo_push(node: &TestServer, tag: &str, repo: &str) {
    let fixtures = Layout::fixtures();
    skopeo_copy(
        &format!("oci:{}:{tag}", fixtures.root.display()),
        &format!("docker://{}/{repo}:{tag}", node.host),
    )
    .await;
}

/// skopeo pushes through node A; at once node B serves the tags, skopeo pulls the images
/// back through B byte for byte, and every blob pulls whole through C.
#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pushes_through_one_node_and_pulls_through_another() {
    let nodes = cluster(3, &[]);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let fixtures = Layout::fixtures();
    let http = http();
    let tags = ["alpine318-apkdb", "debian12-python"];
    for tag in tags {
        let repo = format!("multi/{tag}");
        skopeo_push(a, tag, &repo).await;
        let served = get_manifest(&http, &b.url, &repo, tag)
            .await
            .expect("the tag pushed through A resolves on B at once");
        assert_eq!(served.digest, fixtures.image(tag).manifest_digest);
    }

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    for tag in tags {
        skopeo_copy(
            &format!("docker://{}/multi/{tag}:{tag}", b.host),
            &format!("oci:{}:{tag}", layout.display()),
        )
        .await;
    }
    let pulled = Layout::open(&layout);
    for tag in tags {
        let want = fixtures.image(tag);
        assert_eq!(pulled.tags()[tag].digest, want.manifest_digest, "{tag}");
        pulled.assert_blobs_intact(&pulled.image(tag));
        let repo = format!("multi/{tag}");
        assert_eq!(
            pull_verified(&http, &c.url, &repo, tag).await,
            want.manifest_digest
        );
    }
}

/// podman pulls through B what skopeo pushed through A, pushes it through C under another
/// name, and A serves that push with the same image.
#[tokio::test(flavor = "multi_thread")]
async fn podman_pulls_and_pushes_through_different_nodes() {
    let nodes = cluster(3, &[]);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let http = http();
    let want = Layout::fixtures().image("debian12-python");
    skopeo_push(a, "debian12-python", "multi/py").await;

    let podman = Tool::new("podman");
    for node in [b, c] {
        podman.login(&node.host, "admin", ADMIN_PASSWORD).await;
    }
    let from_b = format!("{}/multi/py:debian12-python", b.host);
    let to_c = format!("{}/podman/py:1", c.host);
    podman
        .run(&["pull", "--quiet", "--tls-verify=false", &from_b])
        .await;
    podman.run(&["tag", &from_b, &to_c]).await;
    podman
        .run(&["push", "--quiet", "--tls-verify=false", &to_c])
        .await;
    let served = get_manifest(&http, &a.url, "podman/py", "1")
        .await
        .expect("the push through C resolves on A");
    assert_eq!(Image::parse(served.body).config.digest, want.config.digest);
    pull_verified(&http, &a.url, "podman/py", "1").await;
}

/// A chunked upload started on A takes chunks on B and C (each node resumes from what the
/// database and the object store hold) and is finished on A; the blob is whole everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upload_moves_between_nodes() {
    let nodes = cluster(3, &[]);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let http = http();
    let repo = "multi/chunked";
    let data = pseudo_random(13 * MIB + 5, 1);
    let digest = sha256_hex(&data);

    let location = start_upload(&http, &a.url, repo).await;
    // Chunks that end inside parts, so that each node carries on from a tail another
    // node wrote.
    for (node, start, end) in [(b, 0, 6 * MIB), (c, 6 * MIB, 11 * MIB + 3)] {
        let resp = patch_chunk(&http, &format!("{}{location}", node.url), &data, start..end).await;
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        assert_eq!(upload_range(&resp), end as u64);
    }
    assert_eq!(
        uploaded(&http, &format!("{}{location}", a.url)).await,
        (11 * MIB + 3) as u64
    );
    // A chunk at the wrong offset is refused on any node, with where to resume.
    let resp = patch_chunk(&http, &format!("{}{location}", b.url), &data, 0..MIB).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(upload_range(&resp), (11 * MIB + 3) as u64);

    assert_eq!(head_blob(&http, &b.url, repo, &digest).await, 404);
    finish_upload(&http, &format!("{}{location}", a.url), &data, 11 * MIB + 3).await;
    for node in [a, b, c] {
        pull_blob_verified(&http, &node.url, repo, &digest, data.len() as u64).await;
    }
    assert_eq!(
        http.get(format!("{}{location}", c.url))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "the finished session is gone on every node"
    );
}

/// Tag pushes, moves and manifest deletions on one node are what the next request to
/// another node sees.
#[tokio::test(flavor = "multi_thread")]
async fn tags_pushed_on_one_node_are_visible_on_another_at_once() {
    let nodes = cluster(2, &[]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let http = http();
    let repo = "multi/tags";
    let v1_on = |node: &TestServer| {
        let (http, url) = (http.clone(), node.url.clone());
        async move {
            get_manifest(&http, &url, repo, "v1")
                .await
                .map(|m| m.digest)
        }
    };
    let first = push_image(&http, &a.url, repo, "v1", b"{\"n\":1}", &[b"layer one"]).await;
    assert_eq!(v1_on(b).await, Some(first));
    let second = push_image(&http, &b.url, repo, "v1", b"{\"n\":2}", &[b"layer two"]).await;
    assert_eq!(v1_on(a).await, Some(second.clone()));
    push_image(&http, &a.url, repo, "v2", b"{\"n\":3}", &[b"layer three"]).await;
    assert_eq!(catalog_with_tags(&http, &b.url).await[repo], ["v1", "v2"]);
    let resp = http
        .delete(format!("{}/v2/{repo}/manifests/{second}", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(v1_on(a).await, None);
    assert_eq!(catalog_with_tags(&http, &a.url).await[repo], ["v2"]);
}

/// SIGKILL of node A while a chunk streams into it and while skopeo pushes through it. The
/// upload resumes on B from the last acknowledged chunk, the push completes by retrying
/// through B, and an image pushed through A before is intact.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_push_loses_nothing() {
    let mut nodes = cluster(2, &[]);
    let http = http();
    let (a_url, b_url) = (nodes[0].url.clone(), nodes[1].url.clone());
    skopeo_push(&nodes[0], "alpine318-apkdb", "multi/kept").await;

    // A chunked upload: one chunk acknowledged by A, the next cut off by A's death after
    // more than a part of it went out.
    let repo = "multi/resumed";
    let data = pseudo_random(16 * MIB, 2);
    let digest = sha256_hex(&data);
    let location = start_upload(&http, &a_url, repo).await;
    let resp = patch_chunk(&http, &format!("{a_url}{location}"), &data, 0..6 * MIB).await;
    assert_eq!(resp.status(), 202);
    let (tx, body) = channel_body();
    let inflight = tokio::spawn(
        http.patch(format!("{a_url}{location}"))
            .header("content-range", format!("{}-{}", 6 * MIB, data.len() - 1))
            .header("content-length", data.len() - 6 * MIB)
            .body(body)
            .send(),
    );
    for piece in data[6 * MIB..13 * MIB].chunks(64 * 1024) {
        feed(&tx, piece).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes[0].kill();
    drop(tx);
    assert!(
        inflight.await.unwrap().is_err(),
        "the cut-off chunk cannot have been acknowledged"
    );
    assert_eq!(
        uploaded(&http, &format!("{b_url}{location}")).await,
        6 * MIB as u64,
        "what A acknowledged"
    );
    finish_upload(&http, &format!("{b_url}{location}"), &data, 6 * MIB).await;
    pull_blob_verified(&http, &b_url, repo, &digest, data.len() as u64).await;

    // skopeo through A (restarted), killed once its uploads have begun.
    nodes[0].restart();
    let a_url = nodes[0].url.clone();
    let fixtures = Layout::fixtures();
    let tag = "debian12-python";
    let mut copy = skopeo("copy");
    copy.args([
        "--quiet".to_owned(),
        format!("oci:{}:{tag}", fixtures.root.display()),
        format!("docker://{}/multi/pushed:{tag}", nodes[0].host),
    ])
    .kill_on_drop(true)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = copy.spawn().expect("start skopeo");
    wait_until("an upload through A", Duration::from_secs(120), || async {
        requests(&http, &a_url, "upload_start", "POST", 202).await >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[0].kill();
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("skopeo gives up once the node is gone")
        .unwrap();
    assert!(!status.success(), "skopeo finished before the node died");
    skopeo_push(&nodes[1], tag, "multi/pushed").await;
    assert_eq!(
        pull_verified(&http, &b_url, "multi/pushed", tag).await,
        fixtures.image(tag).manifest_digest
    );
    assert_eq!(
        pull_verified(&http, &b_url, "multi/kept", "alpine318-apkdb").await,
        fixtures.image("alpine318-apkdb").manifest_digest
    );
}

/// With presigned redirects on, blob downloads answer 307 to the object store, which
/// serves the blob and its ranges; skopeo follows the redirects and pulls the image whole.
#[tokio::test(flavor = "multi_thread")]
async fn blob_downloads_redirect_to_presigned_urls() {
    let nodes = cluster(2, &[("BULWARK_STORAGE__S3__PRESIGNED_REDIRECT", "true")]);
    let (a, redirecting) = (&nodes[0], &nodes[1]);
    let tag = "alpine318-apkdb";
    let want = Layout::fixtures().image(tag);
    skopeo_push(a, tag, "multi/redirect").await;
    let layer = &want.layers[0];
    let plain = http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!(
        "{}/v2/multi/redirect/blobs/{}",
        redirecting.url, layer.digest
    );
    let resp = plain.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    // HEAD is still answered by the node, and GETs on A (no redirects) stream as before.
    assert_eq!(
        head_blob(&plain, &redirecting.url, "multi/redirect", &layer.digest).await,
        200
    );
    pull_blob_verified(&http(), &a.url, "multi/redirect", &layer.digest, layer.size).await;
    // Clients follow the redirect, with their Range.
    pull_blob_verified(
        &http(),
        &redirecting.url,
        "multi/redirect",
        &layer.digest,
        layer.size,
    )
    .await;
    let part = http()
        .get(&url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 10);

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    skopeo_copy(
        &format!("docker://{}/multi/redirect:{tag}", redirecting.host),
        &format!("oci:{}:{tag}", layout.display()),
    )
    .await;
    let pulled = Layout::open(&layout);
    assert_eq!(pulled.tags()[tag].digest, want.manifest_digest);
    pulled.assert_blobs_intact(&pulled.image(tag));
}

/// A node killed with SIGKILL while it runs a job: the job's lease runs out and another node
/// finishes it. The job (the periodic purge of abandoned uploads) is held mid-way by a lock
/// on the table it reads, taken by the test through psql, so the kill lands inside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_a_killed_node_is_finished_by_another() {
    let env = cluster_env();
    let url = env
        .iter()
        .find(|(k, _)| k == "BULWARK_DATABASE__URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    // The purge runs every second; a lease lasts two.
    let fast = [
        ("BULWARK_LIMITS__UPLOAD_TTL_SECS", "4"),
        ("BULWARK_JOBS__LEASE_SECS", "2"),
    ];
    let mut a = start_node(&env, &fast);
    let mut lock = std::process::Command::new("psql")
        .arg(&url)
        .args(["-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let mut sql = lock.stdin.take().unwrap();
    use std::io::Write;
    writeln!(sql, "BEGIN; LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE;").unwrap();
    sql.flush().unwrap();

    let http = http();
    let running = |node: &TestServer| format!("{}/api/v1/jobs?status=running", node.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let list: serde_json::Value = http
            .get(running(&a))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Other periodic jobs (retention, expiry…) run meanwhile; the purge is the one the
        // lock holds.
        let purge = list["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["kind"] == "purge_uploads"))
            .cloned();
        if let Some(job) = purge {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no job got stuck on the lock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["attempts"], 1);
    let owner_a = job["lease_owner"].as_str().unwrap().to_owned();
    a.kill();

    let b = start_node(&env, &fast);
    writeln!(sql, "COMMIT;").unwrap();
    drop(sql);
    assert!(lock.wait().unwrap().success());

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now: serde_json::Value = http
            .get(format!("{}/api/v1/jobs/{}", b.url, job["id"]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if now["status"] == "done" {
            // Taken a second time (by B), and recorded done by B, not by the dead A.
            assert_eq!(now["attempts"], 2, "{now}");
            break;
        }
        assert_ne!(now["status"], "failed", "{now}");
        assert!(
            std::time::Instant::now() < deadline,
            "the killed node's job never finished: {now} (A was {owner_a})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
