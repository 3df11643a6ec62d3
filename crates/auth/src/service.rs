//! The authentication service: credentials in, identities and registry tokens out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bulwark_events::EventSink;
use bulwark_meta::IdentityStore;

use crate::scope::Scope;
use crate::{Action, AuthError, Identity, Resource};

/// Where credentials were presented: real passwords may be refused on the registry API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `/v2/…` and the token endpoint.
    Registry,
    /// `/api/v1/…`.
    Management,
}

/// The caller's address and user agent, for rate limits and events.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Anonymous callers may pull public repositories and see them in the catalog.
    pub anonymous_access: bool,
    /// Anyone may create a user account through the API.
    pub user_creation: bool,
    /// Refuse users' real passwords on the registry API (`Channel::Registry`); app tokens,
    /// robot tokens and refresh tokens still work.
    pub tokens_only_on_registry: bool,
    /// `iss` of issued tokens, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of issued tokens (the `service` of the challenge), and the only audience
    /// accepted.
    pub service: String,
    /// Lifetime of registry bearer tokens.
    pub token_ttl: Duration,
    /// Lifetime of refresh tokens (`offline_token=true`).
    pub refresh_ttl: Duration,
    /// Failed logins allowed per account and per address before backoff starts.
    pub login_failures_before_backoff: u32,
    /// Longest backoff after repeated failures.
    pub max_login_backoff: Duration,
}

/// A verified registry bearer token: who it was issued to and what it grants.
#[derive(Clone, Debug)]
pub struct RegistryToken {
    pub identity: Identity,
    /// Granted scopes (actions already intersected with what the caller may do).
    pub access: Vec<Scope>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl RegistryToken {
    /// Whether the token grants `action` (`pull`, `push`, `delete`) on `repository`.
    pub fn allows(&self, repository: &str, action: &str) -> bool {
        todo!("{repository} {action}")
    }
}

/// The token endpoint's answer (Docker token spec and its OAuth2 variant).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    /// RFC 3339.
    pub issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space-separated (OAuth2).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

pub struct Authenticator {
    store: Arc<dyn IdentityStore>,
    events: Arc<dyn EventSink>,
    settings: AuthSettings,
}

impl Authenticator {
    /// Loads the signing keys, generating and persisting the first one if there is none.
    pub async fn new(
        store: Arc<dyn IdentityStore>,
        events: Arc<dyn EventSink>,
        settings: AuthSettings,
    ) -> Result<Authenticator, AuthError> {
        Ok(Authenticator {
            store,
            events,
            settings,
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    pub fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
    }

    /// Username + password (Basic auth on `/v2`, the token endpoint, or `/api/v1`). The
    /// password may be the user's password, an application token (username: the user's
    /// name or `$app`), or a robot token (username `ns+name`). Rate-limited per account and
    /// per address; emits `login.success` / `login.failure`.
    pub async fn authenticate_basic(
        &self,
        username: &str,
        password: &str,
        channel: Channel,
        client: &ClientInfo,
    ) -> Result<Identity, AuthError> {
        todo!("{username} {password} {channel:?} {client:?}")
    }

    /// A bearer API token on `/api/v1`.
    pub async fn authenticate_api_token(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Identity, AuthError> {
        todo!("{token} {client:?}")
    }

    /// A registry bearer token on `/v2`: signature (ES256 only, known `kid`), issuer,
    /// audience, expiry and not-before checked. No database access (cached by token).
    pub fn verify_registry_token(&self, token: &str) -> Result<RegistryToken, AuthError> {
        todo!("{token}")
    }

    /// The authorization decision.
    pub async fn authorize(
        &self,
        identity: &Identity,
        resource: Resource<'_>,
        action: Action,
    ) -> Result<bool, AuthError> {
        todo!("{identity:?} {resource:?} {action:?}")
    }

    /// Issues a registry token granting, for each requested scope, the requested actions the
    /// identity may perform (possibly none). With `offline`, also a refresh token bound to
    /// the credential used. Emits `token.issued`.
    pub async fn issue_registry_token(
        &self,
        identity: &Identity,
        requested: &[Scope],
        offline: bool,
        client: &ClientInfo,
    ) -> Result<TokenResponse, AuthError> {
        todo!("{identity:?} {requested:?} {offline} {client:?}")
    }

    /// The identity a refresh token was issued to, if its credential is still valid.
    pub async fn redeem_refresh_token(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<Identity, AuthError> {
        todo!("{refresh_token} {client:?}")
    }

    /// Repository names the identity may pull, after `last`, up to `limit`.
    pub async fn visible_repositories(
        &self,
        identity: &Identity,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, AuthError> {
        todo!("{identity:?} {last:?} {limit}")
    }

    /// The public keys as a JWK set, for verifiers outside Bulwark.
    pub fn jwks(&self) -> serde_json::Value {
        todo!()
    }
}
