//! Helpers for the tests that drive the real `bulwark` binary with real clients (skopeo,
//! podman, buildah, oras-py) and for the crash tests: the fixture image layout, OCI layouts
//! on disk, running client commands with timeouts, reading `/metrics`, and pulling content
//! back over HTTP with every byte hashed.
//!
//! Each test binary uses a subset of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bulwark_oci::{Algorithm, Digest, DigestHasher, media_types};
use bulwark_testkit::{ADMIN_PASSWORD, admin_basic_auth};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;

/// How long one client command (a copy of the largest fixture on a busy 2-core machine)
/// may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);

/// Tags of the fixture layout, smallest images first.
pub const FIXTURE_TAGS: [&str; 6] = [
    "alpine318-apkdb",
    "rhel8like-rpmsqlite",
    "mixed-formats",
    "debian12-minbase",
    "debian11-minbase",
    "debian12-python",
];

/// Every manifest media type, for `Accept`.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

pub fn bulwark_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bulwark")
}

/// The shared fixture layout (`../shared/fixtures/images` from the repository root), used in
/// place: never copied into the repository.
pub fn fixture_layout_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/images");
    assert!(
        p.join("index.json").is_file(),
        "fixture OCI layout missing at {} (see /work/shared/fixtures/README.md)",
        p.display()
    );
    p
}

/// Fails the test (it never skips) when a client the test drives is not installed.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: these tests drive the real client (scripts/test.sh installs it)"
    );
}

/// The oras-py interpreter from `$BULWARK_TEST_PYTHON` (scripts/test.sh sets it up).
pub fn test_python() -> PathBuf {
    let py = std::env::var_os("BULWARK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // scripts/test.sh's default location, for a plain `cargo test`.
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/bulwark/venv/bin/python")
        });
    assert!(
        py.is_file(),
        "no Python with oras-py at {} (set BULWARK_TEST_PYTHON; scripts/test.sh creates it)",
        py.display()
    );
    py
}

/// Runs a command to completion within `COMMAND_TIMEOUT`; returns its output whatever the
/// exit status.
pub async fn output(cmd: &mut tokio::process::Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("could not run {shown}: {e}"),
        Err(_) => panic!("{shown} did not finish within {COMMAND_TIMEOUT:?}"),
    }
}

/// Runs a command that must succeed; returns its stdout.
pub async fn run(cmd: &mut tokio::process::Command) -> String {
    let shown = format!("{cmd:?}");
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A podman or buildah with private storage and its own auth file under a temporary
/// directory, removed on drop.
pub struct Tool {
    name: &'static str,
    dir: tempfile::TempDir,
}

impl Tool {
    pub fn new(name: &'static str) -> Tool {
        require_tool(name);
        let dir = tempfile::tempdir().expect("temp dir");
        // An empty auth file: the tools fail on a missing one before they ever log in.
        std::fs::write(dir.path().join("auth.json"), r#"{"auths":{}}"#).expect("auth file");
        Tool { name, dir }
    }

    pub fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.name);
        cmd.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            // Credentials stay private to this tool, never in the user's own auth file.
            .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json"));
        cmd
    }

    /// `login` to `host` (plain HTTP), as users do before pulling and pushing.
    pub async fn login(&self, host: &str, user: &str, password: &str) {
        self.run(&[
            "login",
            "--tls-verify=false",
            "--username",
            user,
            "--password",
            password,
            host,
        ])
        .await;
    }

    pub async fn run(&self, args: &[&str]) -> String {
        run(&mut self.cmd(args)).await.trim().to_owned()
    }

    /// `image inspect` of one image, parsed.
    pub async fn inspect(&self, image: &str) -> serde_json::Value {
        let sub: &[&str] = if self.name == "podman" {
            &["image", "inspect"]
        } else {
            &["inspect", "--type", "image"]
        };
        let args: Vec<&str> = sub.iter().copied().chain([image]).collect();
        let v: serde_json::Value =
            serde_json::from_str(&self.run(&args).await).expect("inspect JSON");
        match v {
            serde_json::Value::Array(mut a) => a.remove(0),
            v => v,
        }
    }
}

/// `skopeo` with TLS verification off for both ends (the registry speaks plain HTTP),
/// authenticating as the superuser (skopeo ignores credentials for non-registry ends).
pub fn skopeo(subcommand: &str) -> tokio::process::Command {
    require_tool("skopeo");
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.arg(subcommand);
    match subcommand {
        "copy" => cmd
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(["--src-creds", &creds, "--dest-creds", &creds]),
        "inspect" | "list-tags" | "delete" => cmd.args(["--tls-verify=false", "--creds", &creds]),
        _ => &mut cmd,
    };
    cmd
}

/// `skopeo copy SRC DST`, which must succeed.
pub async fn skopeo_copy(src: &str, dst: &str) {
    run(skopeo("copy").args(["--quiet", src, dst])).await;
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

/// Digest and size of a file, hashed as it is read.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> (String, u64) {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = DigestHasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let read = f.read(&mut buf).expect("read");
        if read == 0 {
            break;
        }
        h.update(&buf[..read]);
        n += read as u64;
    }
    (h.finish().to_string(), n)
}

/// A content descriptor, as manifests and indexes hold them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Desc {
    pub fn from_json(v: &Value) -> Desc {
        Desc {
            media_type: v["mediaType"].as_str().unwrap_or_default().to_owned(),
            digest: v["digest"].as_str().expect("descriptor digest").to_owned(),
            size: v["size"].as_u64().expect("descriptor size"),
        }
    }
}

/// An image manifest and what it references.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config: Desc,
    pub layers: Vec<Desc>,
}

impl Image {
    pub fn parse(manifest: Vec<u8>) -> Image {
        let v: Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
        Image {
            manifest_digest: sha256_hex(&manifest),
            config: Desc::from_json(&v["config"]),
            layers: v["layers"]
                .as_array()
                .expect("image manifest has layers")
                .iter()
                .map(Desc::from_json)
                .collect(),
            manifest,
        }
    }

    /// Config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Desc> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An OCI image layout on disk.
pub struct Layout {
    pub root: PathBuf,
    pub index: Value,
}

impl Layout {
    pub fn open(root: impl Into<PathBuf>) -> Layout {
        let root = root.into();
        let index = std::fs::read(root.join("index.json"))
            .unwrap_or_else(|e| panic!("{}/index.json: {e}", root.display()));
        Layout {
            index: serde_json::from_slice(&index).expect("index.json is JSON"),
            root,
        }
    }

    pub fn fixtures() -> Layout {
        Layout::open(fixture_layout_path())
    }

    /// Tag (`org.opencontainers.image.ref.name`) → manifest descriptor.
    pub fn tags(&self) -> BTreeMap<String, Desc> {
        self.index["manifests"]
            .as_array()
            .expect("index.json lists manifests")
            .iter()
            .filter_map(|m| {
                let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
                Some((name.to_owned(), Desc::from_json(m)))
            })
            .collect()
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("algorithm:hex");
        self.root.join("blobs").join(alg).join(hex)
    }

    pub fn read_blob(&self, digest: &str) -> Vec<u8> {
        let p = self.blob_path(digest);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    pub fn image(&self, tag: &str) -> Image {
        let desc = self
            .tags()
            .remove(tag)
            .unwrap_or_else(|| panic!("no tag {tag} in {}", self.root.display()));
        let manifest = self.read_blob(&desc.digest);
        assert_eq!(
            sha256_hex(&manifest),
            desc.digest,
            "manifest of {tag} in layout"
        );
        assert_eq!(
            manifest.len() as u64,
            desc.size,
            "manifest size of {tag} in layout"
        );
        Image::parse(manifest)
    }

    /// Hashes every blob of `image` as stored in this layout: each must be whole.
    pub fn assert_blobs_intact(&self, image: &Image) {
        for b in image.blobs() {
            let (digest, size) = hash_file(&self.blob_path(&b.digest), Algorithm::Sha256);
            assert_eq!(digest, b.digest, "blob content in {}", self.root.display());
            assert_eq!(
                size,
                b.size,
                "blob {} size in {}",
                b.digest,
                self.root.display()
            );
        }
    }
}

/// An HTTP client for the registry (never through a proxy) that authenticates every request
/// as the superuser `admin`.
pub fn http_builder() -> reqwest::ClientBuilder {
    let auth = HeaderValue::from_str(&admin_basic_auth()).expect("header value");
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .default_headers(HeaderMap::from_iter([(AUTHORIZATION, auth)]))
}

/// [`http_builder`]'s client.
pub fn http() -> reqwest::Client {
    http_builder().build().expect("http client")
}

/// A management API call (`{base}/api/v1{path}`), as `auth` if given (else as `http`'s
/// default): the status and the JSON body (`Null` if none). A client error must be
/// problem+json with a `detail`.
pub async fn management_call(
    http: &reqwest::Client,
    base: &str,
    auth: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut req = http.request(method, format!("{base}/api/v1{path}"));
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let problem = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    if status.is_client_error() {
        assert!(problem, "{status}: problem+json expected: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    (status, body)
}

/// The sum of the Prometheus series `name` whose labels include every pair of `labels`.
pub async fn metric(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .error_for_status()
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics body");
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let matches = labels.iter().all(|(k, v)| {
            series_labels
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        });
        if matches {
            sum += value.parse::<f64>().expect("metric value");
        }
    }
    sum
}

/// `bulwark_http_requests_total` for one route, method and status.
pub async fn requests(
    client: &reqwest::Client,
    base: &str,
    route: &str,
    method: &str,
    status: u16,
) -> f64 {
    metric(
        client,
        base,
        "bulwark_http_requests_total",
        &[
            ("route", route),
            ("method", method),
            ("status", &status.to_string()),
        ],
    )
    .await
}

/// A manifest as the registry serves it.
pub struct Served {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
}

/// GET a manifest, or `None` on 404; checks the digest header against the bytes.
pub async fn get_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> Option<Served> {
    let resp = client
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .expect("GET manifest");
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(resp.status(), 200, "GET {repo} manifest {reference}");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let digest = header("docker-content-digest");
    let media_type = header("content-type");
    let body = resp.bytes().await.expect("manifest body").to_vec();
    assert_eq!(
        digest,
        sha256_hex(&body),
        "digest header of {repo}:{reference} names its bytes"
    );
    Some(Served {
        digest,
        media_type,
        body,
    })
}

/// GETs a blob and hashes it as it streams: it must be whole, of `size` bytes, and match
/// `digest`.
pub async fn pull_blob_verified(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    digest: &str,
    size: u64,
) {
    let resp = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("GET blob");
    assert_eq!(resp.status(), 200, "GET blob {digest} in {repo}");
    let parsed: Digest = digest.parse().expect("digest");
    let mut h = DigestHasher::new(parsed.algorithm());
    let mut n = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("reading blob {digest} in {repo}: {e}"));
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    assert_eq!(n, size, "size of blob {digest} in {repo}");
    assert_eq!(
        h.finish().to_string(),
        digest,
        "content of blob {digest} in {repo}"
    );
}

/// Status of `HEAD /v2/<repo>/blobs/<digest>`.
pub async fn head_blob(client: &reqwest::Client, base: &str, repo: &str, digest: &str) -> u16 {
    client
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("HEAD blob")
        .status()
        .as_u16()
}

/// Pulls `reference` completely: the manifest, and (recursively for an index) every blob it
/// references, each hashed. Returns the manifest's digest.
pub async fn pull_verified(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> String {
    let served = get_manifest(client, base, repo, reference)
        .await
        .unwrap_or_else(|| panic!("{repo}:{reference} does not resolve"));
    let v: Value = serde_json::from_slice(&served.body).expect("manifest JSON");
    let is_index = served.media_type == media_types::OCI_INDEX
        || served.media_type == media_types::DOCKER_MANIFEST_LIST;
    if is_index {
        for child in v["manifests"].as_array().expect("index lists manifests") {
            let child = Desc::from_json(child);
            let got = Box::pin(pull_verified(client, base, repo, &child.digest)).await;
            assert_eq!(got, child.digest);
        }
    } else {
        let image = Image::parse(served.body);
        for b in image.blobs() {
            pull_blob_verified(client, base, repo, &b.digest, b.size).await;
        }
    }
    served.digest
}

/// Every repository of the catalog and its tags.
pub async fn catalog_with_tags(
    client: &reqwest::Client,
    base: &str,
) -> BTreeMap<String, Vec<String>> {
    let list = |url: String, key: &'static str| async move {
        let resp = client.get(url).send().await.expect("GET list");
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.expect("list JSON");
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().expect("name").to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for repo in list(format!("{base}/v2/_catalog"), "repositories").await {
        let tags = list(format!("{base}/v2/{repo}/tags/list"), "tags").await;
        out.insert(repo, tags);
    }
    out
}

/// Polls `cond` every 20 ms until it holds, failing after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request body the test feeds piece by piece; the request stays in flight until the
/// sender is dropped or the body is complete.
pub fn channel_body() -> (mpsc::Sender<io::Result<Vec<u8>>>, reqwest::Body) {
    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(1);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

/// Feeds one piece to a streaming request body; fails rather than hangs if the client
/// stopped reading it.
pub async fn feed(tx: &mpsc::Sender<io::Result<Vec<u8>>>, piece: &[u8]) {
    tokio::time::timeout(Duration::from_secs(60), tx.send(Ok(piece.to_vec())))
        .await
        .expect("the request body is still being read")
        .expect("the request is still sending");
}

/// `Range: 0-N` of an upload status response, as a byte count.
pub fn upload_range(resp: &reqwest::Response) -> u64 {
    let range = resp.headers()["range"].to_str().unwrap();
    let end: u64 = range
        .strip_prefix("0-")
        .expect("Range: 0-N")
        .parse()
        .unwrap();
    end + 1
}

/// Monolithic blob upload (`POST ?digest=`); returns the digest.
pub async fn push_blob(http: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_hex(data);
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .expect("POST blob");
    assert_eq!(resp.status(), 201, "monolithic upload to {repo}");
    digest
}

/// An OCI image manifest naming `config` and `layers`.
pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let desc = |media_type: &str, data: &[u8]| serde_json::json!({"mediaType": media_type, "digest": sha256_hex(data), "size": data.len()});
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": layers
            .iter()
            .map(|l| desc("application/vnd.oci.image.layer.v1.tar", l))
            .collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// `PUT` of an OCI image manifest under `reference`.
pub async fn put_manifest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> reqwest::Result<reqwest::Response> {
    http.put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_types::OCI_MANIFEST)
        .body(body.to_vec())
        .send()
        .await
}

/// Pushes a small image (config and layers uploaded monolithically); returns its digest.
pub async fn push_image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[&[u8]],
) -> String {
    push_blob(http, base, repo, config).await;
    for l in layers {
        push_blob(http, base, repo, l).await;
    }
    let manifest = image_manifest(config, layers);
    let resp = put_manifest(http, base, repo, tag, &manifest)
        .await
        .expect("PUT manifest");
    assert_eq!(resp.status(), 201, "manifest push to {repo}:{tag}");
    sha256_hex(&manifest)
}

/// Opens an upload session (`POST`) in `repo`; returns its `Location`, a path any node
/// of the registry takes.
pub async fn start_upload(http: &reqwest::Client, base: &str, repo: &str) -> String {
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST upload");
    assert_eq!(resp.status(), 202, "upload start in {repo}");
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Sends `data[range]` as one chunk (`PATCH` with `Content-Range`) to the upload at `url`.
pub async fn patch_chunk(
    http: &reqwest::Client,
    url: &str,
    data: &[u8],
    range: std::ops::Range<usize>,
) -> reqwest::Response {
    http.patch(url)
        .header(
            "content-range",
            format!("{}-{}", range.start, range.end - 1),
        )
        .header("content-length", range.len())
        .body(data[range].to_vec())
        .send()
        .await
        .expect("PATCH chunk")
}

/// How many bytes the upload at `url` holds, from its status (`GET`, 204 with `Range`).
pub async fn uploaded(http: &reqwest::Client, url: &str) -> u64 {
    let status = http.get(url).send().await.expect("GET upload status");
    assert_eq!(status.status(), 204, "upload status of {url}");
    upload_range(&status)
}

/// Closes the upload at `url`, which holds `data[..from]`, with `data[from..]` as the last
/// chunk (`PUT ?digest=`); the registry must accept it.
pub async fn finish_upload(http: &reqwest::Client, url: &str, data: &[u8], from: usize) {
    let resp = http
        .put(format!("{url}?digest={}", sha256_hex(data)))
        .header("content-range", format!("{from}-{}", data.len() - 1))
        .header("content-length", data.len() - from)
        .body(data[from..].to_vec())
        .send()
        .await
        .expect("PUT upload");
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
}
