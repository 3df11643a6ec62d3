use bulwark_meta::MetaError;

/// Failures of authentication and authorization. Messages never say whether an account
/// exists.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad credentials, of whatever kind (unknown user, wrong password, revoked token…).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failures for this account or address; retry after the given seconds.
    #[error("too many failed login attempts; retry in {0} s")]
    RateLimited(u64),
    /// The credential kind is refused on this channel (e.g. real passwords on the registry
    /// API when only tokens are allowed).
    #[error("{0}")]
    CredentialRefused(&'static str),
    /// A bearer token that is malformed, expired, not yet valid, for another audience or
    /// badly signed.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Authenticated but not allowed.
    #[error("access denied")]
    Denied,
    /// Malformed input (a scope, a name).
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("crypto: {0}")]
    Crypto(String),
}
