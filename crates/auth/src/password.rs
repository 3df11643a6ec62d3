//! Password hashing: Argon2id PHC strings with OWASP's recommended parameters.
//!
//! Hashing and verifying cost tens of milliseconds of CPU and 19 MiB of memory by design;
//! async callers run them in `tokio::task::spawn_blocking`.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::AuthError;

/// OWASP Password Storage Cheat Sheet: Argon2id, m=19456 KiB, t=2, p=1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// A hash of a password nobody has, with the same parameters as real hashes: verified when
/// the account does not exist (or has no password) so that the answer takes as long as for
/// an existing account and timing does not reveal which accounts exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$WlpaWlpaWlpaWlpaWlpaWg$debESEGImBhvaua3jeNOk/j4A7mo+GKs3O34Ywx1ey0";

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the OWASP Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt (from the OS) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Crypto(format!("hashing a password: {e}")))
}

/// Whether `password` matches the PHC string `stored`. The parameters are those recorded
/// in `stored`, so hashes made with older parameters keep verifying. A malformed `stored`
/// never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    argon2()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// Spends the time of one verification and fails: for unknown accounts.
pub fn verify_dummy(password: &str) -> bool {
    verify_password(password, DUMMY_HASH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse ", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash_password("pw").unwrap(), hash_password("pw").unwrap());
    }

    #[test]
    fn malformed_hashes_never_match() {
        for stored in [
            "",
            "plain",
            "$argon2id$v=19$m=19456,t=2,p=1$abc",
            "$2b$12$abcdefghijklmnopqrstuu",
        ] {
            assert!(!verify_password("pw", stored), "{stored}");
        }
    }

    #[test]
    fn dummy_hash_has_the_real_parameters_and_matches_nothing() {
        let real = hash_password("x").unwrap();
        let prefix = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(prefix(DUMMY_HASH), prefix(&real));
        assert!(!verify_dummy(""));
        assert!(!verify_dummy("password"));
    }
}
