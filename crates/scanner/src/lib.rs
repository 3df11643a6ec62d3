//! Bulwark's scanner: indexes an image (its distribution and installed packages, read
//! from the layers as a container would see them) and matches the packages against
//! vulnerability records. Synchronous and self-contained: the CLI runs it directly, the
//! registry in a background job.
//!
//! - [`walker`] indexes each layer on its own into a [`LayerIndex`] (storable, reused by
//!   every image sharing the layer) and applies them with their whiteouts, within
//!   [`Limits`].
//! - [`distro`] and [`packages`] read what the walk kept.
//! - [`osv`] loads vulnerability records; [`matcher`] finds the affecting ones, ordering
//!   versions with [`version`]; [`severity`] normalizes their severity.
//! - [`grade`] gives the image's health grade.
//! - [`sbom`] writes an inventory as CycloneDX or SPDX.

pub mod date;
pub mod distro;
mod error;
pub mod grade;
pub mod image;
mod layer;
pub mod matcher;
pub mod osv;
pub mod packages;
pub mod sbom;
pub mod severity;
pub mod version;
pub mod walker;

use std::io::Read;

use serde::Serialize;

pub use crate::date::Date;
pub use crate::distro::Distro;
pub use crate::error::{Limit, Result, ScanError};
pub use crate::grade::{Grade, Health};
pub use crate::image::Image;
pub use crate::layer::{INDEX_FORMAT_VERSION, LayerIndex};
pub use crate::matcher::Finding;
pub use crate::osv::Database;
pub use crate::packages::{Package, PackageType};
pub use crate::severity::Severity;
pub use crate::walker::{Limits, WalkStats};

/// What an image contains.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub distro: Option<Distro>,
    pub packages: Vec<Package>,
    /// Layer digests, bottom first.
    pub layers: Vec<String>,
    #[serde(skip)]
    pub stats: WalkStats,
}

/// What the scanner keeps of the file at `path` (normalized, no leading `/`) with
/// permission bits `mode`.
pub fn select(path: &str, mode: u32) -> walker::Keep {
    if distro::wanted(path) {
        walker::Keep::Whole
    } else {
        packages::select(path, mode)
    }
}

/// Indexes one layer (a tar stream, compressed or not) on its own.
pub fn index_layer<R: Read>(digest: &str, reader: R, limits: &Limits) -> Result<LayerIndex> {
    walker::index_layer(digest, reader, limits, &select)
}

/// The inventory of the image made of these layers, bottom first.
pub fn inventory_from_layers(layers: &[LayerIndex], limits: &Limits) -> Result<Inventory> {
    inventory_from(layers.iter().cloned().map(Ok), limits)
}

/// Indexes layers given bottom first as (digest, tar stream).
pub fn index_layers<R: Read>(
    layers: impl IntoIterator<Item = (String, R)>,
    limits: &Limits,
) -> Result<Inventory> {
    let indexes = layers
        .into_iter()
        .map(|(digest, reader)| index_layer(&digest, reader, limits));
    inventory_from(indexes, limits)
}

/// Indexes an image opened with [`Image::open`].
pub fn index_image(image: &Image, limits: &Limits) -> Result<Inventory> {
    let indexes = image
        .layers
        .iter()
        .map(|layer| index_layer(&layer.digest, layer.open()?, limits));
    inventory_from(indexes, limits)
}

/// Applies each layer as it comes, so that a layer's index is dropped once applied and
/// the image-wide limits stop the scan before the next layer is read.
fn inventory_from(
    layers: impl Iterator<Item = Result<LayerIndex>>,
    limits: &Limits,
) -> Result<Inventory> {
    let mut tree = walker::FileTree::default();
    for layer in layers {
        tree.apply(layer?, limits)?;
    }
    Ok(Inventory {
        distro: distro::detect(&tree),
        packages: packages::read_all(&tree)?,
        stats: tree.stats.clone(),
        layers: tree.layers,
    })
}

/// An image's inventory, the vulnerabilities affecting it and its grade.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub inventory: Inventory,
    pub vulnerabilities: Vec<Finding>,
    pub grade: Health,
}

/// Matches an inventory against `db` and grades the result as of `today`.
pub fn report(inventory: Inventory, db: &Database, today: Date) -> Report {
    let vulnerabilities = matcher::match_inventory(&inventory, db);
    let grade = grade::health(&vulnerabilities, today);
    Report {
        inventory,
        vulnerabilities,
        grade,
    }
}
