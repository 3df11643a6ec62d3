//! The action log over the real binary: each kind of action performed through the registry
//! API or the management API is found in the log with its actor, repository and target;
//! searches are scoped by permission; a graceful stop writes everything; `bulwark logs`
//! lists, exports and verifies, and finds an entry edited in the database.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use bulwark_testkit::{TestServer, admin_basic_auth, basic_auth, postgres_database};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const PASSWORD: &str = "alice-password-1";

struct Client {
    server: TestServer,
    http: reqwest::Client,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

impl Client {
    fn start() -> Client {
        let server = TestServer::start_with(
            BIN,
            &[],
            &[
                ("BULWARK_AUDIT__FLUSH_INTERVAL_MS", "20"),
                // Sign the chain head every second: `verify` then has checkpoints to check.
                ("BULWARK_AUDIT__CHECKPOINT_SECS", "1"),
            ],
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .user_agent("action-log-test/1")
            .build()
            .unwrap();
        Client { server, http }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .header("authorization", auth);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, &admin_basic_auth(), body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.server.url
            ))
            .header("authorization", admin_basic_auth())
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        digest
    }

    async fn put_manifest(&self, repo: &str, reference: &str, body: &[u8]) -> StatusCode {
        self.http
            .put(format!(
                "{}/v2/{repo}/manifests/{reference}",
                self.server.url
            ))
            .header("authorization", admin_basic_auth())
            .header("content-type", OCI_MANIFEST)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn v2(&self, method: Method, path: &str) -> StatusCode {
        self.http
            .request(method, format!("{}{path}", self.server.url))
            .header("authorization", admin_basic_auth())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The superuser's search for one kind, waiting for the writer's flush.
    async fn entries(&self, query: &str, at_least: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let page = self
                .admin(
                    Method::GET,
                    &format!("/api/v1/superuser/logs?limit=1000&{query}"),
                    None,
                )
                .await;
            let logs = page["logs"].as_array().unwrap().clone();
            if logs.len() >= at_least || started.elapsed() > Duration::from_secs(10) {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The entry of `kind` by `actor` about `repository` (and `target`, if given), waiting
    /// for the writer's flush.
    async fn expect(
        &self,
        kind: &str,
        actor: &str,
        repository: Option<&str>,
        target: Option<&str>,
    ) -> Value {
        let started = Instant::now();
        loop {
            let logs = self.entries(&format!("kind={kind}"), 1).await;
            let found = logs.into_iter().find(|e| {
                e["performer"]["name"] == actor
                    && e["repository"].as_str() == repository
                    && (target.is_none() || e["target"].as_str() == target)
            });
            if let Some(entry) = found {
                return entry;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {kind} by {actor} on {repository:?} {target:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    let descriptor = |media_type: &str, data: &[u8]| json!({"mediaType": media_type, "digest": sha256(data), "size": data.len()});
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_action_is_found_with_its_actor_repository_and_target() {
    let c = Client::start();
    // Registry API: push, pull, their failures, deletes.
    let repo = "admin/app";
    let (config, layer) = (b"{}".as_slice(), b"layer bytes".as_slice());
    c.put_blob(repo, config).await;
    c.put_blob(repo, layer).await;
    let body = manifest(config, layer);
    let digest = sha256(&body);
    assert_eq!(c.put_manifest(repo, "v1", &body).await, StatusCode::CREATED);
    assert_eq!(c.put_manifest(repo, "v2", &body).await, StatusCode::CREATED);
    let broken = manifest(config, b"never pushed");
    assert_eq!(
        c.put_manifest(repo, "bad", &broken).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.v2(Method::GET, &format!("/v2/{repo}/manifests/v1")).await,
        StatusCode::OK
    );
    assert_eq!(
        c.v2(Method::GET, &format!("/v2/{repo}/manifests/nope"))
            .await,
        StatusCode::NOT_FOUND
    );
    // A HEAD is an existence check, not a pull.
    assert_eq!(
        c.v2(Method::HEAD, &format!("/v2/{repo}/manifests/v1"))
            .await,
        StatusCode::OK
    );
    let tag_delete = c
        .v2(Method::DELETE, &format!("/v2/{repo}/manifests/v2"))
        .await;
    assert_eq!(
        c.v2(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}"))
            .await,
        StatusCode::ACCEPTED
    );

    let push = c.expect("push", "admin", Some(repo), Some("v1")).await;
    assert_eq!(push["metadata"]["digest"], digest);
    assert_eq!(push["performer"]["credential"], "password");
    assert_eq!(push["ip"], "127.0.0.1");
    assert_eq!(push["user_agent"], "action-log-test/1");
    assert_eq!(push["namespace"], "admin");
    let failed = c
        .expect("push.failure", "admin", Some(repo), Some("bad"))
        .await;
    assert_eq!(failed["metadata"]["status"], 400);
    let pull = c.expect("pull", "admin", Some(repo), Some("v1")).await;
    assert_eq!(pull["metadata"]["digest"], digest);
    c.expect("pull.failure", "admin", Some(repo), Some("nope"))
        .await;
    let tag_kind = if tag_delete.is_success() {
        "tag.delete"
    } else {
        "tag.delete.failure"
    };
    c.expect(tag_kind, "admin", Some(repo), Some("v2")).await;
    c.expect("manifest.delete", "admin", Some(repo), Some(&digest))
        .await;
    assert_eq!(
        c.entries("kind=pull", 1).await.len(),
        1,
        "HEAD is not logged"
    );

    // Logins and tokens.
    let (status, _) = c
        .call(Method::GET, "/v2/", &basic_auth("admin", "wrong"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    c.expect("login.failure", "admin", None, None).await;
    c.expect("login.success", "admin", None, None).await;
    let (status, _) = c
        .call(
            Method::GET,
            &format!("/v2/auth?service=bulwark&scope=repository:{repo}:pull"),
            &admin_basic_auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.expect("token.issued", "admin", None, None).await;

    // The management API.
    c.admin(
        Method::POST,
        "/api/v1/superuser/users/",
        Some(json!({"username": "alice", "password": PASSWORD})),
    )
    .await;
    c.expect("user.create", "admin", None, Some("alice")).await;
    c.admin(
        Method::POST,
        "/api/v1/organization/",
        Some(json!({"name": "acme"})),
    )
    .await;
    c.expect("org.create", "admin", None, Some("acme")).await;
    c.admin(
        Method::POST,
        "/api/v1/repository",
        Some(json!({"namespace": "acme", "repository": "web", "visibility": "private"})),
    )
    .await;
    c.expect("repository.create", "admin", Some("acme/web"), None)
        .await;
    c.admin(
        Method::POST,
        "/api/v1/repository/acme/web/changevisibility",
        Some(json!({"visibility": "public"})),
    )
    .await;
    c.expect("repository.visibility", "admin", Some("acme/web"), None)
        .await;
    c.admin(
        Method::PUT,
        "/api/v1/repository/acme/web/permissions/user/alice",
        Some(json!({"role": "admin"})),
    )
    .await;
    c.expect("permission.set", "admin", Some("acme/web"), Some("alice"))
        .await;
    c.admin(
        Method::PUT,
        "/api/v1/organization/acme/robots/ci",
        Some(json!({})),
    )
    .await;
    c.expect("robot.create", "admin", None, Some("acme+ci"))
        .await;
    let alice = basic_auth("alice", PASSWORD);
    let (status, _) = c
        .call(
            Method::POST,
            "/api/v1/user/apptoken",
            &alice,
            Some(json!({"title": "laptop"})),
        )
        .await;
    assert!(status.is_success(), "{status}");
    c.expect("apptoken.create", "alice", None, None).await;

    // Visibility follows permissions: alice administers acme/web, not admin/app.
    let (status, page) = c
        .call(
            Method::GET,
            "/api/v1/repository/acme/web/logs",
            &alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let kinds: HashSet<&str> = page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("repository.visibility") && kinds.contains("permission.set"),
        "{kinds:?}"
    );
    assert!(
        page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["repository"] == "acme/web")
    );
    let (status, _) = c
        .call(
            Method::GET,
            &format!("/api/v1/repository/{repo}/logs"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c
        .call(Method::GET, "/api/v1/superuser/logs", &alice, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c
        .call(Method::GET, "/api/v1/organization/acme/logs", &alice, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, own) = c.call(Method::GET, "/api/v1/user/logs", &alice, None).await;
    assert_eq!(status, StatusCode::OK);
    let own = own["logs"].as_array().unwrap();
    assert!(
        !own.is_empty()
            && own
                .iter()
                .all(|e| e["performer"]["name"] == "alice" || e["namespace"] == "alice")
    );
    let (status, _) = c.call(Method::GET, "/api/v1/user/logs", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn searches_page_filter_and_count_and_a_stop_loses_nothing() {
    let mut c = Client::start();
    let repo = "admin/app";
    let (config, layer) = (b"{}".as_slice(), b"x".as_slice());
    c.put_blob(repo, config).await;
    c.put_blob(repo, layer).await;
    let body = manifest(config, layer);
    assert_eq!(c.put_manifest(repo, "v1", &body).await, StatusCode::CREATED);
    for _ in 0..25 {
        assert_eq!(
            c.v2(Method::GET, &format!("/v2/{repo}/manifests/v1")).await,
            StatusCode::OK
        );
    }
    c.entries("kind=pull", 25).await;
    // Pages of 10 through the cursor, newest first, no repeats.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let cursor = next
            .as_ref()
            .map(|n| format!("&next_page={n}"))
            .unwrap_or_default();
        let page = c
            .admin(
                Method::GET,
                &format!("/api/v1/repository/{repo}/logs?kind=pull&limit=10{cursor}"),
                None,
            )
            .await;
        seen.extend(
            page["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next_page"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let (status, bad) = c
        .call(
            Method::GET,
            "/api/v1/superuser/logs?next_page=zzz",
            &admin_basic_auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let none = c
        .admin(
            Method::GET,
            "/api/v1/superuser/logs?starttime=2999-01-01",
            None,
        )
        .await;
    assert!(none["logs"].as_array().unwrap().is_empty());
    let counts = c
        .admin(
            Method::GET,
            &format!("/api/v1/repository/{repo}/aggregatelogs"),
            None,
        )
        .await;
    let pulls: Vec<&Value> = counts["aggregated"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pull")
        .collect();
    assert_eq!(pulls.len(), 1, "{counts}");
    assert_eq!(pulls[0]["count"], 25);

    // Pulls right before SIGTERM are written by the graceful stop.
    for _ in 0..40 {
        assert_eq!(
            c.v2(Method::GET, &format!("/v2/{repo}/manifests/v1")).await,
            StatusCode::OK
        );
    }
    assert!(c.server.terminate(), "clean exit");
    let data = c.server.data_dir().to_owned();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("logs")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("BULWARK_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, export) = cli(&["export", "--kind", "pull"]);
    assert!(ok);
    assert_eq!(export.lines().count(), 65, "every pull, none lost");
    let first: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["repository"], repo);
    let (ok, list) = cli(&["list", "--repository", repo, "--kind", "push"]);
    assert!(
        ok && list.lines().count() == 1 && list.contains("push"),
        "{list}"
    );
    let (ok, report) = cli(&["verify"]);
    assert!(ok, "{report}");
    assert!(report.contains("the action log verifies"), "{report}");

    // Tampering shows, at the entry.
    let pull = first["id"].as_i64().unwrap();
    let sqlite = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect('{}'); \
             c.execute(\"UPDATE audit_log SET address = '10.9.9.9' WHERE seq = {pull}\"); c.commit()",
            data.join("meta.db").display()
        ))
        .status()
        .unwrap();
    assert!(sqlite.success());
    let (ok, report) = cli(&["verify"]);
    assert!(!ok);
    assert!(
        report.contains(&format!("entry {pull}: Edited")),
        "{report}"
    );
}

/// Two nodes over one PostgreSQL database append to one chain: every pull on either is
/// there once, and the chain verifies.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_postgresql_extend_one_chain() {
    let url = postgres_database();
    let env = [
        ("BULWARK_DATABASE__URL", url.as_str()),
        ("BULWARK_AUDIT__FLUSH_INTERVAL_MS", "5"),
        ("BULWARK_AUDIT__BATCH", "3"),
    ];
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut nodes = [
        TestServer::start_with(BIN, &[], &env),
        TestServer::start_with(BIN, &[], &env),
    ];
    let repo = "admin/app";
    let (config, layer) = (b"{}".as_slice(), b"y".as_slice());
    for data in [config, layer] {
        let resp = http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={}",
                nodes[0].url,
                sha256(data)
            ))
            .header("authorization", admin_basic_auth())
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = http
        .put(format!("{}/v2/{repo}/manifests/v1", nodes[0].url))
        .header("authorization", admin_basic_auth())
        .header("content-type", OCI_MANIFEST)
        .body(manifest(config, layer))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    // Both nodes pull at once, so their batches interleave.
    let mut pulls = Vec::new();
    for node in &nodes {
        for _ in 0..4 {
            let (http, url) = (http.clone(), format!("{}/v2/{repo}/manifests/v1", node.url));
            pulls.push(tokio::spawn(async move {
                for _ in 0..25 {
                    let resp = http
                        .get(&url)
                        .header("authorization", admin_basic_auth())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            }));
        }
    }
    for pull in pulls {
        pull.await.unwrap();
    }
    for node in &mut nodes {
        assert!(node.terminate());
    }
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("logs")
            .args(args)
            .env("BULWARK_DATABASE__URL", &url)
            .env("BULWARK_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, export) = cli(&["export", "--kind", "pull"]);
    assert!(ok);
    assert_eq!(export.lines().count(), 200);
    let (ok, report) = cli(&["verify"]);
    assert!(ok && report.contains("the action log verifies"), "{report}");
}
