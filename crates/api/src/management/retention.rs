//! Retention (auto-prune) policies with Quay's paths and shapes
//! (`…/autoprunepolicy/`, `{"method": "number_of_tags"|"creation_date", "value": …,
//! "tagPattern": …}`), and a run of a namespace's policies, dry or real.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_registry::{Keep, PolicyView, Pruned, RetentionPolicy, parse_duration};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path, Query};
use super::tags::{authorized_repo, origin};
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

#[derive(Serialize)]
struct PolicyList {
    policies: Vec<PolicyView>,
}

fn policy_list(policies: Vec<RetentionPolicy>) -> Response {
    axum::Json(PolicyList {
        policies: policies.into_iter().map(Into::into).collect(),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewPolicy {
    method: String,
    value: serde_json::Value,
    /// Every tag without one.
    tag_pattern: Option<String>,
    /// Quay's inverted patterns (`false`) are not supported.
    tag_pattern_matches: Option<bool>,
}

impl NewPolicy {
    /// The pattern and what the policy keeps.
    fn parse(self) -> Result<(String, Keep), Problem> {
        let invalid = |detail: &str| Problem::new(StatusCode::BAD_REQUEST, detail);
        if self.tag_pattern_matches == Some(false) {
            return Err(invalid("tagPatternMatches=false is not supported"));
        }
        let keep = match self.method.as_str() {
            "number_of_tags" => Keep {
                count: self
                    .value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| invalid("number_of_tags takes a positive integer value"))?,
                secs: None,
            },
            "creation_date" => Keep {
                count: None,
                secs: self
                    .value
                    .as_str()
                    .and_then(parse_duration)
                    .map(|d: Duration| d.as_secs())
                    .filter(|s| *s > 0)
                    .map(Some)
                    .ok_or_else(|| invalid("creation_date takes a value like \"7d\""))?,
            },
            _ => return Err(invalid("method is number_of_tags or creation_date")),
        };
        Ok((self.tag_pattern.unwrap_or_else(|| ".*".into()), keep))
    }
}

/// `GET /api/v1/organization/{org}/autoprunepolicy/`: the namespace's policies.
pub(crate) async fn org_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(policy_list(
        state.registry.retention_policies(&org, None).await?,
    ))
}

/// `POST /api/v1/organization/{org}/autoprunepolicy/`: a policy for each repository.
pub(crate) async fn org_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<NewPolicy>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let (pattern, keep) = body.parse()?;
    let policy = state
        .registry
        .add_retention_policy(
            &org,
            None,
            &pattern,
            keep,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(PolicyView::from(policy))).into_response())
}

/// `DELETE /api/v1/organization/{org}/autoprunepolicy/{id}`: any policy of the namespace.
pub(crate) async fn org_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .registry
        .delete_retention_policy(&org, None, id, caller.identity.actor(), origin(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct RunQuery {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize)]
struct RunView {
    dry_run: bool,
    pruned: Vec<Pruned>,
}

/// `POST /api/v1/organization/{org}/autoprunepolicy/run?dry_run=true`: applies the
/// namespace's policies now (the retention job does periodically), or lists what they
/// would prune.
pub(crate) async fn org_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<RunQuery>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let pruned = state
        .registry
        .apply_retention(
            Some(&org),
            q.dry_run,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(axum::Json(RunView {
        dry_run: q.dry_run,
        pruned,
    })
    .into_response())
}

/// `GET /api/v1/repository/{ns}/{repo}/autoprunepolicy/`: the policies that apply to the
/// repository (its own and its namespace's).
pub(crate) async fn repo_list(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Pull).await?;
    Ok(policy_list(
        state
            .registry
            .retention_policies(name.namespace(), Some(&name))
            .await?,
    ))
}

/// `POST /api/v1/repository/{ns}/{repo}/autoprunepolicy/`.
pub(crate) async fn repo_create(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Json(body): Json<NewPolicy>,
) -> Result<Response, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    let (pattern, keep) = body.parse()?;
    let policy = state
        .registry
        .add_retention_policy(
            name.namespace(),
            Some(&name),
            &pattern,
            keep,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(PolicyView::from(policy))).into_response())
}

/// `DELETE /api/v1/repository/{ns}/{repo}/autoprunepolicy/{id}`: only the repository's own
/// policies; its namespace's are the namespace admins' (a 404 here, as for any other id).
pub(crate) async fn repo_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, id)): Path<(String, String, i64)>,
) -> Result<StatusCode, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    state
        .registry
        .delete_retention_policy(
            name.namespace(),
            Some(&name),
            id,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
