//! The scanner against the shared fixture images (../shared/fixtures, used in place).

use std::collections::BTreeSet;
use std::path::PathBuf;

use bulwark_scanner::{Image, Inventory, Limits, index_image};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn index(tag: &str) -> Inventory {
    let reference = format!("oci:{}:{tag}", fixtures().join("images").display());
    let image = Image::open(&reference).unwrap();
    index_image(&image, &Limits::default()).unwrap()
}

fn expected(tag: &str) -> BTreeSet<(String, String, String)> {
    let path = fixtures().join(format!("expected/{tag}.packages.tsv"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn found(inventory: &Inventory) -> BTreeSet<(String, String, String)> {
    inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.kind.as_str().to_string(),
                p.name.clone(),
                p.version.clone(),
            )
        })
        .collect()
}

const TAGS: [&str; 6] = [
    "alpine318-apkdb",
    "debian11-minbase",
    "debian12-minbase",
    "debian12-python",
    "mixed-formats",
    "rhel8like-rpmsqlite",
];

#[test]
fn every_expected_package_is_found() {
    for tag in TAGS {
        let inventory = index(tag);
        let found = found(&inventory);
        let missing: Vec<_> = expected(tag).difference(&found).cloned().collect();
        assert!(missing.is_empty(), "{tag}: missing {missing:?}");
    }
}

#[test]
fn whiteout_removes_urllib3() {
    let inventory = index("mixed-formats");
    assert!(inventory.packages.iter().all(|p| p.name != "urllib3"));
    assert!(inventory.packages.iter().any(|p| p.name == "requests"));
}

#[test]
fn distributions() {
    let cases = [
        ("alpine318-apkdb", "alpine", "3.18.0", Some("Alpine:v3.18")),
        ("debian11-minbase", "debian", "11", Some("Debian:11")),
        ("debian12-minbase", "debian", "12", Some("Debian:12")),
        ("rhel8like-rpmsqlite", "rhel", "8.5", Some("Red Hat:8")),
    ];
    for (tag, id, version, ecosystem) in cases {
        let distro = index(tag).distro.unwrap();
        assert_eq!(
            (distro.id.as_str(), distro.version_id.as_str()),
            (id, version),
            "{tag}"
        );
        assert_eq!(distro.ecosystem().as_deref(), ecosystem, "{tag}");
    }
}

#[test]
fn packages_record_the_layer_that_introduced_them() {
    let inventory = index("debian12-python");
    assert_eq!(inventory.layers.len(), 2);
    let layer_of = |name: &str| {
        let p = inventory.packages.iter().find(|p| p.name == name).unwrap();
        p.layer.clone()
    };
    assert_eq!(layer_of("libc6"), inventory.layers[0]);
    assert_eq!(layer_of("requests"), inventory.layers[1]);
    let libc = inventory
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .unwrap();
    assert_eq!(libc.source_name, "glibc");
}
