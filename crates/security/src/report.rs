//! What a manifest's scan says, for the APIs: status, findings, grade and, on request,
//! the packages (Quay's "features").

use bulwark_meta::{ManifestScan, ScanStatus};
use bulwark_oci::{Digest, Reference};
use bulwark_scanner::Date;
use serde::{Deserialize, Serialize};

use crate::{Security, SecurityError};

/// A finding as stored (the scanner's `Finding` serialized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub severity: String,
    pub summary: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub package: String,
    pub version: String,
    pub fixed_version: Option<String>,
    pub fix_published: Option<String>,
    pub layer: String,
    #[serde(default)]
    pub links: Vec<String>,
}

impl StoredFinding {
    pub(crate) fn parse_all(json: &str) -> Result<Vec<StoredFinding>, SecurityError> {
        serde_json::from_str(json).map_err(|e| SecurityError::Corrupt(format!("findings: {e}")))
    }

    /// What makes a finding the same one in a later match.
    pub(crate) fn key(&self) -> (String, String, String) {
        (self.id.clone(), self.package.clone(), self.version.clone())
    }
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Feature {
    /// `deb`, `apk`, `rpm`, `python`, …
    pub kind: String,
    pub name: String,
    pub version: String,
    /// The layer that introduced it.
    pub layer: String,
}

/// A manifest's scan as the APIs present it.
#[derive(Clone, Debug)]
pub struct ScanReport {
    pub status: ScanStatus,
    pub reason: Option<String>,
    pub findings: Vec<StoredFinding>,
    pub grade: Option<String>,
    pub next_drop_date: Option<String>,
    /// The distribution's ecosystem (`Debian:12`), when packages were asked for.
    pub distribution: Option<String>,
    /// The packages, when asked for and scanned.
    pub features: Vec<Feature>,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

/// The SBOM formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    /// CycloneDX 1.5 JSON.
    CycloneDx,
    /// SPDX 2.3 JSON.
    Spdx,
}

impl SbomFormat {
    pub fn parse(s: &str) -> Option<SbomFormat> {
        match s {
            "cyclonedx" => Some(SbomFormat::CycloneDx),
            "spdx" => Some(SbomFormat::Spdx),
            _ => None,
        }
    }
}

impl Security {
    /// `ManifestUnknown` unless `repository` holds `digest`: scans are per digest, so this
    /// is what keeps one repository's readers from another's results.
    async fn require_held(&self, repository: &str, digest: &Digest) -> Result<(), SecurityError> {
        match self
            .store
            .manifest(repository, &Reference::Digest(digest.clone()))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(SecurityError::ManifestUnknown(digest.clone())),
        }
    }

    /// The package list of a scanned manifest held in `repository` as an SBOM, from the
    /// stored layer indexes; `NotScanned` before its scan succeeded.
    pub async fn sbom(
        &self,
        repository: &str,
        digest: &Digest,
        format: SbomFormat,
    ) -> Result<serde_json::Value, SecurityError> {
        self.require_held(repository, digest).await?;
        let scan = self
            .store
            .manifest_scan(digest)
            .await?
            .filter(|s| s.status == ScanStatus::Scanned)
            .ok_or_else(|| SecurityError::NotScanned(digest.clone()))?;
        let inventory = self.stored_inventory(&scan).await?;
        let subject = format!("{repository}@{digest}");
        Ok(match format {
            SbomFormat::CycloneDx => bulwark_scanner::sbom::cyclonedx(&inventory, &subject),
            SbomFormat::Spdx => bulwark_scanner::sbom::spdx(&inventory, &subject),
        })
    }

    /// The scan of `digest` as held in `repository`. A manifest without a scan (pushed while scanning was off) is
    /// queued now. A grade whose drop date has come is brought up to date first.
    pub async fn report(
        &self,
        repository: &str,
        digest: &Digest,
        with_features: bool,
    ) -> Result<ScanReport, SecurityError> {
        self.require_held(repository, digest).await?;
        let mut scan = match self.store.manifest_scan(digest).await? {
            Some(scan) => scan,
            None => {
                self.queue_scan(repository, digest).await?;
                ManifestScan::queued(digest.clone())
            }
        };
        let today = Date::today().to_string();
        if scan.status == ScanStatus::Scanned
            && scan.next_drop_date.as_ref().is_some_and(|d| *d <= today)
        {
            let loaded = self.database.current(self.store.as_ref()).await?;
            scan = self.rematch_one(&scan, &loaded).await?;
        }
        let (distribution, features) = if with_features && scan.status == ScanStatus::Scanned {
            let inventory = self.stored_inventory(&scan).await?;
            let features = inventory
                .packages
                .iter()
                .map(|p| Feature {
                    kind: p.kind.as_str().to_owned(),
                    name: p.name.clone(),
                    version: p.version.clone(),
                    layer: p.layer.clone(),
                })
                .collect();
            (inventory.distro.and_then(|d| d.ecosystem()), features)
        } else {
            (None, Vec::new())
        };
        Ok(ScanReport {
            status: scan.status,
            reason: scan.reason,
            findings: StoredFinding::parse_all(&scan.findings)?,
            grade: scan.grade,
            next_drop_date: scan.next_drop_date,
            distribution,
            features,
            updated_at: scan.updated_at,
        })
    }
}
