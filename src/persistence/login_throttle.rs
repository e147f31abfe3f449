//! Failed-login throttling, sans I/O: a token bucket of failed logins per player name and
//! per source address (IP). Each bucket holds `burst` failures and regains one every
//! `refill`; a login whose name or address has an empty bucket is refused with
//! `TooManyFailedLogins` *before* its secret is checked (a throttled attempt learns nothing).
//!
//! What keeps an attacker from locking the rightful owner out:
//! - only failures spend tokens, and a successful login refills its name's and its
//!   address's buckets;
//! - an address the name logged in from successfully (the last [`KNOWN_ADDRESSES`] of them,
//!   since the server started) is exempt from the name's bucket: an attacker elsewhere who
//!   keeps the name's bucket empty does not stop its owner from logging in from where they
//!   usually do (their own address's bucket only drains if they fail themselves);
//! - from a new address, the owner waits at most until the name's bucket regains a token
//!   (`refill`, 2 s by default) unless the attack takes every token as it comes back.
//!
//! Memory is bounded: a bucket that has refilled is forgotten once the table reaches
//! [`MAX_TRACKED`] entries; if every entry is still draining, new names or addresses are
//! not tracked (fail-open for them) rather than growing the table.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use crate::token_bucket::{BucketPolicy, TokenBucket};

/// Most names, and most addresses, whose buckets are tracked at once.
pub(crate) const MAX_TRACKED: usize = 65_536;

/// Addresses remembered per name as having logged in to it.
pub(crate) const KNOWN_ADDRESSES: usize = 4;

/// Why a login may not be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// Too many failures for this name.
    Name,
    /// Too many failures from this address.
    Address,
}

struct Table<K> {
    buckets: AHashMap<K, TokenBucket>,
}

impl<K: std::hash::Hash + Eq> Table<K> {
    fn new() -> Self {
        Self {
            buckets: AHashMap::new(),
        }
    }

    /// Tokens of `key`'s bucket now (full if untracked).
    fn tokens(&self, key: &K, now: Instant, policy: &BucketPolicy) -> f64 {
        self.buckets
            .get(key)
            .map_or(policy.burst, |bucket| bucket.tokens(policy, now))
    }

    fn spend(&mut self, key: K, now: Instant, policy: &BucketPolicy) {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_TRACKED {
            // Full buckets carry no information: forget them to make room.
            self.buckets
                .retain(|_, bucket| bucket.tokens(policy, now) < policy.burst);
            if self.buckets.len() >= MAX_TRACKED {
                return;
            }
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(policy, now))
            .spend(policy, now);
    }

    fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }
}

struct Inner {
    names: Table<String>,
    addresses: Table<IpAddr>,
    known: AHashMap<String, Vec<IpAddr>>,
}

/// The throttle shared by every connection task.
pub(crate) struct LoginThrottle {
    policy: BucketPolicy,
    inner: Mutex<Inner>,
}

impl LoginThrottle {
    /// `burst` failures at once per name and per address, then one per `refill`.
    pub(crate) fn new(burst: u32, refill: Duration) -> Self {
        Self {
            policy: BucketPolicy {
                burst: f64::from(burst.max(1)),
                per_second: 1.0 / refill.max(Duration::from_millis(1)).as_secs_f64(),
            },
            inner: Mutex::new(Inner {
                names: Table::new(),
                addresses: Table::new(),
                known: AHashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a login of `name` from `address` may be tried now.
    pub(crate) fn check(&self, name: &str, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        let name = &crate::protocol::name_key(name);
        let inner = self.lock();
        if inner.addresses.tokens(&address, now, &self.policy) < 1.0 {
            return Err(Throttled::Address);
        }
        let known = inner
            .known
            .get(name)
            .is_some_and(|known| known.contains(&address));
        if !known && inner.names.tokens(&name.to_owned(), now, &self.policy) < 1.0 {
            return Err(Throttled::Name);
        }
        Ok(())
    }

    /// A wrong secret for `name` from `address`.
    pub(crate) fn failed(&self, name: &str, address: IpAddr, now: Instant) {
        let name = &crate::protocol::name_key(name);
        let mut inner = self.lock();
        inner.addresses.spend(address, now, &self.policy);
        inner.names.spend(name.to_owned(), now, &self.policy);
    }

    /// A successful login: both buckets refill and `address` becomes known for `name`.
    pub(crate) fn succeeded(&self, name: &str, address: IpAddr) {
        let name = &crate::protocol::name_key(name);
        let mut inner = self.lock();
        inner.addresses.forget(&address);
        inner.names.forget(&name.to_owned());
        if !inner.known.contains_key(name) && inner.known.len() >= MAX_TRACKED {
            inner.known.clear();
        }
        let known = inner.known.entry(name.to_owned()).or_default();
        known.retain(|a| *a != address);
        if known.len() == KNOWN_ADDRESSES {
            known.remove(0);
        }
        known.push(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn failures_drain_the_name_and_the_address_and_refill_over_time() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check("ann", ip(9), t0), Ok(()));
            throttle.failed("ann", ip(9), t0);
        }
        assert_eq!(throttle.check("ann", ip(9), t0), Err(Throttled::Address));
        assert_eq!(
            throttle.check("ann", ip(8), t0),
            Err(Throttled::Name),
            "another address, same name"
        );
        assert_eq!(throttle.check("bob", ip(8), t0), Ok(()), "others untouched");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            throttle.check("ann", ip(9), later),
            Ok(()),
            "one token back"
        );
    }

    #[test]
    fn the_owner_logs_in_from_a_known_address_while_the_name_is_attacked() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(3600));
        let t0 = Instant::now();
        throttle.succeeded("ann", ip(2));
        for attacker in 10..20 {
            throttle.failed("ann", ip(attacker), t0);
        }
        assert_eq!(throttle.check("ann", ip(3), t0), Err(Throttled::Name));
        assert_eq!(throttle.check("ann", ip(2), t0), Ok(()), "known address");
        throttle.succeeded("ann", ip(2));
        assert_eq!(
            throttle.check("ann", ip(3), t0),
            Ok(()),
            "a success refills the name"
        );
    }
}
