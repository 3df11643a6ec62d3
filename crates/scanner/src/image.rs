//! Images on disk, named in skopeo's transport syntax: `oci:DIR[:TAG]` (an OCI image
//! layout) and `docker-archive:FILE[:REPO:TAG]` (the output of `docker save`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, ScanError};

/// Manifests, indexes and configs are small; anything bigger is not one.
const MAX_JSON_BYTES: u64 = 4 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// An image's layers, bottom first, ready to be opened one at a time.
#[derive(Debug)]
pub struct Image {
    pub layers: Vec<ImageLayer>,
}

#[derive(Debug)]
pub struct ImageLayer {
    /// The layer's digest (for a docker archive, its uncompressed diff id).
    pub digest: String,
    source: Source,
}

#[derive(Debug)]
enum Source {
    File(PathBuf),
    /// A member of a tar archive: its data's offset and size.
    Member {
        archive: PathBuf,
        offset: u64,
        size: u64,
    },
}

impl ImageLayer {
    pub fn open(&self) -> Result<Box<dyn Read>> {
        match &self.source {
            Source::File(path) => {
                let f = File::open(path).map_err(|e| ScanError::io(path.display(), e))?;
                Ok(Box::new(f))
            }
            Source::Member {
                archive,
                offset,
                size,
            } => {
                let mut f = File::open(archive).map_err(|e| ScanError::io(archive.display(), e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| ScanError::io(archive.display(), e))?;
                Ok(Box::new(f.take(*size)))
            }
        }
    }
}

impl Image {
    /// Opens `oci:DIR[:TAG]` or `docker-archive:FILE[:REPO:TAG]`.
    pub fn open(reference: &str) -> Result<Image> {
        let unsupported = || {
            ScanError::Unsupported(format!(
                "image reference {reference:?}: expected oci:DIR[:TAG] or docker-archive:FILE"
            ))
        };
        let (transport, rest) = reference.split_once(':').ok_or_else(unsupported)?;
        match transport {
            "oci" => {
                let (dir, tag) = match rest.split_once(':') {
                    Some((dir, tag)) => (dir, Some(tag)),
                    None => (rest, None),
                };
                open_oci_layout(Path::new(dir), tag)
            }
            "docker-archive" => {
                let (file, tag) = match rest.split_once(':') {
                    Some((file, tag)) => (file, Some(tag)),
                    None => (rest, None),
                };
                open_docker_archive(Path::new(file), tag)
            }
            _ => Err(unsupported()),
        }
    }
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// An index or a manifest: which one is told by the fields present.
#[derive(Deserialize)]
struct IndexOrManifest {
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn open_oci_layout(dir: &Path, tag: Option<&str>) -> Result<Image> {
    let index_path = dir.join("index.json");
    let index: IndexOrManifest = read_json(&index_path)?;
    let chosen = match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag)),
        None if index.manifests.len() == 1 => index.manifests.first(),
        None => {
            return Err(ScanError::Unsupported(format!(
                "{}: several images; name one with oci:DIR:TAG",
                dir.display()
            )));
        }
    };
    let chosen = chosen.ok_or_else(|| {
        ScanError::malformed(
            index_path.display().to_string(),
            format!("no image tagged {:?}", tag.unwrap_or_default()),
        )
    })?;
    let mut digest = chosen.digest.clone();
    // A multi-platform index: scan linux/amd64, else its first image. Nested indexes
    // are followed a few levels deep at most.
    for _ in 0..4 {
        let node: IndexOrManifest = read_json(&blob_path(dir, &digest)?)?;
        if node.manifests.is_empty() {
            // Artifacts (Helm charts, signatures, SBOMs) have layers that are no
            // filesystem.
            let config = node.config.as_ref().map_or("", |c| c.media_type.as_str());
            if !IMAGE_CONFIGS.contains(&config) {
                return Err(ScanError::Unsupported(format!(
                    "{digest} is not a container image (config {config:?})"
                )));
            }
            let layers = node
                .layers
                .iter()
                .map(|l| {
                    Ok(ImageLayer {
                        digest: l.digest.clone(),
                        source: Source::File(blob_path(dir, &l.digest)?),
                    })
                })
                .collect::<Result<_>>()?;
            return Ok(Image { layers });
        }
        let amd64 = node.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        });
        digest = amd64.unwrap_or(&node.manifests[0]).digest.clone();
    }
    Err(ScanError::malformed(
        dir.display().to_string(),
        "indexes nested too deep",
    ))
}

/// `blobs/<algorithm>/<hex>`; the digest is checked first, so it cannot name a path
/// outside the layout.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let valid = digest.split_once(':').filter(|(alg, hex)| {
        !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let (alg, hex) = valid.ok_or_else(|| ScanError::malformed(digest, "invalid digest"))?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let file = File::open(path).map_err(|e| ScanError::io(path.display(), e))?;
    let mut data = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| ScanError::io(path.display(), e))?;
    if data.len() as u64 > MAX_JSON_BYTES {
        return Err(ScanError::malformed(
            path.display().to_string(),
            "JSON too large",
        ));
    }
    serde_json::from_slice(&data).map_err(|e| ScanError::malformed(path.display().to_string(), e))
}

#[derive(Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

fn open_docker_archive(path: &Path, tag: Option<&str>) -> Result<Image> {
    let io_err = |e: io::Error| ScanError::io(path.display(), e);
    let file = File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(file);
    // Where each member's data lies, and the small JSON members themselves.
    let mut members: HashMap<String, (u64, u64)> = HashMap::new();
    let mut json: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let (name, _) = crate::walker::normalize(&entry.path_bytes());
        let size = entry.size();
        if name.ends_with(".json") && size <= MAX_JSON_BYTES {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(io_err)?;
            json.insert(name.clone(), data);
        }
        members.insert(name, (entry.raw_file_position(), size));
    }
    let parse = |name: &str| -> Result<&[u8]> {
        json.get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ScanError::malformed(path.display().to_string(), format!("no {name}")))
    };
    let manifests: Vec<ArchiveManifest> = serde_json::from_slice(parse("manifest.json")?)
        .map_err(|e| ScanError::malformed(path.display().to_string(), e))?;
    let manifest = match tag {
        Some(tag) => manifests.into_iter().find(|m| {
            m.repo_tags
                .as_ref()
                .is_some_and(|t| t.iter().any(|t| t == tag))
        }),
        None => manifests.into_iter().next(),
    }
    .ok_or_else(|| ScanError::malformed(path.display().to_string(), "no such image"))?;
    let (config_name, _) = crate::walker::normalize(manifest.config.as_bytes());
    let diff_ids = serde_json::from_slice::<ImageConfig>(parse(&config_name)?)
        .map(|c| c.rootfs.diff_ids)
        .unwrap_or_default();
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let (name, _) = crate::walker::normalize(layer.as_bytes());
            let &(offset, size) = members.get(&name).ok_or_else(|| {
                ScanError::malformed(path.display().to_string(), format!("no layer {name}"))
            })?;
            Ok(ImageLayer {
                digest: diff_ids.get(i).cloned().unwrap_or(name),
                source: Source::Member {
                    archive: path.to_path_buf(),
                    offset,
                    size,
                },
            })
        })
        .collect::<Result<_>>()?;
    Ok(Image { layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_and_bad_references_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let (manifest, config) = ("a".repeat(64), "b".repeat(64));
        let helm = format!(
            r#"{{"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:{config}"}},"layers":[]}}"#
        );
        std::fs::write(blobs.join(&manifest), helm).unwrap();
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{manifest}","annotations":{{"{REF_NAME}":"chart"}}}},{{"digest":"sha256:../../etc/passwd"}}]}}"#
        );
        std::fs::write(dir.path().join("index.json"), index).unwrap();
        let layout = dir.path().display();
        assert!(matches!(
            Image::open(&format!("oci:{layout}:chart")),
            Err(ScanError::Unsupported(_))
        ));
        // Several images and no tag; a traversing digest; unknown transports.
        assert!(matches!(
            Image::open(&format!("oci:{layout}")),
            Err(ScanError::Unsupported(_))
        ));
        assert!(blob_path(dir.path(), "sha256:../../etc/passwd").is_err());
        assert!(matches!(
            Image::open("docker://x/y:z"),
            Err(ScanError::Unsupported(_))
        ));
    }
}
