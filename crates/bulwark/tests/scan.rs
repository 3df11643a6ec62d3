//! `bulwark scan` on the shared fixture images.

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn scan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
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

const FIXTURE_TAGS: [&str; 6] = [
    "alpine318-apkdb",
    "debian11-minbase",
    "debian12-minbase",
    "debian12-python",
    "mixed-formats",
    "rhel8like-rpmsqlite",
];

/// The Python with the CycloneDX and SPDX validators (scripts/test.sh installs
/// cyclonedx-python-lib[json-validation] and spdx-tools into it).
fn validator_python() -> PathBuf {
    let py = std::env::var_os("BULWARK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/bulwark/venv/bin/python")
        });
    assert!(
        py.is_file(),
        "no Python at {} (set BULWARK_TEST_PYTHON; scripts/test.sh creates it)",
        py.display()
    );
    py
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
    let python = validator_python();
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
