//! `/v2/auth`: the Docker registry token endpoint. `GET` with optional Basic credentials
//! (the Docker token specification, with `offline_token` refresh tokens) and `POST` with a
//! form (the OAuth2 variant containerd uses: `grant_type=password|refresh_token`). What a
//! token grants is decided by `Authenticator::issue_registry_token`.

use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_auth::scope::Scope;
use bulwark_auth::{AuthError, Channel, ClientInfo, Identity, TokenResponse};

use crate::AppState;
use crate::auth::{basic_credentials, client_info};
use crate::error::ApiError;

/// Query or form parameters, in order, repeated keys kept (`scope` may repeat).
type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every requested scope: `scope` may repeat and each may hold several, space-separated.
fn scopes(params: &Params) -> Result<Vec<Scope>, AuthError> {
    let mut scopes = Vec::new();
    for (_, value) in params.iter().filter(|(k, _)| k == "scope") {
        for one in value.split_whitespace() {
            scopes.push(Scope::parse(one)?);
        }
    }
    // Bound the work a single request can ask for.
    if scopes.len() > 64 {
        return Err(AuthError::Invalid("too many scopes".into()));
    }
    Ok(scopes)
}

fn check_service(state: &AppState, params: &Params) -> Result<(), AuthError> {
    match param(params, "service") {
        Some(service) if service != state.auth.settings().service => Err(AuthError::Invalid(
            format!("this token service is {:?}", state.auth.settings().service),
        )),
        _ => Ok(()),
    }
}

fn token_json(token: TokenResponse) -> Response {
    let mut resp = Json(token).into_response();
    // Tokens are credentials: never cached by intermediaries.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /v2/auth?service=…&scope=…[&offline_token=true]`.
pub async fn get(
    State(state): State<AppState>,
    parts: Parts,
    Query(params): Query<Params>,
) -> Response {
    let client = client_info(&parts);
    match get_token(&state, &parts.headers, &params, &client).await {
        Ok(token) => token_json(token),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn get_token(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    client: &ClientInfo,
) -> Result<TokenResponse, AuthError> {
    check_service(state, params)?;
    let requested = scopes(params)?;
    let identity = match basic_credentials(headers)? {
        Some((username, password)) => {
            state
                .auth
                .authenticate_basic(&username, &password, Channel::Registry, client)
                .await?
        }
        None => Identity::anonymous(),
    };
    let offline = param(params, "offline_token") == Some("true");
    state
        .auth
        .issue_registry_token(&identity, &requested, offline, client)
        .await
}

/// `POST /v2/auth` with `grant_type=password` (`username`, `password`) or
/// `grant_type=refresh_token` (`refresh_token`), `service`, `scope`, `access_type=offline`.
pub async fn post(
    State(state): State<AppState>,
    parts: Parts,
    Form(params): Form<Params>,
) -> Response {
    let client = client_info(&parts);
    match post_token(&state, &params, &client).await {
        Ok(token) => token_json(token),
        Err(e) => oauth_error(e),
    }
}

async fn post_token(
    state: &AppState,
    params: &Params,
    client: &ClientInfo,
) -> Result<TokenResponse, AuthError> {
    check_service(state, params)?;
    let requested = scopes(params)?;
    let (identity, offline) = match param(params, "grant_type") {
        Some("password") => {
            let username = param(params, "username").unwrap_or_default();
            let password = param(params, "password").unwrap_or_default();
            let identity = state
                .auth
                .authenticate_basic(username, password, Channel::Registry, client)
                .await?;
            (identity, param(params, "access_type") == Some("offline"))
        }
        Some("refresh_token") => {
            let refresh = param(params, "refresh_token").unwrap_or_default();
            let identity = state.auth.redeem_refresh_token(refresh, client).await?;
            (identity, true)
        }
        other => {
            return Err(AuthError::Invalid(format!(
                "unsupported grant_type {:?}",
                other.unwrap_or("")
            )));
        }
    };
    state
        .auth
        .issue_registry_token(&identity, &requested, offline, client)
        .await
}

/// RFC 6749 §5.2 error responses.
fn oauth_error(e: AuthError) -> Response {
    let (status, code) = match &e {
        AuthError::InvalidCredentials
        | AuthError::InvalidToken(_)
        | AuthError::CredentialRefused(_) => (StatusCode::UNAUTHORIZED, "invalid_grant"),
        AuthError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "invalid_grant"),
        AuthError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        AuthError::Denied => (StatusCode::FORBIDDEN, "access_denied"),
        _ => return ApiError::from(e).into_response(),
    };
    let mut resp = (
        status,
        Json(serde_json::json!({ "error": code, "error_description": e.to_string() })),
    )
        .into_response();
    if let AuthError::RateLimited(secs) = e {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}
