//! Arbitrary bytes as each file the package readers keep (the first byte picks which:
//! package databases, manifests, a jar, an executable), wrapped in a one-file layer.
#![no_main]

use bulwark_scanner::{Limits, index_layers};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 11] = [
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/pkg",
    "lib/apk/db/installed",
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/python3/site-packages/x-1.dist-info/METADATA",
    "app/node_modules/x/package.json",
    "etc/os-release",
    "opt/app/lib/app.jar",
    "usr/local/bin/program",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let path = PATHS[pick as usize % PATHS.len()];
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    // Executable, so that the Go build-info extractor reads it.
    header.set_mode(0o755);
    if layer.append_data(&mut header, path, content).is_err() {
        return;
    }
    let Ok(layer) = layer.into_inner() else {
        return;
    };
    let _ = index_layers(
        [("sha256:fuzz".to_string(), layer.as_slice())],
        &Limits::default(),
    );
});
