//! The scanner against the shared fixture images (../shared/fixtures, used in place).

use std::collections::BTreeSet;
use std::path::PathBuf;

use bulwark_scanner::{
    Database, Date, Image, Inventory, LayerIndex, Limits, index_image, index_layer,
    inventory_from_layers, report,
};

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

fn vulndb() -> Database {
    let mut db = Database::new();
    db.load(&fixtures().join("vulndb")).unwrap();
    db
}

#[test]
fn debian12_python_has_exactly_the_expected_vulnerabilities() {
    let db = vulndb();
    assert_eq!(
        db.len(),
        1935 - 1,
        "every record but the withdrawn PYSEC-2022-43059"
    );
    let expected: serde_json::Value =
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
    let today = Date::parse("2024-01-01").unwrap();
    let r = report(index("debian12-python"), &db, today);
    let mut got: Vec<_> = r
        .vulnerabilities
        .iter()
        .map(|f| {
            (
                f.id.clone(),
                f.package.clone(),
                f.version.clone(),
                f.aliases.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    let py_layer = &r.inventory.layers[1];
    assert!(r.vulnerabilities.iter().all(|f| &f.layer == py_layer));
    let urllib3 = r
        .vulnerabilities
        .iter()
        .find(|f| f.id == "PYSEC-2023-212")
        .unwrap();
    assert_eq!(urllib3.fixed_version.as_deref(), Some("1.26.18"));
}

#[test]
fn debian11_minbase_has_none() {
    let db = vulndb();
    let inventory = index("debian11-minbase");
    // Not vacuous: Debian 11 advisories do name packages of this image.
    let named = inventory
        .packages
        .iter()
        .filter(|p| db.affecting("Debian:11", &p.source_name).next().is_some())
        .count();
    assert!(named > 0);
    let r = report(inventory, &db, Date::parse("2024-01-01").unwrap());
    assert_eq!(r.vulnerabilities, vec![]);
    assert_eq!(r.grade.current_grade, bulwark_scanner::Grade::A);
}

/// A `docker save` archive of the mixed-formats image, built from the layout's blobs.
#[test]
fn docker_archive() {
    let blobs = fixtures().join("images/blobs/sha256");
    let manifest_digest = "f8c580ac2be5503f7667c92151cb3b0ab00fe99df2156c24dbb1af7085612de0";
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(manifest_digest)).unwrap()).unwrap();
    let hex = |d: &serde_json::Value| d["digest"].as_str().unwrap()[7..].to_string();
    let config = hex(&manifest["config"]);
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let mut archive = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let archive_manifest = serde_json::json!([{
        "Config": format!("{config}.json"),
        "RepoTags": ["example/mixed:1"],
        "Layers": layers.iter().map(|l| format!("{l}/layer.tar")).collect::<Vec<_>>(),
    }]);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        archive.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", archive_manifest.to_string().as_bytes());
    add(
        &format!("{config}.json"),
        &std::fs::read(blobs.join(&config)).unwrap(),
    );
    for l in &layers {
        add(
            &format!("{l}/layer.tar"),
            &std::fs::read(blobs.join(l)).unwrap(),
        );
    }
    archive.into_inner().unwrap();

    let via_archive = |reference: String| {
        index_image(&Image::open(&reference).unwrap(), &Limits::default()).unwrap()
    };
    let inventory = via_archive(format!("docker-archive:{}", path.display()));
    let tagged = via_archive(format!("docker-archive:{}:example/mixed:1", path.display()));
    assert_eq!(found(&inventory), found(&index("mixed-formats")));
    assert_eq!(found(&tagged), found(&inventory));
    // Layers are named by their diff ids, from the image config.
    assert!(inventory.layers.iter().all(|l| l.starts_with("sha256:")));
    assert!(inventory.packages.iter().all(|p| p.name != "urllib3"));
}

/// Each layer indexed on its own, stored and read back, then replayed: the same
/// inventory as one walk over the image.
#[test]
fn per_layer_indexes_give_the_same_inventory() {
    let limits = Limits::default();
    for tag in TAGS {
        let reference = format!("oci:{}:{tag}", fixtures().join("images").display());
        let image = Image::open(&reference).unwrap();
        let indexes: Vec<LayerIndex> = image
            .layers
            .iter()
            .map(|l| {
                let index = index_layer(&l.digest, l.open().unwrap(), &limits).unwrap();
                LayerIndex::from_bytes(&index.to_bytes(), &limits).unwrap()
            })
            .collect();
        let replayed = inventory_from_layers(&indexes, &limits).unwrap();
        let walked = index(tag);
        assert_eq!(replayed.packages, walked.packages, "{tag}");
        assert_eq!(replayed.distro, walked.distro, "{tag}");
        assert_eq!(replayed.layers, walked.layers, "{tag}");
        assert_eq!(replayed.stats, walked.stats, "{tag}");
        let missing: Vec<_> = expected(tag)
            .difference(&found(&replayed))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "{tag}: missing {missing:?}");
    }
}
