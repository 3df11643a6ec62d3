//! Password hashing: Argon2id PHC strings with OWASP's recommended parameters.
//!
//! Hashing and verifying cost tens of milliseconds of CPU and 7 MiB of memory by design;
//! async callers take a [`slot`] and run them on a blocking thread with [`Slot::run`].

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::AuthError;

/// Argon2 runs at once in this process: half the cores, at least one, at most four. Each run
/// holds 7 MiB and a core; unbounded, a burst of logins (or an attacker's, with wrong or
/// unknown credentials the cache never holds) would take memory without limit and starve
/// the requests being served.
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Semaphore::new((cores / 2).clamp(1, 4))
});

/// The right to run one Argon2 hash or verification.
pub(crate) struct Slot {
    _permit: SemaphorePermit<'static>,
}

/// Waits for a free Argon2 slot.
pub(crate) async fn slot() -> Slot {
    Slot {
        _permit: SLOTS
            .acquire()
            .await
            .expect("the semaphore is never closed"),
    }
}

impl Slot {
    /// Runs `work` on a blocking thread; the slot stays taken until it is dropped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Crypto(format!("password hashing task: {e}")))
    }
}

/// OWASP Password Storage Cheat Sheet: Argon2id, m=7168 KiB, t=5, p=1 — of the settings
/// it lists as equally strong (from 46 MiB with one pass to 7 MiB with five), the one that
/// holds the least memory for about the same CPU time.
const MEMORY_KIB: u32 = 7_168;
const ITERATIONS: u32 = 5;
const PARALLELISM: u32 = 1;

/// A hash of a password nobody has, with the same parameters as real hashes: verified when
/// the account does not exist (or has no password) so that the answer takes as long as for
/// an existing account and timing does not reveal which accounts exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$WlpaWlpaWlpaWlpaWlpaWg$PFRxFqGDY3ixEqCNsT6fN1Km4DVElA4cY7toVi3Aa/o";

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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2_runs_are_bounded() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs = (0..12).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(async move {
                slot()
                    .await
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
            })
        });
        for run in runs.collect::<Vec<_>>() {
            run.await.unwrap();
        }
        let slots = SLOTS.available_permits();
        assert!((1..=4).contains(&slots), "{slots}");
        assert_eq!(most.load(Ordering::SeqCst), slots);
    }

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse ", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn hashes_with_older_parameters_still_verify() {
        let before = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(19_456, 2, 1, None).unwrap(),
        )
        .hash_password(b"correct horse")
        .unwrap()
        .to_string();
        assert!(before.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &before));
        assert!(!verify_password("correct horse ", &before));
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
            "$argon2id$v=19$m=7168,t=5,p=1$abc",
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
