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
