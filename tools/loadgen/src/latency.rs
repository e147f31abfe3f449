//! Input-acknowledgement latencies: a fixed histogram (no allocation per sample, mergeable
//! across worker threads) with 0.1 ms buckets up to 2 s and 10 ms buckets up to 60 s, so an
//! overloaded server's multi-second acks are still reported, not clamped; exact maximum.

use std::time::Duration;

const FINE_US: u64 = 100;
const FINE_BUCKETS: u64 = 20_000; // 0 .. 2 s
const COARSE_US: u64 = 10_000;
const COARSE_BUCKETS: u64 = 5_800; // 2 s .. 60 s; slower acks land in the last bucket
const BUCKETS: usize = (FINE_BUCKETS + COARSE_BUCKETS) as usize;

/// Latency samples.
#[derive(Clone)]
pub struct Latencies {
    counts: Vec<u32>,
    total: u64,
    max_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

/// The bucket holding `micros`.
fn bucket(micros: u64) -> usize {
    let fine_end = FINE_US * FINE_BUCKETS;
    let index = if micros < fine_end {
        micros / FINE_US
    } else {
        FINE_BUCKETS + (micros - fine_end) / COARSE_US
    };
    (index as usize).min(BUCKETS - 1)
}

/// The upper edge of bucket `index`, microseconds.
fn upper_edge(index: usize) -> u64 {
    let index = index as u64;
    if index < FINE_BUCKETS {
        (index + 1) * FINE_US
    } else {
        FINE_US * FINE_BUCKETS + (index + 1 - FINE_BUCKETS) * COARSE_US
    }
}

impl Latencies {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(micros)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The `q` quantile in milliseconds (upper edge of its bucket, at most the maximum);
    /// `None` if empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                if index == BUCKETS - 1 {
                    return Some(self.max_ms()); // the overflow bucket has no upper edge
                }
                return Some(upper_edge(index).min(self.max_us.max(1)) as f64 / 1000.0);
            }
        }
        Some(self.max_ms())
    }

    /// The largest sample in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_edges_capped_by_the_max() {
        let mut a = Latencies::default();
        for ms in 1..=100u64 {
            a.record(Duration::from_micros(ms * 1000 - 50));
        }
        let mut b = Latencies::default();
        b.record(Duration::from_millis(5000));
        a.merge(&b);
        assert_eq!(a.len(), 101);
        assert_eq!(a.quantile_ms(0.5), Some(51.0));
        assert_eq!(a.quantile_ms(0.99), Some(100.0));
        assert_eq!(a.quantile_ms(1.0), Some(5000.0));
        assert_eq!(a.max_ms(), 5000.0);
        assert_eq!(Latencies::default().quantile_ms(0.5), None);
    }

    #[test]
    fn slow_acks_keep_ten_millisecond_resolution_up_to_a_minute() {
        let mut slow = Latencies::default();
        for ms in [2_500u64, 7_000, 7_004, 90_000] {
            slow.record(Duration::from_millis(ms));
        }
        assert_eq!(slow.quantile_ms(0.25), Some(2_510.0));
        assert_eq!(slow.quantile_ms(0.5), Some(7_010.0));
        assert_eq!(
            slow.quantile_ms(1.0),
            Some(90_000.0),
            "beyond the range: the max"
        );
    }
}
