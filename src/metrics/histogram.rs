//! A fixed-bucket histogram of durations, written by one thread and read by any without a
//! lock: one relaxed atomic add per observation. Buckets are cumulative only when exported,
//! so recording touches one counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the tick-duration buckets, microseconds. Dense around the 50 ms budget of
/// a 20 Hz tick so that percentiles read from bucket deltas are useful; the last bucket is
/// `+Inf`.
pub(crate) const TICK_BUCKETS_US: [u64; 21] = [
    250, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 7_500, 10_000, 12_500, 15_000, 20_000, 25_000,
    30_000, 40_000, 50_000, 75_000, 100_000, 250_000, 500_000, 1_000_000,
];

const BUCKETS: usize = TICK_BUCKETS_US.len() + 1;

/// Durations counted per bucket, plus their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// A copy of a [`Histogram`] at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    pub counts: [u64; BUCKETS],
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = TICK_BUCKETS_US.partition_point(|&bound| bound < micros);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Reads every bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let histogram = Histogram::default();
        histogram.record(Duration::from_micros(250)); // on the bound: le=250us
        histogram.record(Duration::from_micros(251));
        histogram.record(Duration::from_secs(5)); // +Inf
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts[0], 1);
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[BUCKETS - 1], 1);
        assert_eq!(snapshot.count(), 3);
        assert_eq!(snapshot.sum_us, 250 + 251 + 5_000_000);
    }
}
