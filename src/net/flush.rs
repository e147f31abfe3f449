//! Once per tick, the network runtime writes every connection's new frames: the tick sends
//! one [`TickSignal`], and one [`FlushTask`] per network thread writes the frames of its
//! shard of the connections registered in the [`FlushRegistry`] (see [`super::egress`] for
//! how a connection's writes are shared with its own task).

use std::sync::Arc;

use super::egress::{Egress, Flushed};
use crate::bridge::{TickSignal, tick_signals};
use crate::protocol::CloseReason;
use crate::stats::Stats;

/// One flush task's connections, by connection id.
type Shard = ahash::AHashMap<u64, Arc<Egress>>;

/// The connections a flush task writes, in shards (one per flush task).
///
/// Waking a tokio task per client per tick from the tick thread would take the scheduler's
/// shared inject queue lock per client; waking them from the runtime still costs a schedule
/// and a poll per frame, and their writes then interleave with input reads in the run queue.
/// Instead each connection registers its [`Egress`] here when its session opens, in one of
/// a few shards; the tick sends one signal per tick ([`TickSignal`]); one [`FlushTask`] per
/// shard on the network runtime writes its connections' frames with non-blocking writes and
/// wakes a connection task only when its socket is full or its lock is busy.
pub(crate) struct FlushRegistry {
    // Std mutexes, not tokio ones: nothing awaits while holding them. Sessions take one when
    // they open and when they end; a flush task takes its own once per tick, to copy the list.
    shards: Box<[std::sync::Mutex<Shard>]>,
}

impl FlushRegistry {
    /// A registry with `shards` shards (one flush task each).
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Default::default()).collect(),
        }
    }

    /// Registers connection `id` until the returned guard is dropped.
    pub(crate) fn register(self: &Arc<Self>, id: u64, egress: Arc<Egress>) -> Registration {
        self.shard(id).insert(id, egress);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// Asks every registered session to close with `reason` (when the tick cannot: it died
    /// or does not answer).
    pub(crate) fn close_all(&self, reason: CloseReason) {
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for egress in shard.values() {
                egress.waker().request_close(reason);
            }
        }
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[id as usize % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a connection registered in a [`FlushRegistry`]; unregisters it when dropped.
pub(crate) struct Registration {
    registry: Arc<FlushRegistry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.shard(self.id).remove(&self.id);
    }
}

/// Connections a flush task writes before letting other tasks (input reads) run.
const YIELD_EVERY: usize = 200;

/// One shard's writer: run [`FlushTask::run`] on the network runtime.
pub(crate) struct FlushTask {
    signals: tokio::sync::mpsc::Receiver<()>,
    registry: Arc<FlushRegistry>,
    shard: usize,
    stats: Arc<Stats>,
}

/// Creates the tick's signal and one flush task per shard of `registry`.
pub(crate) fn tick_signal(
    registry: Arc<FlushRegistry>,
    stats: Arc<Stats>,
) -> (TickSignal, Vec<FlushTask>) {
    let (signal, receivers) = tick_signals(registry.shards.len());
    let tasks = receivers
        .into_iter()
        .enumerate()
        .map(|(shard, signals)| FlushTask {
            signals,
            registry: registry.clone(),
            shard,
            stats: stats.clone(),
        })
        .collect();
    (signal, tasks)
}

impl FlushTask {
    /// Flushes the shard's connections on every signal, until the tick is gone.
    pub(crate) async fn run(mut self) {
        let mut targets: Vec<Arc<Egress>> = Vec::new();
        while self.signals.recv().await.is_some() {
            targets.extend(
                self.registry.shards[self.shard]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned(),
            );
            let mut written = 0;
            let mut done = 0;
            while done < targets.len() {
                let end = (done + YIELD_EVERY).min(targets.len());
                {
                    // A zone begins and ends on one thread: none across the yield.
                    let _zone = crate::profiling::zone!("flush burst");
                    for egress in &targets[done..end] {
                        match egress.try_flush(&mut written) {
                            Some(Flushed::Idle) => {}
                            // Busy, full or failed: the connection task takes it from here.
                            None | Some(Flushed::Blocked) | Some(Flushed::Failed) => {
                                egress.waker().wake()
                            }
                        }
                    }
                }
                done = end;
                if done < targets.len() {
                    tokio::task::yield_now().await;
                }
            }
            targets.clear();
            Stats::add(&self.stats.frames_written, written);
        }
    }
}
