//! The tag lifecycle over the real binary: the Time Machine (history, restore, the
//! repository at a point in time, the namespace's window), expiry set by a label, an
//! annotation or the API and ended by the job, immutability rules refusing HTTP and skopeo
//! re-pushes and deletes, permanent deletion, and garbage collection reporting what it
//! reclaimed; then the same through `bulwark tag …` and `bulwark gc`, locally and remotely.

#[path = "common/clients.rs"]
mod clients;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use clients::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REPO: &str = "admin/app";

/// A server and a client that authenticates as the superuser.
struct Lab {
    server: TestServer,
    http: reqwest::Client,
    /// The server's configuration overrides, which local commands need too.
    env: Vec<(String, String)>,
}

impl Lab {
    fn start(env: &[(&str, &str)]) -> Lab {
        Lab {
            server: TestServer::start_with(bulwark_bin(), &[], env),
            http: http(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A management API call; returns the status and the JSON body (`Null` if none).
    /// Errors must be problem+json.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        management_call(&self.http, &self.server.url, None, method, path, body).await
    }

    /// A call that must answer `status`; returns the body.
    async fn expect(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, body) = self.api(method.clone(), path, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {body}");
        body
    }

    /// `tag/` listing of `REPO` with `query`.
    async fn history(&self, query: &str) -> Vec<Value> {
        let body = self
            .expect(
                Method::GET,
                &format!("/repository/{REPO}/tag/?{query}"),
                None,
                200,
            )
            .await;
        body["tags"].as_array().expect("tags").clone()
    }

    /// Pushes a config (with `labels`) and a layer made from `seed`, then a manifest with
    /// `annotations` as `repo:tag`; returns the manifest's PUT answer and digest.
    async fn push(
        &self,
        repo: &str,
        tag: &str,
        seed: u8,
        labels: Value,
        annotations: Value,
    ) -> (StatusCode, String, String) {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": [] },
            "seed": seed,
        }))
        .unwrap();
        let layer = vec![seed; 4096];
        let base = &self.server.url;
        push_blob(&self.http, base, repo, &config).await;
        push_blob(&self.http, base, repo, &layer).await;
        let mut manifest: Value =
            serde_json::from_slice(&image_manifest(&config, &[&layer])).unwrap();
        manifest["annotations"] = annotations;
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let resp = self
            .http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .expect("PUT manifest");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, sha256_hex(&manifest), text)
    }

    /// Pushes an image that must be accepted; returns its manifest digest.
    async fn push_ok(&self, tag: &str, seed: u8) -> String {
        let (status, digest, text) = self.push(REPO, tag, seed, json!({}), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "push {tag}: {text}");
        digest
    }

    /// The digest `REPO:tag` pulls as, or `None` if it does not.
    async fn pulled(&self, tag: &str) -> Option<String> {
        get_manifest(&self.http, &self.server.url, REPO, tag)
            .await
            .map(|m| m.digest)
    }

    async fn listed_tags(&self) -> Vec<String> {
        let resp = self
            .http
            .get(format!("{}/v2/{REPO}/tags/list", self.server.url))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        serde_json::from_value(body["tags"].clone()).unwrap_or_default()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn digests(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["manifest_digest"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn history_point_in_time_restore_and_delete() {
    history_point_in_time_restore_and_delete_on(Lab::start(&[])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_point_in_time_restore_and_delete_on_postgresql() {
    let url = bulwark_testkit::postgres_database();
    history_point_in_time_restore_and_delete_on(Lab::start(&[("BULWARK_DATABASE__URL", &url)]))
        .await;
}

async fn history_point_in_time_restore_and_delete_on(lab: Lab) {
    let first = lab.push_ok("v1", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Seconds, as the API takes them: after the first push, before the second.
    let between = now_secs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = lab.push_ok("v1", 2).await;
    lab.push_ok("other", 3).await;

    // Newest first; the moved row has ended, the live one has not.
    let rows = lab.history("onlyActiveTags=false&specificTag=v1").await;
    assert_eq!(digests(&rows), [second.as_str(), first.as_str()]);
    assert!(rows[0].get("end_ts").is_none(), "{rows:?}");
    assert!(rows[1]["end_ts"].as_i64().unwrap() >= rows[1]["start_ts"].as_i64().unwrap());
    assert_eq!(rows[0]["name"], "v1");
    assert_eq!(lab.history("onlyActiveTags=true").await.len(), 2);
    assert_eq!(lab.history("").await.len(), 3);
    // Paged.
    let page = lab
        .expect(
            Method::GET,
            &format!("/repository/{REPO}/tag/?limit=2&page=1"),
            None,
            200,
        )
        .await;
    assert_eq!(page["tags"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_additional"], true);
    let page = lab
        .expect(
            Method::GET,
            &format!("/repository/{REPO}/tag/?limit=2&page=2"),
            None,
            200,
        )
        .await;
    assert_eq!(page["tags"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_additional"], false);

    // The repository as it was between the pushes: v1 at the first image, no `other`.
    let then = lab.history(&format!("at={between}")).await;
    assert_eq!(digests(&then), [first.as_str()]);

    // Restore the first image; the move is history in turn.
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/v1/restore"),
        Some(json!({ "manifest_digest": first })),
        204,
    )
    .await;
    assert_eq!(lab.pulled("v1").await.as_deref(), Some(first.as_str()));
    let rows = lab.history("specificTag=v1").await;
    assert_eq!(digests(&rows)[..2], [first.as_str(), second.as_str()]);

    // A digest the tag never pointed at.
    let other = lab.pulled("other").await.unwrap();
    let problem = lab
        .expect(
            Method::POST,
            &format!("/repository/{REPO}/tag/v1/restore"),
            Some(json!({ "manifest_digest": other })),
            404,
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("time machine"),
        "{problem}"
    );

    // Delete: gone from pulls and listings, kept in the history, restorable.
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/v1"),
        None,
        204,
    )
    .await;
    assert_eq!(lab.pulled("v1").await, None);
    assert_eq!(lab.listed_tags().await, ["other"]);
    assert!(
        lab.history("onlyActiveTags=true&specificTag=v1")
            .await
            .is_empty()
    );
    assert!(lab.history("specificTag=v1").await[0]["end_ts"].is_i64());
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/v1/restore"),
        Some(json!({ "manifest_digest": second })),
        204,
    )
    .await;
    assert_eq!(lab.pulled("v1").await.as_deref(), Some(second.as_str()));

    // Unknown repository and tag; anonymous callers.
    lab.expect(Method::GET, "/repository/admin/nothing/tag/", None, 404)
        .await;
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/nope"),
        None,
        404,
    )
    .await;
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = anonymous
        .get(format!("{}/api/v1/repository/{REPO}/tag/", lab.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_from_a_label_an_annotation_and_the_api() {
    let lab = Lab::start(&[("BULWARK_LIFECYCLE__EXPIRE_EVERY_SECS", "1")]);
    let (status, _, text) = lab
        .push(
            REPO,
            "labelled",
            1,
            json!({ "quay.expires-after": "2s" }),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, _, text) = lab
        .push(
            REPO,
            "annotated",
            2,
            json!({}),
            json!({ "bulwark.expires-after": "2s" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    lab.push_ok("kept", 3).await;
    let api = lab.push_ok("api", 4).await;

    let pushed = now_secs();
    for tag in ["labelled", "annotated"] {
        let row = &lab.history(&format!("specificTag={tag}")).await[0];
        let expires = row["expiration_ts"]
            .as_i64()
            .expect("an expiry from the push");
        assert!((pushed - 1..=pushed + 3).contains(&expires), "{row}");
    }
    assert!(
        lab.history("specificTag=kept").await[0]
            .get("expiration_ts")
            .is_none()
    );

    // Set through the API, then cleared; then set again.
    let path = format!("/repository/{REPO}/tag/api");
    lab.expect(
        Method::PUT,
        &path,
        Some(json!({ "expiration": now_secs() + 600 })),
        204,
    )
    .await;
    assert!(lab.history("specificTag=api").await[0]["expiration_ts"].is_i64());
    lab.expect(Method::PUT, &path, Some(json!({ "expiration": null })), 204)
        .await;
    assert!(
        lab.history("specificTag=api").await[0]
            .get("expiration_ts")
            .is_none()
    );
    lab.expect(
        Method::PUT,
        &path,
        Some(json!({ "expiration": now_secs() + 1 })),
        204,
    )
    .await;

    // Gone from pulls and listings once expired; the job records the end in the history.
    wait_until(
        "the expired tags to disappear",
        Duration::from_secs(30),
        || async { lab.listed_tags().await == ["kept"] },
    )
    .await;
    for tag in ["labelled", "annotated", "api"] {
        assert_eq!(lab.pulled(tag).await, None, "{tag}");
    }
    wait_until("the expiry job", Duration::from_secs(30), || async {
        lab.history("specificTag=api").await[0]["end_ts"].is_i64()
    })
    .await;
    // An expired tag can be restored like a deleted one.
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/api/restore"),
        Some(json!({ "manifest_digest": api })),
        204,
    )
    .await;
    assert_eq!(lab.pulled("api").await.as_deref(), Some(api.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn immutability_rules_refuse_repushes_moves_and_deletes() {
    let lab = Lab::start(&[]);
    // A repository rule for versions, a namespace rule for `stable`.
    let rule = lab
        .expect(
            Method::POST,
            &format!("/repository/{REPO}/immutabilityrules"),
            Some(json!({ "tag_pattern": "v[0-9.]+" })),
            201,
        )
        .await;
    assert_eq!(rule["repository"], REPO);
    let ns_rule = lab
        .expect(
            Method::POST,
            "/organization/admin/immutabilityrules",
            Some(json!({ "tag_pattern": "stable" })),
            201,
        )
        .await;
    lab.expect(
        Method::POST,
        "/organization/admin/immutabilityrules",
        Some(json!({ "tag_pattern": "(" })),
        400,
    )
    .await;
    let rules = lab
        .expect(
            Method::GET,
            &format!("/repository/{REPO}/immutabilityrules"),
            None,
            200,
        )
        .await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 2, "{rules}");

    let v1 = lab.push_ok("v1.0", 1).await;
    lab.push_ok("stable", 2).await;
    lab.push_ok("dev", 3).await;
    let rows = lab.history("onlyActiveTags=true").await;
    for row in &rows {
        assert_eq!(row["immutable"], row["name"] != "dev", "{row}");
    }

    // An HTTP re-push: DENIED, saying why.
    let (status, _, text) = lab.push(REPO, "v1.0", 9, json!({}), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(
        text.contains("DENIED") && text.contains("immutable"),
        "{text}"
    );
    // skopeo's, with the registry's message in its error.
    let fixture = format!(
        "oci:{}:{}",
        fixture_layout_path().display(),
        FIXTURE_TAGS[0]
    );
    let out = output(skopeo("copy").args([
        "--quiet",
        &fixture,
        &format!("docker://{}/{REPO}:stable", lab.server.host),
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "skopeo overwrote an immutable tag");
    assert!(stderr.contains("immutable"), "{stderr}");
    assert_eq!(lab.pulled("v1.0").await.as_deref(), Some(v1.as_str()));

    // Deletes through both APIs and an expiry: refused.
    let problem = lab
        .expect(
            Method::DELETE,
            &format!("/repository/{REPO}/tag/v1.0"),
            None,
            409,
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("immutable"),
        "{problem}"
    );
    let resp = lab
        .http
        .delete(format!("{}/v2/{REPO}/manifests/stable", lab.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("immutable"));
    lab.expect(
        Method::PUT,
        &format!("/repository/{REPO}/tag/v1.0"),
        Some(json!({ "expiration": now_secs() + 60 })),
        409,
    )
    .await;
    // Permanent deletion is refused too: the history of a protected tag stays.
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/v1.0?permanent=true"),
        None,
        409,
    )
    .await;

    // A mutable tag made immutable by hand, and back.
    let dev = format!("/repository/{REPO}/tag/dev");
    lab.expect(Method::PUT, &dev, Some(json!({ "immutable": true })), 204)
        .await;
    lab.expect(Method::DELETE, &dev, None, 409).await;
    lab.expect(
        Method::PUT,
        &dev,
        Some(json!({ "immutable": false, "expiration": now_secs() + 600 })),
        204,
    )
    .await;
    lab.expect(Method::DELETE, &dev, None, 204).await;

    // The namespace's rule cannot be removed through the repository; then it goes, and so
    // does the protection of tags pushed afterwards.
    let ns_id = ns_rule["id"].as_i64().unwrap();
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/immutabilityrules/{ns_id}"),
        None,
        404,
    )
    .await;
    lab.expect(
        Method::DELETE,
        &format!("/organization/admin/immutabilityrules/{ns_id}"),
        None,
        204,
    )
    .await;
    let rules = lab
        .expect(
            Method::GET,
            "/organization/admin/immutabilityrules",
            None,
            200,
        )
        .await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");
    lab.push_ok("stable2", 4).await;
    assert_eq!(
        lab.history("specificTag=stable2").await[0]["immutable"],
        false
    );

    // A rule that lets its tags expire: a label's expiry holds on the immutable tag, the
    // tag API may set one, moves stay refused. Bad and unknown fields are refused (422).
    lab.expect(
        Method::POST,
        "/organization/admin/immutabilityrules",
        Some(json!({ "tag_pattern": "nightly-.*", "allow_expiry": "yes" })),
        422,
    )
    .await;
    lab.expect(
        Method::POST,
        "/organization/admin/immutabilityrules",
        Some(json!({ "tag_pattern": "nightly-.*", "allow_expiry": true, "extra": 1 })),
        422,
    )
    .await;
    let nightly = lab
        .expect(
            Method::POST,
            "/organization/admin/immutabilityrules",
            Some(json!({ "tag_pattern": "nightly-.*", "allow_expiry": true })),
            201,
        )
        .await;
    assert_eq!(nightly["allow_expiry"], true, "{nightly}");
    assert_eq!(rule["allow_expiry"], false, "{rule}");
    let (status, _, text) = lab
        .push(
            REPO,
            "nightly-1",
            5,
            json!({ "quay.expires-after": "1h" }),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let row = &lab.history("specificTag=nightly-1").await[0];
    assert_eq!(row["immutable"], true, "{row}");
    assert!(
        row["expiration_ts"].is_i64(),
        "the label's expiry holds: {row}"
    );
    let (status, _, _) = lab.push(REPO, "nightly-1", 6, json!({}), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    lab.expect(
        Method::PUT,
        &format!("/repository/{REPO}/tag/nightly-1"),
        Some(json!({ "expiration": now_secs() + 60 })),
        204,
    )
    .await;
}

/// No grace and no periodic collection: the test collects, and sees everything go.
const COLLECT_NOW: [(&str, &str); 2] = [
    ("BULWARK_LIFECYCLE__GC_GRACE_SECS", "0"),
    ("BULWARK_LIFECYCLE__GC_EVERY_SECS", "0"),
];

#[tokio::test(flavor = "multi_thread")]
async fn window_permanent_delete_and_gc_reclaiming_bytes() {
    window_permanent_delete_and_gc_reclaiming_bytes_on(Lab::start(&COLLECT_NOW)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn window_permanent_delete_and_gc_reclaiming_bytes_on_postgresql() {
    let url = bulwark_testkit::postgres_database();
    let mut env = COLLECT_NOW.to_vec();
    env.push(("BULWARK_DATABASE__URL", &url));
    window_permanent_delete_and_gc_reclaiming_bytes_on(Lab::start(&env)).await;
}

async fn window_permanent_delete_and_gc_reclaiming_bytes_on(lab: Lab) {
    let window = lab
        .expect(Method::GET, "/organization/admin/timemachine", None, 200)
        .await;
    assert_eq!(window["tag_expiration_s"], 14 * 86400);
    assert!(
        window["tag_expiration_options"]
            .as_array()
            .unwrap()
            .contains(&json!(0))
    );
    lab.expect(
        Method::PUT,
        "/organization/admin/timemachine",
        Some(json!({ "tag_expiration_s": 1234 })),
        400,
    )
    .await;

    let kept = lab.push_ok("kept", 1).await;
    let purged = lab.push_ok("purged", 2).await;
    lab.push_ok("live", 3).await;
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/kept"),
        None,
        204,
    )
    .await;
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/purged?permanent=true"),
        None,
        204,
    )
    .await;
    assert!(lab.history("specificTag=purged").await.is_empty());
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/purged/restore"),
        Some(json!({ "manifest_digest": purged })),
        404,
    )
    .await;

    // The purged image goes: its manifest, config and layer (4096 bytes and more).
    let report = lab.expect(Method::POST, "/superuser/gc", None, 200).await;
    assert!(report["manifests"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["blobs"].as_u64().unwrap() >= 2, "{report}");
    assert!(
        report["bytes_reclaimed"].as_u64().unwrap() > 4096,
        "{report}"
    );
    let layer = sha256_hex(&[2u8; 4096]);
    assert_eq!(
        head_blob(&lab.http, &lab.server.url, REPO, &layer).await,
        404
    );
    // The deleted tag is within the window: its image stays, restorable.
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/kept/restore"),
        Some(json!({ "manifest_digest": kept })),
        204,
    )
    .await;
    assert_eq!(lab.pulled("kept").await.as_deref(), Some(kept.as_str()));

    // With a window of 0, a deleted tag's history is collectable at once.
    let window = lab
        .expect(
            Method::PUT,
            "/organization/admin/timemachine",
            Some(json!({ "tag_expiration_s": 0 })),
            200,
        )
        .await;
    assert_eq!(window["tag_expiration_s"], 0);
    lab.expect(
        Method::DELETE,
        &format!("/repository/{REPO}/tag/kept"),
        None,
        204,
    )
    .await;
    // Rows that ended before the collection began go: not one that ended in its millisecond.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = lab.expect(Method::POST, "/superuser/gc", None, 200).await;
    assert!(report["history_rows"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["bytes_reclaimed"].as_u64().unwrap() > 4096,
        "{report}"
    );
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/tag/kept/restore"),
        Some(json!({ "manifest_digest": kept })),
        404,
    )
    .await;
    // What a live tag keeps pulls whole.
    let live = lab.pulled("live").await.expect("live tag");
    assert!(!live.is_empty());
    pull_blob_verified(
        &lab.http,
        &lab.server.url,
        REPO,
        &sha256_hex(&[3u8; 4096]),
        4096,
    )
    .await;

    // Superusers only.
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = anonymous
        .post(format!("{}/api/v1/superuser/gc", lab.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// `bulwark args… --format json` against `lab`'s registry, locally (its data directory) or
/// remotely (its API as admin); the JSON answer, or the error message.
fn cli(lab: &Lab, remote: bool, args: &[&str]) -> Result<Value, String> {
    let mut cmd = std::process::Command::new(bulwark_bin());
    cmd.args(args).args(["--format", "json"]);
    if remote {
        cmd.args(["--server", &lab.server.url, "--username", "admin"])
            .env("BULWARK_PASSWORD", ADMIN_PASSWORD);
    } else {
        cmd.arg("--data-dir")
            .arg(lab.server.data_dir())
            .envs(lab.env.iter().map(|(k, v)| (k, v)))
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
async fn cli_tag_commands_and_gc_locally_and_remotely() {
    let lab = Lab::start(&COLLECT_NOW);
    let first = lab.push_ok("v1", 1).await;
    let second = lab.push_ok("v1", 2).await;
    for (remote, (from, to)) in [(false, (&second, &first)), (true, (&first, &second))] {
        let ok =
            |args: &[&str]| cli(&lab, remote, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let history = ok(&["tag", "history", REPO, "--tag", "v1"]);
        assert_eq!(
            history["tags"][0]["manifest_digest"],
            from.as_str(),
            "{history}"
        );
        assert!(history["tags"].as_array().unwrap().len() >= 2, "{history}");

        ok(&["tag", "restore", REPO, "v1", to]);
        assert_eq!(lab.pulled("v1").await.as_deref(), Some(to.as_str()));

        ok(&["tag", "immutable", REPO, "v1"]);
        assert_eq!(lab.history("specificTag=v1").await[0]["immutable"], true);
        let refused = cli(
            &lab,
            remote,
            &["tag", "expire", REPO, "v1", "--after", "1h"],
        )
        .expect_err("an immutable tag takes no expiry");
        assert!(refused.contains("immutable"), "{refused}");
        ok(&["tag", "immutable", REPO, "v1", "--off"]);
        ok(&["tag", "expire", REPO, "v1", "--after", "1h"]);
        let expires = lab.history("specificTag=v1").await[0]["expiration_ts"].as_i64();
        let hour = now_secs() + 3600;
        assert!(
            expires.is_some_and(|e| (hour - 5..=hour + 5).contains(&e)),
            "{expires:?}"
        );
        ok(&["tag", "expire", REPO, "v1", "--never"]);
        assert!(
            lab.history("specificTag=v1").await[0]
                .get("expiration_ts")
                .is_none()
        );

        let missing = cli(&lab, remote, &["tag", "restore", REPO, "nope", to])
            .expect_err("never pointed there");
        assert!(missing.contains("time machine"), "{missing}");
    }

    // The Time Machine window from the CLI: shown, set to an allowed option, refused
    // otherwise.
    for (remote, window, secs) in [(false, "1d", 86_400), (true, "2w", 1_209_600)] {
        let set = cli(&lab, remote, &["timemachine", "set", "admin", window])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set["tag_expiration_s"], secs, "{set}");
        let shown = cli(&lab, remote, &["timemachine", "show", "admin"]).unwrap();
        assert_eq!(shown, set);
        let refused = cli(&lab, remote, &["timemachine", "set", "admin", "5s"])
            .expect_err("not an allowed window");
        assert!(
            refused.contains("86400"),
            "the options are named: {refused}"
        );
    }

    // Immutability rules from the CLI, each backend in turn: a rule that lets its tags
    // expire, listed from the repository, removed by the namespace (not the repository).
    for (remote, tag) in [(false, "nightly-a"), (true, "nightly-b")] {
        let ok =
            |args: &[&str]| cli(&lab, remote, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let rule = ok(&[
            "immutability",
            "add",
            "admin",
            "nightly-.*",
            "--allow-expiry",
        ]);
        assert_eq!(rule["allow_expiry"], true, "{rule}");
        let id = rule["id"].as_i64().unwrap().to_string();
        let rules = ok(&["immutability", "list", REPO]);
        assert!(
            rules
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == rule["id"]),
            "{rules}"
        );
        lab.push_ok(tag, 20).await;
        assert_eq!(
            lab.history(&format!("specificTag={tag}")).await[0]["immutable"],
            true
        );
        ok(&["tag", "expire", REPO, tag, "--after", "1h"]);
        let refused = cli(&lab, remote, &["immutability", "delete", REPO, &id])
            .expect_err("a namespace rule is not the repository's");
        assert!(refused.contains(&id), "{refused}");
        ok(&["immutability", "delete", "admin", &id]);
        assert!(
            ok(&["immutability", "list", "admin"])
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    // An image only history kept, purged, then collected by each in turn.
    for (remote, seed) in [(false, 7), (true, 8)] {
        let tag = format!("gone{seed}");
        lab.push_ok(&tag, seed).await;
        lab.expect(
            Method::DELETE,
            &format!("/repository/{REPO}/tag/{tag}?permanent=true"),
            None,
            204,
        )
        .await;
        let report = cli(&lab, remote, &["gc"]).unwrap_or_else(|e| panic!("gc: {e}"));
        assert!(report["manifests"].as_u64().unwrap() >= 1, "{report}");
        assert!(
            report["bytes_reclaimed"].as_u64().unwrap() > 4096,
            "{report}"
        );
    }
    assert_eq!(lab.pulled("v1").await.as_deref(), Some(second.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_policies_dry_run_then_prune() {
    let lab = Lab::start(&[("BULWARK_LIFECYCLE__RETENTION_EVERY_SECS", "0")]);
    for (i, tag) in ["pr-1", "pr-2", "pr-3", "pr-4", "latest"]
        .iter()
        .enumerate()
    {
        lab.push_ok(tag, 20 + i as u8).await;
    }
    let org = "/organization/admin/autoprunepolicy/";
    let repo = format!("/repository/{REPO}/autoprunepolicy/");
    for bad in [
        json!({ "method": "number_of_tags", "value": 0 }),
        json!({ "method": "creation_date", "value": "soon" }),
        json!({ "method": "newest", "value": 1 }),
        json!({ "method": "number_of_tags", "value": 1, "tagPattern": "(" }),
        json!({ "method": "number_of_tags", "value": 1, "tagPatternMatches": false }),
    ] {
        lab.expect(Method::POST, org, Some(bad), 400).await;
    }
    let two = lab
        .expect(
            Method::POST,
            org,
            Some(json!({ "method": "number_of_tags", "value": 2, "tagPattern": "pr-.*" })),
            201,
        )
        .await;
    assert_eq!(
        (&two["method"], &two["value"]),
        (&json!("number_of_tags"), &json!(2))
    );
    let recent = lab
        .expect(
            Method::POST,
            &repo,
            Some(json!({ "method": "creation_date", "value": "1d", "tagPattern": "latest" })),
            201,
        )
        .await;
    assert_eq!(
        (&recent["value"], &recent["repository"]),
        (&json!("1d"), &json!(REPO))
    );
    let listed = lab.expect(Method::GET, &repo, None, 200).await;
    assert_eq!(listed["policies"].as_array().unwrap().len(), 2, "{listed}");

    // The dry run lists the two oldest pull-request tags and changes nothing.
    let run = format!("{org}run");
    let dry = lab
        .expect(Method::POST, &format!("{run}?dry_run=true"), None, 200)
        .await;
    let pruned = |answer: &Value| {
        answer["pruned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["tag"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(pruned(&dry), ["pr-2", "pr-1"], "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(lab.listed_tags().await.len(), 5);

    // The real run prunes the same, into the history.
    let real = lab.expect(Method::POST, &run, None, 200).await;
    assert_eq!(pruned(&real), ["pr-2", "pr-1"], "{real}");
    assert_eq!(real["pruned"][0]["policies"], json!([two["id"]]));
    assert_eq!(lab.listed_tags().await, ["latest", "pr-3", "pr-4"]);
    assert!(lab.history("specificTag=pr-1").await[0]["end_ts"].is_i64());
    let again = lab
        .expect(Method::POST, &format!("{run}?dry_run=true"), None, 200)
        .await;
    assert_eq!(pruned(&again), Vec::<String>::new());

    // The namespace's policy goes only through the namespace.
    let id = two["id"].as_i64().unwrap();
    lab.expect(Method::DELETE, &format!("{repo}{id}"), None, 404)
        .await;
    lab.expect(Method::DELETE, &format!("{org}{id}"), None, 204)
        .await;
    let id = recent["id"].as_i64().unwrap();
    lab.expect(Method::DELETE, &format!("{repo}{id}"), None, 204)
        .await;
    let listed = lab.expect(Method::GET, org, None, 200).await;
    assert_eq!(listed["policies"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retention_job_prunes_on_its_own() {
    let lab = Lab::start(&[("BULWARK_LIFECYCLE__RETENTION_EVERY_SECS", "1")]);
    for (i, tag) in ["old", "new"].iter().enumerate() {
        lab.push_ok(tag, 30 + i as u8).await;
    }
    lab.expect(
        Method::POST,
        &format!("/repository/{REPO}/autoprunepolicy/"),
        Some(json!({ "method": "number_of_tags", "value": 1 })),
        201,
    )
    .await;
    wait_until("the retention job", Duration::from_secs(30), || async {
        lab.listed_tags().await == ["new"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_retention_commands_locally_and_remotely() {
    let lab = Lab::start(&[("BULWARK_LIFECYCLE__RETENTION_EVERY_SECS", "0")]);
    for (i, tag) in ["rc-1", "rc-2", "rc-3", "stable"].iter().enumerate() {
        lab.push_ok(tag, 40 + i as u8).await;
    }
    let ok = |remote: bool, args: &[&str]| {
        cli(&lab, remote, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let added = ok(
        true,
        &[
            "retention",
            "add",
            REPO,
            "--keep",
            "1",
            "--pattern",
            "rc-.*",
        ],
    );
    assert_eq!(
        (&added["method"], &added["value"]),
        (&json!("number_of_tags"), &json!(1))
    );
    let ns = ok(false, &["retention", "add", "admin", "--keep-for", "2w"]);
    assert_eq!(ns["value"], "2w");
    let listed = ok(false, &["retention", "list", REPO]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // Everything is within two weeks, so the namespace policy keeps all: nothing goes.
    let dry = ok(false, &["retention", "run", "admin", "--dry-run"]);
    assert_eq!(dry["pruned"], json!([]), "{dry}");
    let id = ns["id"].to_string();
    let refused = cli(&lab, false, &["retention", "delete", REPO, &id])
        .expect_err("a namespace policy is not the repository's");
    assert!(refused.contains("not found"), "{refused}");
    ok(true, &["retention", "delete", "admin", &id]);

    let dry = ok(false, &["retention", "run", "admin", "--dry-run"]);
    assert_eq!(dry["pruned"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(lab.listed_tags().await.len(), 4);
    let run = ok(true, &["retention", "run", "admin"]);
    assert_eq!(run["dry_run"], false);
    assert_eq!(lab.listed_tags().await, ["rc-3", "stable"]);
    ok(
        false,
        &["retention", "delete", REPO, &added["id"].to_string()],
    );
    assert_eq!(ok(true, &["retention", "list", "admin"]), json!([]));
}

/// The superuser's log entries of `kind`, waiting for the writer's flush until one
/// satisfies `found`.
async fn logged(lab: &Lab, kind: &str, found: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page = lab
            .expect(
                Method::GET,
                &format!("/superuser/logs?kind={kind}&limit=100"),
                None,
                200,
            )
            .await;
        if let Some(entry) = page["logs"].as_array().unwrap().iter().find(|e| found(e)) {
            return entry.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {kind} entry: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_lifecycle_change_is_in_the_action_log() {
    let lab = Lab::start(&[]);
    let by_admin_on = |repository: Option<&'static str>, target: Option<String>| {
        move |e: &Value| {
            e["performer"]["name"] == "admin"
                && e["repository"].as_str() == repository
                && (target.is_none() || e["target"].as_str() == target.as_deref())
        }
    };
    lab.push_ok("logged", 1).await;
    let tag = format!("/repository/{REPO}/tag/logged");
    lab.expect(
        Method::PUT,
        &tag,
        Some(json!({ "expiration": now_secs() + 600 })),
        204,
    )
    .await;
    logged(
        &lab,
        "tag.expiration",
        by_admin_on(Some(REPO), Some("logged".into())),
    )
    .await;
    lab.expect(Method::PUT, &tag, Some(json!({ "immutable": true })), 204)
        .await;
    let entry = logged(
        &lab,
        "tag.immutability",
        by_admin_on(Some(REPO), Some("logged".into())),
    )
    .await;
    assert_eq!(entry["metadata"]["immutable"], true, "{entry}");

    // Rules and policies, each created and deleted.
    let rules = format!("/repository/{REPO}/immutabilityrules");
    let rule = lab
        .expect(
            Method::POST,
            &rules,
            Some(json!({ "tag_pattern": "x" })),
            201,
        )
        .await;
    let id = rule["id"].as_i64().unwrap().to_string();
    lab.expect(Method::DELETE, &format!("{rules}/{id}"), None, 204)
        .await;
    for kind in ["immutability_rule.create", "immutability_rule.delete"] {
        logged(&lab, kind, by_admin_on(None, Some(id.clone()))).await;
    }
    let policies = "/organization/admin/autoprunepolicy/";
    let policy = lab
        .expect(
            Method::POST,
            policies,
            Some(json!({ "method": "number_of_tags", "value": 1, "tagPattern": "pr-.*" })),
            201,
        )
        .await;
    lab.push_ok("pr-1", 2).await;
    lab.push_ok("pr-2", 3).await;
    lab.expect(Method::POST, &format!("{policies}run"), None, 200)
        .await;
    logged(&lab, "tag.prune", |e| {
        e["repository"] == REPO && e["target"] == "pr-1"
    })
    .await;
    let policy_id = policy["id"].as_i64().unwrap().to_string();
    lab.expect(Method::DELETE, &format!("{policies}{policy_id}"), None, 204)
        .await;
    for kind in ["retention_policy.create", "retention_policy.delete"] {
        logged(&lab, kind, by_admin_on(None, Some(policy_id.clone()))).await;
    }
    lab.expect(
        Method::PUT,
        "/organization/admin/timemachine",
        Some(json!({ "tag_expiration_s": 86_400 })),
        200,
    )
    .await;
    logged(&lab, "namespace.time_machine", by_admin_on(None, None)).await;
}
