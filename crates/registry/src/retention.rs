//! Retention (auto-prune) policies per namespace or repository: among the live tags
//! matching a policy's pattern, keep the N most recently pushed and/or those pushed within
//! a duration; the others are deleted into the Time Machine history (restorable within the
//! window, then collected). A tag is pruned only if every policy matching it would prune
//! it: keeping wins. Immutable tags are never pruned. A dry run lists what would go.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{HistoryQuery, Keep, RetentionPolicy, TagRecord, now_millis};
use bulwark_oci::{Digest, RepoName, namespace_of};

use crate::lifecycle::full_match;
use crate::{Registry, RegistryError};

/// A tag a retention run pruned, or would prune.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pruned {
    pub repository: String,
    pub tag: String,
    pub manifest_digest: Digest,
    /// When the tag was pushed there (milliseconds since the Unix epoch).
    pub started_at: i64,
    /// The policies that matched it (none kept it).
    pub policies: Vec<i64>,
}

/// A policy as the management API shows it (Quay's shape: one method per policy), read
/// back by the CLI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyView {
    pub id: i64,
    pub namespace: String,
    /// The full repository name; absent for a policy over the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `number_of_tags` or `creation_date`.
    pub method: String,
    /// The number of tags kept, or how long tags are kept (`<N>[smhdw]`).
    pub value: serde_json::Value,
    #[serde(rename = "tagPattern")]
    pub tag_pattern: String,
    /// Milliseconds since the Unix epoch.
    pub created: i64,
}

impl From<RetentionPolicy> for PolicyView {
    fn from(p: RetentionPolicy) -> Self {
        let (method, value) = match (p.keep_count, p.keep_secs) {
            (Some(n), _) => ("number_of_tags", n.into()),
            (None, secs) => ("creation_date", duration_text(secs.unwrap_or(0)).into()),
        };
        PolicyView {
            id: p.id,
            namespace: p.namespace,
            repository: p.repository,
            method: method.into(),
            value,
            tag_pattern: p.pattern,
            created: p.created_at,
        }
    }
}

/// `secs` in the largest unit that divides it, as `parse_duration` reads it.
fn duration_text(secs: u64) -> String {
    let units = [(7 * 86_400, 'w'), (86_400, 'd'), (3600, 'h'), (60, 'm')];
    let (n, unit) = units
        .iter()
        .find(|(size, _)| secs > 0 && secs.is_multiple_of(*size))
        .map_or((secs, 's'), |(size, unit)| (secs / size, *unit));
    format!("{n}{unit}")
}

/// Live tags read per query.
const PAGE: u32 = 1000;

fn policy_error(e: RegistryError) -> RegistryError {
    match e {
        RegistryError::InvalidRule(m) => RegistryError::InvalidPolicy(m),
        e => e,
    }
}

impl Registry {
    /// The namespace's policies, or with `repository` those that apply to it.
    pub async fn retention_policies(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
    ) -> Result<Vec<RetentionPolicy>, RegistryError> {
        Ok(self
            .meta
            .retention_policies(Some(namespace), repository.map(RepoName::as_str))
            .await?)
    }

    pub async fn add_retention_policy(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        pattern: &str,
        keep: Keep,
        actor: Actor,
        origin: Origin,
    ) -> Result<RetentionPolicy, RegistryError> {
        if let Some(repo) = repository
            && namespace_of(repo.as_str()) != namespace
        {
            return Err(RegistryError::InvalidPolicy(format!(
                "repository {repo} is not in namespace {namespace}"
            )));
        }
        if keep.count.is_none() && keep.secs.is_none() {
            return Err(RegistryError::InvalidPolicy(
                "a policy keeps a number of tags or the tags of a period".into(),
            ));
        }
        full_match(pattern).map_err(policy_error)?;
        let policy = self
            .meta
            .add_retention_policy(namespace, repository.map(RepoName::as_str), pattern, keep)
            .await?;
        self.events.emit(
            Event::new("retention_policy.create", actor, origin)
                .namespace(namespace)
                .target(policy.id.to_string())
                .details(serde_json::json!({
                    "repository": policy.repository,
                    "pattern": policy.pattern,
                    "keep_count": policy.keep_count,
                    "keep_secs": policy.keep_secs,
                })),
        );
        Ok(policy)
    }

    /// Deletes a policy of `namespace`; with `repository`, only one of the repository's own
    /// (its namespace's are the namespace admins').
    pub async fn delete_retention_policy(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        id: i64,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        if let Some(repo) = repository {
            let own = self
                .meta
                .retention_policies(Some(namespace), Some(repo.as_str()))
                .await?
                .iter()
                .any(|p| p.id == id && p.repository.as_deref() == Some(repo.as_str()));
            if !own {
                return Err(RegistryError::PolicyUnknown(id));
            }
        }
        if !self.meta.delete_retention_policy(namespace, id).await? {
            return Err(RegistryError::PolicyUnknown(id));
        }
        self.events.emit(
            Event::new("retention_policy.delete", actor, origin)
                .namespace(namespace)
                .target(id.to_string()),
        );
        Ok(())
    }

    /// Applies the policies of `namespace` (of every namespace without one): with
    /// `dry_run`, only lists what would be pruned.
    pub async fn apply_retention(
        &self,
        namespace: Option<&str>,
        dry_run: bool,
        actor: Actor,
        origin: Origin,
    ) -> Result<Vec<Pruned>, RegistryError> {
        let policies = self.meta.retention_policies(namespace, None).await?;
        if policies.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_millis();
        let mut pruned = Vec::new();
        for repository in self.meta.all_repositories().await? {
            let ns = namespace_of(&repository);
            let applicable: Vec<&RetentionPolicy> = policies
                .iter()
                .filter(|p| {
                    p.namespace == ns && p.repository.as_ref().is_none_or(|r| *r == repository)
                })
                .collect();
            if applicable.is_empty() {
                continue;
            }
            let live = self.live_tags(&repository).await?;
            for candidate in choose(&applicable, &live, now) {
                if !dry_run {
                    let (tag, started_at) = (&candidate.tag, candidate.started_at);
                    if !self.meta.prune_tag(&repository, tag, started_at).await? {
                        // Moved, deleted or made immutable since the listing: it stays.
                        continue;
                    }
                    self.events.emit(
                        Event::new("tag.prune", actor.clone(), origin.clone())
                            .repository(&repository)
                            .target(candidate.tag.as_str())
                            .details(serde_json::json!({
                                "manifest_digest": candidate.manifest_digest.to_string(),
                                "policies": candidate.policies,
                            })),
                    );
                }
                pruned.push(Pruned {
                    repository: repository.clone(),
                    ..candidate
                });
            }
        }
        Ok(pruned)
    }

    /// The repository's live tags, most recently pushed first.
    async fn live_tags(&self, repository: &str) -> Result<Vec<TagRecord>, RegistryError> {
        let mut live = Vec::new();
        loop {
            let query = HistoryQuery {
                only_active: true,
                offset: u32::try_from(live.len()).unwrap_or(u32::MAX),
                limit: PAGE,
                ..HistoryQuery::default()
            };
            let Some(page) = self.meta.tag_history(repository, &query).await? else {
                break;
            };
            let full = page.len() == PAGE as usize;
            live.extend(page);
            if !full {
                break;
            }
        }
        live.sort_by(|a, b| b.start_at.cmp(&a.start_at).then(a.name.cmp(&b.name)));
        Ok(live)
    }
}

/// The tags of one repository the `policies` prune (`repository` left empty): matched by
/// at least one, kept by none, not immutable. `live` is most recently pushed first.
fn choose(policies: &[&RetentionPolicy], live: &[TagRecord], now: i64) -> Vec<Pruned> {
    let mut matched: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for policy in policies {
        let re = match full_match(&policy.pattern) {
            Ok(re) => re,
            // Patterns are checked when added; a bad one stored anyway prunes nothing.
            Err(e) => {
                tracing::warn!(policy = policy.id, error = %e, "unusable retention policy");
                continue;
            }
        };
        let newer_than = policy
            .keep_secs
            .map(|s| now.saturating_sub(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
        for (i, t) in live.iter().filter(|t| re.is_match(&t.name)).enumerate() {
            let by_count = policy.keep_count.is_some_and(|n| i < n as usize);
            let by_age = newer_than.is_some_and(|since| t.start_at >= since);
            if by_count || by_age {
                kept.insert(&t.name);
            }
            matched.entry(&t.name).or_default().push(policy.id);
        }
    }
    live.iter()
        .filter(|t| !t.immutable && !kept.contains(t.name.as_str()))
        .filter_map(|t| {
            matched.remove(t.name.as_str()).map(|policies| Pruned {
                repository: String::new(),
                tag: t.name.clone(),
                manifest_digest: t.manifest_digest.clone(),
                started_at: t.start_at,
                policies,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, start_at: i64, immutable: bool) -> TagRecord {
        TagRecord {
            name: name.into(),
            manifest_digest: Digest::sha256_of(name.as_bytes()),
            start_at,
            end_at: None,
            expires_at: None,
            immutable,
        }
    }

    fn policy(id: i64, pattern: &str, count: Option<u32>, secs: Option<u64>) -> RetentionPolicy {
        RetentionPolicy {
            id,
            namespace: "ns".into(),
            repository: None,
            pattern: pattern.into(),
            keep_count: count,
            keep_secs: secs,
            created_at: 0,
        }
    }

    fn names(pruned: Vec<Pruned>) -> Vec<String> {
        pruned.into_iter().map(|p| p.tag).collect()
    }

    #[test]
    fn durations_show_in_their_largest_unit() {
        assert_eq!(duration_text(14 * 86_400), "2w");
        assert_eq!(duration_text(3 * 86_400), "3d");
        assert_eq!(duration_text(7200), "2h");
        assert_eq!(duration_text(120), "2m");
        assert_eq!(duration_text(90), "90s");
    }

    #[test]
    fn keeps_the_newest_and_the_recent_and_keeping_wins() {
        let now = 100_000;
        // Newest first, as `live_tags` sorts them.
        let live = [
            tag("pr-5", 99_000, false),
            tag("pr-4", 90_000, false),
            tag("pr-3", 50_000, false),
            tag("pr-2", 40_000, true),
            tag("pr-1", 30_000, false),
            tag("latest", 10_000, false),
        ];
        let two = policy(1, "pr-.*", Some(2), None);
        assert_eq!(names(choose(&[&two], &live, now)), ["pr-3", "pr-1"]);
        // Within 45 s: pr-3 is older; within 55 s it is not.
        let recent = policy(2, "pr-.*", None, Some(45));
        assert_eq!(names(choose(&[&recent], &live, now)), ["pr-3", "pr-1"]);
        let recent = policy(2, "pr-.*", None, Some(55));
        assert_eq!(names(choose(&[&recent], &live, now)), ["pr-1"]);
        // The newest of everything only, but the other policy keeps pr-4 and pr-3.
        let one = policy(3, ".*", Some(1), None);
        let pruned = choose(&[&one, &recent], &live, now);
        assert_eq!(names(pruned.clone()), ["pr-1", "latest"]);
        assert_eq!(pruned[0].policies, [3, 2]);
        assert_eq!(pruned[1].policies, [3]);
    }
}
