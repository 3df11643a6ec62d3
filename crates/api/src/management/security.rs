//! A manifest's vulnerability scan: Quay's security route (the shape Clair v4 results take
//! in Quay, so tooling reading Quay's security API works), the native report (summary
//! counts, grade, findings) and the SBOM of its packages. Reading any takes pull permission on the repository, and
//! the manifest must be in that repository.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bulwark_auth::{Action, Resource};
use bulwark_oci::{Digest, RepoName};
use bulwark_security::{SbomFormat, ScanReport, Security, StoredFinding};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Path, Query};
use super::tags::repo_name;
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

#[derive(Deserialize)]
pub(crate) struct SbomQuery {
    format: Option<String>,
}

/// `GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/sbom?format=cyclonedx|spdx`: the
/// scanned manifest's packages as CycloneDX 1.5 (the default) or SPDX 2.3 JSON.
pub(crate) async fn sbom(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<SbomQuery>,
) -> Result<Json<Value>, Problem> {
    let format = q.format.as_deref().unwrap_or("cyclonedx");
    let format = SbomFormat::parse(format).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("unknown SBOM format {format:?} (cyclonedx or spdx)"),
        )
    })?;
    let (name, digest, security) = target(&state, &caller, path).await?;
    Ok(Json(security.sbom(name.as_str(), &digest, format).await?))
}

#[derive(Deserialize)]
pub(crate) struct SecurityQuery {
    #[serde(default)]
    vulnerabilities: bool,
}

/// The caller's pull right on the repository, then the repository, the digest and the
/// scanning layer.
async fn target<'s>(
    state: &'s AppState,
    caller: &Caller,
    (ns, repo, digest): (String, String, String),
) -> Result<(RepoName, Digest, &'s Security), Problem> {
    let name = repo_name(state, &ns, &repo)?;
    require(
        state,
        caller,
        Resource::Repository(name.as_str()),
        Action::Pull,
    )
    .await?;
    let digest: Digest = digest.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("invalid digest {digest:?}"),
        )
    })?;
    let security = state
        .security
        .as_deref()
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "scanning is not configured"))?;
    Ok((name, digest, security))
}

/// The scan of `digest` in the repository.
async fn scan(
    state: &AppState,
    caller: &Caller,
    path: (String, String, String),
    with_features: bool,
) -> Result<(Digest, ScanReport), Problem> {
    let (name, digest, security) = target(state, caller, path).await?;
    let report = security
        .report(name.as_str(), &digest, with_features)
        .await?;
    Ok((digest, report))
}

/// Clair's version formats, by package type.
fn version_format(kind: &str) -> &str {
    match kind {
        "deb" => "dpkg",
        "python" => "pep440",
        "npm" | "go" | "rust" => "semver",
        "java" => "maven",
        other => other,
    }
}

fn quay_vulnerability(f: &StoredFinding, namespace: &str) -> Value {
    json!({
        "Name": f.id,
        "NamespaceName": namespace,
        "Description": f.summary.clone().unwrap_or_default(),
        "Link": f.links.first().cloned().unwrap_or_default(),
        "Severity": f.severity,
        "FixedBy": f.fixed_version.clone().unwrap_or_default(),
        "Metadata": {
            "Aliases": f.aliases,
            "FixPublished": f.fix_published,
        },
    })
}

/// `GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/security[?vulnerabilities=true]`.
pub(crate) async fn quay(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<SecurityQuery>,
) -> Result<Json<Value>, Problem> {
    let (digest, report) = scan(&state, &caller, path, true).await?;
    if report.status != bulwark_meta::ScanStatus::Scanned {
        return Ok(Json(
            json!({ "status": report.status.as_str(), "data": null }),
        ));
    }
    let distribution = report.distribution.clone().unwrap_or_default();
    let mut by_package: HashMap<(&str, &str), Vec<&StoredFinding>> = HashMap::new();
    for f in &report.findings {
        by_package
            .entry((&f.package, &f.version))
            .or_default()
            .push(f);
    }
    let features: Vec<Value> = report
        .features
        .iter()
        .map(|p| {
            let namespace = if matches!(p.kind.as_str(), "deb" | "apk" | "rpm") {
                distribution.clone()
            } else {
                String::new()
            };
            let vulnerabilities: Vec<Value> = if q.vulnerabilities {
                by_package
                    .get(&(p.name.as_str(), p.version.as_str()))
                    .into_iter()
                    .flatten()
                    .map(|f| quay_vulnerability(f, &namespace))
                    .collect()
            } else {
                Vec::new()
            };
            json!({
                "Name": p.name,
                "VersionFormat": version_format(&p.kind),
                "NamespaceName": namespace,
                "Version": p.version,
                "AddedBy": p.layer,
                "Vulnerabilities": vulnerabilities,
            })
        })
        .collect();
    Ok(Json(json!({
        "status": "scanned",
        "data": {
            "Layer": {
                "Name": digest.to_string(),
                "ParentName": "",
                "NamespaceName": distribution,
                "IndexedByVersion": bulwark_security::INDEX_FORMAT_VERSION,
                "Features": features,
            }
        }
    })))
}

/// `GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/report`: status, counts per
/// severity, grade and findings.
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<Value>, Problem> {
    let (digest, report) = scan(&state, &caller, path, false).await?;
    let mut summary: BTreeMap<&str, u64> =
        ["Critical", "High", "Medium", "Low", "Negligible", "Unknown"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
    for f in &report.findings {
        *summary.entry(f.severity.as_str()).or_default() += 1;
    }
    Ok(Json(json!({
        "digest": digest.to_string(),
        "status": report.status.as_str(),
        "reason": report.reason,
        "summary": summary,
        "grade": report.grade.as_ref().map(|g| json!({
            "current_grade": g,
            "next_drop_date": report.next_drop_date,
        })),
        "vulnerabilities": report.findings,
        "updated_at": report.updated_at.div_euclid(1000),
    })))
}
