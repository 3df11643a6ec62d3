//! Namespace quotas with Quay's paths and shapes: `…/organization/{org}/quota[/{id}[/limit
//! [/{limit_id}]]]` (members read, superusers change), `…/user/quota[/{id}]` (the caller's
//! own namespace), and the superuser's `…/superuser/{organization,users}/{namespace}/quota
//! [/{id}]`, the way to set a user's quota. Quotas are `{"id", "limit_bytes", "limits":
//! [{"id", "type": "Warning"|"Reject", "limit_percent"}], "quota_report": {"quota_bytes",
//! "configured_quota"}}`; new limits are `{"type", "threshold_percent"}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_registry::{QuotaLimitChange, QuotaView, parse_kind};
use serde::Deserialize;

use super::extract::{Json, Path};
use super::require_self;
use super::tags::origin;
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

#[derive(Deserialize)]
pub(crate) struct NewQuota {
    limit_bytes: u64,
}

#[derive(Deserialize)]
pub(crate) struct QuotaChange {
    limit_bytes: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct NewLimit {
    #[serde(rename = "type")]
    kind: String,
    threshold_percent: u8,
}

#[derive(Deserialize)]
pub(crate) struct LimitChange {
    #[serde(rename = "type")]
    kind: Option<String>,
    threshold_percent: Option<u8>,
}

/// Which account a namespace in a path must be.
#[derive(Clone, Copy)]
enum Kind {
    Organization,
    User,
}

/// The namespace's quotas: none or one (Quay's list).
async fn list(state: &AppState, namespace: &str) -> Result<Response, Problem> {
    let quotas: Vec<QuotaView> = state.registry.quota(namespace).await?.into_iter().collect();
    Ok(axum::Json(quotas).into_response())
}

/// Creates the namespace's quota, once it is known to be an account of `kind`.
async fn create(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    kind: Kind,
    body: NewQuota,
) -> Result<Response, Problem> {
    match kind {
        Kind::Organization => state.accounts.organization(namespace).await?,
        Kind::User => state.accounts.user(namespace).await?,
    };
    let quota = state
        .registry
        .create_quota(
            namespace,
            body.limit_bytes,
            caller.identity.actor(),
            origin(caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(quota)).into_response())
}

async fn update(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    id: i64,
    body: QuotaChange,
) -> Result<Response, Problem> {
    let quota = match body.limit_bytes {
        Some(bytes) => {
            state
                .registry
                .set_quota_bytes(
                    namespace,
                    id,
                    bytes,
                    caller.identity.actor(),
                    origin(caller),
                )
                .await?
        }
        None => state.registry.quota_with_id(namespace, id).await?,
    };
    Ok(axum::Json(quota).into_response())
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    id: i64,
) -> Result<StatusCode, Problem> {
    state
        .registry
        .delete_quota(namespace, id, caller.identity.actor(), origin(caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/organization/{org}/quota`: for members of the organization.
pub(crate) async fn org_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    list(&state, &org).await
}

/// `POST /api/v1/organization/{org}/quota` and `/api/v1/superuser/organization/{org}/quota`:
/// superusers only (an organization's admins must not raise their own quota).
pub(crate) async fn org_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<NewQuota>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    create(&state, &caller, &org, Kind::Organization, body).await
}

/// `GET /api/v1/organization/{org}/quota/{id}`.
pub(crate) async fn org_get(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, i64)>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(axum::Json(state.registry.quota_with_id(&org, id).await?).into_response())
}

/// `GET /api/v1/organization/{org}/quota/{id}/limit`.
pub(crate) async fn org_limits(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, i64)>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(axum::Json(state.registry.quota_with_id(&org, id).await?.limits).into_response())
}

/// `POST /api/v1/organization/{org}/quota/{id}/limit`: `{"type": "Warning"|"Reject",
/// "threshold_percent": N}`.
pub(crate) async fn org_add_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, i64)>,
    Json(body): Json<NewLimit>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let limit = state
        .registry
        .add_quota_limit(
            &org,
            id,
            parse_kind(&body.kind)?,
            body.threshold_percent,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(limit)).into_response())
}

/// `GET /api/v1/organization/{org}/quota/{id}/limit/{limit_id}`.
pub(crate) async fn org_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id, limit_id)): Path<(String, i64, i64)>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(axum::Json(state.registry.quota_limit(&org, id, limit_id).await?).into_response())
}

/// `PUT /api/v1/organization/{org}/quota/{id}/limit/{limit_id}`: the quota, as Quay
/// answers.
pub(crate) async fn org_update_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id, limit_id)): Path<(String, i64, i64)>,
    Json(body): Json<LimitChange>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let change = QuotaLimitChange {
        kind: body.kind.as_deref().map(parse_kind).transpose()?,
        threshold_percent: body.threshold_percent,
    };
    let quota = state
        .registry
        .update_quota_limit(
            &org,
            id,
            limit_id,
            change,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(axum::Json(quota).into_response())
}

/// `DELETE /api/v1/organization/{org}/quota/{id}/limit/{limit_id}`.
pub(crate) async fn org_delete_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id, limit_id)): Path<(String, i64, i64)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    state
        .registry
        .delete_quota_limit(&org, id, limit_id, caller.identity.actor(), origin(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/user/quota`: the caller's own namespace.
pub(crate) async fn user_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let id = require_self(&state, &caller).await?;
    let account = state.accounts.account(id).await?;
    list(&state, &account.name).await
}

/// `GET /api/v1/user/quota/{id}`.
pub(crate) async fn user_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, Problem> {
    let account = require_self(&state, &caller).await?;
    let account = state.accounts.account(account).await?;
    Ok(axum::Json(state.registry.quota_with_id(&account.name, id).await?).into_response())
}

/// `GET /api/v1/superuser/{organization,users}/{namespace}/quota`.
pub(crate) async fn super_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    list(&state, &namespace).await
}

/// `PUT /api/v1/{organization/{org},superuser/{organization,users}/{namespace}}/quota/{id}`:
/// `{"limit_bytes": N}`, superusers only.
pub(crate) async fn super_update(
    State(state): State<AppState>,
    caller: Caller,
    Path((namespace, id)): Path<(String, i64)>,
    Json(body): Json<QuotaChange>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    update(&state, &caller, &namespace, id, body).await
}

/// `DELETE /api/v1/{organization/{org},superuser/{organization,users}/{namespace}}/quota/{id}`:
/// with its limits, superusers only.
pub(crate) async fn super_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((namespace, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    delete(&state, &caller, &namespace, id).await
}

/// `POST /api/v1/superuser/users/{namespace}/quota`.
pub(crate) async fn super_user_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(namespace): Path<String>,
    Json(body): Json<NewQuota>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    create(&state, &caller, &namespace, Kind::User, body).await
}
