//! The token bucket every rate limit here shares (messages per player, actions per kind,
//! failed logins per name and address), sans I/O: time is passed in, so the arithmetic is
//! tested without waiting.

use std::time::Instant;

/// A token bucket's contents: at most `burst` tokens, refilled at `per_second`. The
/// arithmetic every rate limit here shares (messages per player, failed logins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: Instant,
}

/// How a [`TokenBucket`] fills: its size and its refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BucketPolicy {
    /// Most tokens held (the burst).
    pub burst: f64,
    /// Tokens regained per second.
    pub per_second: f64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn full(policy: &BucketPolicy, now: Instant) -> Self {
        Self {
            tokens: policy.burst,
            at: now,
        }
    }

    /// Tokens at `now` (times never go backwards).
    pub(crate) fn tokens(&self, policy: &BucketPolicy, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * policy.per_second).min(policy.burst)
    }

    /// Takes one token if there is one at `now`; whether it got one.
    pub(crate) fn try_take(&mut self, policy: &BucketPolicy, now: Instant) -> bool {
        self.tokens = self.tokens(policy, now);
        self.at = now;
        let took = self.tokens >= 1.0;
        if took {
            self.tokens -= 1.0;
        }
        took
    }

    /// Spends one token at `now`, down to empty (a failure counts even when over the limit).
    pub(crate) fn spend(&mut self, policy: &BucketPolicy, now: Instant) {
        self.tokens = (self.tokens(policy, now) - 1.0).max(0.0);
        self.at = now;
    }
}
