//! `bulwark tag history|restore|expire|immutable` and `bulwark gc`: the tag lifecycle from
//! the command line, over the same two backends as the other administration commands
//! (locally the registry on the configured storage as the operator, remotely the
//! management API as the caller).

use std::time::Duration;

use anyhow::Result;
use bulwark_meta::now_millis;
use bulwark_oci::{Digest, RepoName, Tag};
use bulwark_registry::{GcReport, HistoryRequest, Registry, RegistryError, TagRecord};
use clap::Subcommand;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::backend::RepoPath;
use super::local::Local;
use super::remote::Remote;
use super::{Output, parse_duration, table, utc, yes_no};

#[derive(Subcommand)]
pub enum TagCommand {
    /// A repository's tags and their history within the Time Machine window, newest first.
    History {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        /// Only this tag's rows.
        #[arg(long)]
        tag: Option<String>,
        /// Only the tags live now.
        #[arg(long)]
        active: bool,
        /// The repository as it was then (seconds since the Unix epoch).
        #[arg(long, value_name = "SECONDS")]
        at: Option<i64>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Point a tag again at a manifest it pointed at within the Time Machine window (a
    /// deleted, moved or expired tag).
    Restore {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        digest: Digest,
    },
    /// Make a tag expire after a while (`--after 2w`), or never (`--never`).
    Expire {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        #[arg(long, value_parser = parse_duration, required_unless_present = "never")]
        after: Option<Duration>,
        #[arg(long, conflicts_with = "after")]
        never: bool,
    },
    /// Make a tag immutable (it can no longer be moved, deleted or expire), or mutable
    /// again with --off.
    Immutable {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        #[arg(long)]
        off: bool,
    },
}

/// One row of a tag's history, in the management API's shape (seconds since the epoch).
#[derive(Debug, Serialize, Deserialize)]
pub struct TagRow {
    pub name: String,
    pub manifest_digest: String,
    pub start_ts: i64,
    pub end_ts: Option<i64>,
    pub expiration_ts: Option<i64>,
    pub immutable: bool,
}

impl From<TagRecord> for TagRow {
    fn from(t: TagRecord) -> Self {
        TagRow {
            name: t.name,
            manifest_digest: t.manifest_digest.to_string(),
            start_ts: t.start_at.div_euclid(1000),
            end_ts: t.end_at.map(|ms| ms.div_euclid(1000)),
            expiration_ts: t.expires_at.map(|ms| ms.div_euclid(1000)),
            immutable: t.immutable,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TagHistory {
    pub tags: Vec<TagRow>,
    pub has_additional: bool,
}

/// What a history listing asks for.
pub struct HistoryArgs<'a> {
    tag: Option<&'a str>,
    active: bool,
    /// Seconds.
    at: Option<i64>,
    page: u32,
    limit: u32,
}

/// The lifecycle operations; authorization as for [`Backend`](super::backend::Backend).
pub trait Lifecycle {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory>;
    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()>;
    /// `expires_at`: seconds since the Unix epoch; `None` for never.
    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()>;
    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()>;
    async fn collect_garbage(&self) -> Result<GcReport>;
}

pub async fn tag(backend: &impl Lifecycle, command: TagCommand) -> Result<Output> {
    match command {
        TagCommand::History {
            repository,
            tag,
            active,
            at,
            page,
            limit,
        } => {
            let args = HistoryArgs {
                tag: tag.as_deref(),
                active,
                at,
                page,
                limit,
            };
            let history = backend.tag_history(&repository, &args).await?;
            let secs = |s: i64| utc(s.saturating_mul(1000));
            let rows = history.tags.iter().map(|t| {
                vec![
                    t.name.clone(),
                    t.manifest_digest.clone(),
                    secs(t.start_ts),
                    t.end_ts.map_or("-".into(), secs),
                    t.expiration_ts.map_or("-".into(), secs),
                    yes_no(t.immutable),
                ]
            });
            let mut text = table(
                &["TAG", "DIGEST", "FROM", "UNTIL", "EXPIRES", "IMMUTABLE"],
                rows,
            );
            if history.has_additional {
                text.push_str(&format!("(more: --page {})\n", page + 1));
            }
            Output::new(text, history)
        }
        TagCommand::Restore {
            repository,
            tag,
            digest,
        } => {
            backend.restore_tag(&repository, &tag, &digest).await?;
            Output::done(format!("{repository}:{tag} points at {digest} again"))
        }
        TagCommand::Expire {
            repository,
            tag,
            after,
            ..
        } => {
            let at = after.map(|d| {
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                now_millis().div_euclid(1000).saturating_add(secs)
            });
            backend.set_tag_expiry(&repository, &tag, at).await?;
            Output::done(match at {
                Some(at) => format!(
                    "{repository}:{tag} expires at {}",
                    utc(at.saturating_mul(1000))
                ),
                None => format!("{repository}:{tag} never expires"),
            })
        }
        TagCommand::Immutable {
            repository,
            tag,
            off,
        } => {
            backend.set_tag_immutable(&repository, &tag, !off).await?;
            let state = if off { "mutable" } else { "immutable" };
            Output::done(format!("{repository}:{tag} is {state}"))
        }
    }
}

pub async fn gc(backend: &impl Lifecycle) -> Result<Output> {
    let r = backend.collect_garbage().await?;
    let text = format!(
        "reclaimed {} bytes in {} ms: {} manifests, {} blobs and {} unnamed files deleted, \
         {} links and {} history rows removed over {} repositories",
        r.bytes_reclaimed,
        r.millis,
        r.manifests,
        r.blobs,
        r.orphans,
        r.links,
        r.history_rows,
        r.repositories
    );
    Output::new(text, r)
}

fn tag_name(tag: &str) -> Result<Tag> {
    Ok(Tag::parse(tag).map_err(RegistryError::from)?)
}

impl Local {
    /// The registry with `repo`'s name as it checks names.
    async fn at(&self, repo: &RepoPath) -> Result<(&Registry, RepoName)> {
        let registry = self.registry().await?;
        let name = registry
            .repo_name(&repo.to_string())
            .map_err(RegistryError::from)?;
        Ok((registry, name))
    }
}

impl Lifecycle for Local {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory> {
        let (registry, name) = self.at(repo).await?;
        let tag = args.tag.map(tag_name).transpose()?;
        let page = registry
            .tag_history(
                &name,
                HistoryRequest {
                    tag: tag.as_ref(),
                    only_active: args.active,
                    at: args.at.map(|s| s.saturating_mul(1000)),
                    page: args.page.max(1),
                    limit: args.limit,
                },
            )
            .await?;
        Ok(TagHistory {
            tags: page.tags.into_iter().map(Into::into).collect(),
            has_additional: page.has_more,
        })
    }

    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        Ok(registry
            .restore_tag(&name, &tag, digest, actor, origin)
            .await?)
    }

    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        let at = expires_at.map(|s| s.saturating_mul(1000));
        Ok(registry
            .set_tag_expiry(&name, &tag, at, actor, origin)
            .await?)
    }

    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        Ok(registry
            .set_tag_immutable(&name, &tag, immutable, actor, origin)
            .await?)
    }

    async fn collect_garbage(&self) -> Result<GcReport> {
        Ok(self.registry().await?.collect_garbage().await?)
    }
}

impl Lifecycle for Remote {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory> {
        let mut url = self.repo_url(repo, &["tag", ""]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("onlyActiveTags", &args.active.to_string())
                .append_pair("page", &args.page.to_string())
                .append_pair("limit", &args.limit.to_string());
            if let Some(tag) = args.tag {
                query.append_pair("specificTag", tag);
            }
            if let Some(at) = args.at {
                query.append_pair("at", &at.to_string());
            }
        }
        self.call(Method::GET, url, None).await
    }

    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag, "restore"]);
        let body = json!({ "manifest_digest": digest.to_string() });
        self.act(Method::POST, url, Some(body)).await
    }

    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag]);
        let body = json!({ "expiration": expires_at });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag]);
        let body = json!({ "immutable": immutable });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn collect_garbage(&self) -> Result<GcReport> {
        let url = self.url(&["superuser", "gc"]);
        self.call(Method::POST, url, None).await
    }
}
