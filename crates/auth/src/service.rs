//! The authentication service: credentials in, identities and registry tokens out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_events::{Actor, Event, EventSink, Origin};
use bulwark_meta::{Account, AccountKind, IdentityStore, TokenKind, TokenRecord, now_millis};
use sha2::{Digest, Sha256};

use crate::access::{Policy, decide_namespace, decide_repository, namespace_of};
use crate::cache::{CacheKey, TtlCache};
use crate::jwt::{
    Claims, CredentialClaim, KeyRing, PrincipalClaim, PrivateClaims, TokenUse, unix_now,
};
use crate::limiter::{DEFAULT_CAPACITY, LoginLimiter};
use crate::scope::{ApiScopes, Scope};
use crate::{Action, AuthError, Credential, Identity, Principal, Resource, password, secret};

/// How long a successful password verification is remembered. Short: it only spares
/// clients that send Basic auth with every request from paying Argon2 each time.
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
const PASSWORD_CACHE_CAPACITY: usize = 10_000;
const TOKEN_CACHE_CAPACITY: usize = 50_000;
/// A token's last use is written at most this often (not on every request), in milliseconds.
const TOUCH_INTERVAL_MILLIS: i64 = 60_000;
/// Usernames that say "the password is a token".
const APP_TOKEN_USER: &str = "$app";
const API_TOKEN_USER: &str = "$oauthtoken";

/// Where credentials were presented: real passwords may be refused on the registry API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `/v2/…` and the token endpoint.
    Registry,
    /// `/api/v1/…`.
    Management,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Registry => "registry",
            Channel::Management => "management",
        }
    }
}

/// The caller's address and user agent, for rate limits and events.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    fn origin(&self) -> Origin {
        Origin {
            address: self.address,
            user_agent: self.user_agent.clone(),
        }
    }
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
    /// The principal, with `Credential::RegistryToken`.
    pub identity: Identity,
    /// Granted scopes (actions already intersected with what the caller may do).
    pub access: Vec<Scope>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// The credential the token was issued on (`password`, `app_token`, `robot_token`,
    /// `api_token`, or empty for anonymous callers), for the action log.
    pub issued_via: String,
}

impl RegistryToken {
    /// Whether the token grants `action` (`pull`, `push`, `delete`) on `repository`.
    pub fn allows(&self, repository: &str, action: &str) -> bool {
        self.access.iter().any(|s| {
            s.kind == "repository" && s.name == repository && s.actions.iter().any(|a| a == action)
        })
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

/// What a Basic-auth password turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presented {
    Password,
    AppToken,
    ApiToken,
    RobotToken,
}

impl Presented {
    fn classify(username: &str, password: &str) -> Presented {
        if username.contains('+') {
            Presented::RobotToken
        } else if username == APP_TOKEN_USER || secret::is_app_token(password) {
            Presented::AppToken
        } else if username == API_TOKEN_USER {
            Presented::ApiToken
        } else {
            Presented::Password
        }
    }

    /// As `Actor::credential`.
    fn as_str(self) -> &'static str {
        match self {
            Presented::Password => "password",
            Presented::AppToken => "app_token",
            Presented::ApiToken => "api_token",
            Presented::RobotToken => "robot_token",
        }
    }
}

pub struct Authenticator {
    store: Arc<dyn IdentityStore>,
    events: Arc<dyn EventSink>,
    settings: AuthSettings,
    keys: KeyRing,
    limiter: LoginLimiter,
    /// SHA-256(stored PHC string ‖ password) of recent successful verifications.
    passwords: TtlCache<()>,
    /// SHA-256(token) of verified registry tokens, until their expiry.
    tokens: TtlCache<RegistryToken>,
}

impl Authenticator {
    /// Loads the signing keys, generating and persisting the first one if there is none.
    pub async fn new(
        store: Arc<dyn IdentityStore>,
        events: Arc<dyn EventSink>,
        settings: AuthSettings,
    ) -> Result<Authenticator, AuthError> {
        let keys = KeyRing::load(store.clone()).await?;
        Ok(Authenticator {
            limiter: LoginLimiter::new(
                settings.login_failures_before_backoff,
                settings.max_login_backoff,
                DEFAULT_CAPACITY,
            ),
            store,
            events,
            settings,
            keys,
            passwords: TtlCache::new(PASSWORD_CACHE_CAPACITY),
            tokens: TtlCache::new(TOKEN_CACHE_CAPACITY),
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The signing keys (action-log checkpoints are signed with them too).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    pub fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
    }

    fn policy(&self) -> Policy {
        Policy {
            anonymous_access: self.settings.anonymous_access,
        }
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
        let presented = Presented::classify(username, password);
        let attempt = Attempt {
            username,
            credential: presented.as_str(),
            channel,
            client,
        };
        if presented == Presented::Password
            && channel == Channel::Registry
            && self.settings.tokens_only_on_registry
        {
            self.login_failed(&attempt, "passwords refused on the registry API");
            return Err(AuthError::CredentialRefused(
                "passwords are not accepted on the registry API: use an application token",
            ));
        }
        // Tokens given with a placeholder username are counted under their id.
        let limit_key = match presented {
            Presented::AppToken if username == APP_TOKEN_USER => {
                secret::parse_token(TokenKind::App, password).map_or(username, |(id, _)| id)
            }
            Presented::ApiToken => {
                secret::parse_token(TokenKind::Api, password).map_or(username, |(id, _)| id)
            }
            _ => username,
        };
        self.rate_limit(limit_key, &attempt)?;
        let result = match presented {
            Presented::Password => self.check_password(username, password).await,
            Presented::RobotToken => self.check_robot_token(username, password).await,
            Presented::AppToken => self.check_app_token(username, password).await,
            Presented::ApiToken => self.check_api_token(password).await,
        };
        self.conclude(limit_key, &attempt, result)
    }

    /// A bearer API token on `/api/v1`.
    pub async fn authenticate_api_token(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Identity, AuthError> {
        let limit_key =
            secret::parse_token(TokenKind::Api, token).map_or(API_TOKEN_USER, |(id, _)| id);
        let attempt = Attempt {
            username: "",
            credential: Presented::ApiToken.as_str(),
            channel: Channel::Management,
            client,
        };
        self.rate_limit(limit_key, &attempt)?;
        let result = self.check_api_token(token).await;
        self.conclude(limit_key, &attempt, result)
    }

    fn rate_limit(&self, key: &str, attempt: &Attempt<'_>) -> Result<(), AuthError> {
        self.limiter
            .check(key, attempt.client.address, Instant::now())
            .map_err(|wait| {
                self.login_failed(attempt, "rate limited");
                // Round up: retrying after the announced time must succeed.
                AuthError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            })
    }

    /// Counts and reports the outcome of a verification.
    fn conclude(
        &self,
        limit_key: &str,
        attempt: &Attempt<'_>,
        result: Result<Identity, AuthError>,
    ) -> Result<Identity, AuthError> {
        match &result {
            Ok(identity) => {
                self.limiter.record_success(limit_key);
                self.events.emit(
                    Event::new("login.success", identity.actor(), attempt.client.origin())
                        .details(serde_json::json!({ "channel": attempt.channel.as_str() })),
                );
            }
            Err(AuthError::InvalidCredentials) => {
                self.limiter
                    .record_failure(limit_key, attempt.client.address, Instant::now());
                self.login_failed(attempt, "invalid credentials");
            }
            // Server faults are not the caller's failures.
            Err(_) => {}
        }
        result
    }

    fn login_failed(&self, attempt: &Attempt<'_>, reason: &str) {
        let actor = Actor {
            kind: if attempt.username.contains('+') {
                "robot"
            } else {
                "user"
            }
            .into(),
            name: attempt.username.into(),
            credential: attempt.credential.into(),
        };
        self.events.emit(
            Event::new("login.failure", actor, attempt.client.origin()).details(
                serde_json::json!({
                    "channel": attempt.channel.as_str(),
                    "reason": reason,
                }),
            ),
        );
    }

    async fn check_password(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        let record = self
            .store
            .password_record(username)
            .await?
            .filter(|r| r.account.kind == AccountKind::User);
        let stored = record.as_ref().and_then(|r| r.password_hash.clone());
        let enabled = record.as_ref().is_some_and(|r| r.account.enabled);
        let verified = self.password_matches(stored, password, enabled).await?;
        let Some(record) = record.filter(|r| verified && r.account.enabled) else {
            return Err(AuthError::InvalidCredentials);
        };
        Ok(Identity {
            principal: user_principal(&record.account),
            credential: Credential::Password,
        })
    }

    /// Whether `password` matches the PHC string `stored`; without one (an unknown user, or
    /// one without a password) it costs a verification too and fails. Successes of enabled
    /// accounts are cached by (stored hash, password), recorded before the Argon2 slot is
    /// released, so a request that queued behind the same credentials finds the result.
    async fn password_matches(
        &self,
        stored: Option<String>,
        password: &str,
        cacheable: bool,
    ) -> Result<bool, AuthError> {
        let key = stored.as_deref().map(|s| password_cache_key(s, password));
        let cached = || {
            key.as_ref()
                .is_some_and(|key| self.passwords.get(key, Instant::now()).is_some())
        };
        if cached() {
            return Ok(true);
        }
        let slot = password::slot().await;
        if cached() {
            return Ok(true);
        }
        let password = password.to_owned();
        let verified = slot
            .run(move || match stored {
                Some(stored) => password::verify_password(&password, &stored),
                None => password::verify_dummy(&password),
            })
            .await?;
        if let (true, true, Some(key)) = (verified, cacheable, key) {
            let now = Instant::now();
            self.passwords
                .insert(key, (), now + PASSWORD_CACHE_TTL, now);
        }
        drop(slot);
        Ok(verified)
    }

    async fn check_robot_token(&self, username: &str, token: &str) -> Result<Identity, AuthError> {
        let record = self.store.robot_record(username).await?;
        let secret = secret::parse_robot_token(token);
        match (record, secret) {
            (Some(record), Some(secret))
                if secret::secret_matches(secret, &record.token_hash)
                    && record.account.enabled
                    && record.account.kind == AccountKind::Robot =>
            {
                Ok(Identity {
                    principal: robot_principal(&record.account)?,
                    credential: Credential::RobotToken,
                })
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    async fn check_app_token(&self, username: &str, token: &str) -> Result<Identity, AuthError> {
        let (record, account) = self.live_token(TokenKind::App, token).await?;
        if username != APP_TOKEN_USER && username != account.name {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(Identity {
            principal: user_principal(&account),
            credential: Credential::AppToken(record.id),
        })
    }

    async fn check_api_token(&self, token: &str) -> Result<Identity, AuthError> {
        let (record, account) = self.live_token(TokenKind::Api, token).await?;
        Ok(Identity {
            principal: user_principal(&account),
            credential: Credential::ApiToken {
                scopes: stored_scopes(&record)?,
                id: record.id,
            },
        })
    }

    /// The record and enabled user account of an application or API token that matches,
    /// is not revoked and has not expired. Records its use.
    async fn live_token(
        &self,
        kind: TokenKind,
        token: &str,
    ) -> Result<(TokenRecord, Account), AuthError> {
        let (id, secret) = secret::parse_token(kind, token).ok_or(AuthError::InvalidCredentials)?;
        let record = self
            .store
            .token(kind, id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let now = now_millis();
        if !secret::secret_matches(secret, &record.secret_hash) || !token_live(&record, now) {
            return Err(AuthError::InvalidCredentials);
        }
        let account = self.enabled_user(record.account_id).await?;
        if record
            .last_used_at
            .is_none_or(|t| now - t >= TOUCH_INTERVAL_MILLIS)
        {
            self.store.touch_token(kind, &record.id, now).await?;
        }
        Ok((record, account))
    }

    async fn enabled_user(&self, id: i64) -> Result<Account, AuthError> {
        self.store
            .account_by_id(id)
            .await?
            .filter(|a| a.enabled && a.kind == AccountKind::User)
            .ok_or(AuthError::InvalidCredentials)
    }

    /// A registry bearer token on `/v2`: signature (ES256 only, known `kid`), issuer,
    /// audience, expiry and not-before checked. No database access (cached by token), but
    /// for reloading the keys when another node signed with a key this one does not know.
    pub fn verify_registry_token(&self, token: &str) -> Result<RegistryToken, AuthError> {
        let key: CacheKey = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(verified) = self.tokens.get(&key, now) {
            return Ok(verified);
        }
        let claims = self.keys.verify(
            token,
            TokenUse::Access,
            &self.settings.issuer,
            &self.settings.service,
        )?;
        let verified = RegistryToken {
            identity: Identity {
                principal: claims.bulwark.principal.principal(&claims.sub)?,
                credential: Credential::RegistryToken,
            },
            access: claims.access,
            expires_at: claims.exp,
            issued_via: claims.bulwark.credential.kind,
        };
        let remaining = u64::try_from(verified.expires_at - unix_now()).unwrap_or(0);
        self.tokens.insert(
            key,
            verified.clone(),
            now + Duration::from_secs(remaining),
            now,
        );
        Ok(verified)
    }

    /// The authorization decision.
    ///
    /// Identities from registry bearer tokens are authorized by what the token grants
    /// ([`RegistryToken::allows`]), not here.
    pub async fn authorize(
        &self,
        identity: &Identity,
        resource: Resource<'_>,
        action: Action,
    ) -> Result<bool, AuthError> {
        let scopes_permit = || match &identity.credential {
            Credential::ApiToken { scopes, .. } => scopes.permits(resource, action),
            _ => true,
        };
        Ok(match resource {
            Resource::Repository(name) => {
                let facts = self
                    .store
                    .access_facts(identity.account_id(), namespace_of(name), name)
                    .await?;
                decide_repository(identity, &facts, action, self.policy())
            }
            Resource::Namespace(namespace) => {
                let facts = self
                    .store
                    .access_facts(identity.account_id(), namespace, "")
                    .await?;
                decide_namespace(identity, &facts, action)
            }
            // An account's own settings: the user itself (robots have none) or a superuser.
            Resource::Account(id) => {
                action == Action::Manage
                    && (identity.is_superuser()
                        || matches!(identity.principal, Principal::User { id: me, .. } if me == id))
                    && scopes_permit()
            }
            Resource::Registry => {
                action == Action::Superuser && identity.is_superuser() && scopes_permit()
            }
        })
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
        let mut granted = Vec::with_capacity(requested.len());
        for scope in requested {
            match (scope.kind.as_str(), scope.name.as_str()) {
                ("repository", name) => {
                    let facts = self
                        .store
                        .access_facts(identity.account_id(), namespace_of(name), name)
                        .await?;
                    let actions = expand_actions(&scope.actions)
                        .filter(|(_, action)| {
                            decide_repository(identity, &facts, *action, self.policy())
                        })
                        .map(|(word, _)| word.to_owned())
                        .collect();
                    granted.push(Scope {
                        kind: scope.kind.clone(),
                        name: scope.name.clone(),
                        actions,
                    });
                }
                ("registry", "catalog") => {
                    let allowed =
                        scope.actions.iter().any(|a| a == "*") && self.may_list_catalog(identity);
                    granted.push(Scope {
                        kind: scope.kind.clone(),
                        name: scope.name.clone(),
                        actions: if allowed {
                            vec!["*".to_owned()]
                        } else {
                            Vec::new()
                        },
                    });
                }
                // Unknown resource types are granted nothing.
                _ => {}
            }
        }

        let now = unix_now();
        let ttl = self.settings.token_ttl.as_secs().max(1);
        let credential = CredentialClaim {
            kind: identity.actor().credential,
            id: match &identity.credential {
                Credential::AppToken(id) | Credential::ApiToken { id, .. } => Some(id.clone()),
                _ => None,
            },
            generation: None,
        };
        let token = self.keys.sign(&self.claims(
            identity,
            TokenUse::Access,
            now,
            ttl,
            granted.clone(),
            credential,
        )?)?;
        let refresh_token = if offline {
            self.refresh_token(identity, now).await?
        } else {
            None
        };
        let scope_strings: Vec<String> = granted.iter().map(Scope::to_string).collect();
        self.events.emit(
            Event::new("token.issued", identity.actor(), client.origin()).details(
                serde_json::json!({
                    "scopes": scope_strings,
                    "refresh_token": refresh_token.is_some(),
                }),
            ),
        );
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: ttl,
            issued_at: rfc3339(now),
            refresh_token,
            scope: granted
                .iter()
                .filter(|s| !s.actions.is_empty())
                .map(Scope::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        })
    }

    /// Whether `identity` may list the catalog (which shows only what it may pull).
    fn may_list_catalog(&self, identity: &Identity) -> bool {
        if matches!(identity.principal, Principal::Anonymous) {
            return self.settings.anonymous_access;
        }
        match &identity.credential {
            Credential::ApiToken { scopes, .. } => scopes.reads_repositories(),
            _ => true,
        }
    }

    fn claims(
        &self,
        identity: &Identity,
        token_use: TokenUse,
        now: i64,
        ttl: u64,
        access: Vec<Scope>,
        credential: CredentialClaim,
    ) -> Result<Claims, AuthError> {
        Ok(Claims {
            iss: self.settings.issuer.clone(),
            sub: identity.name().to_owned(),
            aud: self.settings.service.clone(),
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            nbf: now,
            iat: now,
            jti: secret::random_string::<16>()?,
            access,
            bulwark: PrivateClaims {
                token_use,
                principal: PrincipalClaim::of(&identity.principal),
                credential,
            },
        })
    }

    /// A refresh token bound to the credential `identity` authenticated with, if that
    /// credential can be re-checked later (not for anonymous callers or bearer tokens).
    async fn refresh_token(
        &self,
        identity: &Identity,
        now: i64,
    ) -> Result<Option<String>, AuthError> {
        let kind = identity.actor().credential;
        let (id, generation) = match &identity.credential {
            Credential::Password => {
                let record = self.store.password_record(identity.name()).await?;
                let generation = record
                    .filter(|r| Some(r.account.id) == identity.account_id())
                    .ok_or(AuthError::InvalidCredentials)?
                    .credential_generation;
                (None, Some(generation))
            }
            Credential::RobotToken => {
                let record = self.store.robot_record(identity.name()).await?;
                let generation = record
                    .filter(|r| Some(r.account.id) == identity.account_id())
                    .ok_or(AuthError::InvalidCredentials)?
                    .generation;
                (None, Some(generation))
            }
            Credential::AppToken(id) | Credential::ApiToken { id, .. } => (Some(id.clone()), None),
            Credential::None | Credential::RegistryToken => return Ok(None),
        };
        let ttl = self.settings.refresh_ttl.as_secs().max(1);
        let claims = self.claims(
            identity,
            TokenUse::Refresh,
            now,
            ttl,
            Vec::new(),
            CredentialClaim {
                kind,
                id,
                generation,
            },
        )?;
        self.keys.sign(&claims).map(Some)
    }

    /// The identity a refresh token was issued to, if its credential is still valid.
    pub async fn redeem_refresh_token(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<Identity, AuthError> {
        let claims = self.keys.verify(
            refresh_token,
            TokenUse::Refresh,
            &self.settings.issuer,
            &self.settings.service,
        )?;
        let result = self.check_refresh_binding(&claims).await;
        match &result {
            Ok(identity) => self.events.emit(
                Event::new("login.success", identity.actor(), client.origin())
                    .details(serde_json::json!({ "channel": "registry", "via": "refresh_token" })),
            ),
            Err(AuthError::InvalidCredentials) => self.events.emit(
                Event::new(
                    "login.failure",
                    Actor {
                        kind: claims.bulwark.principal.kind.clone(),
                        name: claims.sub.clone(),
                        credential: claims.bulwark.credential.kind.clone(),
                    },
                    client.origin(),
                )
                .details(serde_json::json!({
                    "channel": "registry",
                    "via": "refresh_token",
                    "reason": "credential no longer valid",
                })),
            ),
            Err(_) => {}
        }
        result
    }

    /// Re-checks, in the store, the credential a refresh token is bound to.
    async fn check_refresh_binding(&self, claims: &Claims) -> Result<Identity, AuthError> {
        let account_id =
            claims.bulwark.principal.id.ok_or_else(|| {
                AuthError::InvalidToken("refresh token without an account".into())
            })?;
        let account = self
            .store
            .account_by_id(account_id)
            .await?
            .filter(|a| a.enabled && a.name == claims.sub)
            .ok_or(AuthError::InvalidCredentials)?;
        let bound = &claims.bulwark.credential;
        let credential = match (bound.kind.as_str(), &bound.id, bound.generation) {
            ("password", None, Some(generation)) => {
                let record = self.store.password_record(&account.name).await?;
                record
                    .filter(|r| r.account.id == account.id && r.credential_generation == generation)
                    .ok_or(AuthError::InvalidCredentials)?;
                Credential::Password
            }
            ("robot_token", None, Some(generation)) => {
                let record = self.store.robot_record(&account.name).await?;
                record
                    .filter(|r| r.account.id == account.id && r.generation == generation)
                    .ok_or(AuthError::InvalidCredentials)?;
                Credential::RobotToken
            }
            ("app_token", Some(id), None) => {
                self.bound_token(TokenKind::App, id, account.id).await?;
                Credential::AppToken(id.clone())
            }
            ("api_token", Some(id), None) => {
                let record = self.bound_token(TokenKind::Api, id, account.id).await?;
                Credential::ApiToken {
                    scopes: stored_scopes(&record)?,
                    id: id.clone(),
                }
            }
            _ => return Err(AuthError::InvalidToken("malformed credential claim".into())),
        };
        let principal = match account.kind {
            AccountKind::User => user_principal(&account),
            AccountKind::Robot => robot_principal(&account)?,
            AccountKind::Organization => return Err(AuthError::InvalidCredentials),
        };
        Ok(Identity {
            principal,
            credential,
        })
    }

    async fn bound_token(
        &self,
        kind: TokenKind,
        id: &str,
        account_id: i64,
    ) -> Result<TokenRecord, AuthError> {
        self.store
            .token(kind, id)
            .await?
            .filter(|r| r.account_id == account_id && token_live(r, now_millis()))
            .ok_or(AuthError::InvalidCredentials)
    }

    /// Repository names the identity may pull, after `last`, up to `limit`.
    pub async fn visible_repositories(
        &self,
        identity: &Identity,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, AuthError> {
        if !self.may_list_catalog(identity) {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .visible_repositories(
                identity.account_id(),
                identity.is_superuser(),
                // Public ones too: whoever gets this far may pull them.
                true,
                last,
                limit,
            )
            .await?)
    }

    /// Adds a new signing key and retires the previous ones (their tokens keep verifying).
    /// Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String, AuthError> {
        self.keys.rotate().await
    }

    /// The public keys as a JWK set, for verifiers outside Bulwark.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }
}

/// One login attempt, for events.
struct Attempt<'a> {
    username: &'a str,
    credential: &'static str,
    channel: Channel,
    client: &'a ClientInfo,
}

fn user_principal(account: &Account) -> Principal {
    Principal::User {
        id: account.id,
        name: account.name.clone(),
        superuser: account.superuser,
    }
}

fn robot_principal(account: &Account) -> Result<Principal, AuthError> {
    Ok(Principal::Robot {
        id: account.id,
        name: account.name.clone(),
        owner_id: account.owner_id.ok_or(AuthError::InvalidCredentials)?,
    })
}

/// Whether a token is neither revoked nor expired at `now`; token times are milliseconds
/// since the Unix epoch, as `Accounts` writes them.
fn token_live(record: &TokenRecord, now: i64) -> bool {
    record.revoked_at.is_none() && record.expires_at.is_none_or(|t| t > now)
}

fn stored_scopes(record: &TokenRecord) -> Result<ApiScopes, AuthError> {
    ApiScopes::parse(&record.scopes).map_err(|e| {
        tracing::warn!(token = %record.id, error = %e, "API token with unreadable scopes refused");
        AuthError::InvalidCredentials
    })
}

/// Length-prefixed so that no (hash, password) pair can collide with another.
fn password_cache_key(stored: &str, password: &str) -> CacheKey {
    let mut hasher = Sha256::new();
    hasher.update((stored.len() as u64).to_be_bytes());
    hasher.update(stored.as_bytes());
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// Requested action words with the actions they stand for: `*` is pull, push and delete;
/// unknown words are dropped; each action once.
fn expand_actions(words: &[String]) -> impl Iterator<Item = (&'static str, Action)> {
    const KNOWN: [(&str, Action); 3] = [
        ("pull", Action::Pull),
        ("push", Action::Push),
        ("delete", Action::Delete),
    ];
    let mut wanted: Vec<(&'static str, Action)> = Vec::new();
    for word in words {
        for (name, action) in KNOWN {
            if (word == "*" || word == name) && !wanted.iter().any(|(n, _)| *n == name) {
                wanted.push((name, action));
            }
        }
    }
    wanted.into_iter()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn classification_of_basic_credentials() {
        use Presented::*;
        let app = "bwa_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let cases = [
            ("alice", "hunter2", Password),
            ("alice", app, AppToken),
            ("$app", "anything", AppToken),
            ("$oauthtoken", "bwp_x", ApiToken),
            ("acme+bot", "bwr_x", RobotToken),
            ("acme+bot", app, RobotToken),
            ("$oauthtoken", app, AppToken),
        ];
        for (user, password, expected) in cases {
            assert_eq!(Presented::classify(user, password), expected, "{user}");
        }
    }

    #[test]
    fn action_expansion() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let names = |w: &[&str]| {
            expand_actions(&words(w))
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&["*"]), ["pull", "push", "delete"]);
        assert_eq!(names(&["push", "pull", "push"]), ["push", "pull"]);
        assert_eq!(names(&["pull", "*"]), ["pull", "push", "delete"]);
        assert_eq!(names(&["star", "admin"]), Vec::<&str>::new());
    }

    #[test]
    fn password_cache_keys_do_not_collide_across_the_boundary() {
        assert_ne!(password_cache_key("ab", "c"), password_cache_key("a", "bc"));
        assert_eq!(password_cache_key("a", "b"), password_cache_key("a", "b"));
    }

    #[test]
    fn registry_token_allows_granted_actions_only() {
        let token = RegistryToken {
            identity: Identity::anonymous(),
            access: vec![
                Scope::parse("repository:ns/a:pull,push").unwrap(),
                Scope::parse("registry:catalog:*").unwrap(),
                Scope {
                    kind: "repository".into(),
                    name: "ns/b".into(),
                    actions: vec![],
                },
            ],
            expires_at: 0,
            issued_via: String::new(),
        };
        assert!(token.allows("ns/a", "pull"));
        assert!(token.allows("ns/a", "push"));
        assert!(!token.allows("ns/a", "delete"));
        assert!(!token.allows("ns/b", "pull"));
        assert!(!token.allows("ns/ab", "pull"));
        assert!(!token.allows("catalog", "*"));
    }
}
