//! A manifest's vulnerability scan: Quay's security route (the shape Clair v4 results take
//! in Quay, so tooling reading Quay's security API works), the native report (summary
//! counts, grade, findings) and the SBOM of its packages. Reading any takes pull permission on the repository, and
//! the manifest must be in that repository.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bulwark_auth::{Action, Resource};
use bulwark_meta::ScanPolicy;
use bulwark_oci::{Digest, RepoName};
use bulwark_security::{
    PolicyRequest, SbomFormat, ScanReport, Security, SecurityError, StoredFinding,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{Json as ExtractJson, Path, Query};
use super::tags::{authorized_repo, origin};
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
    let name = authorized_repo(state, caller, &ns, &repo, Action::Pull).await?;
    let digest: Digest = digest.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("invalid digest {digest:?}"),
        )
    })?;
    Ok((name, digest, security(state)?))
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

/// A pull policy as the API shows it.
#[derive(Serialize)]
struct PolicyView {
    /// The repository it applies to; absent for a namespace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<String>,
    max_grade: Option<String>,
    block_severity: Option<String>,
    allowlist: Vec<String>,
    /// Seconds since the Unix epoch.
    updated: i64,
}

fn policy_view(policy: Option<ScanPolicy>) -> Json<Value> {
    let view = policy.map(|p| PolicyView {
        repository: Some(p.repository).filter(|r| !r.is_empty()),
        max_grade: p.max_grade,
        block_severity: p.block_severity,
        allowlist: p.allowlist,
        updated: p.updated_at.div_euclid(1000),
    });
    Json(json!({ "policy": view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    max_grade: Option<String>,
    block_severity: Option<String>,
    #[serde(default)]
    allowlist: Vec<String>,
}

impl From<PolicyBody> for PolicyRequest {
    fn from(b: PolicyBody) -> Self {
        PolicyRequest {
            max_grade: b.max_grade,
            block_severity: b.block_severity,
            allowlist: b.allowlist,
        }
    }
}

fn security(state: &AppState) -> Result<&Security, Problem> {
    state
        .security
        .as_deref()
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "scanning is not configured"))
}

/// `GET /api/v1/organization/{org}/scanpolicy`: `{"policy": null}` when none is set.
pub(crate) async fn org_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(policy_view(
        security(&state)?.scan_policy(&org, None).await?,
    ))
}

/// `PUT /api/v1/organization/{org}/scanpolicy`: every repository's without its own.
pub(crate) async fn set_org_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ExtractJson(body): ExtractJson<PolicyBody>,
) -> Result<Json<Value>, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let policy = security(&state)?
        .set_scan_policy(
            &org,
            None,
            body.into(),
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(policy_view(Some(policy)))
}

/// `DELETE /api/v1/organization/{org}/scanpolicy`.
pub(crate) async fn delete_org_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    deleted(
        security(&state)?
            .delete_scan_policy(&org, None, caller.identity.actor(), origin(&caller))
            .await?,
    )
}

fn deleted(found: bool) -> Result<StatusCode, Problem> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::new(StatusCode::NOT_FOUND, "no policy is set"))
    }
}

/// `GET /api/v1/repository/{ns}/{repo}/scanpolicy`: the repository's own policy (pullers
/// may read what refuses their pulls).
pub(crate) async fn repo_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Pull).await?;
    Ok(policy_view(
        security(&state)?
            .scan_policy(namespace_of(&name), Some(&name))
            .await?,
    ))
}

/// `PUT /api/v1/repository/{ns}/{repo}/scanpolicy`: replaces the namespace's for it.
pub(crate) async fn set_repo_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    ExtractJson(body): ExtractJson<PolicyBody>,
) -> Result<Json<Value>, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    let policy = security(&state)?
        .set_scan_policy(
            namespace_of(&name),
            Some(&name),
            body.into(),
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(policy_view(Some(policy)))
}

/// `DELETE /api/v1/repository/{ns}/{repo}/scanpolicy`.
pub(crate) async fn delete_repo_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    deleted(
        security(&state)?
            .delete_scan_policy(
                namespace_of(&name),
                Some(&name),
                caller.identity.actor(),
                origin(&caller),
            )
            .await?,
    )
}

fn namespace_of(name: &RepoName) -> &str {
    bulwark_oci::namespace_of(name.as_str())
}

/// `POST /api/v1/superuser/vulndb`: OSV records (a JSON array of records, or JSON lines)
/// imported as `bulwark vulndb import` does; answers what the import read and changed.
pub(crate) async fn import_vulndb(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let security = security(&state)?;
    let records = tokio::task::spawn_blocking(move || {
        bulwark_security::vulndb::parse_records("the request body", &body)
    })
    .await
    .map_err(|e| SecurityError::Internal(format!("reading vulnerability data: {e}")))??;
    let outcome = security
        .import_records(
            &records,
            "the management API",
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(Json(json!({
        "records": records.len(),
        "added": outcome.added,
        "updated": outcome.updated,
        "unchanged": outcome.unchanged,
        "generation": outcome.generation,
    })))
}
