//! Hostile layers, built here with the tar crate: each limit stops the walk with a clear
//! error, traversal stays inside the image, links are never followed out of it.

use std::io::Write;

use bulwark_scanner::{
    Inventory, LayerIndex, Limit, Limits, ScanError, index_layer, index_layers,
    inventory_from_layers,
};
use tar::{EntryType, Header};

const STATUS: &[u8] = b"Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\n";
const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n";

/// A tar built from raw headers, so that paths the tar crate would refuse (`..`,
/// absolute) can be written.
struct Layer(tar::Builder<Vec<u8>>);

impl Default for Layer {
    fn default() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }
}

impl Layer {
    fn entry(mut self, kind: EntryType, path: &str, link: &str, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        let linkname = &mut h.as_old_mut().linkname;
        linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(self, path: &str, data: &[u8]) -> Self {
        self.entry(EntryType::Regular, path, "", data)
    }
    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
    fn gz(self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Scans the layers in one walk and, separately, through per-layer indexes that go
/// through their stored encoding: both must give the same inventory or the same error.
fn scan(layers: Vec<Vec<u8>>, limits: &Limits) -> Result<Inventory, ScanError> {
    let named = || {
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("sha256:{i}"), l.as_slice()))
    };
    let walked = index_layers(named(), limits);
    let stored = named()
        .map(|(digest, layer)| {
            let bytes = index_layer(&digest, layer, limits)?.to_bytes();
            LayerIndex::from_bytes(&bytes, limits)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|indexes| inventory_from_layers(&indexes, limits));
    match (&walked, &stored) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                (&a.distro, &a.packages, &a.layers, &a.stats),
                (&b.distro, &b.packages, &b.layers, &b.stats)
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("one walk {walked:?}, per-layer indexes {stored:?}"),
    }
    walked
}

fn names(inv: &Inventory) -> Vec<&str> {
    inv.packages.iter().map(|p| p.name.as_str()).collect()
}

fn limit_of(r: Result<Inventory, ScanError>) -> Limit {
    match r {
        Err(ScanError::TooLarge { limit, .. }) => limit,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn traversal_and_absolute_paths_land_inside_the_image() {
    let layer = Layer::default()
        .file("../../../var/lib/dpkg/status", STATUS)
        .file("/etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n")
        .gz();
    let inv = scan(vec![layer], &Limits::default()).unwrap();
    assert_eq!(names(&inv), ["bash"]);
    assert_eq!(inv.packages[0].path, "/var/lib/dpkg/status");
    assert_eq!(inv.distro.unwrap().id, "debian");
    assert_eq!(inv.stats.clamped_paths, 1);
}

#[test]
fn symlinks_are_never_followed_and_hide_lower_files() {
    let lower = Layer::default()
        .file("etc/os-release", b"ID=debian\nVERSION_ID=12\n")
        .gz();
    // Points at the host's file (were it followed) and replaces the image's.
    let upper = Layer::default()
        .entry(
            EntryType::Symlink,
            "etc/os-release",
            "/../../etc/os-release",
            b"",
        )
        .gz();
    let inv = scan(vec![lower.clone()], &Limits::default()).unwrap();
    assert!(inv.distro.is_some());
    let inv = scan(vec![lower, upper], &Limits::default()).unwrap();
    assert_eq!(inv.distro, None);
}

#[test]
fn hard_links_resolve_only_within_the_layer() {
    let layer = Layer::default()
        .file("var/lib/dpkg/status.d/bash", STATUS)
        .entry(
            EntryType::Link,
            "var/lib/dpkg/status.d/bash-copy",
            "var/lib/dpkg/status.d/bash",
            b"",
        )
        .entry(
            EntryType::Link,
            "var/lib/dpkg/status.d/shadow",
            "../../../etc/shadow",
            b"",
        )
        .gz();
    let inv = scan(vec![layer], &Limits::default()).unwrap();
    let paths: Vec<&str> = inv.packages.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/var/lib/dpkg/status.d/bash",
            "/var/lib/dpkg/status.d/bash-copy"
        ]
    );
}

#[test]
fn decompression_bomb_stops_at_max_layer_bytes() {
    let bomb = Layer::default().file("big", &vec![0u8; 8 << 20]).gz();
    assert!(bomb.len() < 64 << 10);
    let limits = Limits {
        max_layer_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(limit_of(scan(vec![bomb], &limits)), Limit::LayerBytes);
}

#[test]
fn many_entries_stop_at_max_entries() {
    let mut layer = Layer::default();
    for i in 0..2_000 {
        layer = layer.file(&format!("f{i}"), b"");
    }
    let limits = Limits {
        max_entries: 1_000,
        ..Limits::default()
    };
    assert_eq!(limit_of(scan(vec![layer.gz()], &limits)), Limit::Entries);
}

#[test]
fn huge_package_database_stops_at_max_file_bytes() {
    let mut status = STATUS.to_vec();
    status.resize(2 << 20, b'\n');
    let layer = Layer::default().file("var/lib/dpkg/status", &status).gz();
    let limits = Limits {
        max_file_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(limit_of(scan(vec![layer], &limits)), Limit::FileBytes);
}

#[test]
fn many_wanted_files_stop_at_max_total_read_bytes() {
    let mut layer = Layer::default();
    for i in 0..100 {
        let mut metadata = METADATA.to_vec();
        metadata.resize(64 << 10, b' ');
        layer = layer.file(&format!("site-packages/p{i}.dist-info/METADATA"), &metadata);
    }
    let limits = Limits {
        max_total_read_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        limit_of(scan(vec![layer.gz()], &limits)),
        Limit::TotalReadBytes
    );
}

#[test]
fn oversized_pax_header_stops_at_max_header_bytes() {
    let layer = Layer::default()
        .entry(EntryType::XHeader, "pax", "", &vec![b'x'; 2 << 20])
        .file("a", b"")
        .gz();
    let limits = Limits {
        max_header_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(limit_of(scan(vec![layer], &limits)), Limit::HeaderBytes);
}

#[test]
fn too_many_layers() {
    let layers = vec![Layer::default().gz(); 3];
    let limits = Limits {
        max_layers: 2,
        ..Limits::default()
    };
    assert_eq!(limit_of(scan(layers, &limits)), Limit::Layers);
}

#[test]
fn long_paths_from_pax_and_gnu_headers() {
    let dir = format!("usr/lib/python3/{}", "d/".repeat(80));
    let path = format!("{dir}six-1.16.0.dist-info/METADATA");
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(METADATA.len() as u64);
    builder.append_data(&mut h, &path, METADATA).unwrap(); // GNU long name
    let mut pax = tar::Builder::new(Vec::new());
    let mut h = Header::new_ustar();
    h.set_size(METADATA.len() as u64);
    let other = path.replace("six-1.16.0", "idna-3.4");
    pax.append_pax_extensions([("path", other.as_bytes())])
        .unwrap();
    h.set_path("placeholder").unwrap();
    h.set_cksum();
    pax.append(&h, METADATA).unwrap();
    let layers = vec![builder.into_inner().unwrap(), pax.into_inner().unwrap()];
    let inv = scan(layers, &Limits::default()).unwrap();
    let paths: Vec<&str> = inv.packages.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.contains(&format!("/{other}").as_str()));
}

#[test]
fn whiteouts_and_opaque_directories() {
    let site = "usr/lib/python3/site-packages";
    let lower = Layer::default()
        .file(&format!("{site}/a-1.dist-info/METADATA"), METADATA)
        .file(&format!("opt/{site}/b-1.dist-info/METADATA"), METADATA)
        .file(&format!("srv/{site}/c-1.dist-info/METADATA"), METADATA)
        .gz();
    let upper = Layer::default()
        .file(&format!("{site}/.wh..wh..opq"), b"")
        .file(&format!("opt/{site}/.wh.b-1.dist-info"), b"")
        // A file replacing a directory hides what was under it.
        .file(&format!("srv/{site}/c-1.dist-info"), b"")
        .gz();
    assert_eq!(
        scan(vec![lower.clone()], &Limits::default())
            .unwrap()
            .packages
            .len(),
        3
    );
    let inv = scan(vec![lower, upper], &Limits::default()).unwrap();
    assert!(inv.packages.is_empty(), "{:?}", names(&inv));
}

#[test]
fn a_whiteout_does_not_remove_its_own_layer_files() {
    let path = "usr/lib/python3/site-packages/a-1.dist-info";
    let layer = Layer::default()
        .file(&format!("{path}/METADATA"), METADATA)
        .file("usr/lib/python3/site-packages/.wh.a-1.dist-info", b"")
        .gz();
    assert_eq!(
        scan(vec![layer], &Limits::default())
            .unwrap()
            .packages
            .len(),
        1
    );
}

#[test]
fn compression_is_detected_by_magic_bytes() {
    let plain = Layer::default().file("var/lib/dpkg/status", STATUS).tar();
    let zstd = zstd::encode_all(plain.as_slice(), 3).unwrap();
    for layer in [plain, zstd] {
        assert_eq!(
            names(&scan(vec![layer], &Limits::default()).unwrap()),
            ["bash"]
        );
    }
    let xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2];
    assert!(matches!(
        scan(vec![xz], &Limits::default()),
        Err(ScanError::Unsupported(_))
    ));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for garbage in [
        vec![0x1f, 0x8b, 1, 2, 3],
        vec![7u8; 1024],
        b"ustar".to_vec(),
    ] {
        assert!(matches!(
            scan(vec![garbage], &Limits::default()),
            Err(ScanError::Layer { .. })
        ));
    }
}

#[test]
fn a_layer_index_is_reused_by_every_image_sharing_the_layer() {
    let site = "usr/lib/python3/site-packages";
    let limits = Limits::default();
    let index = |digest: &str, layer: Vec<u8>| index_layer(digest, layer.as_slice(), &limits);
    let base = index(
        "sha256:base",
        Layer::default()
            .file("var/lib/dpkg/status", STATUS)
            .file(&format!("{site}/six-1.dist-info/METADATA"), METADATA)
            .gz(),
    )
    .unwrap();
    let mut status = STATUS.to_vec();
    status.extend_from_slice(b"\nPackage: zsh\nStatus: install ok installed\nVersion: 5.9-4\n");
    let installs = index(
        "sha256:installs",
        Layer::default().file("var/lib/dpkg/status", &status).gz(),
    )
    .unwrap();
    let removes = index(
        "sha256:removes",
        Layer::default()
            .file(&format!("{site}/.wh.six-1.dist-info"), b"")
            .gz(),
    )
    .unwrap();
    let layer_of = |inv: &Inventory, name: &str| {
        inv.packages
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.layer.clone())
    };
    let one = inventory_from_layers(&[base.clone(), installs.clone()], &limits).unwrap();
    assert_eq!(names(&one), ["bash", "zsh", "six"]);
    assert_eq!(layer_of(&one, "bash").as_deref(), Some("sha256:base"));
    assert_eq!(layer_of(&one, "zsh").as_deref(), Some("sha256:installs"));
    let two = inventory_from_layers(&[base.clone(), removes.clone()], &limits).unwrap();
    assert_eq!(names(&two), ["bash"]);
    // Order matters: a whiteout applies to the layers below it only.
    let three = inventory_from_layers(&[removes, base, installs], &limits).unwrap();
    assert_eq!(names(&three), ["bash", "zsh", "six"]);
}

#[test]
fn layer_index_round_trip() {
    let layer = Layer::default()
        .file("etc/os-release", b"ID=debian\nVERSION_ID=12\n")
        .file("var/lib/dpkg/status", STATUS)
        .file("usr/.wh..wh..opq", b"")
        .file("srv/.wh.old", b"")
        .entry(EntryType::Symlink, "lib", "usr/lib", b"")
        .entry(EntryType::Directory, "opt/app", "", b"")
        .gz();
    let limits = Limits::default();
    let index = index_layer("sha256:0", layer.as_slice(), &limits).unwrap();
    let bytes = index.to_bytes();
    assert_eq!(bytes, index.to_bytes(), "deterministic");
    assert!(bytes.starts_with(b"BWLI"));
    let back = LayerIndex::from_bytes(&bytes, &limits).unwrap();
    assert_eq!(back, index);
    assert_eq!(back.digest(), "sha256:0");
    assert_eq!(back.stats().entries, 6);
}

#[test]
fn corrupt_or_other_version_indexes_are_refused() {
    let limits = Limits::default();
    let layer = Layer::default().file("var/lib/dpkg/status", STATUS).gz();
    let bytes = index_layer("sha256:0", layer.as_slice(), &limits)
        .unwrap()
        .to_bytes();
    let mut other_version = bytes.clone();
    other_version[4..8].copy_from_slice(&(bulwark_scanner::INDEX_FORMAT_VERSION + 1).to_le_bytes());
    match LayerIndex::from_bytes(&other_version, &limits) {
        Err(e @ ScanError::IndexVersion { .. }) => {
            assert!(e.to_string().contains("index the layer again"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let truncated = &bytes[..bytes.len() - 3];
    for corrupt in [
        &b""[..],
        b"BWLI",
        b"not an index at all",
        truncated,
        &flipped,
    ] {
        assert!(
            matches!(
                LayerIndex::from_bytes(corrupt, &limits),
                Err(ScanError::Malformed { .. })
            ),
            "{corrupt:?}"
        );
    }
    // An index holds no more than indexing within the limits could have kept.
    let small = Limits {
        max_file_bytes: 8,
        ..Limits::default()
    };
    assert_eq!(
        limit_of(LayerIndex::from_bytes(&bytes, &small).map(|_| unreachable!())),
        Limit::FileBytes
    );
}
