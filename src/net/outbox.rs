//! The hand-off of frames from the tick thread to one connection's task.
//!
//! A fixed set of buffers circulates between two lock-free queues: the tick pops a `free`
//! buffer, fills it with the client's frame, pushes it to `ready` and wakes the task; the task
//! writes it to the socket and returns it to `free`. Nothing is allocated in steady state, the
//! tick never waits, and a client's outbound memory is bounded by
//! `buffers x max frame size`. When no buffer is free, the client is not draining its socket:
//! the tick drops that frame and resynchronises the client later (see `replication::flush`).

use std::sync::atomic::{AtomicU8, Ordering};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::protocol::CloseReason;

const NO_CLOSE: u8 = u8::MAX;

/// One connection's outbound frame queue, shared by the tick thread and its task.
pub struct Outbox {
    free: ArrayQueue<Vec<u8>>,
    ready: ArrayQueue<Vec<u8>>,
    wake: Notify,
    close: AtomicU8,
}

impl Outbox {
    /// An outbox with `buffers` frame buffers (at least 2: one being written, one queued).
    pub fn new(buffers: usize) -> Self {
        let buffers = buffers.max(2);
        let free = ArrayQueue::new(buffers);
        for _ in 0..buffers {
            let _ = free.push(Vec::with_capacity(256));
        }
        Self {
            free,
            ready: ArrayQueue::new(buffers),
            wake: Notify::new(),
            close: AtomicU8::new(NO_CLOSE),
        }
    }

    /// Tick side: a cleared buffer to fill, or `None` if the client has every buffer in flight.
    pub fn take_free(&self) -> Option<Vec<u8>> {
        self.free.pop().map(|mut buffer| {
            buffer.clear();
            buffer
        })
    }

    /// Tick side: queues a filled buffer (from [`Outbox::take_free`]) and wakes the task.
    pub fn submit(&self, buffer: Vec<u8>) {
        // Cannot fail: the buffer came out of `free`, and the two queues share one capacity.
        let _ = self.ready.push(buffer);
        self.wake.notify_one();
    }

    /// Tick side: gives back a buffer that will not be sent after all.
    pub fn give_back(&self, buffer: Vec<u8>) {
        let _ = self.free.push(buffer);
    }

    /// Tick side: asks the task to send a close with `reason` after the queued frames.
    pub fn request_close(&self, reason: CloseReason) {
        self.close.store(reason.index() as u8, Ordering::Release);
        self.wake.notify_one();
    }

    /// Task side: the next frame to write.
    pub fn next_ready(&self) -> Option<Vec<u8>> {
        self.ready.pop()
    }

    /// Task side: returns a written buffer.
    pub fn recycle(&self, buffer: Vec<u8>) {
        self.give_back(buffer);
    }

    /// Task side: the close the tick asked for, if any.
    pub fn requested_close(&self) -> Option<CloseReason> {
        CloseReason::ALL
            .get(self.close.load(Ordering::Acquire) as usize)
            .copied()
    }

    /// Task side: resolves once the tick has submitted a frame or asked for a close.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Frames queued and not yet taken by the task.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_never_drains_runs_out_of_buffers_instead_of_memory() {
        let outbox = Outbox::new(3);
        for _ in 0..3 {
            let mut buffer = outbox.take_free().expect("a free buffer");
            buffer.extend_from_slice(b"frame");
            outbox.submit(buffer);
        }
        assert!(outbox.take_free().is_none());
        assert_eq!(outbox.queued(), 3);
        let written = outbox.next_ready().unwrap();
        assert_eq!(written, b"frame");
        outbox.recycle(written);
        assert!(
            outbox.take_free().unwrap().is_empty(),
            "a recycled buffer comes back cleared"
        );
    }

    #[test]
    fn a_requested_close_is_remembered() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.requested_close(), None);
        outbox.request_close(CloseReason::ViewTooLarge);
        assert_eq!(outbox.requested_close(), Some(CloseReason::ViewTooLarge));
    }
}
