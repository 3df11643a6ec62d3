//! `bulwark scan` on the shared fixture images: reports, SBOMs (checked by the formats'
//! reference validators), and images pulled from the real server with `docker://`.

#[path = "common/access.rs"]
mod access;
#[path = "common/clients.rs"]
mod clients;

use std::path::PathBuf;
use std::process::Command;

use access::Manage;
use bulwark_testkit::{ADMIN_PASSWORD, TestServer, self_signed_certificate};
use clients::{FIXTURE_TAGS, bulwark_bin, skopeo_copy, test_python};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn scan(args: &[&str]) -> std::process::Output {
    Command::new(bulwark_bin())
        .arg("scan")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_report_of_an_oci_layout_image() {
    let f = fixtures();
    let image = format!("oci:{}:debian12-python", f.join("images").display());
    let vulndb = f.join("vulndb");
    let out = scan(&[
        "--vulndb",
        vulndb.to_str().unwrap(),
        "--format",
        "json",
        "--today",
        "2024-01-01",
        &image,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = report["packages"].as_array().unwrap();
    assert!(
        packages
            .iter()
            .any(|p| p["type"] == "deb" && p["name"] == "libc6")
    );
    assert!(
        packages
            .iter()
            .any(|p| p["type"] == "python" && p["name"] == "requests" && p["version"] == "2.25.1")
    );
    let vulns = report["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 5);
    let v = vulns.iter().find(|v| v["id"] == "PYSEC-2023-74").unwrap();
    assert_eq!(v["package"], "requests");
    assert_eq!(v["version"], "2.25.1");
    assert_eq!(v["fixed_version"], "2.31.0");
    assert_eq!(v["aliases"][0], "CVE-2023-32681");
    assert!(v["severity"].is_string());
    // A High fix (PYSEC-2023-192) published on 2023-10-04 is 89 days old: C until day 90.
    assert_eq!(report["grade"]["current_grade"], "C");
    assert_eq!(report["grade"]["next_drop_date"], "2024-01-03");
}

/// Without `--vulndb`, the data `bulwark vulndb import` put in the registry's database;
/// with neither, the inventory alone.
#[test]
fn without_files_the_registrys_imported_data_is_used() {
    let f = fixtures();
    let image = format!("oci:{}:debian12-python", f.join("images").display());
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = scan(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = json(&["--data-dir", data_dir, "--format", "json", &image]);
    assert!(before["vulnerabilities"].as_array().unwrap().is_empty());
    assert!(
        !data.path().join("meta.db").exists(),
        "scanning created no database"
    );

    let import = Command::new(bulwark_bin())
        .args(["vulndb", "import", "--data-dir", data_dir])
        .arg(f.join("vulndb"))
        .env("BULWARK_LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let ids = |report: &serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = report["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let stored = json(&["--data-dir", data_dir, "--format", "json", &image]);
    let vulndb = f.join("vulndb");
    let files = json(&[
        "--vulndb",
        vulndb.to_str().unwrap(),
        "--format",
        "json",
        &image,
    ]);
    assert_eq!(ids(&stored).len(), 5, "{stored}");
    assert_eq!(ids(&stored), ids(&files));
}

#[test]
fn table_and_errors() {
    let f = fixtures();
    let out = scan(&[&format!(
        "oci:{}:alpine318-apkdb",
        f.join("images").display()
    )]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Alpine:v3.18"), "{text}");
    assert!(text.contains("busybox"), "{text}");
    let out = scan(&[&format!("oci:{}:no-such-tag", f.join("images").display())]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-tag"));
    let out = scan(&["docker://example.com/x:y"]);
    assert!(!out.status.success());
}

/// Validates with the reference libraries: CycloneDX's JSON schema 1.5 (strict) and
/// spdx-tools' full SPDX 2.3 validation. Prints nothing when both documents are valid.
const VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if error is not None:
    print("CycloneDX:", error)
for message in validate_full_spdx_document(parse_file(sys.argv[2]), "SPDX-2.3"):
    print("SPDX:", message.validation_message)
"#;

fn sbom(format: &str, image: &str) -> serde_json::Value {
    let out = scan(&["--format", format, image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Drops what differs from one run to the next: creation times, serial numbers.
fn without_run_fields(mut doc: serde_json::Value) -> serde_json::Value {
    let object = doc.as_object_mut().unwrap();
    object.remove("serialNumber");
    object.remove("documentNamespace");
    if let Some(meta) = object.get_mut("metadata") {
        meta.as_object_mut().unwrap().remove("timestamp");
    }
    if let Some(info) = object.get_mut("creationInfo") {
        info.as_object_mut().unwrap().remove("created");
    }
    doc
}

#[test]
fn sboms_validate_and_carry_purls() {
    let f = fixtures();
    // scripts/test.sh installs cyclonedx-python-lib[json-validation] and spdx-tools into
    // this Python.
    let python = test_python();
    let dir = tempfile::tempdir().unwrap();
    for tag in FIXTURE_TAGS {
        let image = format!("oci:{}:{tag}", f.join("images").display());
        let json = sbom("json", &image);
        let packages = json["packages"].as_array().unwrap();
        let cyclonedx = sbom("cyclonedx", &image);
        let spdx = sbom("spdx", &image);
        let (cdx_path, spdx_path) = (dir.path().join("cdx.json"), dir.path().join("spdx.json"));
        std::fs::write(&cdx_path, cyclonedx.to_string()).unwrap();
        std::fs::write(&spdx_path, spdx.to_string()).unwrap();
        let out = Command::new(&python)
            .args(["-c", VALIDATE])
            .arg(&cdx_path)
            .arg(&spdx_path)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && printed.is_empty(),
            "{tag}: {printed}{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Every package, plus the distribution as an operating system.
        let components = cyclonedx["components"].as_array().unwrap();
        let os = components
            .iter()
            .filter(|c| c["type"] == "operating-system")
            .count();
        assert_eq!(os, usize::from(!json["distro"].is_null()), "{tag}");
        assert_eq!(components.len(), packages.len() + os, "{tag}");
        assert!(
            components
                .iter()
                .filter(|c| c["type"] != "operating-system")
                .all(|c| c["purl"].as_str().unwrap().starts_with("pkg:")),
            "{tag}"
        );
        let spdx_packages = spdx["packages"].as_array().unwrap();
        // The image itself, the distribution, the packages.
        assert_eq!(spdx_packages.len(), 1 + os + packages.len(), "{tag}");

        // Deterministic but for the run's time and serial number.
        assert_eq!(
            without_run_fields(sbom("cyclonedx", &image)),
            without_run_fields(cyclonedx.clone()),
            "{tag}"
        );
        assert_eq!(
            without_run_fields(sbom("spdx", &image)),
            without_run_fields(spdx.clone()),
            "{tag}"
        );

        let purls: Vec<&str> = components
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .collect();
        let has = |prefix: &str, parts: &[&str]| {
            purls
                .iter()
                .any(|p| p.starts_with(prefix) && parts.iter().all(|q| p.contains(q)))
        };
        match tag {
            "debian12-python" => {
                assert!(
                    has(
                        "pkg:deb/debian/libc6@",
                        &["distro=debian-12", "upstream=glibc"]
                    ),
                    "{purls:?}"
                );
                assert!(has("pkg:pypi/requests@2.25.1", &[]), "{purls:?}");
            }
            "alpine318-apkdb" => assert!(
                has(
                    "pkg:apk/alpine/libssl3@3.1.0-r4",
                    &["distro=alpine-3.18.0", "upstream=openssl"]
                ),
                "{purls:?}"
            ),
            "rhel8like-rpmsqlite" => assert!(
                has("pkg:rpm/redhat/curl@7.61.1-22.el8", &["distro=rhel-8.5"]),
                "{purls:?}"
            ),
            "mixed-formats" => assert!(
                has("pkg:rpm/", &["openssl-libs@1.1.1k-5.el8_5", "epoch=1"]),
                "{purls:?}"
            ),
            _ => {}
        }
    }
}

/// The JSON report of a scan that must succeed, without the `image` it names.
fn report(args: &[&str]) -> serde_json::Value {
    let out = scan(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report.as_object_mut().unwrap().remove("image");
    report
}

/// The error of a scan that must fail.
fn failure(args: &[&str]) -> String {
    let out = scan(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Images pushed with skopeo into the real server scan through `docker://` exactly as
/// from the layout they came from: anonymously from a public repository, with `--creds`
/// (the Docker token flow) from a private one, by tag and by digest.
#[tokio::test(flavor = "multi_thread")]
async fn docker_references_scan_like_the_layout() {
    let server = TestServer::start_with(
        bulwark_bin(),
        &[],
        &[("BULWARK_AUTH__ANONYMOUS_ACCESS", "true")],
    );
    let manage = Manage::new(&server);
    manage.org("acme").await;
    manage.repository("acme/public", true).await;
    manage.repository("acme/private", false).await;
    let password = manage.user("alice").await;
    manage.grant("acme/private", "alice", "read").await;
    let layout = fixtures().join("images");
    let host = &server.host;
    for (repository, tag) in [
        ("acme/public", "debian12-python"),
        ("acme/public", "alpine318-apkdb"),
        ("acme/private", "mixed-formats"),
    ] {
        let source = format!("oci:{}:{tag}", layout.display());
        skopeo_copy(&source, &format!("docker://{host}/{repository}:{tag}")).await;
    }
    let vulndb = fixtures().join("vulndb");
    let with_db = |image: &str| -> serde_json::Value {
        report(&[
            "--vulndb",
            vulndb.to_str().unwrap(),
            "--format",
            "json",
            "--today",
            "2024-01-01",
            "--tls-verify=false",
            image,
        ])
    };
    let public = with_db(&format!("docker://{host}/acme/public:debian12-python"));
    assert_eq!(
        public,
        with_db(&format!("oci:{}:debian12-python", layout.display()))
    );
    assert_eq!(public["vulnerabilities"].as_array().unwrap().len(), 5);

    let private = format!("docker://{host}/acme/private:mixed-formats");
    let refused = failure(&["--tls-verify=false", &private]);
    assert!(refused.contains("--creds"), "{refused}");
    let creds = format!("alice:{password}");
    let wrong = failure(&["--tls-verify=false", "--creds", "alice:wrong", &private]);
    assert!(wrong.contains("refused"), "{wrong}");
    let from_layout = report(&[
        "--format",
        "json",
        &format!("oci:{}:mixed-formats", layout.display()),
    ]);
    let by_tag = report(&[
        "--format",
        "json",
        "--tls-verify=false",
        "--creds",
        &creds,
        &private,
    ]);
    assert_eq!(by_tag, from_layout);
    let digest = clients::Layout::fixtures()
        .image("mixed-formats")
        .manifest_digest;
    let by_digest = format!("docker://{host}/acme/private@{digest}");
    let by_digest = report(&[
        "--format",
        "json",
        "--tls-verify=false",
        "--creds",
        &creds,
        &by_digest,
    ]);
    assert_eq!(by_digest, from_layout);

    // Unknown tag, unknown digest: the registry's answer, named.
    let admin = format!("admin:{ADMIN_PASSWORD}");
    let unknown = failure(&[
        "--tls-verify=false",
        "--creds",
        &admin,
        &format!("docker://{host}/acme/private:no-such-tag"),
    ]);
    assert!(
        unknown.contains("no-such-tag") && unknown.contains("not found"),
        "{unknown}"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let unknown = failure(&[
        "--tls-verify=false",
        "--creds",
        &admin,
        &format!("docker://{host}/acme/private@{missing}"),
    ]);
    assert!(
        unknown.contains(&missing) && unknown.contains("not found"),
        "{unknown}"
    );
    // TLS is required unless turned off: this server speaks plain HTTP.
    let tls = failure(&[&format!("docker://{host}/acme/public:debian12-python")]);
    assert!(tls.contains("--tls-verify=false"), "{tls}");

    // A multi-platform index: this machine's platform by default, else --platform's.
    let tags = clients::Layout::fixtures().tags();
    let entry = |tag: &str, arch: &str| {
        let d = &tags[tag];
        serde_json::json!({
            "mediaType": d.media_type, "digest": d.digest, "size": d.size,
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let native = bulwark_scanner::Platform::current().architecture;
    let other = if native == "arm64" { "amd64" } else { "arm64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("alpine318-apkdb", other), entry("debian12-python", &native)],
    });
    let put = clients::http()
        .put(format!("{}/v2/acme/public/manifests/multi", server.url))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index.to_string())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let multi = format!("docker://{host}/acme/public:multi");
    let json = |extra: &[&str], image: &str| {
        let mut args = vec!["--format", "json", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.push(image);
        report(&args)
    };
    let layout_of = |tag: &str| json(&[], &format!("oci:{}:{tag}", layout.display()));
    assert_eq!(json(&[], &multi), layout_of("debian12-python"));
    let platform = format!("linux/{other}");
    assert_eq!(
        json(&["--platform", &platform], &multi),
        layout_of("alpine318-apkdb")
    );
    let absent = failure(&["--tls-verify=false", "--platform", "linux/s390x", &multi]);
    assert!(
        absent.contains("no image for linux/s390x") && absent.contains(&platform),
        "{absent}"
    );
}

/// A registry with a self-signed certificate: refused while certificates are verified,
/// scanned over TLS with `--tls-verify=false`.
#[tokio::test(flavor = "multi_thread")]
async fn docker_references_over_tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(dir.path());
    let server = TestServer::start_with(
        bulwark_bin(),
        &[],
        &[
            ("BULWARK_TLS__CERT", cert.to_str().unwrap()),
            ("BULWARK_TLS__KEY", key.to_str().unwrap()),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let layout = fixtures().join("images");
    let source = format!("oci:{}:alpine318-apkdb", layout.display());
    let image = format!("docker://{}/admin/alpine:3.18", server.host);
    skopeo_copy(&source, &image).await;
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let refused = failure(&["--creds", &creds, &image]);
    assert!(refused.contains("--tls-verify=false"), "{refused}");
    assert_eq!(
        report(&[
            "--format",
            "json",
            "--tls-verify=false",
            "--creds",
            &creds,
            &image
        ]),
        report(&["--format", "json", &source])
    );
}
