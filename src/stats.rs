//! Counters shared by the network tasks and the tick: every limit and every bad input has
//! one. Plain relaxed atomics, written without locks from any thread; the metrics endpoint
//! and the periodic stat line read them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::histogram::{Histogram, HistogramSnapshot};
use crate::protocol::CloseReason;

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident,)*) => {
        /// Live counters. See the field docs for what each counts.
        #[derive(Default, Debug)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            /// Sessions refused or closed by the server, by [`CloseReason::index`].
            pub closes_by_reason: [AtomicU64; CloseReason::ALL.len()],
            /// How long each tick took.
            pub tick_duration: Histogram,
        }

        /// A copy of the counters at one moment.
        #[derive(Default, Debug, Clone, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
            /// Sessions refused or closed by the server, by [`CloseReason::index`].
            pub closes_by_reason: [u64; CloseReason::ALL.len()],
            /// How long each tick took.
            pub tick_duration: HistogramSnapshot,
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    closes_by_reason: std::array::from_fn(|i| self.closes_by_reason[i].load(Ordering::Relaxed)),
                    tick_duration: self.tick_duration.snapshot(),
                }
            }
        }
    };
}

counters! {
    /// TCP connections accepted.
    connections_accepted,
    /// Connection tasks currently alive.
    connections_live,
    /// Players currently in the world.
    players_connected,
    /// Frames received from clients.
    inbound_frames,
    /// Bytes received from clients.
    inbound_bytes,
    /// Inputs dropped because the inbound queue was full.
    inputs_dropped_queue_full,
    /// Inputs that reached the tick after their player had left.
    inputs_for_unknown_connection,
    /// Inputs applied by the tick.
    inputs_applied,
    /// State frames handed to connection tasks.
    frames_submitted,
    /// Bytes of frames handed to connection tasks.
    bytes_submitted,
    /// Frames written to sockets.
    frames_written,
    /// Frames not sent because the client had every buffer in flight (slow reader).
    frames_dropped_slow_reader,
    /// Full-view resynchronisations sent after dropped frames.
    resyncs,
    /// Pings answered.
    pongs,
    /// Ticks completed.
    ticks,
    /// Ticks that took longer than their budget.
    tick_overruns,
    /// Duration of the last tick, microseconds.
    tick_last_us,
    /// Longest tick since the last stat line, microseconds.
    tick_max_us,
    /// Accept calls that failed (e.g. out of file descriptors).
    accept_errors,
}

impl Stats {
    /// Adds one to a counter.
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refusal or close sent for `reason`.
    pub fn count_close(&self, reason: CloseReason) {
        Self::bump(&self.closes_by_reason[reason.index()]);
    }
}

impl StatsSnapshot {
    /// Refusals and closes sent for `reason`.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes_by_reason[reason.index()]
    }
}
