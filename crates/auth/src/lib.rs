//! Who is calling and what they may do.
//!
//! - [`Authenticator`] turns credentials (a password, an application token, a robot token, an
//!   API token, a registry bearer token) into an [`Identity`], rate-limiting failures.
//! - [`Authenticator::authorize`] is the one authorization decision:
//!   (identity, resource, action) → allow/deny, made from facts the metadata store returns
//!   by the pure functions [`access::decide_repository`] and [`access::decide_namespace`].
//!   Every route of the registry API and of the management API asks it; registry bearer
//!   tokens carry what it granted when they were issued (the Docker token protocol), so
//!   pulls with a token need no database round trip.
//! - The Docker token service: [`Authenticator::issue_registry_token`] grants the
//!   intersection of the requested scopes and what the caller may do, as a short-lived ES256
//!   JWT; refresh tokens (`offline_token`) are bound to the credential they came from.
//!
//! Every security-relevant outcome is emitted as an event.

pub mod access;
mod accounts;
mod cache;
mod error;
pub mod jwt;
pub mod limiter;
pub mod password;
pub mod scope;
pub mod secret;
mod service;

pub use access::{Action, Resource};
pub use accounts::{ADMIN_USER, Accounts, OWNERS_TEAM};
pub use error::AuthError;
pub use service::{AuthSettings, Authenticator, Channel, ClientInfo, RegistryToken, TokenResponse};

/// The account behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        id: i64,
        name: String,
        superuser: bool,
    },
    Robot {
        id: i64,
        /// `namespace+name`
        name: String,
        owner_id: i64,
    },
}

/// How the principal proved who it is, and what that credential limits it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    None,
    Password,
    /// An application token (its public id).
    AppToken(String),
    RobotToken,
    /// An API token (its public id) limited to `scopes`.
    ApiToken {
        id: String,
        scopes: scope::ApiScopes,
    },
    /// A registry bearer token (JWT) issued by the token service.
    RegistryToken,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub principal: Principal,
    pub credential: Credential,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            principal: Principal::Anonymous,
            credential: Credential::None,
        }
    }

    pub fn account_id(&self) -> Option<i64> {
        match self.principal {
            Principal::Anonymous => None,
            Principal::User { id, .. } | Principal::Robot { id, .. } => Some(id),
        }
    }

    /// The account name, empty for anonymous callers.
    pub fn name(&self) -> &str {
        match &self.principal {
            Principal::Anonymous => "",
            Principal::User { name, .. } | Principal::Robot { name, .. } => name,
        }
    }

    pub fn is_superuser(&self) -> bool {
        matches!(
            self.principal,
            Principal::User {
                superuser: true,
                ..
            }
        )
    }

    /// The actor of the events this identity causes.
    pub fn actor(&self) -> bulwark_events::Actor {
        let kind = match self.principal {
            Principal::Anonymous => "anonymous",
            Principal::User { .. } => "user",
            Principal::Robot { .. } => "robot",
        };
        let credential = match self.credential {
            Credential::None => "",
            Credential::Password => "password",
            Credential::AppToken(_) => "app_token",
            Credential::RobotToken => "robot_token",
            Credential::ApiToken { .. } => "api_token",
            Credential::RegistryToken => "registry_token",
        };
        bulwark_events::Actor {
            kind: kind.into(),
            name: self.name().into(),
            credential: credential.into(),
        }
    }
}
