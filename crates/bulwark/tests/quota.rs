//! Namespace quotas over the real binary: Quay's quota routes (shapes, who may read and
//! change, validation), usage shown on the organization and the user, skopeo pushing the
//! fixture images into an organization with a small quota — a warning event once the
//! usage crosses its threshold, a push over the limit refused with a clear message and
//! nothing of it visible, the same push through once the limit is raised — and
//! `bulwark quota …` locally and remotely.

#[path = "common/clients.rs"]
mod clients;

use std::collections::BTreeMap;
use std::time::Duration;

use bulwark_testkit::{ADMIN_PASSWORD, TestServer, basic_auth};
use clients::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Lab {
    server: TestServer,
    /// Authenticates as the superuser.
    http: reqwest::Client,
}

impl Lab {
    fn start() -> Lab {
        Lab::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Lab {
        Lab {
            server: TestServer::start_with(bulwark_bin(), &[], env),
            http: http(),
        }
    }

    /// A management API call as `auth` (the superuser's unless given) that must answer
    /// `status`; returns the JSON body (`Null` if none). Errors are problem+json.
    async fn api_as(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, body) = management_call(
            &self.http,
            &self.server.url,
            auth,
            method.clone(),
            path,
            body,
        )
        .await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {body}");
        body
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        self.api_as(None, method, path, body, status).await
    }

    /// The user `name` (password `name-password`), as an `Authorization` value.
    async fn user(&self, name: &str) -> String {
        let password = format!("{name}-password");
        let body = json!({ "username": name, "password": password });
        self.api(Method::POST, "/superuser/users/", Some(body), 201)
            .await;
        basic_auth(name, &password)
    }

    /// `user` in a team of `org` with `role`.
    async fn join(&self, org: &str, team: &str, role: &str, user: &str) {
        let path = format!("/organization/{org}/team/{team}");
        let (status, _) = self
            .raw(Method::PUT, &path, Some(json!({ "role": role })))
            .await;
        assert!(status.is_success(), "team {team}: {status}");
        self.api(Method::PUT, &format!("{path}/members/{user}"), None, 200)
            .await;
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.server.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// Entries of the organization's action log of `kind`, once at least `at_least` are
    /// there (the log is written in batches).
    async fn logged(&self, org: &str, kind: &str, at_least: usize) -> Vec<Value> {
        let path = format!("/organization/{org}/logs?kind={kind}&limit=100");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let page = self.api(Method::GET, &path, None, 200).await;
            let found = page["logs"].as_array().unwrap().clone();
            if found.len() >= at_least {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} logged: {page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_routes_shapes_rights_and_validation() {
    let lab = Lab::start();
    lab.api(
        Method::POST,
        "/organization/",
        Some(json!({ "name": "acme" })),
        201,
    )
    .await;
    let member = lab.user("mia").await;
    let org_admin = lab.user("otto").await;
    let outsider = lab.user("olga").await;
    lab.join("acme", "readers", "member", "mia").await;
    lab.join("acme", "owners", "admin", "otto").await;

    let quotas = "/organization/acme/quota";
    assert_eq!(lab.api(Method::GET, quotas, None, 200).await, json!([]));
    // Only superusers set quotas: an organization's admins must not raise their own.
    let new = Some(json!({ "limit_bytes": 1000 }));
    lab.api_as(Some(&org_admin), Method::POST, quotas, new.clone(), 403)
        .await;
    lab.api(Method::POST, quotas, Some(json!({ "limit_bytes": 0 })), 400)
        .await;
    // Bodies of the wrong shape, as everywhere in the API.
    for bad in [json!({ "limit_bytes": -5 }), json!({})] {
        lab.api(Method::POST, quotas, Some(bad), 422).await;
    }
    lab.api(Method::POST, "/organization/nosuch/quota", new.clone(), 404)
        .await;
    let quota = lab.api(Method::POST, quotas, new.clone(), 201).await;
    let id = quota["id"].as_i64().unwrap();
    assert_eq!(
        quota,
        json!({ "id": id, "limit_bytes": 1000, "limits": [],
                "quota_report": { "quota_bytes": 0, "configured_quota": 1000 } })
    );
    let again = lab.api(Method::POST, quotas, new, 400).await;
    assert!(again["detail"].as_str().unwrap().contains("already exists"));

    let limits = format!("{quotas}/{id}/limit");
    let warn = lab
        .api(
            Method::POST,
            &limits,
            Some(json!({ "type": "Warning", "threshold_percent": 80 })),
            201,
        )
        .await;
    assert_eq!(warn["type"], "Warning");
    assert_eq!(warn["limit_percent"], 80);
    let reject = lab
        .api(
            Method::POST,
            &limits,
            Some(json!({ "type": "reject", "threshold_percent": 100 })),
            201,
        )
        .await;
    assert_eq!(reject["type"], "Reject");
    for bad in [
        json!({ "type": "Reject", "threshold_percent": 90 }),
        json!({ "type": "Warning", "threshold_percent": 80 }),
        json!({ "type": "Maybe", "threshold_percent": 50 }),
        json!({ "type": "Warning", "threshold_percent": 0 }),
        json!({ "type": "Warning", "threshold_percent": 101 }),
    ] {
        lab.api(Method::POST, &limits, Some(bad), 400).await;
    }
    lab.api_as(
        Some(&org_admin),
        Method::POST,
        &limits,
        Some(json!({ "type": "Warning", "threshold_percent": 50 })),
        403,
    )
    .await;

    // Members read the quota, its limits and the usage; outsiders do not.
    let listed = lab
        .api_as(Some(&member), Method::GET, quotas, None, 200)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["limits"], json!([warn, reject]));
    let one = format!("{quotas}/{id}");
    assert_eq!(
        lab.api_as(Some(&member), Method::GET, &one, None, 200)
            .await,
        listed[0]
    );
    let warn_path = format!("{limits}/{}", warn["id"]);
    assert_eq!(
        lab.api_as(Some(&member), Method::GET, &warn_path, None, 200)
            .await,
        warn
    );
    lab.api_as(Some(&outsider), Method::GET, quotas, None, 403)
        .await;
    lab.api_as(
        Some(&member),
        Method::PUT,
        &one,
        Some(json!({ "limit_bytes": 9 })),
        403,
    )
    .await;
    let org = lab
        .api_as(Some(&member), Method::GET, "/organization/acme", None, 200)
        .await;
    assert_eq!(
        org["quota_report"],
        json!({ "quota_bytes": 0, "configured_quota": 1000 })
    );

    // Changes.
    let changed = lab
        .api(Method::PUT, &one, Some(json!({ "limit_bytes": 5000 })), 200)
        .await;
    assert_eq!(changed["limit_bytes"], 5000);
    let changed = lab
        .api(
            Method::PUT,
            &warn_path,
            Some(json!({ "threshold_percent": 90 })),
            200,
        )
        .await;
    assert_eq!(changed["limits"][0]["limit_percent"], 90);
    lab.api(
        Method::PUT,
        &warn_path,
        Some(json!({ "type": "Reject" })),
        400,
    )
    .await;
    lab.api(Method::DELETE, &warn_path, None, 204).await;
    lab.api(Method::DELETE, &warn_path, None, 404).await;
    lab.api(Method::GET, &format!("{quotas}/{}", id + 100), None, 404)
        .await;

    // A user's quota: set by the superuser, read by the user.
    let bob = lab.user("bob").await;
    lab.api(
        Method::POST,
        "/superuser/users/acme/quota",
        Some(json!({ "limit_bytes": 10 })),
        404,
    )
    .await;
    let user_quota = lab
        .api(
            Method::POST,
            "/superuser/users/bob/quota",
            Some(json!({ "limit_bytes": 2048 })),
            201,
        )
        .await;
    let mine = lab
        .api_as(Some(&bob), Method::GET, "/user/quota", None, 200)
        .await;
    assert_eq!(mine, json!([user_quota]));
    let me = lab
        .api_as(Some(&bob), Method::GET, "/user/", None, 200)
        .await;
    assert_eq!(me["quota_report"]["configured_quota"], 2048);
    let own = format!("/user/quota/{}", user_quota["id"]);
    lab.api_as(Some(&bob), Method::GET, &own, None, 200).await;
    lab.api_as(Some(&member), Method::GET, &own, None, 404)
        .await;
    lab.api_as(
        Some(&bob),
        Method::GET,
        "/superuser/users/bob/quota",
        None,
        403,
    )
    .await;
    let super_path = format!("/superuser/users/bob/quota/{}", user_quota["id"]);
    lab.api(
        Method::PUT,
        &super_path,
        Some(json!({ "limit_bytes": 4096 })),
        200,
    )
    .await;
    lab.api(Method::DELETE, &super_path, None, 204).await;
    assert_eq!(
        lab.api_as(Some(&bob), Method::GET, "/user/quota", None, 200)
            .await,
        json!([])
    );
    let me = lab
        .api_as(Some(&bob), Method::GET, "/user/", None, 200)
        .await;
    assert!(me.get("quota_report").is_none(), "{me}");

    // Every change is in the action log.
    for kind in [
        "quota.create",
        "quota.update",
        "quota_limit.create",
        "quota_limit.update",
        "quota_limit.delete",
    ] {
        let entry = &lab.logged("acme", kind, 1).await[0];
        assert_eq!(entry["performer"]["name"], "admin", "{entry}");
    }
    lab.api(Method::DELETE, &one, None, 204).await;
    lab.logged("acme", "quota.delete", 1).await;
}

/// The fixture images' distinct blobs and manifests, by digest.
fn sizes(tags: &[&str]) -> BTreeMap<String, u64> {
    let layout = Layout::fixtures();
    let mut held = BTreeMap::new();
    for tag in tags {
        let image = layout.image(tag);
        held.insert(image.manifest_digest.clone(), image.manifest.len() as u64);
        for blob in image.blobs() {
            held.insert(blob.digest.clone(), blob.size);
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pushes_warn_then_are_refused_until_the_limit_rises() {
    skopeo_pushes_warn_then_are_refused_until_the_limit_rises_on(Lab::start()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pushes_warn_then_are_refused_until_the_limit_rises_on_postgresql() {
    let url = bulwark_testkit::postgres_database();
    let lab = Lab::start_with(&[("BULWARK_DATABASE__URL", &url)]);
    skopeo_pushes_warn_then_are_refused_until_the_limit_rises_on(lab).await;
}

async fn skopeo_pushes_warn_then_are_refused_until_the_limit_rises_on(lab: Lab) {
    let host = &lab.server.host;
    let fixtures = Layout::fixtures().root;
    lab.api(
        Method::POST,
        "/organization/",
        Some(json!({ "name": "acme" })),
        201,
    )
    .await;
    // Room for the three images but for a byte of the last manifest: the last push's
    // layers and config fit, its manifest does not.
    let all: u64 = sizes(&["alpine318-apkdb", "mixed-formats", "rhel8like-rpmsqlite"])
        .values()
        .sum();
    let quota = lab
        .api(
            Method::POST,
            "/organization/acme/quota",
            Some(json!({ "limit_bytes": all - 1 })),
            201,
        )
        .await;
    let quota_path = format!("/organization/acme/quota/{}", quota["id"]);
    for (kind, percent) in [("Warning", 80), ("Reject", 100)] {
        lab.api(
            Method::POST,
            &format!("{quota_path}/limit"),
            Some(json!({ "type": kind, "threshold_percent": percent })),
            201,
        )
        .await;
    }
    let push = |tag: &'static str, repo: &'static str| {
        let src = format!("oci:{}:{tag}", fixtures.display());
        let dst = format!("docker://{host}/acme/{repo}:v1");
        async move { output(skopeo("copy").args(["--quiet", &src, &dst])).await }
    };
    let usage = || async {
        let org = lab.api(Method::GET, "/organization/acme", None, 200).await;
        org["quota_report"]["quota_bytes"].as_u64().unwrap()
    };

    // Below the warning threshold, then over it (the shared alpine layer counted once).
    assert!(push("alpine318-apkdb", "alpine").await.status.success());
    assert!(push("mixed-formats", "mixed").await.status.success());
    let two = sizes(&["alpine318-apkdb", "mixed-formats"])
        .values()
        .sum::<u64>();
    assert_eq!(usage().await, two);
    // The same image in another repository adds nothing, and does not warn again.
    assert!(
        push("alpine318-apkdb", "alpine-copy")
            .await
            .status
            .success()
    );
    assert_eq!(usage().await, two);

    let warnings = lab.logged("acme", "quota.warning", 1).await;
    assert_eq!(warnings[0]["repository"], "acme/mixed", "{warnings:?}");
    assert_eq!(warnings[0]["metadata"]["threshold_percent"], 80);
    assert_eq!(warnings[0]["metadata"]["usage_bytes"], two);

    // Over the limit: refused, with the namespace, its usage and its limit in skopeo's
    // words; the manifest and the tag are nowhere.
    let refused = push("rhel8like-rpmsqlite", "rhel").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let message =
        format!("quota exceeded: namespace acme would hold {all} bytes, over its limit of");
    assert!(stderr.contains(&message), "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");
    let rhel = Layout::fixtures().image("rhel8like-rpmsqlite");
    assert!(
        get_manifest(&lab.http, &lab.server.url, "acme/rhel", "v1")
            .await
            .is_none()
    );
    let by_digest = format!(
        "{}/v2/acme/rhel/manifests/{}",
        lab.server.url, rhel.manifest_digest
    );
    assert_eq!(lab.http.get(by_digest).send().await.unwrap().status(), 404);
    let tags: Value = lab
        .http
        .get(format!("{}/v2/acme/rhel/tags/list", lab.server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"].as_array().is_none_or(|t| t.is_empty()),
        "{tags}"
    );
    let rejected = lab.logged("acme", "quota.reject", 1).await;
    assert_eq!(rejected[0]["repository"], "acme/rhel");
    assert_eq!(rejected[0]["target"], rhel.manifest_digest.as_str());

    // Raised to exactly what the three hold: the same push goes through.
    lab.api(
        Method::PUT,
        &quota_path,
        Some(json!({ "limit_bytes": all })),
        200,
    )
    .await;
    let pushed = push("rhel8like-rpmsqlite", "rhel").await;
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let served = get_manifest(&lab.http, &lab.server.url, "acme/rhel", "v1").await;
    assert_eq!(served.unwrap().digest, rhel.manifest_digest);
    assert_eq!(usage().await, all);

    // At the limit: starting an upload is refused the same way.
    let resp = lab
        .http
        .post(format!("{}/v2/acme/more/blobs/uploads/", lab.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!("quota exceeded: namespace acme holds {all} bytes, its limit is {all} bytes")
    );

    // A layer the namespace holds can still be mounted: it adds nothing.
    let layer = &rhel.layers[0].digest;
    let mount = format!(
        "{}/v2/acme/more/blobs/uploads/?mount={layer}&from=acme/rhel",
        lab.server.url
    );
    let resp = lab.http.post(mount).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(usage().await, all);

    // One warning in all: usage stayed over the threshold.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lab.logged("acme", "quota.warning", 1).await.len(), 1);
}

/// `bulwark quota … --format json`, locally or remotely as admin.
fn cli(lab: &Lab, remote: bool, args: &[&str]) -> Result<Value, String> {
    let mut cmd = std::process::Command::new(bulwark_bin());
    cmd.args(["quota"]).args(args).args(["--format", "json"]);
    if remote {
        cmd.args(["--server", &lab.server.url, "--username", "admin"])
            .env("BULWARK_PASSWORD", ADMIN_PASSWORD);
    } else {
        cmd.arg("--data-dir")
            .arg(lab.server.data_dir())
            .env("BULWARK_LOG__LEVEL", "warn");
    }
    let out = cmd.output().expect("run bulwark");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON output"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_quota_commands_locally_and_remotely() {
    let lab = Lab::start();
    lab.api(
        Method::POST,
        "/organization/",
        Some(json!({ "name": "acme" })),
        201,
    )
    .await;
    lab.user("bob").await;
    let kinds = |q: &Value| -> Vec<(String, u64)> {
        q["limits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["type"].as_str().unwrap().to_owned(),
                    l["limit_percent"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    for (remote, ns) in [(false, "acme"), (true, "bob")] {
        let ok =
            |args: &[&str]| cli(&lab, remote, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(ok(&["show", ns]), Value::Null);
        // New: a reject limit at 100 % unless told otherwise.
        let q = ok(&["set", ns, "--limit", "10MiB", "--warn", "80"]);
        assert_eq!(q["limit_bytes"], 10 << 20);
        assert_eq!(kinds(&q), [("Warning".into(), 80), ("Reject".into(), 100)]);
        // Changed: the warnings replaced, the reject limit moved.
        let q = ok(&[
            "set", ns, "--limit", "2GB", "--warn", "50", "--warn", "90", "--reject", "95",
        ]);
        assert_eq!(q["limit_bytes"], 2_000_000_000_u64);
        assert_eq!(
            kinds(&q),
            [
                ("Reject".into(), 95),
                ("Warning".into(), 50),
                ("Warning".into(), 90)
            ]
        );
        assert_eq!(q["quota_report"]["quota_bytes"], 0);
        assert_eq!(ok(&["show", ns]), q);
        let err = cli(&lab, remote, &["set", ns, "--limit", "5XB"]).unwrap_err();
        assert!(err.contains("unknown size unit"), "{err}");
        let err = cli(
            &lab,
            remote,
            &["set", ns, "--limit", "1", "--reject", "120"],
        )
        .unwrap_err();
        assert!(
            err.contains("threshold_percent must be between 1 and 100"),
            "{err}"
        );
        ok(&["delete", ns]);
        assert_eq!(ok(&["show", ns]), Value::Null);
        let err = cli(&lab, remote, &["delete", ns]).unwrap_err();
        assert!(err.contains("has no quota"), "{err}");
    }
    let err = cli(&lab, false, &["set", "nosuch", "--limit", "1"]).unwrap_err();
    assert!(err.contains("nosuch"), "{err}");
}
