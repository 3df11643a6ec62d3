//! The action log at Quay's paths: `…/logs` (entries, newest first, paged with
//! `next_page`) and `…/aggregatelogs` (counts per day and kind) for a repository (its
//! admins), an organization (its admins), the caller's own account, and the whole registry
//! (superusers). The route fixes the scope after the one decision; query parameters only
//! narrow it: `starttime`, `endtime` (RFC 3339, `YYYY-MM-DD` or milliseconds), `kind`
//! (comma-separated), `performer`, `repository`, and for entries `limit` and `next_page`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_audit::search::parse_time;
use bulwark_audit::{AuditError, Scope};
use bulwark_auth::{Action, Resource};
use bulwark_meta::AuditStore;
use serde::Deserialize;

use super::extract::{Path, Query};
use super::require_self;
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogParams {
    starttime: Option<String>,
    endtime: Option<String>,
    kind: Option<String>,
    performer: Option<String>,
    repository: Option<String>,
    next_page: Option<String>,
    limit: Option<u32>,
}

impl LogParams {
    fn query(&self) -> Result<bulwark_audit::Query, Problem> {
        let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
        Ok(bulwark_audit::Query {
            kinds: self
                .kind
                .iter()
                .flat_map(|k| k.split(','))
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            actor: self.performer.clone(),
            repository: self.repository.clone(),
            since: time(&self.starttime).map_err(problem)?,
            until: time(&self.endtime).map_err(problem)?,
        })
    }
}

/// The stored log, or 404 when the registry runs without it (`audit.enabled = false`).
fn stored_log(state: &AppState) -> Result<std::sync::Arc<dyn AuditStore>, Problem> {
    state
        .action_log
        .clone()
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "the action log is off"))
}

fn problem(e: AuditError) -> Problem {
    match e {
        AuditError::BadCursor | AuditError::BadTime(_) => {
            Problem::new(StatusCode::BAD_REQUEST, e.to_string())
        }
        e => {
            tracing::error!(error = %e, "reading the action log failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
}

async fn logs(state: &AppState, scope: Scope, params: &LogParams) -> Result<Response, Problem> {
    let store = stored_log(state)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let page = bulwark_audit::search::search(
        store.as_ref(),
        &scope,
        &params.query()?,
        params.next_page.as_deref(),
        limit,
    )
    .await
    .map_err(problem)?;
    Ok(axum::Json(page).into_response())
}

async fn aggregate(
    state: &AppState,
    scope: Scope,
    params: &LogParams,
) -> Result<Response, Problem> {
    let store = stored_log(state)?;
    let aggregated = bulwark_audit::search::aggregate(store.as_ref(), &scope, &params.query()?)
        .await
        .map_err(problem)?;
    Ok(axum::Json(serde_json::json!({ "aggregated": aggregated })).into_response())
}

async fn repository_scope(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
) -> Result<Scope, Problem> {
    let name = format!("{ns}/{repo}");
    require(state, caller, Resource::Repository(&name), Action::Admin).await?;
    Ok(Scope::Repository(name))
}

async fn organization_scope(
    state: &AppState,
    caller: &Caller,
    org: String,
) -> Result<Scope, Problem> {
    require(state, caller, Resource::Namespace(&org), Action::Admin).await?;
    Ok(Scope::Namespace(org))
}

async fn user_scope(state: &AppState, caller: &Caller) -> Result<Scope, Problem> {
    require_self(state, caller).await?;
    Ok(Scope::Account(caller.identity.name().to_owned()))
}

async fn superuser_scope(state: &AppState, caller: &Caller) -> Result<Scope, Problem> {
    require(state, caller, Resource::Registry, Action::Superuser).await?;
    Ok(Scope::All)
}

/// `GET /api/v1/repository/{ns}/{repo}/logs`
pub(crate) async fn repository(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = repository_scope(&state, &caller, &ns, &repo).await?;
    logs(&state, scope, &params).await
}

/// `GET /api/v1/repository/{ns}/{repo}/aggregatelogs`
pub(crate) async fn repository_aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = repository_scope(&state, &caller, &ns, &repo).await?;
    aggregate(&state, scope, &params).await
}

/// `GET /api/v1/organization/{org}/logs`
pub(crate) async fn organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = organization_scope(&state, &caller, org).await?;
    logs(&state, scope, &params).await
}

/// `GET /api/v1/organization/{org}/aggregatelogs`
pub(crate) async fn organization_aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = organization_scope(&state, &caller, org).await?;
    aggregate(&state, scope, &params).await
}

/// `GET /api/v1/user/logs`
pub(crate) async fn user(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = user_scope(&state, &caller).await?;
    logs(&state, scope, &params).await
}

/// `GET /api/v1/user/aggregatelogs`
pub(crate) async fn user_aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = user_scope(&state, &caller).await?;
    aggregate(&state, scope, &params).await
}

/// `GET /api/v1/superuser/logs`
pub(crate) async fn superuser(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = superuser_scope(&state, &caller).await?;
    logs(&state, scope, &params).await
}

/// `GET /api/v1/superuser/aggregatelogs`
pub(crate) async fn superuser_aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<LogParams>,
) -> Result<Response, Problem> {
    let scope = superuser_scope(&state, &caller).await?;
    aggregate(&state, scope, &params).await
}
