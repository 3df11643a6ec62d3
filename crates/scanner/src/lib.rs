//! Bulwark's scanner: indexes an image (its distribution and installed packages, read
//! from the layers as a container would see them) and matches the packages against
//! vulnerability records. Synchronous and self-contained: the CLI runs it directly, the
//! registry in a background job.
//!
//! - [`walker`] applies the layers with their whiteouts, within [`Limits`].
//! - [`distro`] and [`packages`] read what the walk kept.
//! - [`osv`] loads vulnerability records; [`matcher`] finds the affecting ones, ordering
//!   versions with [`version`]; [`severity`] normalizes their severity.
//! - [`grade`] gives the image's health grade.

pub mod date;
pub mod distro;
mod error;
pub mod grade;
pub mod image;
pub mod matcher;
pub mod osv;
pub mod packages;
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

/// Indexes layers given bottom first as (digest, tar stream).
pub fn index_layers<R: Read>(
    layers: impl IntoIterator<Item = (String, R)>,
    limits: &Limits,
) -> Result<Inventory> {
    let mut walker = walker::Walker::new(limits, &select);
    for (digest, reader) in layers {
        walker.add_layer(&digest, reader)?;
    }
    inventory(walker.finish())
}

/// Indexes an image opened with [`Image::open`].
pub fn index_image(image: &Image, limits: &Limits) -> Result<Inventory> {
    let mut walker = walker::Walker::new(limits, &select);
    for layer in &image.layers {
        walker.add_layer(&layer.digest, layer.open()?)?;
    }
    inventory(walker.finish())
}

fn inventory(tree: walker::FileTree) -> Result<Inventory> {
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
