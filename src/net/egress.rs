//! A connection's outbound side, shared by its connection task and the network runtime's
//! flush tasks.
//!
//! Once per tick, a flush task writes every registered connection's new frames straight to
//! its socket with non-blocking writes (a burst's first writes submitted at once, see
//! `flush::SendBatch`), one socket after another: no task wake-up,
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
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard, TryLockError};

use tokio::net::tcp::OwnedWriteHalf;

use super::Transport;
use crate::bridge::outbox::{OutboxReader, OutboxWaker};
use crate::protocol::FRAME_HEADER_BYTES;
use crate::protocol::websocket::{self, MAX_HEADER_BYTES, Opcode};

/// Most bytes of the connection task's own messages (pongs) waiting for a socket that does
/// not drain; beyond it they are not sent.
const MAX_CONTROL_BYTES: usize = 1024;

/// The outbound side of one connection.
pub(crate) struct Egress {
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
    /// How frames are framed on the wire: as published (TCP), or with a WebSocket header in
    /// place of the length prefix.
    transport: Transport,
    /// The WebSocket header of the front frame (computed when its first byte is written).
    ws_header: ([u8; MAX_HEADER_BYTES], usize),
}

/// A flush's first write, to be made elsewhere (a batch of sends): the socket and the
/// bytes, which stay put while the [`Drain`] lock is held.
pub(crate) struct FirstWrite {
    pub fd: RawFd,
    pub bytes: *const u8,
    pub len: usize,
}

/// How far a flush got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued is written.
    Idle,
    /// The socket is full; retry once it is writable.
    Blocked,
    /// The socket failed.
    Failed,
}

impl Egress {
    /// Wraps a connection's write half and its outbox; frames go out framed for `transport`.
    pub(crate) fn new(
        writer: OwnedWriteHalf,
        reader: OutboxReader,
        transport: Transport,
    ) -> Egress {
        Egress {
            writer,
            waker: reader.waker(),
            drain: Mutex::new(Drain {
                reader,
                offset: 0,
                control: Vec::new(),
                closed: false,
                welcomed: false,
                transport,
                ws_header: ([0; MAX_HEADER_BYTES], 0),
            }),
        }
    }

    /// Whether the first frame of the session (the Welcome) has been written whole.
    pub(crate) fn welcomed(&self) -> bool {
        self.lock().welcomed
    }

    /// The flush tasks' path: writes what it can without waiting, unless the connection
    /// task holds the lock. Returns `None` when the lock was busy.
    pub(crate) fn try_flush(&self, written: &mut u64) -> Option<Flushed> {
        let mut drain = self.try_lock()?;
        Some(self.flush_from(&mut drain, None, written))
    }

    /// The batched flush's first step: the lock if free, and where the flush's first write
    /// would start (the socket, and the one buffer it would write), if it is one buffer
    /// (see [`Drain::first_write`]). The caller submits that write elsewhere, then hands its
    /// result to [`Egress::flush_from`] with the lock still held.
    pub(crate) fn try_begin_flush(&self) -> Option<(MutexGuard<'_, Drain>, Option<FirstWrite>)> {
        let mut drain = self.try_lock()?;
        let stream: &tokio::net::TcpStream = self.writer.as_ref();
        let first = drain.first_write().map(|bytes| FirstWrite {
            fd: stream.as_raw_fd(),
            bytes: bytes.as_ptr(),
            len: bytes.len(),
        });
        Some((drain, first))
    }

    /// Writes what it can of `drain` (this connection's, locked) without waiting: `first` is
    /// the result of the first write if it was made elsewhere (a batch begun by
    /// [`Egress::try_begin_flush`]); the other writes are the socket's non-blocking ones.
    pub(crate) fn flush_from(
        &self,
        drain: &mut Drain,
        mut first: Option<io::Result<usize>>,
        written: &mut u64,
    ) -> Flushed {
        drain.flush(
            |bufs| match first.take() {
                Some(result) => result,
                None => self.writer.try_write_vectored(bufs),
            },
            written,
        )
    }

    /// The connection task's path: like [`Egress::try_flush`] but takes the lock (held by a
    /// flush task at most for one burst of non-blocking writes).
    pub(crate) fn flush(&self, written: &mut u64) -> Flushed {
        self.flush_from(&mut self.lock(), None, written)
    }

    /// Queues a protocol message of the connection task (`frame`: a whole TCP frame, framed
    /// for the transport here), written after the current frame; `false` (and nothing
    /// queued) when `MAX_CONTROL_BYTES` are already waiting.
    pub(crate) fn queue_message(&self, frame: &[u8]) -> bool {
        let mut drain = self.lock();
        if drain.control.len() + frame.len() > MAX_CONTROL_BYTES {
            return false;
        }
        drain.push_message(frame);
        true
    }

    /// Queues bytes already framed for the wire (a WebSocket pong), like
    /// [`Egress::queue_message`].
    pub(crate) fn queue_wire(&self, bytes: &[u8]) -> bool {
        let mut drain = self.lock();
        if drain.control.len() + bytes.len() > MAX_CONTROL_BYTES {
            return false;
        }
        drain.control.extend_from_slice(bytes);
        true
    }

    /// Ends the frame stream: after the frame being written (if any), only `last` (a whole
    /// TCP frame, or nothing) is sent, then, over WebSocket, a close frame with `ws_close`'s
    /// code and reason.
    pub(crate) fn close_with(&self, last: &[u8], ws_close: (u16, &str)) {
        let mut drain = self.lock();
        drain.closed = true;
        if !last.is_empty() {
            drain.push_message(last);
        }
        if drain.transport == Transport::WebSocket {
            let (code, reason) = ws_close;
            drain
                .control
                .extend_from_slice(&websocket::close_frame(code, reason));
        }
    }

    /// The connection task's doorbell: rung by the tick (Welcome, close) and by a flush task
    /// that hands the connection over.
    pub(crate) fn waker(&self) -> &OutboxWaker {
        &self.waker
    }

    /// Makes the coming close of the socket a reset: the kernel drops whatever is still
    /// queued for the peer at once, instead of keeping it (and its memory) for minutes of
    /// retries to a peer that does not read.
    pub(crate) fn abort_on_close(&self) {
        let stream: &tokio::net::TcpStream = self.writer.as_ref();
        let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Waits until the socket can take more bytes.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.writer.writable().await
    }

    /// The lock, unless someone holds it.
    fn try_lock(&self) -> Option<MutexGuard<'_, Drain>> {
        match self.drain.try_lock() {
            Ok(drain) => Some(drain),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Drain> {
        self.drain.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What of `parts` (in order) is still to write after the first `offset` bytes.
fn remaining<'a>(parts: [&'a [u8]; 2], mut offset: usize) -> [IoSlice<'a>; 2] {
    parts.map(|part| {
        let skip = offset.min(part.len());
        offset -= skip;
        IoSlice::new(&part[skip..])
    })
}

impl Drain {
    /// Appends a protocol message (a whole TCP frame) to `control`, framed for the transport.
    fn push_message(&mut self, frame: &[u8]) {
        match self.transport {
            Transport::Tcp => self.control.extend_from_slice(frame),
            Transport::WebSocket => {
                let body = &frame[FRAME_HEADER_BYTES.min(frame.len())..];
                let (header, size) = websocket::frame_header(Opcode::Binary, body.len(), None);
                self.control.extend_from_slice(&header[..size]);
                self.control.extend_from_slice(body);
            }
        }
    }

    /// The bytes [`Drain::flush`]'s first write would write, if they are one buffer (always
    /// over TCP; never over WebSocket, whose frames are written as header and body); `None`
    /// also when there is nothing to write. Mirrors the choice at the top of its loop.
    fn first_write(&mut self) -> Option<&[u8]> {
        if self.transport != Transport::Tcp {
            return None;
        }
        if self.offset == 0 && !self.control.is_empty() {
            return Some(&self.control);
        }
        if self.closed && self.offset == 0 {
            return None;
        }
        self.reader.front().map(|slot| &slot.bytes[self.offset..])
    }

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
                // Over WebSocket the frame's length prefix gives way to a WebSocket header
                // (written before it in the same vectored write: server frames are unmasked).
                let (prefix, frame) = match self.transport {
                    Transport::Tcp => (&[][..], &slot.bytes[..]),
                    Transport::WebSocket => {
                        let frame = &slot.bytes[FRAME_HEADER_BYTES.min(slot.bytes.len())..];
                        if self.offset == 0 {
                            self.ws_header =
                                websocket::frame_header(Opcode::Binary, frame.len(), None);
                        }
                        (&self.ws_header.0[..self.ws_header.1], frame)
                    }
                };
                let total = prefix.len() + frame.len();
                write(&remaining([prefix, frame], self.offset)).map(|n| {
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

    fn drain(reader: OutboxReader, transport: Transport) -> Drain {
        Drain {
            reader,
            offset: 0,
            control: Vec::new(),
            closed: false,
            welcomed: false,
            transport,
            ws_header: ([0; MAX_HEADER_BYTES], 0),
        }
    }

    #[test]
    fn over_websocket_a_frame_gets_a_websocket_header_instead_of_its_prefix() {
        let (mut writer, reader) = outbox(4);
        let mut drain = drain(reader, Transport::WebSocket);
        // A 300-byte body after the 4-byte prefix.
        writer.publish_with(|slot| {
            slot.bytes.extend_from_slice(&300u32.to_le_bytes());
            slot.bytes.extend_from_slice(&[1; 100]);
            slot.bytes.extend_from_slice(&[2; 200]);
            true
        });
        let mut socket = Choppy {
            chunk: 7,
            calls: 0,
            out: Vec::new(),
        };
        let mut written = 0;
        while drain.flush(|b| socket.write(b), &mut written) == Flushed::Blocked {}
        assert_eq!(written, 1);
        let mut expected = vec![0x82, 126, 0x01, 0x2c];
        expected.extend([1; 100]);
        expected.extend([2; 200]);
        assert_eq!(socket.out, expected);
        // The connection task's own messages are framed the same way.
        drain.push_message(&[2, 0, 0, 0, 9, 9]);
        assert_eq!(drain.control, [0x82, 2, 9, 9]);
    }

    #[test]
    fn frames_and_control_bytes_never_interleave_whatever_the_socket_takes() {
        let (mut writer, reader) = outbox(4);
        let mut drain = drain(reader, Transport::Tcp);
        for frame in [b"AAAAAAA".as_slice(), b"BBB"] {
            writer.publish_with(|slot| {
                slot.bytes.extend_from_slice(frame);
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
