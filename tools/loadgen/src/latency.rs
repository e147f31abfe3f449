//! Input-acknowledgement latencies: a fixed histogram of 0.1 ms buckets (no allocation per
//! sample, mergeable across worker threads), exact maximum.

use std::time::Duration;

const BUCKET_US: u64 = 100;
const BUCKETS: usize = 20_000; // 0..2 s; slower acks are clamped into the last bucket

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

impl Latencies {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = ((micros / BUCKET_US) as usize).min(BUCKETS - 1);
        self.counts[bucket] += 1;
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

    /// The `q` quantile in milliseconds (upper edge of its 0.1 ms bucket); `None` if empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                let upper_us = (bucket as u64 + 1) * BUCKET_US;
                return Some(upper_us.min(self.max_us.max(1)) as f64 / 1000.0);
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
        b.record(Duration::from_millis(5000)); // beyond the range: clamped, max exact
        a.merge(&b);
        assert_eq!(a.len(), 101);
        assert_eq!(a.quantile_ms(0.5), Some(51.0));
        assert_eq!(a.quantile_ms(0.99), Some(100.0));
        assert_eq!(a.max_ms(), 5000.0);
        assert_eq!(Latencies::default().quantile_ms(0.5), None);
    }
}
