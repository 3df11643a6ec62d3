//! Indexing the fixture image `debian12-minbase` (one 51 MB gzip layer, 88 dpkg
//! packages), from the layer and from its stored index, and matching its inventory
//! against the fixture OSV data.
//! `cargo bench -p bulwark-scanner`; `scripts/bench-scan.sh` adds peak memory and syft.

use std::path::PathBuf;

use bulwark_scanner::{
    Database, Date, Image, LayerIndex, Limits, index_image, index_layer, inventory_from_layers,
    report,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn scan(c: &mut Criterion) {
    let reference = format!(
        "oci:{}:debian12-minbase",
        fixtures().join("images").display()
    );
    let image = Image::open(&reference).unwrap();
    let limits = Limits::default();
    let mut group = c.benchmark_group("debian12-minbase");
    group.sample_size(10);
    group.bench_function("index", |b| {
        b.iter(|| index_image(&image, &limits).unwrap())
    });
    // The registry's path for a layer indexed before: decode the stored index, replay.
    let stored: Vec<Vec<u8>> = image
        .layers
        .iter()
        .map(|l| {
            index_layer(&l.digest, l.open().unwrap(), &limits)
                .unwrap()
                .to_bytes()
        })
        .collect();
    group.bench_function("from_stored_indexes", |b| {
        b.iter(|| {
            let indexes: Vec<LayerIndex> = stored
                .iter()
                .map(|bytes| LayerIndex::from_bytes(bytes, &limits).unwrap())
                .collect();
            inventory_from_layers(&indexes, &limits).unwrap()
        })
    });
    let inventory = index_image(&image, &limits).unwrap();
    let mut db = Database::new();
    db.load(&fixtures().join("vulndb")).unwrap();
    let today = Date::parse("2024-01-01").unwrap();
    group.bench_function("match", |b| {
        b.iter(|| report(inventory.clone(), &db, today))
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
