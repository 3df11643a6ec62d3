//! oras-py against the real binary: `tests/clients/oras_roundtrip.py` pushes and pulls
//! artifacts with `OrasClient`; this side checks over HTTP that what it reports is stored.

#[path = "common/clients.rs"]
mod clients;

use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use clients::*;

#[tokio::test(flavor = "multi_thread")]
async fn oras_push_pull_tags_referrers() {
    let python = test_python();
    let server = TestServer::start(bulwark_bin());
    let http = http();
    let work = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/oras_roundtrip.py");

    let stdout = run(tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.host)
        .arg(work.path())
        .args(["admin", ADMIN_PASSWORD]))
    .await;
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("script output is not its JSON report ({e}):\n{stdout}"));

    let repo = "artifacts/demo";
    let tags = catalog_with_tags(&http, &server.url).await;
    assert_eq!(tags.keys().collect::<Vec<_>>(), [repo]);
    // v1 (and latest, stable) by oras push, v2 chunked, sbom the artifact; doomed deleted.
    assert_eq!(tags[repo], ["latest", "sbom", "stable", "v1", "v2"]);
    assert_eq!(report["tags"], serde_json::json!(tags[repo]));

    // Every tag and the artifact pull completely with matching digests.
    for tag in &tags[repo] {
        pull_verified(&http, &server.url, repo, tag).await;
    }
    for key in ["v1", "v2", "sbom"] {
        let digest = report[key].as_str().expect("digest in report");
        assert_eq!(
            pull_verified(&http, &server.url, repo, digest).await,
            digest
        );
    }
    let v1 = get_manifest(&http, &server.url, repo, "v1")
        .await
        .expect("v1");
    assert_eq!(v1.digest, report["v1"].as_str().unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&v1.body).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.bulwark.test.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], report["config"]);

    // The deleted tag's manifest is gone; the artifact is listed as a referrer of v1.
    assert!(
        get_manifest(&http, &server.url, repo, "doomed")
            .await
            .is_none()
    );
    let referrers: serde_json::Value = http
        .get(format!("{}/v2/{repo}/referrers/{}", server.url, v1.digest))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [report["sbom"].as_str().unwrap()]);
}
