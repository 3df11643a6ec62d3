//! Manifest and index validation. The bytes are stored as pushed; parsing only extracts what
//! the registry must check (referenced blobs and manifests) and index (subject, artifact type).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, truncate};
use crate::error::OciError;

pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

    /// Every manifest media type Bulwark stores, in preference order for content negotiation.
    pub const ALL_MANIFESTS: [&str; 4] = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema 2 manifest: config + layers.
    Image,
    /// OCI image index or Docker manifest list: child manifests.
    Index,
}

/// A content descriptor, as it appears in manifests and in the referrers response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// The wire shape of every supported manifest type; fields absent in a type stay `None`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Clone, Debug)]
pub struct ParsedManifest {
    pub kind: ManifestKind,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// Validates `bytes` as a manifest. `content_type` is the request's Content-Type, if any.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, OciError> {
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|e| OciError::ManifestInvalid(format!("not a valid manifest: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(OciError::ManifestInvalid(
                "schemaVersion must be 2 (schema 1 manifests are not supported)".into(),
            ));
        }
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| !c.is_empty() && *c != "application/json");
        let media_type = match (content_type, raw.media_type.as_deref()) {
            (Some(header), Some(body)) if header != body => {
                return Err(OciError::ManifestInvalid(format!(
                    "Content-Type {:?} does not match the manifest's mediaType {:?}",
                    truncate(header),
                    truncate(body)
                )));
            }
            (_, Some(body)) => body.to_owned(),
            (Some(header), None) => header.to_owned(),
            // Neither says: infer from the shape, as the OCI image spec allows.
            (None, None) if raw.manifests.is_some() => media_types::OCI_INDEX.to_owned(),
            (None, None) => media_types::OCI_MANIFEST.to_owned(),
        };
        let kind = match media_type.as_str() {
            media_types::OCI_MANIFEST | media_types::DOCKER_MANIFEST => ManifestKind::Image,
            media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST => ManifestKind::Index,
            other => return Err(OciError::ManifestMediaTypeUnsupported(truncate(other))),
        };
        let parsed = ParsedManifest {
            kind,
            media_type,
            // The distribution spec treats an empty artifactType as a missing one.
            artifact_type: raw.artifact_type.filter(|t| !t.is_empty()),
            config: raw.config,
            layers: raw.layers.unwrap_or_default(),
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            annotations: raw.annotations,
        };
        parsed.check_shape()?;
        Ok(parsed)
    }

    fn check_shape(&self) -> Result<(), OciError> {
        let invalid = |m: &str| Err(OciError::ManifestInvalid(m.to_owned()));
        match self.kind {
            ManifestKind::Image => {
                let Some(config) = &self.config else {
                    return invalid("an image manifest needs a config descriptor");
                };
                if !self.manifests.is_empty() {
                    return invalid("an image manifest cannot list manifests");
                }
                // An artifact with the empty config must say what it is (image spec 1.1).
                if config.media_type == media_types::OCI_EMPTY
                    && self.artifact_type.is_none()
                    && self.media_type == media_types::OCI_MANIFEST
                {
                    return invalid(
                        "artifactType is required when config.mediaType is the empty media type",
                    );
                }
            }
            ManifestKind::Index => {
                if self.config.is_some() || !self.layers.is_empty() {
                    return invalid("an index cannot have a config or layers");
                }
            }
        }
        if let Some(at) = &self.artifact_type
            && !is_media_type(at)
        {
            return invalid("artifactType is not a media type");
        }
        for d in self.all_descriptors() {
            if !is_media_type(&d.media_type) {
                return Err(OciError::ManifestInvalid(format!(
                    "descriptor {} has an invalid mediaType {:?}",
                    d.digest,
                    truncate(&d.media_type)
                )));
            }
        }
        Ok(())
    }

    fn all_descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
            .chain(&self.subject)
    }

    /// Blobs that must be present in the repository: config and layers, except foreign
    /// layers that carry their own `urls`.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_none()))
    }

    /// The artifact type reported by the referrers API: `artifactType`, else the config's
    /// media type for image manifests.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

/// RFC 6838 `type/subtype` with the restricted-name characters.
fn is_media_type(s: &str) -> bool {
    let valid = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(s.split_once('/'), Some((t, sub)) if valid(t) && valid(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":0}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D1}","size":0}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifest() {
        let m =
            ParsedManifest::parse(Some(media_types::OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.required_blobs().count(), 2);
        assert_eq!(
            m.effective_artifact_type(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn subject_and_artifact_type() {
        let extra = format!(
            r#","artifactType":"application/example","subject":{{"mediaType":"{}","digest":"{D1}","size":1}}"#,
            media_types::OCI_MANIFEST
        );
        let m = ParsedManifest::parse(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(m.subject.as_ref().unwrap().digest.to_string(), D1);
        assert_eq!(m.effective_artifact_type(), Some("application/example"));
    }

    #[test]
    fn index() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{D1}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_types::OCI_MANIFEST
        );
        let m = ParsedManifest::parse(Some(media_types::OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.required_blobs().count(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        let cases: Vec<(Option<&str>, String)> = vec![
            (None, "not json".into()),
            (None, r#"{"schemaVersion":1}"#.into()),
            (Some(media_types::OCI_INDEX), image("")),
            (Some("application/x-unknown"), r#"{"schemaVersion":2}"#.into()),
            (
                None,
                image("").replace(D1, "sha256:1234"),
            ),
            (
                None,
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.into(),
            ),
            (
                None,
                image("").replace("application/vnd.oci.image.config.v1+json", media_types::OCI_EMPTY),
            ),
        ];
        for (ct, body) in cases {
            assert!(
                ParsedManifest::parse(ct, body.as_bytes()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = image("").replace(
            r#""size":0}]"#,
            r#""size":0,"urls":["https://example.invalid/l"]}]"#,
        );
        let m = ParsedManifest::parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.required_blobs().count(), 1);
    }
}
