//! skopeo against the real binary: every fixture image in and back out unchanged, inspect,
//! list-tags, delete, and a copy between two repositories that mounts instead of uploading.

#[path = "common/clients.rs"]
mod clients;

use bulwark_testkit::TestServer;
use clients::*;

/// Every image of the fixture layout (single- and multi-layer, the one whose top layer is a
/// whiteout) goes into the registry and back out to a fresh OCI layout byte for byte: same
/// manifest digests, same config and layer digests, every blob whole.
#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_image_round_trips_unchanged() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    assert_eq!(
        fixtures.tags().len(),
        FIXTURE_TAGS.len(),
        "fixture layout changed"
    );

    for tag in FIXTURE_TAGS {
        let src = format!("oci:{}:{tag}", fixtures.root.display());
        skopeo_copy(&src, &format!("docker://{host}/fixtures/{tag}:{tag}")).await;
    }

    // Served as pushed, and every blob pulls whole over HTTP.
    for tag in FIXTURE_TAGS {
        let want = fixtures.image(tag);
        let repo = format!("fixtures/{tag}");
        let served = get_manifest(&http, &server.url, &repo, tag)
            .await
            .expect("pushed tag");
        assert_eq!(
            served.digest, want.manifest_digest,
            "{tag}: manifest digest"
        );
        assert_eq!(served.body, want.manifest, "{tag}: manifest bytes");
        assert_eq!(
            served.media_type,
            "application/vnd.oci.image.manifest.v1+json"
        );
        for b in want.blobs() {
            pull_blob_verified(&http, &server.url, &repo, &b.digest, b.size).await;
        }
    }

    // Back out, all six into one fresh layout.
    let out = tempfile::tempdir().unwrap();
    let out_layout = out.path().join("layout");
    for tag in FIXTURE_TAGS {
        let dst = format!("oci:{}:{tag}", out_layout.display());
        skopeo_copy(&format!("docker://{host}/fixtures/{tag}:{tag}"), &dst).await;
    }
    let pulled = Layout::open(&out_layout);
    let fixture_tags = fixtures.tags();
    let pulled_tags = pulled.tags();
    assert_eq!(
        pulled_tags.keys().collect::<Vec<_>>(),
        fixture_tags.keys().collect::<Vec<_>>()
    );
    for tag in FIXTURE_TAGS {
        assert_eq!(
            pulled_tags[tag].digest, fixture_tags[tag].digest,
            "{tag}: manifest digest"
        );
        let want = fixtures.image(tag);
        let got = pulled.image(tag);
        assert_eq!(got.manifest, want.manifest, "{tag}: manifest bytes");
        assert_eq!(got.config, want.config, "{tag}: config");
        assert_eq!(got.layers, want.layers, "{tag}: layers");
        pulled.assert_blobs_intact(&got);
    }
    // The multi-layer images really are (the whiteout image has four layers).
    assert_eq!(fixtures.image("mixed-formats").layers.len(), 4);
    assert_eq!(fixtures.image("debian12-python").layers.len(), 2);
}

/// `skopeo inspect` (parsed, raw, config) and `list-tags` see what was pushed; `skopeo
/// delete` removes the manifest, with every tag on it, and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn inspect_list_tags_and_delete() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    let root = fixtures.root.display().to_string();
    let repo = format!("{host}/team/app");
    skopeo_copy(
        &format!("oci:{root}:mixed-formats"),
        &format!("docker://{repo}:v1"),
    )
    .await;
    skopeo_copy(
        &format!("oci:{root}:mixed-formats"),
        &format!("docker://{repo}:same-as-v1"),
    )
    .await;
    skopeo_copy(
        &format!("oci:{root}:alpine318-apkdb"),
        &format!("docker://{repo}:alpine"),
    )
    .await;
    let mixed = fixtures.image("mixed-formats");
    let alpine = fixtures.image("alpine318-apkdb");

    let inspect: serde_json::Value =
        serde_json::from_str(&run(skopeo("inspect").arg(format!("docker://{repo}:v1"))).await)
            .unwrap();
    assert_eq!(inspect["Digest"], mixed.manifest_digest.as_str());
    let layers: Vec<&str> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let want_layers: Vec<&str> = mixed.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, want_layers);
    let mut repo_tags: Vec<&str> = inspect["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    repo_tags.sort();
    assert_eq!(repo_tags, ["alpine", "same-as-v1", "v1"]);

    let raw = run(skopeo("inspect").args(["--raw", &format!("docker://{repo}:alpine")])).await;
    assert_eq!(
        raw.as_bytes(),
        alpine.manifest.as_slice(),
        "raw manifest as pushed"
    );
    let config =
        run(skopeo("inspect").args(["--config", "--raw", &format!("docker://{repo}:alpine")]))
            .await;
    assert_eq!(
        config.as_bytes(),
        fixtures.read_blob(&alpine.config.digest).as_slice(),
        "config blob as pushed"
    );

    let list = |r: String| async move {
        let out = run(skopeo("list-tags").arg(format!("docker://{r}"))).await;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut tags: Vec<String> = v["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        tags.sort();
        tags
    };
    assert_eq!(list(repo.clone()).await, ["alpine", "same-as-v1", "v1"]);

    // skopeo deletes by digest: the manifest goes, and so does every tag pointing at it.
    run(skopeo("delete").arg(format!("docker://{repo}:v1"))).await;
    let gone = output(skopeo("inspect").arg(format!("docker://{repo}:v1"))).await;
    assert!(!gone.status.success(), "inspect of a deleted tag must fail");
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("manifest unknown"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    assert_eq!(list(repo.clone()).await, ["alpine"]);
    assert!(
        get_manifest(&http, &server.url, "team/app", &mixed.manifest_digest)
            .await
            .is_none()
    );
    assert!(
        get_manifest(&http, &server.url, "team/app", "same-as-v1")
            .await
            .is_none()
    );
    // The other image is untouched and still pulls whole.
    let digest = pull_verified(&http, &server.url, "team/app", "alpine").await;
    assert_eq!(digest, alpine.manifest_digest);
    // Deleting again fails cleanly.
    let again = output(skopeo("delete").arg(format!("docker://{repo}:v1"))).await;
    assert!(!again.status.success());
}

/// A copy from one repository of the registry to another mounts the layers rather than
/// moving their bytes: no layer is read from the source or uploaded to the destination, and
/// the destination answers HEAD for every layer right after.
#[tokio::test(flavor = "multi_thread")]
async fn copy_between_repositories_mounts_blobs() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    let base = &server.url;
    let image = fixtures.image("mixed-formats");
    skopeo_copy(
        &format!("oci:{}:mixed-formats", fixtures.root.display()),
        &format!("docker://{host}/src/mixed:v1"),
    )
    .await;
    for l in &image.layers {
        assert_eq!(head_blob(&http, base, "dst/mixed", &l.digest).await, 404);
    }

    let mounts_before = requests(&http, base, "upload_start", "POST", 201).await;
    let uploads_before = requests(&http, base, "upload", "PUT", 201).await;
    let reads_before = requests(&http, base, "blob_get", "GET", 200).await;
    skopeo_copy(
        &format!("docker://{host}/src/mixed:v1"),
        &format!("docker://{host}/dst/mixed:v1"),
    )
    .await;
    for l in &image.layers {
        assert_eq!(
            head_blob(&http, base, "dst/mixed", &l.digest).await,
            200,
            "layer {}",
            l.digest
        );
    }
    let mounts = requests(&http, base, "upload_start", "POST", 201).await - mounts_before;
    let uploads = requests(&http, base, "upload", "PUT", 201).await - uploads_before;
    let reads = requests(&http, base, "blob_get", "GET", 200).await - reads_before;
    let layers = image.layers.len() as f64;
    assert!(mounts >= layers, "{mounts} mounts for {layers} layers");
    // skopeo moves the (tiny) config itself; no layer crosses the wire either way.
    assert!(
        uploads <= 1.0,
        "{uploads} blob uploads: layers were not mounted"
    );
    assert!(
        reads <= 1.0,
        "{reads} blob reads from the source: layers were not mounted"
    );

    let digest = pull_verified(&http, base, "dst/mixed", "v1").await;
    assert_eq!(digest, image.manifest_digest);
    // The source is unaffected.
    assert_eq!(
        pull_verified(&http, base, "src/mixed", "v1").await,
        image.manifest_digest
    );
}

/// A copy that recompresses (gzip to zstd) streams each layer with no length known in
/// advance (chunked transfer encoding): the registry stores what skopeo computed, the image
/// keeps its config (same uncompressed content), and it copies back out whole.
#[tokio::test(flavor = "multi_thread")]
async fn recompressing_copy_streams_layers_of_unknown_length() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    let want = fixtures.image("debian12-python");
    let streamed_before = metric(
        &http,
        &server.url,
        "bulwark_http_requests_total",
        &[("route", "upload"), ("method", "PATCH")],
    )
    .await;
    run(skopeo("copy").args([
        "--quiet",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}:debian12-python", fixtures.root.display()),
        &format!("docker://{host}/zstd/py:1"),
    ]))
    .await;
    let streamed = metric(
        &http,
        &server.url,
        "bulwark_http_requests_total",
        &[("route", "upload"), ("method", "PATCH")],
    )
    .await
        - streamed_before;
    assert!(
        streamed >= 2.0,
        "{streamed} streamed uploads for two recompressed layers"
    );

    let served = get_manifest(&http, &server.url, "zstd/py", "1")
        .await
        .expect("pushed");
    let image = Image::parse(served.body.clone());
    assert_eq!(image.config, want.config, "same image config");
    assert_eq!(image.layers.len(), 2);
    for (got, orig) in image.layers.iter().zip(&want.layers) {
        assert_eq!(
            got.media_type,
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_ne!(got.digest, orig.digest, "the layer was recompressed");
    }
    assert_eq!(
        pull_verified(&http, &server.url, "zstd/py", "1").await,
        served.digest
    );

    let out = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:py", out.path().display());
    skopeo_copy(&format!("docker://{host}/zstd/py:1"), &dst).await;
    let pulled = Layout::open(out.path());
    let got = pulled.image("py");
    assert_eq!(got.manifest, served.body);
    pulled.assert_blobs_intact(&got);
}

/// With a page size of two, `skopeo list-tags` must follow the registry's `Link` headers to
/// list all five tags.
#[tokio::test(flavor = "multi_thread")]
async fn list_tags_follows_link_pagination() {
    let server = TestServer::start_with(bulwark_bin(), &[], &[("BULWARK_LIMITS__MAX_PAGE", "2")]);
    let fixtures = Layout::fixtures();
    let host = &server.host;
    let src = format!("oci:{}:alpine318-apkdb", fixtures.root.display());
    for tag in ["e", "a", "d", "b", "c"] {
        skopeo_copy(&src, &format!("docker://{host}/paged/repo:{tag}")).await;
    }
    let first_page: serde_json::Value = http()
        .get(format!("{}/v2/paged/repo/tags/list", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first_page["tags"],
        serde_json::json!(["a", "b"]),
        "the server pages"
    );
    let out = run(skopeo("list-tags").arg(format!("docker://{host}/paged/repo"))).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["a", "b", "c", "d", "e"]));
}
