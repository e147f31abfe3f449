//! The hand-off of frames from the tick thread to one connection's task: a single-producer,
//! single-consumer ring of reusable frame buffers.
//!
//! A slot holds one frame as two parts: `head`, bytes written for this client only, and
//! optionally `shared`, a body shared by every client in the same cell with the same view
//! (built once per tick, referenced rather than copied; the socket write gathers both parts
//! with one vectored write).
//!
//! The tick (through the [`OutboxWriter`] held by the client's entity) fills the next free
//! slot in place and publishes it; the connection task (through the [`OutboxReader`]) writes
//! the oldest published slot to its socket and then releases it. Nothing is allocated in
//! steady state, neither side ever waits for the other, and a client's outbound memory is
//! bounded by `slots x max frame size`. When every slot is published and unwritten, the client
//! is not draining its socket: the tick drops that frame and resynchronises the client later
//! (see `replication::frames`).
//!
//! Publishing does not wake the connection task: the tick sends one [`TickSignal`] per tick
//! and the network runtime's [`WakeTask`] wakes every outbox in the [`WakeRegistry`] that has
//! unwritten frames, so the tick never takes tokio's scheduler lock.

use std::cell::UnsafeCell;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::protocol::CloseReason;

const NO_CLOSE: u8 = u8::MAX;

struct Shared {
    /// Slots published so far (written only by the writer).
    published: AtomicUsize,
    /// Slots released by the reader so far (written only by the reader).
    released: AtomicUsize,
    close: AtomicU8,
    wake: Notify,
    slots: Box<[UnsafeCell<FrameSlot>]>,
}

/// A frame body shared by several clients' frames.
pub type SharedBody = Arc<Vec<u8>>;

/// One frame: `head` followed by `shared`, if any.
#[derive(Default, Debug)]
pub struct FrameSlot {
    /// Bytes for this client only; starts with the frame's length prefix.
    pub head: Vec<u8>,
    /// A body shared with other clients, sent right after `head`.
    pub shared: Option<SharedBody>,
}

impl FrameSlot {
    /// The frame's two parts, in order.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        (
            &self.head,
            self.shared.as_deref().map_or(&[][..], |body| &body[..]),
        )
    }

    /// Total length of the frame in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.shared.as_ref().map_or(0, |body| body.len())
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame in one buffer (tests and tools; allocates).
    pub fn to_vec(&self) -> Vec<u8> {
        let (head, shared) = self.parts();
        [head, shared].concat()
    }
}

// SAFETY: a slot is accessed either by the writer (while it is free: index in
// [published, released + len)) or by the reader (while it is published: index in
// [released, published)), never both; the Release/Acquire pairs on `published` and
// `released` order the hand-over. There is exactly one writer and one reader, enforced by
// `OutboxWriter` and `OutboxReader` being unique (not Clone) and taking `&mut self` to move
// the indices.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// The tick's end: fills and publishes frames.
pub struct OutboxWriter(Arc<Shared>);

/// The connection task's end: takes published frames, releases them once written.
pub struct OutboxReader(Arc<Shared>);

/// Creates an outbox with `slots` frame buffers (at least 2: one being written, one queued).
pub fn outbox(slots: usize) -> (OutboxWriter, OutboxReader) {
    let slots = (0..slots.max(2))
        .map(|_| {
            UnsafeCell::new(FrameSlot {
                head: Vec::with_capacity(64),
                shared: None,
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        published: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        close: AtomicU8::new(NO_CLOSE),
        wake: Notify::new(),
        slots,
    });
    (OutboxWriter(shared.clone()), OutboxReader(shared))
}

/// Wakes one connection task; see [`OutboxWriter::wake`].
pub struct OutboxWaker(Arc<Shared>);

impl OutboxWaker {
    /// Wakes the task if frames are waiting to be written.
    pub fn wake_if_pending(&self) {
        let shared = &*self.0;
        if shared.published.load(Ordering::Acquire) != shared.released.load(Ordering::Acquire) {
            shared.wake.notify_one();
        }
    }
}

/// What became of a frame offered to [`OutboxWriter::publish_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Queued for the connection task, which was woken.
    Queued,
    /// Every slot is in flight (slow reader); nothing was written.
    Full,
    /// The filler declined the frame; the slot stays free.
    Declined,
}

impl OutboxWriter {
    /// Fills the next free slot (passed in empty) with `fill` and publishes it if `fill`
    /// returns true. The task is woken by the [`WakeTask`] after the tick's [`TickSignal`],
    /// or at once with [`OutboxWriter::wake`].
    pub fn publish_with(&mut self, fill: impl FnOnce(&mut FrameSlot) -> bool) -> Publish {
        let shared = &*self.0;
        let published = shared.published.load(Ordering::Relaxed);
        let released = shared.released.load(Ordering::Acquire);
        if published - released == shared.slots.len() {
            return Publish::Full;
        }
        // SAFETY: the slot at `published` is free (see `Shared`), and only this unique
        // writer touches free slots.
        let slot = unsafe { &mut *shared.slots[published % shared.slots.len()].get() };
        slot.head.clear();
        slot.shared = None;
        if !fill(slot) {
            return Publish::Declined;
        }
        shared.published.store(published + 1, Ordering::Release);
        Publish::Queued
    }

    /// Wakes the connection task now (for rare messages such as the Welcome; a tick's frames
    /// are woken in bulk by the [`WakeTask`]).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// A handle for the [`WakeRegistry`].
    pub fn waker(&self) -> OutboxWaker {
        OutboxWaker(self.0.clone())
    }

    /// Asks the task to send a close with `reason` after the queued frames.
    pub fn request_close(&self, reason: CloseReason) {
        self.0.close.store(reason.index() as u8, Ordering::Release);
        self.0.wake.notify_one();
    }
}

impl OutboxReader {
    /// The oldest published frame, if any. It stays valid until [`OutboxReader::release`].
    pub fn front(&mut self) -> Option<&mut FrameSlot> {
        let shared = &*self.0;
        let released = shared.released.load(Ordering::Relaxed);
        if released == shared.published.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: the slot at `released` is published, so the writer does not touch it until
        // this unique reader releases it.
        Some(unsafe { &mut *shared.slots[released % shared.slots.len()].get() })
    }

    /// Gives the frame returned by [`OutboxReader::front`] back to the writer, dropping its
    /// reference to any shared body first (so the tick can reuse that body's memory).
    pub fn release(&mut self) {
        let shared = &*self.0;
        let released = shared.released.load(Ordering::Relaxed);
        if released != shared.published.load(Ordering::Acquire) {
            // SAFETY: as in `front`: the slot is still this reader's until the store below.
            unsafe { (*shared.slots[released % shared.slots.len()].get()).shared = None };
            shared.released.store(released + 1, Ordering::Release);
        }
    }

    /// The close the tick asked for, if any.
    pub fn requested_close(&self) -> Option<CloseReason> {
        CloseReason::ALL
            .get(self.0.close.load(Ordering::Acquire) as usize)
            .copied()
    }

    /// Resolves once the tick has published a frame or asked for a close since the last call.
    pub async fn woken(&self) {
        self.0.wake.notified().await;
    }

    /// Frames published and not yet released.
    pub fn queued(&self) -> usize {
        self.0.published.load(Ordering::Acquire) - self.0.released.load(Ordering::Acquire)
    }
}

/// Wakes, once per tick, every connection task that has frames to write.
///
/// Waking a tokio task from outside the runtime goes through the scheduler's shared inject
/// queue (a lock) and may unpark a worker; doing that once per client per tick from the tick
/// thread would put a lock shared with the network threads on the tick's path. Instead each
/// connection registers its outbox here when its session opens, the tick sends one signal per
/// tick ([`TickSignal`]), and a task on the network runtime ([`WakeTask`]) wakes the
/// registered outboxes that have unwritten frames, from inside the runtime.
#[derive(Default)]
pub struct WakeRegistry {
    // A std mutex, not a tokio one: nothing awaits while holding it. Sessions take it once
    // when they open and once when they end; the wake task once per tick.
    outboxes: std::sync::Mutex<ahash::AHashMap<u64, OutboxWaker>>,
}

impl WakeRegistry {
    /// Registers connection `id`'s outbox until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, id: u64, waker: OutboxWaker) -> Registration {
        self.outboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, waker);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    fn wake_pending(&self) {
        let outboxes = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
        outboxes.values().for_each(OutboxWaker::wake_if_pending);
    }
}

/// Keeps an outbox registered in a [`WakeRegistry`]; unregisters it when dropped.
pub struct Registration {
    registry: Arc<WakeRegistry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .outboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The tick's end: tells the network runtime that a tick's frames are published.
#[derive(bevy_ecs::resource::Resource, Default)]
pub struct TickSignal(Option<tokio::sync::mpsc::Sender<()>>);

/// The network side: run [`WakeTask::run`] on the runtime.
pub struct WakeTask {
    signals: tokio::sync::mpsc::Receiver<()>,
    registry: Arc<WakeRegistry>,
}

/// Creates the tick's signal and the task that wakes `registry`'s outboxes on each signal.
pub fn tick_signal(registry: Arc<WakeRegistry>) -> (TickSignal, WakeTask) {
    let (sender, signals) = tokio::sync::mpsc::channel(1);
    (TickSignal(Some(sender)), WakeTask { signals, registry })
}

impl TickSignal {
    /// Signals that this tick's frames are published. Never waits: if the previous signal is
    /// still pending, the wake task has not run yet and will see these frames too.
    pub fn send(&self) {
        if let Some(sender) = &self.0 {
            let _ = sender.try_send(());
        }
    }
}

impl WakeTask {
    /// Wakes the outboxes with pending frames on every signal, until the tick is gone.
    pub async fn run(mut self) {
        while self.signals.recv().await.is_some() {
            self.registry.wake_pending();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(writer: &mut OutboxWriter, bytes: &[u8]) -> Publish {
        writer.publish_with(|slot| {
            slot.head.extend_from_slice(bytes);
            true
        })
    }

    #[test]
    fn a_client_that_never_drains_runs_out_of_slots_instead_of_memory() {
        let (mut writer, mut reader) = outbox(3);
        for i in 0..3u8 {
            assert_eq!(frame(&mut writer, &[i]), Publish::Queued);
        }
        assert_eq!(frame(&mut writer, b"x"), Publish::Full);
        assert_eq!(reader.queued(), 3);
        assert_eq!(reader.front().unwrap().to_vec(), vec![0u8]);
        reader.release();
        assert_eq!(
            frame(&mut writer, &[3]),
            Publish::Queued,
            "a released slot is reused"
        );
        let mut seen = Vec::new();
        while let Some(slot) = reader.front() {
            seen.push(slot.head[0]);
            reader.release();
        }
        assert_eq!(seen, vec![1, 2, 3], "frames come out in order");
    }

    #[test]
    fn a_declined_frame_leaves_the_slot_free() {
        let (mut writer, reader) = outbox(2);
        assert_eq!(
            writer.publish_with(|slot| !slot.is_empty()),
            Publish::Declined
        );
        assert_eq!(reader.queued(), 0);
    }

    #[test]
    fn frames_cross_threads_intact() {
        let (mut writer, mut reader) = outbox(4);
        let consumer = std::thread::spawn(move || {
            let mut next = 0u32;
            while next < 10_000 {
                if let Some(slot) = reader.front() {
                    assert_eq!(u32::from_le_bytes(slot.head[..].try_into().unwrap()), next);
                    next += 1;
                    reader.release();
                }
            }
        });
        let mut sent = 0u32;
        while sent < 10_000 {
            if frame(&mut writer, &sent.to_le_bytes()) == Publish::Queued {
                sent += 1;
            }
        }
        consumer.join().unwrap();
    }

    #[test]
    fn released_frames_drop_their_shared_body_reference() {
        let (mut writer, mut reader) = outbox(2);
        let body: SharedBody = Arc::new(vec![1, 2, 3]);
        writer.publish_with(|slot| {
            slot.head.push(0);
            slot.shared = Some(body.clone());
            true
        });
        assert_eq!(reader.front().unwrap().to_vec(), vec![0, 1, 2, 3]);
        assert_eq!(Arc::strong_count(&body), 2);
        reader.release();
        assert_eq!(
            Arc::strong_count(&body),
            1,
            "the tick may reuse the body now"
        );
    }

    #[test]
    fn a_requested_close_is_remembered() {
        let (writer, reader) = outbox(2);
        assert_eq!(reader.requested_close(), None);
        writer.request_close(CloseReason::ViewTooLarge);
        assert_eq!(reader.requested_close(), Some(CloseReason::ViewTooLarge));
    }
}
