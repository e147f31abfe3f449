//! The per-player message rate limit, sans I/O: a token bucket for inputs and pings, and the
//! rule that turns sustained flooding into a kick.
//!
//! A client may send `rate` messages per second plus a burst of `burst`; messages beyond
//! that are dropped before they reach the inbound queue (so a flooder cannot crowd other
//! players out of it). Dropping alone would let a flooder burn the server's read and decode
//! time forever, so a client whose messages keep being dropped for `kick_after` without a
//! one-second pause between drops is kicked.

use std::time::{Duration, Instant};

use crate::token_bucket::{BucketPolicy, TokenBucket};

/// A pause in drops this long ends a flood episode.
const FLOOD_PAUSE: Duration = Duration::from_secs(1);

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within the rate: handle it.
    Accept,
    /// Over the rate: drop it (and count it).
    Drop,
    /// Over the rate for too long: close the connection.
    Kick,
}

/// One client's token bucket and flood record.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    policy: BucketPolicy,
    bucket: TokenBucket,
    kick_after: Duration,
    /// When the current run of drops began, and when the last drop was.
    flood: Option<(Instant, Instant)>,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub(crate) fn new(per_second: u32, burst: u32, kick_after: Duration, now: Instant) -> Self {
        let policy = BucketPolicy {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
        };
        Self {
            policy,
            bucket: TokenBucket::full(&policy, now),
            kick_after,
            flood: None,
        }
    }

    /// Decides about one message that arrived at `now` (the time of the read that brought it;
    /// times never go backwards).
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        if self.bucket.try_take(&self.policy, now) {
            return Admit::Accept;
        }
        let began = match self.flood {
            Some((began, last)) if now.saturating_duration_since(last) < FLOOD_PAUSE => began,
            _ => now,
        };
        self.flood = Some((began, now));
        if now.saturating_duration_since(began) >= self.kick_after {
            Admit::Kick
        } else {
            Admit::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends one message every `every` for `total`, returning what happened to each.
    fn send(
        limiter: &mut RateLimiter,
        start: Instant,
        every: Duration,
        total: Duration,
    ) -> Vec<Admit> {
        let mut out = Vec::new();
        let mut at = start;
        while at < start + total {
            out.push(limiter.admit(at));
            at += every;
        }
        out
    }

    #[test]
    fn a_client_within_the_rate_is_never_dropped() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(60, 20, ms(5000), start);
        let outcomes = send(&mut limiter, start, ms(50), Duration::from_secs(60));
        assert!(outcomes.iter().all(|&a| a == Admit::Accept));
    }

    #[test]
    fn a_burst_up_to_the_bucket_size_passes_and_the_rest_is_dropped() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(60, 20, ms(5000), start);
        let outcomes: Vec<_> = (0..30).map(|_| limiter.admit(start)).collect();
        assert_eq!(outcomes.iter().filter(|&&a| a == Admit::Accept).count(), 20);
        assert_eq!(outcomes.iter().filter(|&&a| a == Admit::Drop).count(), 10);
        // A second later the bucket is full again.
        assert_eq!(limiter.admit(start + ms(1000)), Admit::Accept);
    }

    #[test]
    fn sustained_flooding_is_kicked_after_the_kick_time_and_not_before() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(60, 20, ms(5000), start);
        // Twice the rate: the burst lasts 1/3 s, then half the messages are dropped.
        let every = Duration::from_secs(1) / 120;
        let outcomes = send(&mut limiter, start, every, ms(5000));
        assert!(outcomes.contains(&Admit::Drop));
        assert!(
            !outcomes.contains(&Admit::Kick),
            "not within 5 s of the first drop"
        );
        let later = send(&mut limiter, start + ms(5000), every, ms(1000));
        assert!(later.contains(&Admit::Kick));
    }

    #[test]
    fn bursts_separated_by_pauses_are_dropped_but_never_kicked() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(60, 20, ms(2000), start);
        for second in 0..20 {
            // 40 messages at once every 1.5 s: 20 pass, 20 are dropped, then a pause.
            let at = start + ms(1500 * second);
            let outcomes: Vec<_> = (0..40).map(|_| limiter.admit(at)).collect();
            assert!(!outcomes.contains(&Admit::Kick));
            assert!(outcomes.contains(&Admit::Drop));
        }
    }
}
