//! Secrets: random generation, the token formats, hashing and constant-time comparison.
//!
//! - Application tokens `bwa_<id>_<secret>` and API tokens `bwp_<id>_<secret>`: `id` is 12
//!   random bytes and `secret` 32 random bytes, both base64url without padding (16 and 43
//!   characters). The id finds the row; only the secret's hash is stored.
//! - Robot tokens `bwr_<secret>` (32 random bytes): the robot's name finds the row.
//!
//! Stored hashes are plain SHA-256 of the secret: a 256-bit random secret cannot be guessed
//! or brute-forced from its hash, so a slow password hash would add cost and nothing else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_meta::TokenKind;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

const ID_BYTES: usize = 12;
const SECRET_BYTES: usize = 32;
/// base64url lengths (no padding) of the id and the secret.
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;

const APP_PREFIX: &str = "bwa_";
const API_PREFIX: &str = "bwp_";
const ROBOT_PREFIX: &str = "bwr_";

/// `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AuthError::Crypto(format!("OS random number generator: {e}")))?;
    Ok(bytes)
}

/// `N` random bytes, base64url without padding.
pub fn random_string<const N: usize>() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// SHA-256 of a token's secret part: what is stored.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two hashes in constant time (for equal lengths; lengths are not secret).
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn secret_matches(secret: &str, stored: &[u8]) -> bool {
    hashes_equal(&hash_secret(secret), stored)
}

/// A freshly generated application or API token. `token` is shown to the user once;
/// `id` and `secret_hash` are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub secret_hash: Vec<u8>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token string is the credential itself: never printed.
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn prefix(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::App => APP_PREFIX,
        TokenKind::Api => API_PREFIX,
    }
}

/// Generates an application or API token.
pub fn generate_token(kind: TokenKind) -> Result<NewToken, AuthError> {
    let id = random_string::<ID_BYTES>()?;
    let secret = random_string::<SECRET_BYTES>()?;
    Ok(NewToken {
        token: format!("{}{id}_{secret}", prefix(kind)),
        secret_hash: hash_secret(&secret),
        id,
    })
}

/// Splits an application or API token into `(id, secret)`, if it has the format of `kind`.
/// The id may itself contain `_` (base64url), so the parts are taken by length.
pub fn parse_token(kind: TokenKind, token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(prefix(kind))?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN || !rest.is_ascii() {
        return None;
    }
    let (id, rest) = rest.split_at(ID_LEN);
    let secret = rest.strip_prefix('_')?;
    (is_base64url(id) && is_base64url(secret)).then_some((id, secret))
}

/// A freshly generated robot token: `token` for the robot's user, `secret_hash` to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRobotToken {
    pub token: String,
    pub secret_hash: Vec<u8>,
}

impl std::fmt::Debug for NewRobotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRobotToken").finish_non_exhaustive()
    }
}

pub fn generate_robot_token() -> Result<NewRobotToken, AuthError> {
    let secret = random_string::<SECRET_BYTES>()?;
    Ok(NewRobotToken {
        token: format!("{ROBOT_PREFIX}{secret}"),
        secret_hash: hash_secret(&secret),
    })
}

/// The secret of a robot token, if `token` has the robot token format.
pub fn parse_robot_token(token: &str) -> Option<&str> {
    let secret = token.strip_prefix(ROBOT_PREFIX)?;
    (secret.len() == SECRET_LEN && is_base64url(secret)).then_some(secret)
}

/// Whether `password` looks like an application token (clients may send one as the
/// password under the user's own name).
pub fn is_app_token(password: &str) -> bool {
    password.starts_with(APP_PREFIX)
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_api_tokens_round_trip() {
        for (kind, prefix) in [(TokenKind::App, "bwa_"), (TokenKind::Api, "bwp_")] {
            for _ in 0..200 {
                let t = generate_token(kind).unwrap();
                assert!(t.token.starts_with(prefix));
                assert_eq!(t.id.len(), 16);
                let (id, secret) = parse_token(kind, &t.token).unwrap();
                assert_eq!(id, t.id);
                assert_eq!(secret.len(), 43);
                assert!(secret_matches(secret, &t.secret_hash));
                assert!(!secret_matches(id, &t.secret_hash));
            }
        }
    }

    #[test]
    fn token_kinds_do_not_parse_as_each_other() {
        let app = generate_token(TokenKind::App).unwrap();
        let api = generate_token(TokenKind::Api).unwrap();
        assert!(parse_token(TokenKind::Api, &app.token).is_none());
        assert!(parse_token(TokenKind::App, &api.token).is_none());
        assert!(parse_robot_token(&app.token).is_none());
        assert!(is_app_token(&app.token));
        assert!(!is_app_token(&api.token));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = generate_token(TokenKind::App).unwrap().token;
        let mut no_sep = good.clone();
        no_sep.replace_range(20..21, "x");
        let cases = [
            String::new(),
            "bwa_".into(),
            good[..good.len() - 1].to_string(),
            format!("{good}a"),
            good.replacen("bwa_", "bwa-", 1),
            no_sep,
            format!("bwa_{}_{}", "é".repeat(8), "a".repeat(43)),
            format!("bwa_{}_{}", "a+aaaaaaaaaaaaaa", "a".repeat(43)),
        ];
        for case in &cases {
            assert!(parse_token(TokenKind::App, case).is_none(), "{case}");
        }
    }

    #[test]
    fn robot_tokens_round_trip() {
        let t = generate_robot_token().unwrap();
        let secret = parse_robot_token(&t.token).unwrap();
        assert!(secret_matches(secret, &t.secret_hash));
        assert!(parse_robot_token("bwr_short").is_none());
        assert!(parse_robot_token(&t.token[1..]).is_none());
        assert_ne!(generate_robot_token().unwrap(), t);
    }

    #[test]
    fn comparison() {
        assert!(hashes_equal(b"abc", b"abc"));
        assert!(!hashes_equal(b"abc", b"abd"));
        assert!(!hashes_equal(b"abc", b"ab"));
        assert_eq!(hash_secret("x").len(), 32);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = generate_token(TokenKind::Api).unwrap();
        let shown = format!("{t:?}");
        assert!(shown.contains(&t.id));
        assert!(!shown.contains(&t.token));
        let r = generate_robot_token().unwrap();
        assert!(!format!("{r:?}").contains(&r.token));
    }
}
