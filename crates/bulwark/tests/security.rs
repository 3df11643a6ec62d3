//! Vulnerability scanning in the registry, through the real binary: images pushed with
//! skopeo are scanned in the background, vulnerability data imported beside the running
//! server (`bulwark vulndb import`) re-matches them without reading a layer again, the
//! findings come back in Quay's shape and in the native report, and the action log records
//! scans and newly found vulnerabilities. Artifacts, corrupt and hostile layers get their
//! status and reason while the server keeps serving.

#[path = "common/clients.rs"]
mod clients;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulwark_oci::Digest;
use bulwark_testkit::TestServer;
use clients::*;
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

struct Client {
    server: TestServer,
    http: reqwest::Client,
    /// The server's configuration overrides, for the CLI beside it.
    env: Vec<(String, String)>,
}

impl Client {
    fn start(env: &[(&str, &str)]) -> Client {
        Client::over(TestServer::start_with(bulwark_bin(), &[], env), env)
    }

    /// [`start`](Self::start), the server's log kept for reading.
    fn start_with_log(env: &[(&str, &str)]) -> Client {
        Client::over(TestServer::start_with_log(bulwark_bin(), &[], env), env)
    }

    fn over(server: TestServer, env: &[(&str, &str)]) -> Client {
        Client {
            server,
            http: http(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `bulwark vulndb import` of the fixtures' data on the server's database.
    fn import_vulndb(&self) -> std::process::Output {
        let out = std::process::Command::new(bulwark_bin())
            .args(["vulndb", "import"])
            .arg(fixtures().join("vulndb"))
            .arg("--data-dir")
            .arg(self.server.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.server.url))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn push_skopeo(&self, tag: &str, repo: &str) -> String {
        let src = format!("oci:{}:{tag}", fixture_layout_path().display());
        skopeo_copy(&src, &format!("docker://{}/{repo}:v1", self.server.host)).await;
        Layout::fixtures().tags()[tag].digest.clone()
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let resp = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.server.url
            ))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 201, "blob push");
        digest
    }

    /// Pushes a config and layers with these media types and bytes, and a manifest over
    /// them; returns the manifest's digest.
    async fn push_image(
        &self,
        repo: &str,
        config: (&str, &[u8]),
        layers: &[(&str, &[u8])],
    ) -> String {
        let descriptor = |media_type: &str, data: &[u8]| {
            json!({
                "mediaType": media_type,
                "digest": Digest::sha256_of(data).to_string(),
                "size": data.len(),
            })
        };
        self.push_blob(repo, config.1).await;
        let mut descriptors = Vec::new();
        for (media_type, data) in layers {
            self.push_blob(repo, data).await;
            descriptors.push(descriptor(media_type, data));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config.0, config.1),
            "layers": descriptors,
        }))
        .unwrap();
        let resp = self
            .http
            .put(format!("{}/v2/{repo}/manifests/v1", self.server.url))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 201, "manifest push");
        Digest::sha256_of(&manifest).to_string()
    }

    /// The native report once the scan has left `queued` (and, with `until`, once it
    /// satisfies it).
    async fn report(&self, repo: &str, digest: &str, until: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/api/v1/repository/{repo}/manifest/{digest}/report");
        let started = Instant::now();
        loop {
            let (status, report) = self.get(&path).await;
            assert_eq!(status, 200, "{report}");
            if report["status"] != "queued" && until(&report) {
                return report;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "scan of {repo}@{digest} not done: {report}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn layers_indexed(&self) -> f64 {
        metric(
            &self.http,
            &self.server.url,
            "bulwark_scanner_layers_indexed_total",
            &[],
        )
        .await
    }

    /// The repository's log entries of `kind`, waiting until there are `at_least`.
    async fn log_entries(&self, repo: &str, kind: &str, at_least: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let (status, page) = self
                .get(&format!(
                    "/api/v1/repository/{repo}/logs?kind={kind}&limit=1000"
                ))
                .await;
            assert_eq!(status, 200, "{page}");
            let logs = page["logs"].as_array().cloned().unwrap_or_default();
            if logs.len() >= at_least || started.elapsed() > Duration::from_secs(20) {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// (id, package, version, aliases) of each finding, sorted.
fn findings(report: &Value) -> Vec<(String, String, String, Vec<String>)> {
    let mut got: Vec<_> = report["vulnerabilities"]
        .as_array()
        .expect("vulnerabilities")
        .iter()
        .map(|f| {
            serde_json::from_value(json!([f["id"], f["package"], f["version"], f["aliases"]]))
                .unwrap()
        })
        .collect();
    got.sort();
    got
}

fn expected_python_matches() -> Vec<(String, String, String, Vec<String>)> {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected/matches.json")).unwrap())
            .unwrap();
    let (_, list) = expected
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("debian12-python"))
        .unwrap();
    let mut want: Vec<(String, String, String, Vec<String>)> =
        serde_json::from_value(list.clone()).unwrap();
    want.sort();
    want
}

/// SQLite metadata.
#[tokio::test(flavor = "multi_thread")]
async fn pushed_images_are_scanned_then_rematched_when_data_arrives() {
    scan_and_rematch(&[]).await;
}

/// The same with metadata in PostgreSQL (and the CLI importing into it).
#[tokio::test(flavor = "multi_thread")]
async fn pushed_images_are_scanned_then_rematched_on_postgresql() {
    let url = bulwark_testkit::postgres_database();
    scan_and_rematch(&[("BULWARK_DATABASE__URL", &url)]).await;
}

async fn scan_and_rematch(env: &[(&str, &str)]) {
    let c = Client::start(env);

    // Pushed before any vulnerability data: scanned, nothing found.
    let python = c.push_skopeo("debian12-python", "scan/python").await;
    let minbase = c.push_skopeo("debian11-minbase", "scan/minbase").await;
    for (repo, digest) in [("scan/python", &python), ("scan/minbase", &minbase)] {
        let report = c.report(repo, digest, |_| true).await;
        assert_eq!(report["status"], "scanned", "{report}");
        assert_eq!(findings(&report), vec![], "{repo}: no data, no findings");
        assert_eq!(report["grade"]["current_grade"], "A");
    }
    let indexed = c.layers_indexed().await;
    assert_eq!(indexed, 3.0, "each layer read once (python: 2, minbase: 1)");
    assert_eq!(
        c.log_entries("scan/python", "scan.completed", 1)
            .await
            .len(),
        1
    );

    // Imported beside the running server: the scans are re-matched from stored indexes.
    let out = c.import_vulndb();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("generation 1"), "{printed}");

    let want = expected_python_matches();
    let report = c
        .report("scan/python", &python, |r| {
            r["vulnerabilities"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        })
        .await;
    assert_eq!(
        findings(&report),
        want,
        "debian12-python: exactly the expected matches"
    );
    let total: u64 = report["summary"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, want.len());
    let python_layer = Layout::fixtures().image("debian12-python").layers[1]
        .digest
        .clone();
    assert!(
        report["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["layer"] == python_layer.as_str()),
        "the site-packages layer introduced them"
    );
    assert!(report["grade"]["current_grade"].is_string(), "{report}");

    let minbase_report = c.report("scan/minbase", &minbase, |_| true).await;
    assert_eq!(minbase_report["status"], "scanned");
    assert_eq!(findings(&minbase_report), vec![], "debian11-minbase: none");
    assert_eq!(
        c.layers_indexed().await,
        indexed,
        "re-matching read no layer"
    );

    // Each newly affecting vulnerability is in the repository's log.
    let found = c
        .log_entries("scan/python", "vulnerability.found", want.len())
        .await;
    let ids: BTreeSet<(String, String)> = found
        .iter()
        .map(|e| {
            assert_eq!(e["target"], python.as_str());
            (
                e["metadata"]["id"].as_str().unwrap().to_owned(),
                e["metadata"]["package"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want_ids: BTreeSet<(String, String)> = want
        .iter()
        .map(|(id, p, _, _)| (id.clone(), p.clone()))
        .collect();
    assert_eq!(ids, want_ids);
    assert!(found.iter().all(|e| e["metadata"]["severity"].is_string()));

    // Quay's shape: the packages, with the vulnerabilities of each.
    let (status, quay) = c
        .get(&format!(
            "/api/v1/repository/scan/python/manifest/{python}/security?vulnerabilities=true"
        ))
        .await;
    assert_eq!(status, 200, "{quay}");
    assert_eq!(quay["status"], "scanned");
    let features = quay["data"]["Layer"]["Features"].as_array().unwrap();
    let urllib3 = features
        .iter()
        .find(|f| f["Name"] == "urllib3")
        .expect("urllib3 feature");
    assert_eq!(urllib3["Version"], "1.26.4");
    assert_eq!(urllib3["VersionFormat"], "pep440");
    assert_eq!(urllib3["AddedBy"], python_layer.as_str());
    let vulns = urllib3["Vulnerabilities"].as_array().unwrap();
    let urllib3_ids: BTreeSet<&str> = vulns.iter().map(|v| v["Name"].as_str().unwrap()).collect();
    let want_urllib3: BTreeSet<&str> = want
        .iter()
        .filter(|(_, p, _, _)| p == "urllib3")
        .map(|(id, _, _, _)| id.as_str())
        .collect();
    assert_eq!(urllib3_ids, want_urllib3);
    for v in vulns {
        for key in [
            "NamespaceName",
            "Description",
            "Link",
            "Severity",
            "FixedBy",
            "Metadata",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
    }
    assert!(
        features.iter().any(|f| f["VersionFormat"] == "dpkg"),
        "the Debian packages are features too"
    );

    // The packages as SBOMs.
    let sbom = |format: &'static str| {
        let path = format!("/api/v1/repository/scan/python/manifest/{python}/sbom?format={format}");
        let c = &c;
        async move { c.get(&path).await }
    };
    let (status, cyclonedx) = sbom("cyclonedx").await;
    assert_eq!(status, 200, "{cyclonedx}");
    assert_eq!(cyclonedx["bomFormat"], "CycloneDX");
    assert!(
        cyclonedx["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "urllib3" && p["version"] == "1.26.4"),
        "{cyclonedx}"
    );
    let (status, spdx) = sbom("spdx").await;
    assert_eq!(status, 200, "{spdx}");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert!(
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "jinja2" || p["name"] == "Jinja2")
    );
    assert_eq!(sbom("xml").await.0, 400);

    // A pull policy refuses the image, naming why; allowlisting its findings lets it by.
    let policy_path = "/api/v1/repository/scan/python/scanpolicy";
    let put_policy = |body: Value| {
        let c = &c;
        async move {
            let resp = c
                .http
                .put(format!("{}{policy_path}", c.server.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let pull = || {
        let c = &c;
        async move {
            let resp = c
                .http
                .get(format!("{}/v2/scan/python/manifests/v1", c.server.url))
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(pull().await.0, 200, "no policy, no refusal");
    let (status, body) = put_policy(json!({ "block_severity": "Bogus" })).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put_policy(json!({ "block_severity": "Unknown" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"]["block_severity"], "Unknown");
    let (status, refusal) = pull().await;
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal.contains("DENIED"), "{refusal}");
    assert!(
        want.iter()
            .any(|(id, _, _, _)| refusal.contains(id.as_str())),
        "names the vulnerability: {refusal}"
    );
    let (status, _) = c
        .get(&format!(
            "/api/v1/repository/scan/minbase/manifest/{minbase}/report"
        ))
        .await;
    assert_eq!(status, 200);
    let allow: Vec<&str> = want.iter().map(|(id, _, _, _)| id.as_str()).collect();
    let (status, body) =
        put_policy(json!({ "block_severity": "Unknown", "allowlist": allow })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pull().await.0, 200, "every finding allowlisted");
    let (status, body) = c.get(policy_path).await;
    assert_eq!(
        (
            status,
            body["policy"]["allowlist"].as_array().unwrap().len()
        ),
        (200, want.len())
    );
    assert_eq!(
        c.log_entries("scan/python", "scan_policy.set", 2)
            .await
            .len(),
        2
    );

    // An image sharing the Debian 12 layer reuses its stored index.
    let base = c.push_skopeo("debian12-minbase", "scan/base").await;
    let report = c.report("scan/base", &base, |_| true).await;
    assert_eq!(report["status"], "scanned", "{report}");
    assert_eq!(
        c.layers_indexed().await,
        indexed,
        "the shared layer was not read again"
    );

    // A digest not in the repository is not found there, whatever other repositories hold.
    let (status, _) = c
        .get(&format!(
            "/api/v1/repository/scan/minbase/manifest/{python}/report"
        ))
        .await;
    assert_eq!(status, 404);

    // An import that changes nothing changes nothing.
    let out = c.import_vulndb();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(": 0 added, 0 updated") && printed.contains("generation 1"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_corrupt_and_hostile_layers_get_a_status_and_a_reason() {
    // A low entry limit, so that a small layer crosses it; vulnerability data from the
    // configuration, imported by the periodic job.
    let source = fixtures().join("vulndb/osv-PyPI.jsonl");
    let sources = format!("[\"{}\"]", source.display());
    let c = Client::start(&[
        ("BULWARK_SCANNER__MAX_ENTRIES", "20"),
        ("BULWARK_SCANNER__VULNDB", &sources),
    ]);

    let artifact = c
        .push_image(
            "odd/artifact",
            ("application/vnd.example.config+json", b"{}"),
            &[("application/vnd.example.data", b"some data")],
        )
        .await;
    let report = c.report("odd/artifact", &artifact, |_| true).await;
    assert_eq!(report["status"], "unsupported", "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("artifact"),
        "{report}"
    );
    let (_, quay) = c
        .get(&format!(
            "/api/v1/repository/odd/artifact/manifest/{artifact}/security"
        ))
        .await;
    assert_eq!(quay, json!({ "status": "unsupported", "data": null }));

    // An index: each platform's manifest is scanned on its own.
    let child = c
        .http
        .get(format!(
            "{}/v2/odd/artifact/manifests/{artifact}",
            c.server.url
        ))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let index = serde_json::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": artifact, "size": child.len() }],
    }))
    .unwrap();
    let resp = c
        .http
        .put(format!("{}/v2/odd/artifact/manifests/multi", c.server.url))
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let index_digest = Digest::sha256_of(index.as_bytes()).to_string();
    let report = c.report("odd/artifact", &index_digest, |_| true).await;
    assert_eq!(report["status"], "unsupported", "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("index"),
        "{report}"
    );

    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let corrupt = c
        .push_image(
            "odd/corrupt",
            ("application/vnd.oci.image.config.v1+json", config),
            &[(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                b"\x1f\x8b not really gzip",
            )],
        )
        .await;
    let report = c.report("odd/corrupt", &corrupt, |_| true).await;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(!report["reason"].as_str().unwrap().is_empty());
    assert_eq!(
        c.log_entries("odd/corrupt", "scan.failed", 1).await.len(),
        1
    );

    // A tar of 100 entries against a limit of 20.
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..100 {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("file{i}"), &[][..])
            .unwrap();
    }
    let layer = tar.into_inner().unwrap();
    let hostile = c
        .push_image(
            "odd/hostile",
            ("application/vnd.oci.image.config.v1+json", config),
            &[("application/vnd.oci.image.layer.v1.tar", &layer)],
        )
        .await;
    let report = c.report("odd/hostile", &hostile, |_| true).await;
    assert_eq!(report["status"], "unsupported", "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("max_entries"),
        "{report}"
    );

    // The configured source was imported by the periodic job.
    let started = Instant::now();
    loop {
        let (status, page) = c
            .get("/api/v1/superuser/logs?kind=vulnerability_data.import&limit=10")
            .await;
        assert_eq!(status, 200, "{page}");
        if let Some(entry) = page["logs"].as_array().and_then(|l| l.first()) {
            assert_eq!(entry["metadata"]["added"], 254, "{entry}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no import");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Still serving.
    let resp = c
        .http
        .get(format!("{}/v2/", c.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// Two images sharing a layer, pushed at once and scanned by two workers at once: the
/// shared layer is still read once.
#[tokio::test(flavor = "multi_thread")]
async fn a_layer_shared_by_images_scanned_at_once_is_read_once() {
    let c = Client::start(&[("BULWARK_JOBS__WORKERS", "2")]);
    let (python, base) = tokio::join!(
        c.push_skopeo("debian12-python", "at-once/python"),
        c.push_skopeo("debian12-minbase", "at-once/base"),
    );
    for (repo, digest) in [("at-once/python", &python), ("at-once/base", &base)] {
        let report = c.report(repo, digest, |_| true).await;
        assert_eq!(report["status"], "scanned", "{report}");
    }
    assert_eq!(
        c.layers_indexed().await,
        2.0,
        "two distinct layers, each read once"
    );
}

/// `python3 -m http.server` serving a directory: a real HTTP server (`Last-Modified`,
/// `If-Modified-Since` answered with 304), its request log kept. Killed when dropped.
struct FileServer {
    child: std::process::Child,
    log: PathBuf,
    url: String,
}

impl FileServer {
    fn start(dir: &std::path::Path, log: PathBuf) -> FileServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 -m http.server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40001 (http://127.0.0.1:40001/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_owned();
        FileServer {
            child,
            log,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Requests of `path` answered with `status`, from the request log.
    fn answered(&self, path: &str, status: u16) -> usize {
        let needle = format!("\"GET /{path} HTTP/1.1\" {status} ");
        std::fs::read_to_string(&self.log)
            .unwrap()
            .matches(&needle)
            .count()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixtures' vulnerability files in a directory of their own, to serve.
fn feed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("vulndb")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

const FEEDS: [&str; 3] = ["osv-Alpine.jsonl", "osv-Debian.jsonl", "osv-PyPI.jsonl"];

/// URL sources of the periodic import, beside an unreachable one and one too large: each
/// feed imported once and re-checked with one 304 a period, the findings those of the
/// files, the failures logged with their URL.
#[tokio::test(flavor = "multi_thread")]
async fn url_sources_are_downloaded_imported_and_rechecked_with_304s() {
    const LIMIT: u64 = 1_000_000;
    let feed = feed_dir();
    std::fs::write(
        feed.path().join("huge.jsonl"),
        vec![b' '; LIMIT as usize + 1],
    )
    .unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let files = FileServer::start(feed.path(), log_dir.path().join("http.log"));
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = format!("http://{closed}/osv.jsonl");
    let huge = format!("{}/huge.jsonl", files.url);
    let mut sources = vec![unreachable.clone(), huge.clone()];
    sources.extend(FEEDS.iter().map(|f| format!("{}/{f}", files.url)));
    let sources = serde_json::to_string(&sources).unwrap();
    let limit = LIMIT.to_string();
    let c = Client::start_with_log(&[
        ("BULWARK_SCANNER__VULNDB", &sources),
        ("BULWARK_SCANNER__IMPORT_EVERY_SECS", "1"),
        // One job at a time: a period never overlaps the one before.
        ("BULWARK_JOBS__WORKERS", "1"),
        ("BULWARK_SCANNER__MAX_DOWNLOAD_BYTES", &limit),
    ]);

    let python = c.push_skopeo("debian12-python", "feed/python").await;
    let want = expected_python_matches();
    let report = c
        .report("feed/python", &python, |r| findings(r) == want)
        .await;
    assert_eq!(report["status"], "scanned", "{report}");

    // Unchanged feeds answer 304 in the next periods, and nothing is imported again.
    let started = Instant::now();
    while FEEDS.iter().any(|f| files.answered(f, 304) < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no conditional requests answered 304"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for f in FEEDS {
        assert_eq!(files.answered(f, 200), 1, "{f} downloaded once");
    }
    // The action log is written in batches: its entries of the first imports are there
    // within a flush.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, page) = c
        .get("/api/v1/superuser/logs?kind=vulnerability_data.import&limit=100")
        .await;
    assert_eq!(status, 200, "{page}");
    let imports = page["logs"].as_array().unwrap();
    let mut imported: Vec<_> = imports
        .iter()
        .map(|e| e["metadata"]["source"].as_str().unwrap().to_owned())
        .collect();
    imported.sort();
    let mut want_sources: Vec<_> = FEEDS.iter().map(|f| format!("{}/{f}", files.url)).collect();
    want_sources.sort();
    assert_eq!(imported, want_sources, "each feed imported once: {page}");
    let generations: BTreeSet<_> = imports
        .iter()
        .map(|e| e["metadata"]["generation"].as_i64().unwrap())
        .collect();
    assert_eq!(generations, BTreeSet::from([1, 2, 3]), "{page}");

    // The failing sources are logged, with their URL, every period.
    let log = c.server.log();
    let failures = |url: &str| {
        log.lines()
            .filter(|l| l.contains("importing vulnerability data failed") && l.contains(url))
            .count()
    };
    assert!(failures(&unreachable) >= 2, "{log}");
    assert!(failures(&huge) >= 2, "{log}");
    assert!(log.contains(&format!("larger than {LIMIT} bytes")), "{log}");
}

/// `bulwark vulndb import URL --server …`: downloaded by the CLI, imported by the server as
/// a superuser; refused (403) to a user who is not one.
#[tokio::test(flavor = "multi_thread")]
async fn vulndb_import_through_the_management_api_takes_a_superuser() {
    let feed = feed_dir();
    let log_dir = tempfile::tempdir().unwrap();
    let files = FileServer::start(feed.path(), log_dir.path().join("http.log"));
    let c = Client::start(&[]);
    let resp = c
        .http
        .post(format!("{}/api/v1/superuser/users/", c.server.url))
        .json(&json!({ "username": "reader", "password": "reader-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );

    let import = |user: &str, password: &str, source: &str| {
        std::process::Command::new(bulwark_bin())
            .args(["vulndb", "import", source, "--server", &c.server.url])
            .args(["--username", user, "--format", "json"])
            .env("BULWARK_PASSWORD", password)
            .output()
            .unwrap()
    };
    let pypi = format!("{}/osv-PyPI.jsonl", files.url);
    let refused = import("reader", "reader-password-1", &pypi);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("403"), "{stderr}");

    let out = import("admin", bulwark_testkit::ADMIN_PASSWORD, &pypi);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        json!({ "records": 254, "added": 254, "updated": 0, "unchanged": 0, "generation": 1 })
    );
    // A local file the same way, imported again: nothing changes.
    let path = fixtures().join("vulndb/osv-PyPI.jsonl");
    let out = import(
        "admin",
        bulwark_testkit::ADMIN_PASSWORD,
        path.to_str().unwrap(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["unchanged"], 254, "{summary}");
    assert_eq!(summary["generation"], 1, "{summary}");

    // Not OSV: a problem, nothing imported.
    let resp = c
        .http
        .post(format!("{}/api/v1/superuser/vulndb", c.server.url))
        .body(r#"[{"id": 1}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("request body"),
        "{problem}"
    );
}
