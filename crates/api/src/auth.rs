//! Who is calling: credentials from the `Authorization` header become an identity, and the
//! authorization decision (in `bulwark-auth`) is asked through [`require`] (management API)
//! or [`V2Caller::may`] (registry API). Nothing else in this crate decides access.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use bulwark_auth::{Action, AuthError, Channel, ClientInfo, Identity, RegistryToken, Resource};
use bulwark_oci::ErrorCode;

use crate::AppState;
use crate::error::ApiError;
use crate::problem::Problem;

/// Credentials as sent.
enum Presented {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

fn presented(headers: &HeaderMap) -> Result<Presented, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Presented::None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidCredentials)?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::InvalidCredentials)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::InvalidCredentials)?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or(AuthError::InvalidCredentials)?;
        Ok(Presented::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Presented::Bearer(rest.to_owned()))
    } else {
        Err(AuthError::InvalidCredentials)
    }
}

/// The caller's address (from the connection) and user agent.
pub(crate) fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        address: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

/// Basic credentials sent with a request, if any (the token endpoint's login).
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, AuthError> {
    match presented(headers)? {
        Presented::Basic { username, password } => Ok(Some((username, password))),
        Presented::None => Ok(None),
        Presented::Bearer(_) => Err(AuthError::InvalidCredentials),
    }
}

/// A caller of the management API.
pub(crate) struct Caller {
    pub identity: Identity,
    pub client: ClientInfo,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let client = client_info(parts);
        let identity = match presented(&parts.headers)? {
            Presented::None => Identity::anonymous(),
            Presented::Basic { username, password } => {
                state
                    .auth
                    .authenticate_basic(&username, &password, Channel::Management, &client)
                    .await?
            }
            Presented::Bearer(token) => state.auth.authenticate_api_token(&token, &client).await?,
        };
        Ok(Caller { identity, client })
    }
}

/// The authorization check of every management route: 401 for anonymous callers (so that
/// clients know to authenticate), 403 for authenticated ones.
pub(crate) async fn require(
    state: &AppState,
    caller: &Caller,
    resource: Resource<'_>,
    action: Action,
) -> Result<(), Problem> {
    if state
        .auth
        .authorize(&caller.identity, resource, action)
        .await?
    {
        Ok(())
    } else if caller.identity.account_id().is_none() {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "authentication required",
        ))
    } else {
        Err(Problem::new(StatusCode::FORBIDDEN, "access denied"))
    }
}

/// A caller of the registry API: an identity, and the registry token it presented, if any
/// (whose grants then replace a decision per request).
#[derive(Clone)]
pub(crate) struct V2Caller {
    pub identity: Identity,
    token: Option<RegistryToken>,
    /// Whether any credentials were presented (an anonymous request gets a challenge).
    authenticated: bool,
}

impl V2Caller {
    pub(crate) async fn from_request(
        state: &AppState,
        parts: &Parts,
    ) -> Result<V2Caller, ApiError> {
        let client = client_info(parts);
        let presented =
            presented(&parts.headers).map_err(|e| challenge_error(state, parts, None, e))?;
        let (identity, token, authenticated) = match presented {
            Presented::None => (Identity::anonymous(), None, false),
            Presented::Basic { username, password } => {
                let identity = state
                    .auth
                    .authenticate_basic(&username, &password, Channel::Registry, &client)
                    .await
                    .map_err(|e| challenge_error(state, parts, None, e))?;
                (identity, None, true)
            }
            Presented::Bearer(token) => {
                let token = state
                    .auth
                    .verify_registry_token(&token)
                    .map_err(|e| challenge_error(state, parts, None, e))?;
                (token.identity.clone(), Some(token), true)
            }
        };
        Ok(V2Caller {
            identity,

            token,
            authenticated,
        })
    }

    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the caller may perform `action` on `repository`.
    pub(crate) async fn may(
        &self,
        state: &AppState,
        repository: &str,
        action: Action,
    ) -> Result<bool, ApiError> {
        match &self.token {
            Some(token) => Ok(token.allows(repository, token_action(action))),
            None => Ok(state
                .auth
                .authorize(&self.identity, Resource::Repository(repository), action)
                .await?),
        }
    }

    /// Whether the caller may see the catalog (registry tokens must carry that scope).
    pub(crate) fn may_list_catalog(&self) -> bool {
        match &self.token {
            Some(token) => token
                .access
                .iter()
                .any(|s| s.kind == "registry" && s.name == "catalog" && !s.actions.is_empty()),
            None => true,
        }
    }

    /// The refusal of `action` on `repository`: a challenge naming the scope to ask for when
    /// a token could help (anonymous callers, tokens lacking the scope), 403 otherwise.
    pub(crate) fn refuse(
        &self,
        state: &AppState,
        parts: &Parts,
        scope: Option<String>,
    ) -> ApiError {
        if self.token.is_none() && self.authenticated {
            return ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, "access denied");
        }
        challenge(
            state,
            parts,
            scope,
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "authentication required",
            ),
        )
    }
}

/// The Docker token protocol's name of an action.
fn token_action(action: Action) -> &'static str {
    match action {
        Action::Push => "push",
        Action::Delete => "delete",
        _ => "pull",
    }
}

/// An authentication failure on `/v2`: 429 for rate limits, otherwise 401 with a challenge.
fn challenge_error(
    state: &AppState,
    parts: &Parts,
    scope: Option<String>,
    e: AuthError,
) -> ApiError {
    match e {
        AuthError::RateLimited(_) | AuthError::Meta(_) | AuthError::Crypto(_) => e.into(),
        e => challenge(state, parts, scope, e.into()),
    }
}

/// The scope a client must ask the token service for to perform `action` on `repository`.
pub(crate) fn repository_scope(repository: &str, action: Action) -> String {
    let actions = match action {
        // Clients pushing also read (mounts, existence checks): ask for both at once.
        Action::Push => "pull,push",
        other => token_action(other),
    };
    format!("repository:{repository}:{actions}")
}

pub(crate) const CATALOG_SCOPE: &str = "registry:catalog:*";

/// Adds `WWW-Authenticate: Bearer realm=…,service=…[,scope=…]` to `err`.
fn challenge(state: &AppState, parts: &Parts, scope: Option<String>, err: ApiError) -> ApiError {
    let mut value = format!(
        "Bearer realm=\"{}/v2/auth\",service=\"{}\"",
        state.external_url(parts),
        state.auth.settings().service
    );
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    match HeaderValue::from_str(&value) {
        Ok(v) => err.with_header(header::WWW_AUTHENTICATE, v),
        Err(_) => err,
    }
}
