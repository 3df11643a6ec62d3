//! Pull policies: per namespace or repository, off unless set, refuse pulls of scanned
//! images graded worse than a threshold or carrying a vulnerability at or above a
//! severity, but for allowlisted ids. Images without a successful scan are not refused: a
//! policy judges findings, and an unscanned image has none yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{MetaError, ScanPolicy, ScanStatus, now_millis};
use bulwark_oci::{Digest, RepoName};
use bulwark_registry::PullGate;
use bulwark_scanner::{Grade, Severity};

use crate::report::StoredFinding;
use crate::{Security, SecurityError};

/// How long a node keeps the policy it read for a repository: every manifest GET asks,
/// and a policy changed on another node applies there within this time (at once on the
/// node that changed it).
const POLICY_TTL: Duration = Duration::from_secs(5);

/// Repositories whose policy is kept at once; beyond, the cache starts over.
const POLICY_CACHE_ENTRIES: usize = 10_000;

/// The effective policy per repository, read at most once per [`POLICY_TTL`].
#[derive(Default)]
pub(crate) struct PolicyCache {
    entries: Mutex<HashMap<String, (Instant, Option<ScanPolicy>)>>,
}

impl PolicyCache {
    fn get(&self, repository: &str, now: Instant) -> Option<Option<ScanPolicy>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(repository)
            .filter(|(read, _)| now.duration_since(*read) < POLICY_TTL)
            .map(|(_, policy)| policy.clone())
    }

    fn put(&self, repository: &str, policy: Option<ScanPolicy>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= POLICY_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(repository.to_owned(), (now, policy));
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Ids an allowlist may hold, and the length of one: inputs have limits.
const MAX_ALLOWLIST: usize = 1_000;
const MAX_ID_LEN: usize = 256;

/// A policy as asked for.
#[derive(Clone, Debug, Default)]
pub struct PolicyRequest {
    pub max_grade: Option<String>,
    pub block_severity: Option<String>,
    pub allowlist: Vec<String>,
}

fn grade(s: &str) -> Option<Grade> {
    Some(match s {
        "A" => Grade::A,
        "B" => Grade::B,
        "C" => Grade::C,
        "D" => Grade::D,
        "E" => Grade::E,
        "F" => Grade::F,
        _ => return None,
    })
}

/// The severity names findings carry (the scanner's), and policies take.
fn severity(s: &str) -> Option<Severity> {
    match s {
        "Unknown" => Some(Severity::Unknown),
        _ => Severity::from_word(s).filter(|sev| format!("{sev:?}") == s),
    }
}

/// Why a scanned image breaks `policy`, if it does.
fn violation(
    policy: &ScanPolicy,
    grade_now: Option<&str>,
    findings: &[StoredFinding],
) -> Option<String> {
    if let (Some(max), Some(now)) = (policy.max_grade.as_deref().and_then(grade), grade_now)
        && grade(now).is_some_and(|g| g > max)
    {
        return Some(format!(
            "the image's grade {now} is worse than the policy's {max:?}"
        ));
    }
    let block = policy.block_severity.as_deref().and_then(severity)?;
    let allowed = |f: &StoredFinding| {
        policy
            .allowlist
            .iter()
            .any(|id| *id == f.id || f.aliases.contains(id))
    };
    findings
        .iter()
        .find(|f| severity(&f.severity).is_some_and(|s| s >= block) && !allowed(f))
        .map(|f| {
            format!(
                "{} ({}) in {} {} is at or above the policy's {block:?}",
                f.id, f.severity, f.package, f.version
            )
        })
}

impl Security {
    /// The policy set on `namespace`, or with `repository` on that repository.
    pub async fn scan_policy(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
    ) -> Result<Option<ScanPolicy>, SecurityError> {
        let repository = repository.map_or("", RepoName::as_str);
        Ok(self.store.scan_policy(namespace, repository).await?)
    }

    /// Sets the policy of `namespace` (or of one of its repositories).
    pub async fn set_scan_policy(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        request: PolicyRequest,
        actor: Actor,
        origin: Origin,
    ) -> Result<ScanPolicy, SecurityError> {
        let invalid = |m: String| SecurityError::InvalidPolicy(m);
        if let Some(g) = request.max_grade.as_deref().filter(|g| grade(g).is_none()) {
            return Err(invalid(format!("max_grade {g:?} is not one of A to F")));
        }
        if let Some(s) = request
            .block_severity
            .as_deref()
            .filter(|s| severity(s).is_none())
        {
            return Err(invalid(format!(
                "block_severity {s:?} is not one of Unknown, Negligible, Low, Medium, High, Critical"
            )));
        }
        if request.max_grade.is_none() && request.block_severity.is_none() {
            return Err(invalid("set max_grade, block_severity or both".into()));
        }
        if request.allowlist.len() > MAX_ALLOWLIST
            || request
                .allowlist
                .iter()
                .any(|id| id.is_empty() || id.len() > MAX_ID_LEN)
        {
            return Err(invalid(format!(
                "the allowlist holds at most {MAX_ALLOWLIST} ids of 1 to {MAX_ID_LEN} bytes"
            )));
        }
        let policy = ScanPolicy {
            namespace: namespace.to_owned(),
            repository: repository.map_or("", RepoName::as_str).to_owned(),
            max_grade: request.max_grade,
            block_severity: request.block_severity,
            allowlist: request.allowlist,
            updated_at: now_millis(),
        };
        self.store.set_scan_policy(&policy).await?;
        self.policies.clear();
        let event = Event::new("scan_policy.set", actor, origin).details(serde_json::json!({
            "max_grade": policy.max_grade,
            "block_severity": policy.block_severity,
            "allowlist": policy.allowlist,
        }));
        self.emit(match repository {
            Some(repo) => event.repository(repo.as_str()),
            None => event.namespace(namespace),
        });
        Ok(policy)
    }

    /// Removes a policy; whether there was one.
    pub async fn delete_scan_policy(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        actor: Actor,
        origin: Origin,
    ) -> Result<bool, SecurityError> {
        let deleted = self
            .store
            .delete_scan_policy(namespace, repository.map_or("", RepoName::as_str))
            .await?;
        self.policies.clear();
        if deleted {
            let event = Event::new("scan_policy.delete", actor, origin);
            self.emit(match repository {
                Some(repo) => event.repository(repo.as_str()),
                None => event.namespace(namespace),
            });
        }
        Ok(deleted)
    }
}

#[async_trait::async_trait]
impl PullGate for Security {
    async fn refuse_pull(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<String>, MetaError> {
        let now = Instant::now();
        let policy = match self.policies.get(repo.as_str(), now) {
            Some(policy) => policy,
            None => {
                let policy = self
                    .store
                    .effective_scan_policy(bulwark_oci::namespace_of(repo.as_str()), repo.as_str())
                    .await?;
                self.policies.put(repo.as_str(), policy.clone(), now);
                policy
            }
        };
        let Some(policy) = policy else {
            return Ok(None);
        };
        let Some(scan) = self
            .store
            .manifest_scan(digest)
            .await?
            .filter(|s| s.status == ScanStatus::Scanned)
        else {
            return Ok(None);
        };
        let findings = StoredFinding::parse_all(&scan.findings)
            .map_err(|e| MetaError::Corrupt(e.to_string()))?;
        Ok(violation(&policy, scan.grade.as_deref(), &findings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, severity: &str) -> StoredFinding {
        StoredFinding {
            id: id.into(),
            aliases: vec![format!("CVE-{id}")],
            severity: severity.into(),
            summary: None,
            kind: "python".into(),
            package: "urllib3".into(),
            version: "1.26.4".into(),
            fixed_version: Some("1.26.5".into()),
            fix_published: None,
            layer: "sha256:00".into(),
            links: vec![],
        }
    }

    fn policy(max_grade: Option<&str>, block: Option<&str>, allow: &[&str]) -> ScanPolicy {
        ScanPolicy {
            namespace: "acme".into(),
            repository: String::new(),
            max_grade: max_grade.map(Into::into),
            block_severity: block.map(Into::into),
            allowlist: allow.iter().map(|s| s.to_string()).collect(),
            updated_at: 0,
        }
    }

    #[test]
    fn policies_are_kept_briefly_and_dropped_on_change() {
        let cache = PolicyCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.get("acme/app", t0), None);
        cache.put("acme/app", Some(policy(Some("C"), None, &[])), t0);
        cache.put("acme/web", None, t0);
        assert!(
            cache
                .get("acme/app", t0 + POLICY_TTL / 2)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            cache.get("acme/web", t0),
            Some(None),
            "no policy is kept too"
        );
        assert_eq!(cache.get("acme/app", t0 + POLICY_TTL), None, "expired");
        cache.clear();
        assert_eq!(cache.get("acme/web", t0), None);
    }

    #[test]
    fn grades_severities_and_allowlists() {
        let findings = [finding("A-1", "Medium"), finding("B-2", "High")];
        let high = policy(None, Some("High"), &[]);
        let reason = violation(&high, Some("B"), &findings).unwrap();
        assert!(reason.contains("B-2 (High) in urllib3 1.26.4"), "{reason}");
        // By id or by alias.
        assert_eq!(
            violation(&policy(None, Some("High"), &["B-2"]), Some("B"), &findings),
            None
        );
        assert_eq!(
            violation(
                &policy(None, Some("High"), &["CVE-B-2"]),
                Some("B"),
                &findings
            ),
            None
        );
        assert!(
            violation(
                &policy(None, Some("Medium"), &["B-2"]),
                Some("B"),
                &findings
            )
            .is_some()
        );
        assert_eq!(
            violation(&policy(None, Some("Critical"), &[]), Some("B"), &findings),
            None
        );

        assert_eq!(
            violation(&policy(Some("B"), None, &[]), Some("B"), &findings),
            None
        );
        let reason = violation(&policy(Some("A"), None, &[]), Some("B"), &findings).unwrap();
        assert!(
            reason.contains("grade B is worse than the policy's A"),
            "{reason}"
        );
    }

    #[test]
    fn severity_names_are_the_scanners() {
        assert_eq!(severity("High"), Some(Severity::High));
        assert_eq!(severity("Unknown"), Some(Severity::Unknown));
        assert_eq!(severity("important"), None);
        assert_eq!(severity("high"), None);
    }
}
