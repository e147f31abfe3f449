//! Counters shared by the network tasks and the tick: every limit and every bad input has
//! one. Plain relaxed atomics, written without locks from any thread; the metrics endpoint
//! and the periodic stat line read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::histogram::{Histogram, HistogramSnapshot};
use crate::protocol::CloseReason;

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident,)*) => {
        /// Live counters. See the field docs for what each counts.
        #[derive(Default, Debug)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            /// Connections refused before their session opened (Reject), by [`CloseReason::index`].
            pub rejects_by_reason: [AtomicU64; CloseReason::ALL.len()],
            /// Open sessions closed by the server (Close), by [`CloseReason::index`].
            pub kicks_by_reason: [AtomicU64; CloseReason::ALL.len()],
            /// Actions dropped, by action kind (wire number) and [`ActionDrop`] cause.
            pub actions_dropped: [[AtomicU64; ActionDrop::ALL.len()]; MAX_COUNTED_ACTION_KINDS],
            /// Actions queued for the tick, by action kind (wire number).
            pub actions_queued: [AtomicU64; MAX_COUNTED_ACTION_KINDS],
            /// How long each tick took.
            pub tick_duration: Histogram,
            /// How long each persistence transaction took.
            pub persist_commit_duration: Histogram,
            /// When the tick loop last completed a tick (for the health probe).
            pub tick_heartbeat: Heartbeat,
        }

        /// A copy of the counters at one moment.
        #[derive(Default, Debug, Clone, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
            /// Connections refused before their session opened (Reject), by [`CloseReason::index`].
            pub rejects_by_reason: [u64; CloseReason::ALL.len()],
            /// Open sessions closed by the server (Close), by [`CloseReason::index`].
            pub kicks_by_reason: [u64; CloseReason::ALL.len()],
            /// Actions dropped, by action kind (wire number) and [`ActionDrop`] cause.
            pub actions_dropped: [[u64; ActionDrop::ALL.len()]; MAX_COUNTED_ACTION_KINDS],
            /// Actions queued for the tick, by action kind (wire number).
            pub actions_queued: [u64; MAX_COUNTED_ACTION_KINDS],
            /// How long each tick took.
            pub tick_duration: HistogramSnapshot,
            /// How long each persistence transaction took.
            pub persist_commit_duration: HistogramSnapshot,
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    rejects_by_reason: std::array::from_fn(|i| self.rejects_by_reason[i].load(Ordering::Relaxed)),
                    kicks_by_reason: std::array::from_fn(|i| self.kicks_by_reason[i].load(Ordering::Relaxed)),
                    actions_dropped: std::array::from_fn(|k| std::array::from_fn(|c| self.actions_dropped[k][c].load(Ordering::Relaxed))),
                    actions_queued: std::array::from_fn(|k| self.actions_queued[k].load(Ordering::Relaxed)),
                    tick_duration: self.tick_duration.snapshot(),
                    persist_commit_duration: self.persist_commit_duration.snapshot(),
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
    /// Sockets upgraded to WebSocket on the web listener.
    websocket_upgrades,
    /// WebSocket sessions currently alive (of `connections_live`).
    websocket_sessions_live,
    /// Players joined over TCP whose connection task is still alive.
    players_tcp,
    /// Players joined over WebSocket whose connection task is still alive.
    players_websocket,
    /// WebSocket upgrades refused: not an upgrade, or not version 13 (426).
    websocket_refused_not_upgrade,
    /// WebSocket upgrades refused: missing or invalid key (400).
    websocket_refused_bad_key,
    /// WebSocket upgrades refused: a foreign Origin (403).
    websocket_refused_origin,
    /// Players currently in the world.
    players_connected,
    /// Connections accepted that have not logged in yet (the pending-handshake pool in use).
    handshakes_pending,
    /// Game entities (those with a wire id) after the last tick.
    entities,
    /// Frames received from clients.
    inbound_frames,
    /// Bytes received from clients.
    inbound_bytes,
    /// Inputs dropped because the inbound queue was full.
    inputs_dropped_queue_full,
    /// Inputs and pings dropped by the per-player rate limit.
    inputs_dropped_rate_limited,
    /// Inputs that reached the tick after their player had left.
    inputs_for_unknown_connection,
    /// Inputs applied by the tick.
    inputs_applied,
    /// State frames handed to the network side (published into outboxes).
    frames_submitted,
    /// Bytes of frames handed to the network side.
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
    /// Longest tick since the console's last snapshot, microseconds (swapped to 0 by it).
    console_tick_max_us,
    /// Accept calls that failed (e.g. out of file descriptors).
    accept_errors,
    /// HTTP (metrics and probes) connections accepted.
    http_connections,
    /// HTTP connections closed before their request arrived, to make room for a newer one.
    http_idle_evicted,
    /// HTTP connections closed unanswered at once: every held one was being answered.
    http_refused_full,
    /// Console kicks refused: not from loopback and no (or a wrong) admin token.
    console_kicks_refused,
    /// Batches the tick handed to the persistence thread (merged ones included).
    persist_batches,
    /// Transactions the persistence thread committed.
    persist_transactions,
    /// Player records written.
    persist_rows,
    /// Transactions that failed (their records are lost; logged).
    persist_failures,
    /// 1 while a shared store's holds on this server's players may lapse (renewals failing: the tick closes its players), else 0.
    store_holds_at_risk,
    /// Player records given up after the store refused them for a minute.
    persist_rows_dropped,
    /// Hand-offs the persistence thread could not take yet (records wait in the tick, merged).
    persist_handoffs_delayed,
    /// Microseconds from the hand-off of the oldest batch in the last transaction to its commit.
    persist_lag_us,
    /// Logins answered by the store.
    logins,
    /// 1 while a recording is being written, else 0.
    recording_active,
    /// Bytes written to recording files.
    recording_bytes,
    /// Recordings stopped by an error (a full disk, an unwritable directory, a stuck writer).
    recording_failures,
    /// Players handed off to another zone (their Transfer was sent).
    handoffs_out,
    /// Players admitted with a handoff ticket from another zone.
    handoffs_in,
    /// Handoffs whose final record could not be saved (the client got a Close instead).
    handoff_failures,
    /// Border strips published to the neighbour zones.
    ghost_strips_sent,
    /// Border strips not published: the link to NATS was behind, or publishing failed.
    ghost_strips_dropped,
    /// Neighbours' border strips applied as ghosts.
    ghost_strips_applied,
    /// Neighbours' border strips dropped: undecodable, unreadable by this game (unknown kind, zone or position), or the tick was behind taking them.
    ghost_strips_refused,
    /// Ghosts (copies of the neighbours' border entities) in the world now.
    ghosts,
    /// Milliseconds from a neighbour's publish to this tick's use of its last strip.
    ghost_age_ms,
    /// 1 while the NATS connection is up (zone servers with `nats` set), else 0.
    nats_connected,
    /// Players removed from the world (left, kicked or timed out).
    leaves,
    /// Actions of a kind the game did not register (dropped).
    actions_dropped_unknown_kind,
    /// Server events put into frames (one per event per receiving frame).
    events_sent,
    /// Events whose target was gone or never replicated (a player who just left: harmless).
    events_unroutable,
    /// Agones SDK calls that failed or timed out (the server kept serving; `agones` feature).
    agones_errors,
}

/// Action kinds counted one by one in [`Stats`]; a game registering more shares the last
/// counter among the rest.
pub const MAX_COUNTED_ACTION_KINDS: usize = 32;

/// Why an action was dropped on the network side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionDrop {
    /// Its bytes do not decode as its kind's type.
    Malformed,
    /// Its value is over its kind's size limit.
    TooLarge,
    /// Above its kind's per-player rate.
    RateLimited,
    /// The inbound queue to the tick was full.
    QueueFull,
}

impl ActionDrop {
    /// Every cause, in counter order.
    pub const ALL: [ActionDrop; 4] = [
        ActionDrop::Malformed,
        ActionDrop::TooLarge,
        ActionDrop::RateLimited,
        ActionDrop::QueueFull,
    ];

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionDrop::Malformed => "malformed",
            ActionDrop::TooLarge => "too_large",
            ActionDrop::RateLimited => "rate_limited",
            ActionDrop::QueueFull => "queue_full",
        }
    }
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

    /// Counts a refused WebSocket upgrade by its HTTP status.
    pub fn count_http_refusal(&self, status: u16) {
        let counter = match status {
            400 => &self.websocket_refused_bad_key,
            403 => &self.websocket_refused_origin,
            _ => &self.websocket_refused_not_upgrade,
        };
        Self::bump(counter);
    }

    /// Counts a Reject sent for `reason` (before the session opened).
    pub fn count_reject(&self, reason: CloseReason) {
        Self::bump(&self.rejects_by_reason[reason.index()]);
    }

    /// Counts a Close sent for `reason` (an open session ended by the server).
    pub fn count_kick(&self, reason: CloseReason) {
        Self::bump(&self.kicks_by_reason[reason.index()]);
    }

    /// Counts an action of kind `kind` dropped for `cause`.
    pub fn count_action_drop(&self, kind: u16, cause: ActionDrop) {
        let kind = usize::from(kind).min(MAX_COUNTED_ACTION_KINDS - 1);
        Self::bump(&self.actions_dropped[kind][cause as usize]);
    }

    /// Counts an action of kind `kind` queued for the tick.
    pub fn count_action_queued(&self, kind: u16) {
        Self::bump(&self.actions_queued[usize::from(kind).min(MAX_COUNTED_ACTION_KINDS - 1)]);
    }
}

/// The time of the last completed tick, readable from any thread without a lock.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    /// Starts as if a tick had just completed, so a starting server is healthy.
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records that a tick completed at `at` (the tick loop's own clock reading).
    pub fn beat(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.origin).as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last completed tick.
    pub fn since_last(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

impl StatsSnapshot {
    /// Rejects and Closes sent for `reason`.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.rejects_by_reason[reason.index()] + self.kicks_by_reason[reason.index()]
    }
}
