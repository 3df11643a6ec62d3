//! The caller's application tokens (`/api/v1/user/apptoken…`, Quay's shapes: passwords for
//! registry clients) and API tokens (`/api/v1/user/apitoken…`: bearer tokens of this API,
//! limited to scopes). A token string appears only in the answer that creates it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::scope::ApiScopes;
use bulwark_meta::TokenRecord;
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use super::{no_store, require_self};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;

/// Quay's application token view. Times in milliseconds since the Unix epoch.
#[derive(Serialize)]
struct AppTokenView {
    uuid: String,
    title: String,
    created: i64,
    last_accessed: Option<i64>,
    expiration: Option<i64>,
    revoked: Option<i64>,
}

impl From<TokenRecord> for AppTokenView {
    fn from(t: TokenRecord) -> Self {
        AppTokenView {
            uuid: t.id,
            title: t.name,
            created: t.created_at,
            last_accessed: t.last_used_at,
            expiration: t.expires_at,
            revoked: t.revoked_at,
        }
    }
}

#[derive(Serialize)]
struct AppTokenList {
    tokens: Vec<AppTokenView>,
}

#[derive(Serialize)]
struct OneToken<T> {
    token: T,
}

/// The created token with its secret (Quay's `token_code`).
#[derive(Serialize)]
struct AppTokenWithCode {
    #[serde(flatten)]
    view: AppTokenView,
    token_code: String,
}

/// `GET /api/v1/user/apptoken`.
pub(crate) async fn app_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let tokens = state.accounts.app_tokens(&caller.identity).await?;
    Ok(axum::Json(AppTokenList {
        tokens: tokens.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct NewAppToken {
    #[serde(alias = "name")]
    title: String,
    /// Milliseconds since the Unix epoch.
    expiration: Option<i64>,
}

/// `POST /api/v1/user/apptoken`.
pub(crate) async fn app_create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewAppToken>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let (record, token) = state
        .accounts
        .create_app_token(
            &caller.identity,
            &caller.client,
            &body.title,
            body.expiration,
        )
        .await?;
    let token = AppTokenWithCode {
        view: record.into(),
        token_code: token,
    };
    Ok(no_store(StatusCode::CREATED, OneToken { token }))
}

/// `GET /api/v1/user/apptoken/{id}` (without the secret, which is not kept).
pub(crate) async fn app_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let token = state.accounts.app_token(&caller.identity, &id).await?;
    Ok(axum::Json(OneToken {
        token: AppTokenView::from(token),
    })
    .into_response())
}

/// `DELETE /api/v1/user/apptoken/{id}`: revokes the token (it stays listed as revoked).
pub(crate) async fn app_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    require_self(&state, &caller).await?;
    state
        .accounts
        .revoke_app_token(&caller.identity, &caller.client, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An API token. Times in milliseconds since the Unix epoch.
#[derive(Serialize)]
struct ApiTokenView {
    id: String,
    name: String,
    /// Space-separated, e.g. `repo:read org:admin`.
    scopes: String,
    created: i64,
    last_accessed: Option<i64>,
    expiration: Option<i64>,
    revoked: Option<i64>,
}

impl From<TokenRecord> for ApiTokenView {
    fn from(t: TokenRecord) -> Self {
        ApiTokenView {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created: t.created_at,
            last_accessed: t.last_used_at,
            expiration: t.expires_at,
            revoked: t.revoked_at,
        }
    }
}

#[derive(Serialize)]
struct ApiTokenList {
    tokens: Vec<ApiTokenView>,
}

#[derive(Serialize)]
struct ApiTokenWithSecret {
    #[serde(flatten)]
    view: ApiTokenView,
    /// `bwp_…`, for `Authorization: Bearer`.
    token: String,
}

/// `GET /api/v1/user/apitoken`.
pub(crate) async fn api_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let tokens = state.accounts.api_tokens(&caller.identity).await?;
    Ok(axum::Json(ApiTokenList {
        tokens: tokens.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct NewApiToken {
    name: String,
    /// Space-separated scopes.
    scopes: String,
    /// Milliseconds since the Unix epoch.
    expiration: Option<i64>,
}

/// `POST /api/v1/user/apitoken`: scopes never beyond the creator's (checked by `Accounts`).
pub(crate) async fn api_create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewApiToken>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let scopes = ApiScopes::parse(&body.scopes)?;
    let (record, token) = state
        .accounts
        .create_api_token(
            &caller.identity,
            &caller.client,
            &body.name,
            &scopes,
            body.expiration,
        )
        .await?;
    let token = ApiTokenWithSecret {
        view: record.into(),
        token,
    };
    Ok(no_store(StatusCode::CREATED, OneToken { token }))
}

/// `DELETE /api/v1/user/apitoken/{id}`: revokes the token (it stays listed as revoked).
pub(crate) async fn api_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    require_self(&state, &caller).await?;
    state
        .accounts
        .revoke_api_token(&caller.identity, &caller.client, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
