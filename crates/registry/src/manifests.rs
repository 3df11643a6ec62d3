//! Manifests, tags, the catalog and the referrers API.

use bulwark_meta::{NewManifest, Page, StoredManifest, TagOptions};
use bulwark_oci::{
    Descriptor, Digest, ManifestKind, ParsedManifest, Reference, RepoName, media_types,
};

use crate::{Registry, RegistryError};

/// The result of a manifest push.
#[derive(Clone, Debug)]
pub struct ManifestPut {
    pub digest: Digest,
    /// Set when the manifest names a subject, for the `OCI-Subject` response header.
    pub subject: Option<Digest>,
}

/// One page of a lexically ordered listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<String>,
    /// Present when more entries follow: the `last` to ask for the next page with.
    pub next: Option<String>,
}

impl ListPage {
    /// A page of at most `limit` entries from a listing asked for `limit + 1` entries (the
    /// extra one says whether another page follows).
    pub fn from_overfetched(mut items: Vec<String>, limit: u32) -> ListPage {
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().cloned()
        } else {
            None
        };
        ListPage { items, next }
    }
}

/// The referrers response: an OCI image index listing the referrers.
pub struct ReferrersIndex {
    pub body: Vec<u8>,
    /// Whether an `artifactType` filter was applied (`OCI-Filters-Applied`).
    pub filtered: bool,
}

impl Registry {
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ManifestPut, RegistryError> {
        if body.len() > self.limits.max_manifest_bytes {
            return Err(RegistryError::ManifestTooLarge {
                limit: self.limits.max_manifest_bytes,
            });
        }
        let parsed = ParsedManifest::parse(content_type, body)?;
        let (digest, tag_ref) = match reference {
            Reference::Digest(expected) => {
                let actual = expected.same_algorithm_of(body);
                if actual != *expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                (actual, None)
            }
            Reference::Tag(tag) => (Digest::sha256_of(body), Some(tag)),
        };
        let options = match tag_ref {
            Some(tag) => self.push_tag_options(repo, tag, &parsed).await?,
            None => TagOptions::default(),
        };
        let mut blobs: Vec<(&Digest, u64)> = parsed
            .required_blobs()
            .map(|d| (&d.digest, d.size))
            .collect();
        let mut children = Vec::new();
        if parsed.kind == ManifestKind::Index {
            for child in &parsed.manifests {
                if is_manifest(child) {
                    children.push(&child.digest);
                } else {
                    blobs.push((&child.digest, child.size));
                }
            }
        }
        let annotations_json = parsed
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("string maps serialize"));
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let admitted = self.admit_manifest(repo, &digest, body.len()).await?;
        self.meta
            .put_manifest_with(
                NewManifest {
                    repository: repo.as_str(),
                    digest: &digest,
                    media_type: &parsed.media_type,
                    artifact_type: parsed.effective_artifact_type(),
                    subject: subject.as_ref(),
                    annotations_json,
                    content: body,
                    blobs,
                    children,
                    tag: tag_ref.map(|t| t.as_str()),
                },
                options,
            )
            .await?;
        if let Some(admitted) = admitted {
            self.warn_after_push(repo, admitted).await?;
        }
        for observer in &self.observers {
            observer.manifest_stored(repo, &digest, &parsed).await;
        }
        Ok(ManifestPut { digest, subject })
    }

    /// The manifest for `reference`, if stored in a media type the client accepts.
    /// `accept` holds the request's `Accept` header values.
    pub async fn manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest, RegistryError> {
        let Some(m) = self.meta.manifest(repo.as_str(), reference).await? else {
            return Err(self.missing(repo, RegistryError::ManifestUnknown).await?);
        };
        if !accepts(accept, &m.media_type) {
            return Err(RegistryError::ManifestNotAcceptable);
        }
        if let Some(gate) = &self.pull_gate
            && let Some(reason) = gate.refuse_pull(repo, &m.digest).await?
        {
            return Err(RegistryError::PullDenied(reason));
        }
        Ok(m)
    }

    /// `err`, or `NameUnknown` when the repository itself does not exist.
    pub(crate) async fn missing(
        &self,
        repo: &RepoName,
        err: RegistryError,
    ) -> Result<RegistryError, RegistryError> {
        Ok(if self.meta.repository_exists(repo.as_str()).await? {
            err
        } else {
            RegistryError::NameUnknown
        })
    }

    /// Deletes a manifest (by digest) or a tag (by tag).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        let deleted = match reference {
            Reference::Digest(d) => self.meta.delete_manifest(repo.as_str(), d).await?,
            Reference::Tag(t) => self.meta.delete_tag(repo.as_str(), t.as_str()).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(self.missing(repo, RegistryError::ManifestUnknown).await?)
        }
    }

    pub async fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: Option<u32>,
    ) -> Result<ListPage, RegistryError> {
        let limit = self.page_limit(n);
        let items = self
            .meta
            .tags(
                repo.as_str(),
                Page {
                    last,
                    limit: limit + 1,
                },
            )
            .await?
            .ok_or(RegistryError::NameUnknown)?;
        Ok(ListPage::from_overfetched(items, limit))
    }

    /// The page size to serve for a requested `n`: the configured maximum caps it.
    pub fn page_limit(&self, n: Option<u32>) -> u32 {
        n.unwrap_or(self.limits.max_page).min(self.limits.max_page)
    }

    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ReferrersIndex, RegistryError> {
        // No NAME_UNKNOWN here: a registry that supports the referrers API MUST NOT answer it
        // with a 404 (clients take that as the API missing), so an unknown repository simply
        // has no referrers.
        let referrers = self
            .meta
            .referrers(repo.as_str(), subject, artifact_type)
            .await?;
        let manifests = referrers
            .into_iter()
            .map(|r| {
                let annotations = r
                    .annotations_json
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| {
                        RegistryError::Meta(bulwark_meta::MetaError::Corrupt(e.to_string()))
                    })?;
                Ok(Descriptor {
                    media_type: r.media_type,
                    digest: r.digest,
                    size: r.size,
                    artifact_type: r.artifact_type,
                    annotations,
                    urls: None,
                    platform: None,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": manifests,
        });
        Ok(ReferrersIndex {
            body: serde_json::to_vec(&index).expect("json values serialize"),
            filtered: artifact_type.is_some(),
        })
    }
}

fn is_manifest(d: &Descriptor) -> bool {
    media_types::ALL_MANIFESTS.contains(&d.media_type.as_str())
}

/// Content negotiation: serve the stored type if the client accepts it, or if the client
/// names no manifest type at all (older clients send only `application/json` or nothing).
fn accepts(accept: &[&str], media_type: &str) -> bool {
    let mut names_a_manifest_type = false;
    for entry in accept.iter().flat_map(|h| h.split(',')) {
        let t = entry.split(';').next().unwrap_or("").trim();
        if t == media_type || t == "*/*" || t == "application/*" {
            return true;
        }
        names_a_manifest_type |= media_types::ALL_MANIFESTS.contains(&t);
    }
    !names_a_manifest_type
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let oci = media_types::OCI_MANIFEST;
        assert!(accepts(&[], oci));
        assert!(accepts(&["application/json"], oci));
        assert!(accepts(
            &[&format!("{}, {oci};q=0.5", media_types::DOCKER_MANIFEST)],
            oci
        ));
        assert!(!accepts(&[media_types::DOCKER_MANIFEST], oci));
        assert!(accepts(&[media_types::DOCKER_MANIFEST, "*/*"], oci));
    }

    #[test]
    fn pages() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ListPage::from_overfetched(items(&["a", "b", "c"]), 2),
            ListPage {
                items: items(&["a", "b"]),
                next: Some("b".into())
            }
        );
        assert_eq!(ListPage::from_overfetched(items(&["a"]), 2).next, None);
    }
}
