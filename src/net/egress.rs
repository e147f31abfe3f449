//! A connection's outbound side, shared by its connection task and the network runtime's
//! flush tasks.
//!
//! Once per tick, a flush task writes every registered connection's new frames straight to
//! its socket with non-blocking vectored writes, one socket after another: no task wake-up,
//! no scheduler round trip and no poll of a connection future per frame, and the writes of
//! a tick go out in one tight burst instead of interleaving with input reads in the run
//! queue. Only when a socket cannot take a whole frame (a slow reader), or the tick asked for
//! a close, is the connection task woken; it finishes the write asynchronously.
//!
//! Whoever holds the [`Drain`] lock writes; the other side never waits for a write in
//! progress (the flush task skips a busy connection and wakes its task instead). Bytes never
//! interleave: a frame started is finished before anything else, and the connection task's
//! own messages (pongs, the last close) go through the same lock as `control` bytes, written
//! between frames.

use std::io::{self, IoSlice};
use std::sync::{Mutex, MutexGuard, TryLockError};

use tokio::net::tcp::OwnedWriteHalf;

use crate::bridge::outbox::{OutboxReader, OutboxWaker};

/// Most bytes of the connection task's own messages (pongs) waiting for a socket that does
/// not drain; beyond it they are not sent.
const MAX_CONTROL_BYTES: usize = 1024;

/// The outbound side of one connection.
pub struct Egress {
    writer: OwnedWriteHalf,
    drain: Mutex<Drain>,
    /// Wakes the connection task (readable without the lock).
    waker: OutboxWaker,
}

/// What is waiting to be written, and how far the current write got.
pub(crate) struct Drain {
    reader: OutboxReader,
    /// Bytes of the front frame already written.
    offset: usize,
    /// Messages of the connection task (pongs, the last close), written between frames.
    control: Vec<u8>,
    /// No more frames: the session is ending (only `control` is still written).
    closed: bool,
    /// A whole frame has been written: the Welcome (the tick publishes it first).
    welcomed: bool,
}

/// How far a flush got.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is written.
    Idle,
    /// The socket is full; retry once it is writable.
    Blocked,
    /// The socket failed.
    Failed,
}

impl Egress {
    /// Wraps a connection's write half and its outbox.
    pub fn new(writer: OwnedWriteHalf, reader: OutboxReader) -> Egress {
        Egress {
            writer,
            waker: reader.waker(),
            drain: Mutex::new(Drain {
                reader,
                offset: 0,
                control: Vec::new(),
                closed: false,
                welcomed: false,
            }),
        }
    }

    /// Whether the first frame of the session (the Welcome) has been written whole.
    pub fn welcomed(&self) -> bool {
        self.lock().welcomed
    }

    /// The flush tasks' path: writes what it can without waiting, unless the connection
    /// task holds the lock. Returns `None` when the lock was busy.
    pub fn try_flush(&self, written: &mut u64) -> Option<Flushed> {
        let mut drain = match self.drain.try_lock() {
            Ok(drain) => drain,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        Some(drain.flush(|bufs| self.writer.try_write_vectored(bufs), written))
    }

    /// The connection task's path: like [`Egress::try_flush`] but takes the lock (held by a
    /// flush task at most for one non-blocking write).
    pub fn flush(&self, written: &mut u64) -> Flushed {
        self.lock()
            .flush(|bufs| self.writer.try_write_vectored(bufs), written)
    }

    /// Queues a message of the connection task (written after the current frame); `false`
    /// (and nothing queued) when `MAX_CONTROL_BYTES` are already waiting.
    pub fn queue_control(&self, bytes: &[u8]) -> bool {
        let mut drain = self.lock();
        if drain.control.len() + bytes.len() > MAX_CONTROL_BYTES {
            return false;
        }
        drain.control.extend_from_slice(bytes);
        true
    }

    /// Ends the frame stream: after the frame being written (if any), only the bytes queued
    /// here are sent.
    pub fn close_with(&self, bytes: &[u8]) {
        let mut drain = self.lock();
        drain.closed = true;
        drain.control.extend_from_slice(bytes);
    }

    /// The connection task's doorbell: rung by the tick (Welcome, close) and by a flush task
    /// that hands the connection over.
    pub fn waker(&self) -> &OutboxWaker {
        &self.waker
    }

    /// Makes the coming close of the socket a reset: the kernel drops whatever is still
    /// queued for the peer at once, instead of keeping it (and its memory) for minutes of
    /// retries to a peer that does not read.
    pub fn abort_on_close(&self) {
        let stream: &tokio::net::TcpStream = self.writer.as_ref();
        let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Waits until the socket can take more bytes.
    pub async fn writable(&self) -> io::Result<()> {
        self.writer.writable().await
    }

    fn lock(&self) -> MutexGuard<'_, Drain> {
        self.drain.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drain {
    /// Writes queued bytes in order with `write` (non-blocking) until done, blocked or failed;
    /// counts whole frames written into `written`.
    pub(crate) fn flush(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
        written: &mut u64,
    ) -> Flushed {
        loop {
            let result = if self.offset == 0 && !self.control.is_empty() {
                write(&[IoSlice::new(&self.control)]).map(|n| {
                    self.control.drain(..n);
                })
            } else if self.closed && self.offset == 0 {
                return Flushed::Idle; // ending: no new frames
            } else {
                let Some(slot) = self.reader.front() else {
                    return Flushed::Idle;
                };
                let (head, body) = slot.parts();
                let total = head.len() + body.len();
                let (head_left, body_left) = if self.offset < head.len() {
                    (&head[self.offset..], body)
                } else {
                    (&[][..], &body[self.offset - head.len()..])
                };
                write(&[IoSlice::new(head_left), IoSlice::new(body_left)]).map(|n| {
                    self.offset += n;
                    if self.offset == total {
                        self.offset = 0;
                        self.reader.release();
                        self.welcomed = true;
                        *written += 1;
                    }
                })
            };
            match result {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flushed::Failed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::outbox::outbox;

    /// A socket that takes at most `chunk` bytes per write and refuses every third call.
    struct Choppy {
        chunk: usize,
        calls: usize,
        out: Vec<u8>,
    }

    impl Choppy {
        fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(self.chunk - taken);
                self.out.extend_from_slice(&buf[..n]);
                taken += n;
            }
            Ok(taken)
        }
    }

    #[test]
    fn frames_and_control_bytes_never_interleave_whatever_the_socket_takes() {
        let (mut writer, reader) = outbox(4);
        let mut drain = Drain {
            reader,
            offset: 0,
            control: Vec::new(),
            closed: false,
            welcomed: false,
        };
        for frame in [b"AAAAAAA".as_slice(), b"BBB"] {
            writer.publish_with(|slot| {
                slot.head.extend_from_slice(&frame[..2]);
                slot.shared = Some(std::sync::Arc::new(frame[2..].to_vec()));
                true
            });
        }
        let mut socket = Choppy {
            chunk: 3,
            calls: 0,
            out: Vec::new(),
        };
        let mut written = 0;
        // Control bytes queued while the first frame is half written wait for its end.
        assert_eq!(
            drain.flush(|b| socket.write(b), &mut written),
            Flushed::Blocked
        );
        drain.control.extend_from_slice(b"pp");
        drain.closed = true;
        while drain.flush(|b| socket.write(b), &mut written) == Flushed::Blocked {}
        assert_eq!(
            socket.out, b"AAAAAAApp",
            "the first frame, then the control bytes"
        );
        assert_eq!(written, 1, "the second frame is not sent once closed");
    }
}
