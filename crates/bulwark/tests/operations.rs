//! Operating the binary: configuration, health and metrics endpoints, request ids, TLS,
//! purging of abandoned uploads, and the data-directory lock.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulwark_testkit::{ADMIN_PASSWORD, TestServer};

#[path = "common/clients.rs"]
mod clients;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn bulwark(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run bulwark")
}

#[test]
fn config_print_shows_defaults_and_every_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulwark.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7001\"\n[limits]\nmax_manifest_bytes = 1234\nmax_page = 50\n",
    )
    .unwrap();
    let out = bulwark(
        &[
            "config",
            "print",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "/srv/reg",
        ],
        &[
            ("BULWARK_LIMITS__MAX_PAGE", "77"),
            ("BULWARK_ADMIN_PASSWORD", "x"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(printed["listen"].as_str(), Some("127.0.0.1:7001"));
    assert_eq!(printed["data_dir"].as_str(), Some("/srv/reg"));
    assert_eq!(
        printed["limits"]["max_manifest_bytes"].as_integer(),
        Some(1234)
    );
    assert_eq!(printed["limits"]["max_page"].as_integer(), Some(77));
    // Defaults appear too.
    assert_eq!(printed["limits"]["max_name_len"].as_integer(), Some(255));
    assert_eq!(printed["log"]["access"].as_bool(), Some(true));
}

#[test]
fn a_misspelt_key_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulwark.toml");
    std::fs::write(&file, "[limits]\nmax_manifest_byte = 1\n").unwrap();
    let out = bulwark(
        &["config", "print", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_manifest_byte"));
    let out = bulwark(&["config", "print", "--config", "/nonexistent.toml"], &[]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn health_metrics_and_request_ids() {
    let server = TestServer::start(BIN);
    let http = clients::http();
    let get = |path: &str| http.get(format!("{}{path}", server.url)).send();

    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);

    let base = get("/v2/").await.unwrap();
    assert_eq!(base.status(), 200);
    let id = base.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!id.is_empty());
    let next = get("/v2/").await.unwrap();
    assert_ne!(next.headers()["x-request-id"].to_str().unwrap(), id);
    // A caller's own request id is kept, so logs can be correlated across services.
    let mine = http
        .get(format!("{}/v2/", server.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "trace-42");
    let missing = get("/v2/nope/manifests/latest").await.unwrap();
    assert_eq!(missing.status(), 404);
    // The token endpoint and health checks are counted under their own routes.
    get("/v2/auth").await.unwrap();
    get("/healthz").await.unwrap();

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("bulwark_http_requests_total")
                && l.contains("route=\"base\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for the base route in:\n{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(metrics.contains("route=\"manifest_get\""));
    for route in ["/v2/auth", "/healthz"] {
        assert!(
            metrics.contains(&format!("route=\"{route}\"")),
            "{route} unlabelled:\n{metrics}"
        );
    }
    assert!(metrics.contains("status=\"404\""));
    assert!(metrics.contains("bulwark_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("bulwark_http_response_bytes_total"));
}

#[test]
fn serves_tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let server = TestServer::start_with(
        BIN,
        &[],
        &[
            ("BULWARK_TLS__CERT", cert.to_str().unwrap()),
            ("BULWARK_TLS__KEY", key.to_str().unwrap()),
            ("BULWARK_LIMITS__HEAD_TIMEOUT_SECS", "1"),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    // curl checks the certificate against the one we made: a real TLS handshake.
    let credentials = format!("admin:{ADMIN_PASSWORD}");
    let out = Command::new("curl")
        .args(["-sS", "-i", "-u", &credentials, "--cacert"])
        .arg(&cert)
        .arg(format!("{}/v2/", server.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0")
    );
    // Plain HTTP to the TLS port is not served (with credentials, so that serving it would
    // answer 200).
    let plain = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-u", &credentials])
        .arg(format!("http://{}/v2/", server.host))
        .output()
        .expect("curl");
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    // A client that completes the handshake, then sends nothing, is closed after the head
    // timeout (s_client exits when the server closes; its input stays open meanwhile).
    let connected = Instant::now();
    let mut silent = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &server.host])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    while silent.try_wait().unwrap().is_none() {
        if connected.elapsed() > Duration::from_secs(10) {
            silent.kill().unwrap();
            panic!("a silent TLS connection stayed open");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = connected.elapsed();
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn abandoned_uploads_are_purged() {
    let server = TestServer::start_with(BIN, &[], &[("BULWARK_LIMITS__UPLOAD_TTL_SECS", "1")]);
    let http = clients::http();
    let started = http
        .post(format!("{}/v2/purge/me/blobs/uploads/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let patched = http
        .patch(format!("{}{location}", server.url))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 202);
    let uploads = server.data_dir().join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http
            .get(format!("{}{location}", server.url))
            .send()
            .await
            .unwrap();
        if status.status() == 404 {
            let body: serde_json::Value = status.json().await.unwrap();
            assert_eq!(body["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
            break;
        }
        assert!(Instant::now() < deadline, "upload was never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
}

#[test]
fn one_process_per_data_directory() {
    let server = TestServer::start(BIN);
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .expect("run bulwark");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another bulwark process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The binary on PostgreSQL metadata (blobs stay on the filesystem): push and pull back.
#[tokio::test]
async fn serves_with_postgresql_metadata() {
    let url = bulwark_testkit::postgres_database();
    let server = TestServer::start_with(BIN, &[], &[("BULWARK_DATABASE__URL", &url)]);
    let http = clients::http();
    let blob = b"layer bytes on postgres".to_vec();
    let digest = bulwark_oci::Digest::sha256_of(&blob);
    let put = http
        .post(format!(
            "{}/v2/pg/repo/blobs/uploads/?digest={digest}",
            server.url
        ))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let got = http
        .get(format!("{}/v2/pg/repo/blobs/{digest}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    let ready = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// The job queue is visible through the API: the scheduled purge shows up and finishes.
#[tokio::test]
async fn background_jobs_are_listed_by_the_api() {
    let server = TestServer::start_with(BIN, &[], &[("BULWARK_LIMITS__UPLOAD_TTL_SECS", "4")]);
    let http = clients::http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let list: serde_json::Value = http
            .get(format!("{}/api/v1/jobs?status=done", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Other periodic jobs (the action log's checkpoints…) finish too.
        let purge = list["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["kind"] == "purge_uploads"))
            .cloned();
        if let Some(job) = purge {
            break job;
        }
        assert!(Instant::now() < deadline, "no purge job finished: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["attempts"], 1);
    let one = http
        .get(format!("{}/api/v1/jobs/{}", server.url, job["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = http
        .get(format!("{}/api/v1/jobs/999999", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let bad = http
        .get(format!("{}/api/v1/jobs?status=sleeping", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
