//! Once per tick, the network runtime writes every connection's new frames: the tick sends
//! one [`TickSignal`], and one [`FlushTask`] per network thread writes the frames of its
//! shard of the connections registered in the [`FlushRegistry`] (see [`super::egress`] for
//! how a connection's writes are shared with its own task).

use std::io::ErrorKind;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::egress::{Egress, FirstWrite, Flushed};
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
        let mut batch = SendBatch::new();
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
                    let burst = &targets[done..end];
                    match &mut batch {
                        Some(batch) => batch.flush(burst, &mut written),
                        None => {
                            for egress in burst {
                                hand_over_unless_idle(egress, egress.try_flush(&mut written));
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

/// A connection whose flush did not end idle (busy, full or failed): its connection task
/// takes it from here.
fn hand_over_unless_idle(egress: &Egress, flushed: Option<Flushed>) {
    if flushed != Some(Flushed::Idle) {
        egress.waker().wake();
    }
}

/// A send of the batch whose completion never came (the wait failed).
const NO_COMPLETION: i32 = i32::MIN;

/// A flush burst's first writes as one io_uring submission: one `io_uring_enter` for up to
/// [`YIELD_EVERY`] sends instead of a `writev` each. Measured on the floor's pattern
/// (`tools/uring-floor`), that saves 11-22% of a frame's kernel cost; the rest of it is TCP
/// and the loopback delivery, which no batching removes. Each send is the very write the
/// connection's flush would have made first, made while its lock is held; the flush then
/// goes on from that write's result as usual (more frames, partial writes, a full socket),
/// so the bytes on the wire are the same. Sends carry `MSG_DONTWAIT`: a full socket fails
/// at once, as the non-blocking `writev` does, and the submission never waits for a peer.
/// Where the kernel refuses io_uring (disabled, a container's seccomp profile), the flush
/// tasks make their writes one by one.
struct SendBatch {
    ring: io_uring::IoUring,
}

impl SendBatch {
    /// A ring for one flush task, or `None` if the kernel refuses it.
    fn new() -> Option<Self> {
        match io_uring::IoUring::new(YIELD_EVERY as u32) {
            Ok(ring) => Some(Self { ring }),
            Err(error) => {
                // Said once, not once per flush task: the kernel answers them all alike.
                static TOLD: std::sync::Once = std::sync::Once::new();
                TOLD.call_once(|| {
                    tracing::info!(%error, "io_uring unavailable: the flush writes one socket at a time");
                });
                None
            }
        }
    }

    /// Queues the send of `first` as entry `index` of the submission; `false` if the ring
    /// is full (it holds a burst, so it is not).
    fn queue(&mut self, first: &FirstWrite, index: usize) -> bool {
        let send = opcode::Send::new(types::Fd(first.fd), first.bytes, first.len as u32)
            .flags(libc::MSG_DONTWAIT)
            .build()
            .user_data(index as u64);
        // SAFETY: the bytes are the connection's queued frame or control bytes, which do not
        // move or change while its lock is held: the caller keeps it until the completions
        // are read; the socket stays open as long as the `Egress`.
        unsafe { self.ring.submission().push(&send) }.is_ok()
    }

    fn flush(&mut self, burst: &[Arc<Egress>], written: &mut u64) {
        // Each connection whose first write was queued, its lock, and that write's result.
        let mut queued = Vec::with_capacity(burst.len());
        for egress in burst {
            let Some((mut drain, first)) = egress.try_begin_flush() else {
                egress.waker().wake(); // the connection task is writing
                continue;
            };
            // Nothing to write, or not one buffer (WebSocket): the usual way.
            if !first.is_some_and(|first| self.queue(&first, queued.len())) {
                let flushed = egress.flush_from(&mut drain, None, written);
                hand_over_unless_idle(egress, Some(flushed));
                continue;
            }
            queued.push((egress, drain, NO_COMPLETION));
        }
        let mut completed = 0;
        while completed < queued.len() {
            match self.ring.submit_and_wait(queued.len() - completed) {
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::ResourceBusy
                    ) => {}
                Err(error) => {
                    tracing::error!(%error, "io_uring wait failed");
                    break;
                }
            }
            for completion in self.ring.completion() {
                if let Some((_, _, result)) = queued.get_mut(completion.user_data() as usize) {
                    *result = completion.result();
                    completed += 1;
                }
            }
        }
        for (egress, mut drain, result) in queued {
            let first = match result {
                NO_COMPLETION => {
                    // Whether its bytes left is unknown: its stream cannot go on.
                    egress.abort_on_close();
                    egress.waker().request_close(CloseReason::InternalError);
                    continue;
                }
                sent if sent >= 0 => Ok(sent as usize),
                error => Err(std::io::Error::from_raw_os_error(-error)),
            };
            let flushed = egress.flush_from(&mut drain, Some(first), written);
            hand_over_unless_idle(egress, Some(flushed));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::bridge::outbox::{OutboxWriter, outbox};
    use crate::net::Transport;

    /// A server-side connection over loopback: its egress, the outbox the tick would fill,
    /// and the client's end.
    async fn connection(listener: &TcpListener) -> (Arc<Egress>, OutboxWriter, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let (writer, reader) = outbox(4);
        (
            Arc::new(Egress::new(write, reader, Transport::Tcp)),
            writer,
            client,
        )
    }

    fn publish(writer: &mut OutboxWriter, frame: &[u8]) {
        writer.publish_with(|slot| {
            slot.bytes.extend_from_slice(frame);
            true
        });
    }

    async fn read_exactly(client: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        client.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn batched_first_writes_leave_the_bytes_a_write_per_connection_would() {
        let Some(mut batch) = SendBatch::new() else {
            // Every socket test covers the one-by-one path; this one is about the batch.
            eprintln!("io_uring unavailable here: nothing to compare");
            return;
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // One frame; two frames (the second goes out by the flush that follows the batched
        // write); a frame far larger than the sockets hold (a partial send, then a full socket).
        let (one, mut one_out, mut one_client) = connection(&listener).await;
        let (two, mut two_out, mut two_client) = connection(&listener).await;
        let (big, mut big_out, mut big_client) = connection(&listener).await;
        publish(&mut one_out, b"first frame");
        publish(&mut two_out, b"second");
        publish(&mut two_out, b"third frame");
        let large: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
        publish(&mut big_out, &large);

        let mut written = 0;
        batch.flush(&[one.clone(), two.clone(), big.clone()], &mut written);

        assert_eq!(written, 3, "the three small frames are written whole");
        assert_eq!(read_exactly(&mut one_client, 11).await, b"first frame");
        assert_eq!(
            read_exactly(&mut two_client, 17).await,
            b"secondthird frame"
        );
        assert!(!big.welcomed(), "16 MiB do not fit in the sockets at once");
        // The connection task's path takes over from where the batch left off, as the
        // client reads.
        let length = large.len();
        let reader = tokio::spawn(async move { read_exactly(&mut big_client, length).await });
        while big.flush(&mut written) == Flushed::Blocked {
            big.writable().await.unwrap();
        }
        let received = reader.await.unwrap();
        assert!(
            received == large,
            "the large frame arrives whole and in order"
        );
        assert_eq!(written, 4);
    }
}
