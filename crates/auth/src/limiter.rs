//! Failed-login rate limiting, per account name and per client address.
//!
//! After `failures_before_backoff` failures on a key, each further attempt must wait
//! `1 s · 2^(failures − failures_before_backoff)`, capped at `max_backoff`. A success resets
//! the account's counter (not the address's: one address guessing many accounts stays
//! slowed down). Names are counted whether or not the account exists, so the answer is the
//! same for unknown accounts. Memory is bounded: at most `capacity` keys are tracked, the
//! least recently failed are forgotten first, and keys idle for long are forgotten.
//!
//! Time is passed in (`now`) so tests control the clock.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Delay after the first failure beyond the threshold; doubles with each further failure.
const BASE_DELAY: Duration = Duration::from_secs(1);
/// Default bound on tracked keys (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Shortest time after which a key that stopped failing is forgotten.
const MIN_FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    /// An IPv4 address, or the /64 network of an IPv6 address (one host usually holds a
    /// whole /64).
    Address(IpAddr),
}

struct Entry {
    failures: u32,
    last_failure: Instant,
    /// Position in the eviction order.
    seq: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// seq → key, oldest failure first.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

pub struct LoginLimiter {
    failures_before_backoff: u32,
    max_backoff: Duration,
    forget_after: Duration,
    capacity: usize,
    state: Mutex<State>,
}

impl LoginLimiter {
    pub fn new(
        failures_before_backoff: u32,
        max_backoff: Duration,
        capacity: usize,
    ) -> LoginLimiter {
        LoginLimiter {
            failures_before_backoff,
            max_backoff,
            forget_after: MIN_FORGET_AFTER.max(max_backoff.saturating_mul(2)),
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn keys(account: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::Account(account.to_ascii_lowercase()))
            .chain(address.map(|a| Key::Address(network(a))))
    }

    /// The wait before another attempt after `failures` failures.
    fn delay(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.failures_before_backoff) {
            None => Duration::ZERO,
            Some(doublings) => BASE_DELAY
                .saturating_mul(2u32.saturating_pow(doublings.min(31)))
                .min(self.max_backoff),
        }
    }

    /// `Ok` if an attempt for `account` from `address` may proceed now, else how long to
    /// wait.
    pub fn check(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = Self::keys(account, address)
            .filter_map(|key| state.entries.get(&key))
            .filter(|e| now.saturating_duration_since(e.last_failure) < self.forget_after)
            // Below the threshold there is no wait at all, even when a concurrent request
            // recorded its failure at an instant later than this request's `now`.
            .filter(|e| !self.delay(e.failures).is_zero())
            .map(|e| (e.last_failure + self.delay(e.failures)).saturating_duration_since(now))
            .max()
            .unwrap_or(Duration::ZERO);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn record_failure(&self, account: &str, address: Option<IpAddr>, now: Instant) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        for key in Self::keys(account, address) {
            let seq = state.next_seq;
            state.next_seq += 1;
            let failures = match state.entries.remove(&key) {
                Some(old) => {
                    state.order.remove(&old.seq);
                    let forgotten =
                        now.saturating_duration_since(old.last_failure) >= self.forget_after;
                    if forgotten {
                        1
                    } else {
                        old.failures.saturating_add(1)
                    }
                }
                None => 1,
            };
            while state.entries.len() >= self.capacity {
                let Some((_, oldest)) = state.order.pop_first() else {
                    break;
                };
                state.entries.remove(&oldest);
            }
            state.order.insert(seq, key.clone());
            state.entries.insert(
                key,
                Entry {
                    failures,
                    last_failure: now,
                    seq,
                },
            );
        }
    }

    /// A successful login: the account starts afresh.
    pub fn record_success(&self, account: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = state
            .entries
            .remove(&Key::Account(account.to_ascii_lowercase()))
        {
            state.order.remove(&old.seq);
        }
    }
}

fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn backs_off_exponentially_after_the_threshold() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("alice", None, t0), Ok(()), "failure {i}");
            limiter.record_failure("alice", None, t0);
        }
        // 3 failures: wait 1 s, then 2 s, 4 s, 8 s… capped at 60 s.
        let mut now = t0;
        let mut expected = SEC;
        for _ in 0..10 {
            assert_eq!(limiter.check("alice", None, now), Err(expected));
            assert_eq!(
                limiter.check("alice", None, now + expected / 2),
                Err(expected / 2)
            );
            now += expected;
            assert_eq!(limiter.check("alice", None, now), Ok(()));
            limiter.record_failure("alice", None, now);
            expected = (expected * 2).min(Duration::from_secs(60));
        }
        assert_eq!(
            limiter.check("alice", None, now),
            Err(Duration::from_secs(60))
        );
        // Names are case-insensitive.
        assert!(limiter.check("ALICE", None, now).is_err());
        assert!(limiter.check("bob", None, now).is_ok());
    }

    #[test]
    fn a_failure_recorded_after_this_requests_instant_is_no_wait_below_the_threshold() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60), 16);
        let now = Instant::now();
        // Another request failed a moment after this one read the clock.
        limiter.record_failure("bob", ip("10.0.0.1"), now + Duration::from_millis(5));
        assert_eq!(limiter.check("alice", ip("10.0.0.1"), now), Ok(()));
    }

    #[test]
    fn zero_threshold_backs_off_from_the_first_failure() {
        let limiter = LoginLimiter::new(0, Duration::from_secs(10), 100);
        let t0 = Instant::now();
        limiter.record_failure("a", None, t0);
        assert_eq!(limiter.check("a", None, t0), Err(2 * SEC));
    }

    #[test]
    fn success_resets_the_account_but_not_the_address() {
        let limiter = LoginLimiter::new(1, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        limiter.record_failure("alice", ip("192.0.2.1"), t0);
        limiter.record_failure("alice", ip("192.0.2.1"), t0);
        assert!(limiter.check("alice", ip("198.51.100.7"), t0).is_err());
        limiter.record_success("alice");
        assert!(limiter.check("alice", ip("198.51.100.7"), t0).is_ok());
        // The address that failed is still slowed down, whatever name it tries.
        assert!(limiter.check("carol", ip("192.0.2.1"), t0).is_err());
    }

    #[test]
    fn addresses_count_across_names() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            limiter.record_failure(name, ip("203.0.113.9"), t0);
        }
        assert!(limiter.check("d", ip("203.0.113.9"), t0).is_err());
        assert!(limiter.check("d", ip("203.0.113.10"), t0).is_ok());
        assert!(limiter.check("d", None, t0).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = LoginLimiter::new(0, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        limiter.record_failure("x", ip("2001:db8:1:2::1"), t0);
        assert!(limiter.check("y", ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(limiter.check("y", ip("2001:db8:1:3::1"), t0).is_ok());
        limiter.record_failure("x", ip("::ffff:192.0.2.5"), t0);
        assert!(limiter.check("y", ip("192.0.2.5"), t0).is_err());
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limiter = LoginLimiter::new(0, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.record_failure("a", None, t0);
        }
        let later = t0 + MIN_FORGET_AFTER;
        assert!(limiter.check("a", None, later).is_ok());
        // The count starts over.
        limiter.record_failure("a", None, later);
        assert_eq!(limiter.check("a", None, later), Err(2 * SEC));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let limiter = LoginLimiter::new(0, Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            limiter.record_failure(name, None, t0 + SEC * i as u32);
        }
        let state = limiter.state.lock().unwrap();
        assert_eq!(state.entries.len(), 3);
        assert_eq!(state.order.len(), 3);
        assert!(!state.entries.contains_key(&Key::Account("a".into())));
        drop(state);
        // A key that fails again moves to the back of the line.
        limiter.record_failure("b", None, t0 + 10 * SEC);
        limiter.record_failure("e", None, t0 + 11 * SEC);
        let state = limiter.state.lock().unwrap();
        assert!(state.entries.contains_key(&Key::Account("b".into())));
        assert!(!state.entries.contains_key(&Key::Account("c".into())));
    }
}
