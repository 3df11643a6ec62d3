//! Images on disk, named in skopeo's transport syntax: `oci:DIR[:TAG]` (an OCI image
//! layout) and `docker-archive:FILE[:REPO:TAG]` (the output of `docker save`); and the
//! rules any image source follows (platform choice, artifacts refused), which the CLI's
//! `docker://` transport shares (the scanner itself does no network I/O).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, ScanError};

/// Manifests, indexes and configs are small; anything bigger is not one.
pub const MAX_JSON_BYTES: u64 = 4 << 20;
/// Indexes nested in indexes are followed this deep at most.
pub const MAX_INDEX_DEPTH: usize = 4;
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
    /// Opens `oci:DIR[:TAG]` or `docker-archive:FILE[:REPO:TAG]`; from a multi-platform
    /// index, the image of this machine's platform.
    pub fn open(reference: &str) -> Result<Image> {
        Image::open_platform(reference, &Platform::current())
    }

    /// [`Image::open`], taking `platform`'s image from a multi-platform index.
    pub fn open_platform(reference: &str, platform: &Platform) -> Result<Image> {
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
                open_oci_layout(Path::new(dir), tag, platform)
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

/// An image's platform, `os/architecture[/variant]` as indexes name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// Linux on this machine's architecture, in Go's names (`amd64`, `arm64`, …): the
    /// image a container runtime here would run.
    pub fn current() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Reads `os/architecture[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch, rest @ ..] if !os.is_empty() && !arch.is_empty() && rest.len() <= 1 => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: rest.first().map(|v| v.to_string()),
                })
            }
            _ => Err(ScanError::Unsupported(format!(
                "platform {s:?}: expected OS/ARCH[/VARIANT]"
            ))),
        }
    }

    /// Whether an index entry for `candidate` is this platform; a variant counts only
    /// when this one names it.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none() || self.variant == candidate.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// The entry of an index (of `source`) for `wanted`, given each entry's platform. An
/// index whose entries name no platform at all gives its first.
pub fn choose_platform<'a, T>(
    source: &str,
    entries: &'a [T],
    platform_of: impl Fn(&T) -> Option<Platform>,
    wanted: &Platform,
) -> Result<&'a T> {
    let platforms: Vec<Option<Platform>> = entries.iter().map(platform_of).collect();
    if let Some(i) = platforms
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| wanted.matches(p)))
    {
        return Ok(&entries[i]);
    }
    if platforms.iter().all(Option::is_none) {
        return entries
            .first()
            .ok_or_else(|| ScanError::malformed(source, "empty index"));
    }
    let available: Vec<String> = platforms.iter().flatten().map(|p| p.to_string()).collect();
    Err(ScanError::Unsupported(format!(
        "{source}: no image for {wanted} (the index has {})",
        available.join(", ")
    )))
}

/// Refuses artifacts (Helm charts, signatures, SBOMs): their layers are no filesystem.
pub fn require_image_config(manifest: &str, config_media_type: &str) -> Result<()> {
    if IMAGE_CONFIGS.contains(&config_media_type) {
        Ok(())
    } else {
        Err(ScanError::Unsupported(format!(
            "{manifest} is not a container image (config {config_media_type:?})"
        )))
    }
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

fn open_oci_layout(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image> {
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
    // A multi-platform index: scan `platform`'s image. Nested indexes are followed a
    // few levels deep at most.
    for _ in 0..MAX_INDEX_DEPTH {
        let node: IndexOrManifest = read_json(&blob_path(dir, &digest)?)?;
        if node.manifests.is_empty() {
            let config = node.config.as_ref().map_or("", |c| c.media_type.as_str());
            require_image_config(&digest, config)?;
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
        let chosen = choose_platform(&digest, &node.manifests, |d| d.platform.clone(), platform)?;
        digest = chosen.digest.clone();
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
    fn platforms() {
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(arm.to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let entries = [
            Some(Platform::parse("linux/amd64").unwrap()),
            None, // an attestation manifest
            Some(Platform::parse("linux/arm/v6").unwrap()),
            Some(arm.clone()),
        ];
        let pick = |wanted: &str| {
            choose_platform("index", &entries, Clone::clone, &Platform::parse(wanted)?)
                .map(|p| p.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/arm/v7").unwrap(), "linux/arm/v7");
        // Without a variant, the first of the architecture.
        assert_eq!(pick("linux/arm").unwrap(), "linux/arm/v6");
        let e = pick("linux/s390x").unwrap_err().to_string();
        assert!(e.contains("linux/amd64, linux/arm/v6, linux/arm/v7"), "{e}");
        let unannotated = [None::<Platform>, None];
        assert!(choose_platform("index", &unannotated, Clone::clone, &arm).is_ok());
    }

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
