//! The hand-off of frames from the tick thread to one connection's writers (its shard's flush
//! task, or its own task when the socket is full): a single-producer, single-consumer ring of
//! reusable frame buffers.
//!
//! A slot holds one whole frame, cut for its client (see `replication::frames`).
//!
//! The tick (through the [`OutboxWriter`] held by the client's entity) fills the next free
//! slot in place and publishes it; the consumer (through the [`OutboxReader`], held by the
//! connection's [`Egress`](super::egress::Egress)) writes the oldest published slot to the
//! socket and then releases it. Nothing is allocated in
//! steady state, neither side ever waits for the other, and a client's outbound memory is
//! bounded by `slots x max frame size`. When every slot is published and unwritten, the client
//! is not draining its socket: the tick drops that frame and resynchronises the client later
//! (see `replication::frames`).
//!
//! Publishing does not wake anything: the tick sends one signal per tick and the network
//! runtime's flush tasks write every registered connection's new frames (see
//! [`super::flush`]), so the tick never takes tokio's scheduler lock.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::doorbell::Doorbell;
use crate::protocol::CloseReason;

const NO_CLOSE: u8 = u8::MAX;

struct Shared {
    /// Slots published so far (written only by the writer).
    published: AtomicUsize,
    /// Slots released by the reader so far (written only by the reader).
    released: AtomicUsize,
    close: AtomicU8,
    /// What comes with a close: its detail text (an operator's kick reason; set before
    /// `close` is stored), or a handoff to another zone. A rare path, so a mutex.
    close_note: Mutex<Option<CloseNote>>,
    /// A Transfer waits in `close_note` (read on every wake-up of the connection task, so an
    /// atomic rather than the mutex).
    transfer_pending: AtomicBool,
    /// The next publish finds the outbox full (a replay reproducing a frame the live server
    /// dropped for a slow reader; never set on a live server).
    refuse_next: AtomicBool,
    doorbell: Doorbell,
    slots: Box<[UnsafeCell<FrameSlot>]>,
}

/// What comes with a close (see `Shared::close_note`).
enum CloseNote {
    /// The Close's detail text.
    Detail(String),
    /// The session ends with a Transfer to another zone instead of a Close.
    Transfer(PendingTransfer),
}

/// A handoff waiting for its player's final record to be saved: the connection sends
/// `message` (a whole `Transfer` frame) only once `committed` says `true`.
pub(crate) struct PendingTransfer {
    /// The destination zone's name (for the log).
    pub zone: String,
    /// The Transfer message, framed.
    pub message: Vec<u8>,
    /// Whether the player's final record (with the ticket's nonce) was committed.
    pub committed: tokio::sync::oneshot::Receiver<bool>,
}

/// One frame.
///
/// `bytes` keeps its capacity from frame to frame (no allocation in steady state). Only the
/// slots a backlog reaches grow: while the reader keeps up, every frame is written into the
/// same buffer (see [`OutboxWriter::publish_with`]).
#[derive(Default, Debug)]
pub(crate) struct FrameSlot {
    /// The frame, starting with its length prefix.
    pub bytes: Vec<u8>,
}

impl Shared {
    fn request_close(&self, reason: CloseReason) {
        self.close.store(reason.index() as u8, Ordering::Release);
        self.doorbell.ring();
    }

    fn request_close_with_detail(&self, reason: CloseReason, detail: String) {
        let mut note = self.close_note.lock().unwrap_or_else(|e| e.into_inner());
        // A close with a detail (an operator's kick) replaces a Transfer not yet taken: the
        // flag follows the note it mirrors.
        *note = Some(CloseNote::Detail(detail));
        self.transfer_pending.store(false, Ordering::Release);
        drop(note);
        self.request_close(reason);
    }

    fn close_detail(&self) -> Option<String> {
        match &*self.close_note.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(CloseNote::Detail(detail)) => Some(detail.clone()),
            _ => None,
        }
    }

    fn request_transfer(&self, transfer: PendingTransfer) {
        *self.close_note.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(CloseNote::Transfer(transfer));
        self.transfer_pending.store(true, Ordering::Release);
        self.doorbell.ring();
    }

    fn take_transfer(&self) -> Option<PendingTransfer> {
        let mut note = self.close_note.lock().unwrap_or_else(|e| e.into_inner());
        match note.take() {
            Some(CloseNote::Transfer(transfer)) => {
                self.transfer_pending.store(false, Ordering::Release);
                Some(transfer)
            }
            other => {
                *note = other;
                None
            }
        }
    }

    fn requested_close(&self) -> Option<CloseReason> {
        CloseReason::ALL
            .get(self.close.load(Ordering::Acquire) as usize)
            .copied()
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
pub(crate) struct OutboxWriter(Arc<Shared>);

/// The consuming end (inside the connection's `Egress`): takes published frames, releases them
/// once written.
pub(crate) struct OutboxReader(Arc<Shared>);

/// Creates an outbox with `slots` frame buffers (at least 2: one being written, one queued).
pub(crate) fn outbox(slots: usize) -> (OutboxWriter, OutboxReader) {
    let slots = (0..slots.max(2))
        // Empty: a slot's buffer is allocated by the first frame that needs it, so the slots
        // a backlog never reaches cost a pointer each.
        .map(|_| UnsafeCell::new(FrameSlot::default()))
        .collect();
    let shared = Arc::new(Shared {
        published: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        close: AtomicU8::new(NO_CLOSE),
        refuse_next: AtomicBool::new(false),
        close_note: Mutex::new(None),
        transfer_pending: AtomicBool::new(false),
        doorbell: Doorbell::default(),
        slots,
    });
    (OutboxWriter(shared.clone()), OutboxReader(shared))
}

/// The connection task's doorbell: what it waits on while its [`OutboxReader`] sits behind
/// the lock of its [`Egress`](super::egress::Egress).
pub(crate) struct OutboxWaker(Arc<Shared>);

impl OutboxWaker {
    /// Wakes the connection task (it will flush and check for a close).
    pub(crate) fn wake(&self) {
        self.0.doorbell.ring();
    }

    /// Resolves once woken since the last call (a wake-up before the call is not lost).
    pub(crate) async fn woken(&self) {
        self.0.doorbell.rung().await;
    }

    /// The close the tick (or the server, when the tick cannot) asked for, if any.
    pub(crate) fn requested_close(&self) -> Option<CloseReason> {
        self.0.requested_close()
    }

    /// Asks the task to close with `reason`, for when the tick cannot (it died).
    pub(crate) fn request_close(&self, reason: CloseReason) {
        self.0.request_close(reason);
    }

    /// The detail text given with the requested close, if any.
    pub(crate) fn close_detail(&self) -> Option<String> {
        self.0.close_detail()
    }

    /// Whether the tick handed the player off (see [`OutboxWaker::take_transfer`]).
    pub(crate) fn has_transfer(&self) -> bool {
        self.0.transfer_pending.load(Ordering::Acquire)
    }

    /// The handoff the tick asked for, if any (taken: the caller sends it).
    pub(crate) fn take_transfer(&self) -> Option<PendingTransfer> {
        self.0.take_transfer()
    }
}

/// What became of a frame offered to [`OutboxWriter::publish_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Queued; a flush task writes it after the tick.
    Queued,
    /// Every slot is in flight (slow reader); nothing was written.
    Full,
    /// The filler declined the frame; the slot stays free.
    Declined,
}

impl OutboxWriter {
    /// Asks for the ring's counters to be loaded ahead of [`OutboxWriter::publish_with`]:
    /// the flush task released slots on another core since the last frame, so their first
    /// load was a miss (18% of the tick thread's samples over sockets at 1,000 players).
    pub(crate) fn prefetch(&self) {
        crate::prefetch::first_lines(Arc::as_ptr(&self.0).cast(), size_of::<Shared>());
    }

    /// Fills the next free slot (passed in empty) with `fill` and publishes it if `fill`
    /// returns true. A flush task writes it after the tick's signal; for a frame
    /// that cannot wait, wake the connection task with [`OutboxWriter::wake`].
    pub(crate) fn publish_with(&mut self, fill: impl FnOnce(&mut FrameSlot) -> bool) -> Publish {
        let shared = &*self.0;
        let published = shared.published.load(Ordering::Relaxed);
        let released = shared.released.load(Ordering::Acquire);
        if published - released == shared.slots.len()
            || (shared.refuse_next.load(Ordering::Relaxed)
                && shared.refuse_next.swap(false, Ordering::Relaxed))
        {
            return Publish::Full;
        }
        let len = shared.slots.len();
        if published == released && published > 0 {
            // Nothing queued: every slot is free. Move the buffers last written (grown to
            // this client's working frame size) into the slot about to be filled, so a
            // reader that keeps up reuses one warm buffer instead of growing every slot of
            // the ring to its largest frame: per-player memory (see `FrameSlot`).
            // SAFETY: both slots are free (see `Shared`) and distinct (len >= 2); only this
            // unique writer touches free slots.
            unsafe {
                std::ptr::swap(
                    shared.slots[(published - 1) % len].get(),
                    shared.slots[published % len].get(),
                );
            }
        }
        // SAFETY: the slot at `published` is free (see `Shared`), and only this unique
        // writer touches free slots.
        let slot = unsafe { &mut *shared.slots[published % len].get() };
        slot.bytes.clear();
        if !fill(slot) {
            return Publish::Declined;
        }
        shared.published.store(published + 1, Ordering::Release);
        Publish::Queued
    }

    /// Wakes the connection task now (for rare messages such as the Welcome; a tick's frames
    /// are written in bulk by the flush tasks).
    pub(crate) fn wake(&self) {
        self.0.doorbell.ring();
    }

    /// Asks the task to send a close with `reason` after the queued frames.
    pub(crate) fn request_close(&self, reason: CloseReason) {
        self.0.request_close(reason);
    }

    /// As [`OutboxWriter::request_close`], with the Close's detail text (the client sees it).
    pub(crate) fn request_close_with_detail(&self, reason: CloseReason, detail: String) {
        self.0.request_close_with_detail(reason, detail);
    }

    /// Ends the session with a Transfer to another zone (after the queued frames), sent once
    /// the player's final record is committed.
    pub(crate) fn request_transfer(&self, transfer: PendingTransfer) {
        self.0.request_transfer(transfer);
    }
}

impl OutboxReader {
    /// The oldest published frame, if any. It stays valid until [`OutboxReader::release`].
    pub(crate) fn front(&mut self) -> Option<&mut FrameSlot> {
        let shared = &*self.0;
        let released = shared.released.load(Ordering::Relaxed);
        if released == shared.published.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: the slot at `released` is published, so the writer does not touch it until
        // this unique reader releases it.
        Some(unsafe { &mut *shared.slots[released % shared.slots.len()].get() })
    }

    /// Gives the frame returned by [`OutboxReader::front`] back to the writer.
    pub(crate) fn release(&mut self) {
        let shared = &*self.0;
        let released = shared.released.load(Ordering::Relaxed);
        if released != shared.published.load(Ordering::Acquire) {
            shared.released.store(released + 1, Ordering::Release);
        }
    }

    /// The close the tick asked for, if any.
    pub(crate) fn requested_close(&self) -> Option<CloseReason> {
        self.0.requested_close()
    }

    /// Makes the next publish find the outbox full, as a slow reader's would (a replay
    /// drops the frames the live server dropped).
    pub(crate) fn refuse_next_frame(&self) {
        self.0.refuse_next.store(true, Ordering::Relaxed);
    }

    /// The connection task's doorbell for this outbox.
    pub(crate) fn waker(&self) -> OutboxWaker {
        OutboxWaker(self.0.clone())
    }

    /// Frames published and not yet released.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.0.published.load(Ordering::Acquire) - self.0.released.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(writer: &mut OutboxWriter, bytes: &[u8]) -> Publish {
        writer.publish_with(|slot| {
            slot.bytes.extend_from_slice(bytes);
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
        assert_eq!(reader.front().unwrap().bytes, vec![0u8]);
        reader.release();
        assert_eq!(
            frame(&mut writer, &[3]),
            Publish::Queued,
            "a released slot is reused"
        );
        let mut seen = Vec::new();
        while let Some(slot) = reader.front() {
            seen.push(slot.bytes[0]);
            reader.release();
        }
        assert_eq!(seen, vec![1, 2, 3], "frames come out in order");
    }

    #[test]
    fn a_reader_that_keeps_up_reuses_one_buffer() {
        let (mut writer, mut reader) = outbox(4);
        let big = [7u8; 4096];
        for round in 0..12 {
            let bytes: &[u8] = if round == 0 { &big } else { b"small" };
            assert_eq!(frame(&mut writer, bytes), Publish::Queued);
            assert_eq!(reader.front().unwrap().bytes, bytes);
            reader.release();
        }
        let capacities: Vec<usize> = reader
            .0
            .slots
            .iter()
            .map(|slot| unsafe { (*slot.get()).bytes.capacity() })
            .collect();
        assert_eq!(
            capacities.iter().filter(|&&c| c >= big.len()).count(),
            1,
            "one buffer grew to the big frame, the others stayed small: {capacities:?}"
        );
    }

    #[test]
    fn a_declined_frame_leaves_the_slot_free() {
        let (mut writer, reader) = outbox(2);
        assert_eq!(
            writer.publish_with(|slot| !slot.bytes.is_empty()),
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
                    assert_eq!(u32::from_le_bytes(slot.bytes[..].try_into().unwrap()), next);
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
    fn a_kick_replaces_a_transfer_not_yet_taken() {
        let (writer, reader) = outbox(2);
        let (_committed, receiver) = tokio::sync::oneshot::channel();
        writer.request_transfer(PendingTransfer {
            zone: "east".into(),
            message: vec![1],
            committed: receiver,
        });
        assert!(reader.waker().has_transfer());
        writer.request_close_with_detail(CloseReason::Kicked, "bye".into());
        assert!(!reader.waker().has_transfer(), "the flag follows the note");
        assert!(reader.waker().take_transfer().is_none());
        assert_eq!(reader.requested_close(), Some(CloseReason::Kicked));
        assert_eq!(reader.waker().close_detail().as_deref(), Some("bye"));
    }

    #[test]
    fn a_requested_close_is_remembered() {
        let (writer, reader) = outbox(2);
        assert_eq!(reader.requested_close(), None);
        writer.request_close(CloseReason::ViewTooLarge);
        assert_eq!(reader.requested_close(), Some(CloseReason::ViewTooLarge));
        assert_eq!(reader.waker().close_detail(), None);
        writer.request_close_with_detail(CloseReason::Kicked, "bye".into());
        assert_eq!(reader.requested_close(), Some(CloseReason::Kicked));
        assert_eq!(reader.waker().close_detail().as_deref(), Some("bye"));
    }
}
