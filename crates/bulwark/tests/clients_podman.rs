//! podman and buildah against the real binary, each with its own temporary storage (vfs
//! driver, as root, no daemon) and auth file, logged in as the superuser with `login`.

#[path = "common/clients.rs"]
mod clients;

use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use clients::*;

/// Config digest of a served manifest: the image id that podman reports.
fn config_digest(body: &[u8]) -> String {
    Image::parse(body.to_vec()).config.digest
}

/// podman pulls what skopeo pushed (same image id and manifest digest), tags and pushes it
/// to another repository in OCI and in Docker format, and a second podman with empty storage
/// pulls both back with the same image id.
#[tokio::test(flavor = "multi_thread")]
async fn podman_pull_tag_push_and_pull_back() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    let want = fixtures.image("debian12-python");
    let image_id = want.config.digest.trim_start_matches("sha256:").to_owned();
    skopeo_copy(
        &format!("oci:{}:debian12-python", fixtures.root.display()),
        &format!("docker://{host}/base/py:1"),
    )
    .await;

    let first = Tool::new("podman");
    first.login(host, "admin", ADMIN_PASSWORD).await;
    let pulled = format!("{host}/base/py:1");
    first
        .run(&["pull", "--quiet", "--tls-verify=false", &pulled])
        .await;
    let info = first.inspect(&pulled).await;
    assert_eq!(info["Id"], image_id.as_str(), "image id after pull");
    assert_eq!(
        info["Digest"],
        want.manifest_digest.as_str(),
        "manifest digest after pull"
    );
    assert_eq!(info["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));

    let oci_ref = format!("{host}/pod/py:2");
    let docker_ref = format!("{host}/pod/py:docker");
    first.run(&["tag", &pulled, &oci_ref, &docker_ref]).await;
    first
        .run(&["push", "--quiet", "--tls-verify=false", &oci_ref])
        .await;
    first
        .run(&[
            "push",
            "--quiet",
            "--tls-verify=false",
            "--format",
            "docker",
            &docker_ref,
        ])
        .await;

    // Both pushes are complete in the registry and carry the same image (config).
    let mut pushed = Vec::new();
    for (tag, media_type) in [
        ("2", "application/vnd.oci.image.manifest.v1+json"),
        (
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let served = get_manifest(&http, &server.url, "pod/py", tag)
            .await
            .expect("pushed tag");
        assert_eq!(served.media_type, media_type, "pod/py:{tag}");
        assert_eq!(
            config_digest(&served.body),
            want.config.digest,
            "pod/py:{tag} image id"
        );
        assert_eq!(
            pull_verified(&http, &server.url, "pod/py", tag).await,
            served.digest
        );
        pushed.push((tag, served.digest));
    }
    let tags = catalog_with_tags(&http, &server.url).await;
    assert_eq!(tags["pod/py"], ["2", "docker"]);

    let second = Tool::new("podman");
    second.login(host, "admin", ADMIN_PASSWORD).await;
    for (tag, digest) in &pushed {
        let reference = format!("{host}/pod/py:{tag}");
        second
            .run(&["pull", "--quiet", "--tls-verify=false", &reference])
            .await;
        let info = second.inspect(&reference).await;
        assert_eq!(
            info["Id"],
            image_id.as_str(),
            "image id of pod/py:{tag} pulled back"
        );
        // Both tags hold the same image, so podman lists both manifests on one image.
        let repo_digest = format!("{host}/pod/py@{digest}");
        let repo_digests = info["RepoDigests"].as_array().expect("RepoDigests");
        assert!(
            repo_digests.iter().any(|d| d == repo_digest.as_str()),
            "pod/py:{tag} pulled back as {digest}: {repo_digests:?}"
        );
    }
}

/// buildah builds an image from scratch with one file, commits and pushes it; skopeo pulls
/// it into an OCI layout and the file is inside the layer with its exact content.
#[tokio::test(flavor = "multi_thread")]
async fn buildah_scratch_image_push_and_pull_with_skopeo() {
    require_tool("tar");
    let server = TestServer::start(bulwark_bin());
    let http = http();
    let host = &server.host;
    let buildah = Tool::new("buildah");
    buildah.login(host, "admin", ADMIN_PASSWORD).await;
    let work = tempfile::tempdir().unwrap();
    let content = format!(
        "built by buildah for bulwark at {:?}\n",
        std::time::SystemTime::now()
    );
    let file = work.path().join("hello.txt");
    std::fs::write(&file, &content).unwrap();

    let ctr = buildah.run(&["from", "--quiet", "scratch"]).await;
    buildah
        .run(&["copy", &ctr, file.to_str().unwrap(), "/greeting/hello.txt"])
        .await;
    buildah
        .run(&[
            "config",
            "--cmd",
            "/greeting/hello.txt",
            "--label",
            "built-by=buildah",
            &ctr,
        ])
        .await;
    let reference = format!("{host}/built/hello:v1");
    let image_id = buildah.run(&["commit", "--quiet", &ctr, &reference]).await;
    buildah.run(&["rm", &ctr]).await;
    buildah
        .run(&["push", "--quiet", "--tls-verify=false", &reference])
        .await;

    let served = get_manifest(&http, &server.url, "built/hello", "v1")
        .await
        .expect("pushed");
    assert_eq!(
        config_digest(&served.body),
        format!("sha256:{image_id}"),
        "the pushed config is the committed image"
    );
    assert_eq!(
        pull_verified(&http, &server.url, "built/hello", "v1").await,
        served.digest
    );

    let out = work.path().join("layout");
    skopeo_copy(
        &format!("docker://{reference}"),
        &format!("oci:{}:hello", out.display()),
    )
    .await;
    let layout = Layout::open(&out);
    let image = layout.image("hello");
    assert_eq!(
        image.manifest_digest, served.digest,
        "skopeo pulled what buildah pushed"
    );
    layout.assert_blobs_intact(&image);
    assert_eq!(image.layers.len(), 1, "one layer: the copied file");
    let config: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&image.config.digest)).unwrap();
    assert_eq!(config["config"]["Labels"]["built-by"], "buildah");
    assert_eq!(config["config"]["Cmd"][0], "/greeting/hello.txt");

    let layer = layout.blob_path(&image.layers[0].digest);
    let listing = run(tokio::process::Command::new("tar").arg("-tf").arg(&layer)).await;
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "greeting/hello.txt"),
        "layer lists {listing}"
    );
    let extracted = work.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    run(tokio::process::Command::new("tar")
        .arg("-xf")
        .arg(&layer)
        .arg("-C")
        .arg(&extracted))
    .await;
    let got = std::fs::read_to_string(extracted.join("greeting/hello.txt")).expect("file in layer");
    assert_eq!(got, content);
}

/// `podman manifest push --all` stores an image index and its two images; the index is
/// served as pushed, everything it references pulls whole, and a podman asking for the
/// arm64 entry gets that image.
#[tokio::test(flavor = "multi_thread")]
async fn podman_manifest_list_push_and_platform_pull() {
    let server = TestServer::start(bulwark_bin());
    let fixtures = Layout::fixtures();
    let http = http();
    let host = &server.host;
    let amd64 = fixtures.image("alpine318-apkdb");
    let arm64 = fixtures.image("rhel8like-rpmsqlite");
    for (tag, repo) in [
        ("alpine318-apkdb", "base/a"),
        ("rhel8like-rpmsqlite", "base/r"),
    ] {
        skopeo_copy(
            &format!("oci:{}:{tag}", fixtures.root.display()),
            &format!("docker://{host}/{repo}:1"),
        )
        .await;
    }

    let podman = Tool::new("podman");
    podman.login(host, "admin", ADMIN_PASSWORD).await;
    podman.run(&["manifest", "create", "bulwark-list"]).await;
    let add = |image: String, arch: &'static str| {
        let podman = &podman;
        async move {
            podman
                .run(&[
                    "manifest",
                    "add",
                    "--tls-verify=false",
                    "--arch",
                    arch,
                    "bulwark-list",
                    &image,
                ])
                .await
        }
    };
    add(format!("docker://{host}/base/a:1"), "amd64").await;
    add(format!("docker://{host}/base/r:1"), "arm64").await;
    let list = format!("docker://{host}/multi/list:1");
    podman
        .run(&[
            "manifest",
            "push",
            "--all",
            "--tls-verify=false",
            "bulwark-list",
            &list,
        ])
        .await;

    let served = get_manifest(&http, &server.url, "multi/list", "1")
        .await
        .expect("index pushed");
    assert_eq!(served.media_type, "application/vnd.oci.image.index.v1+json");
    let index: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    let entries: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap(),
                m["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("amd64", amd64.manifest_digest.as_str()),
            ("arm64", arm64.manifest_digest.as_str())
        ]
    );
    assert_eq!(
        pull_verified(&http, &server.url, "multi/list", "1").await,
        served.digest
    );

    let puller = Tool::new("podman");
    puller.login(host, "admin", ADMIN_PASSWORD).await;
    let reference = format!("{host}/multi/list:1");
    puller
        .run(&[
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--arch",
            "arm64",
            &reference,
        ])
        .await;
    let info = puller.inspect(&reference).await;
    assert_eq!(
        info["Id"],
        arm64.config.digest.trim_start_matches("sha256:"),
        "the arm64 entry of the index"
    );
}
