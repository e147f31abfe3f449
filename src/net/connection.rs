//! A connection's socket and its inbound buffer: whole client messages read off the socket,
//! and, until its session opens, messages written straight to it. Once the session opens,
//! its write half moves into an [`Egress`] shared with the flush tasks (see
//! [`Connection::open`]); the read half stays here.
//!
//! Reading is zero-copy into a [`FrameReader`] sized by `max_inbound_frame_bytes`; every read
//! may bring zero or more whole frames, which are decoded one by one
//! ([`Connection::buffered_message`]) before the socket is read again. Decoding is sans I/O
//! ([`decode_next`]) and unit tested below; a frame that is too large or does not decode
//! ends the connection with its reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::egress::Egress;
use super::session::Ending;
use crate::bridge::OutboxReader;
use crate::protocol::framing::{FrameError, FrameReader};
use crate::protocol::{
    ClientMessage, CloseReason, ServerMessage, decode_client_message, frame_bytes,
};
use crate::stats::Stats;

/// How long a connection's last message may take to write before the socket is dropped
/// anyway.
pub(crate) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// One client's socket and its inbound buffer.
pub(crate) struct Connection {
    read: OwnedReadHalf,
    /// Until the session opens; then the [`Egress`] owns it.
    write: Option<OwnedWriteHalf>,
    frames: FrameReader,
    stats: Arc<Stats>,
}

impl Connection {
    /// Wraps an accepted socket; frames larger than `max_frame_bytes` end it.
    pub(crate) fn new(stream: TcpStream, max_frame_bytes: u32, stats: Arc<Stats>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read,
            write: Some(write),
            frames: FrameReader::new(max_frame_bytes),
            stats,
        }
    }

    /// The next message: one already buffered, else read from the socket. Cancel-safe: a
    /// cancelled call loses nothing (bytes are kept only once a read completes).
    pub(crate) async fn read_message(&mut self) -> Result<ClientMessage, Ending> {
        loop {
            if let Some(message) = self.buffered_message()? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// The next message already in the buffer, if a whole one is there (no I/O).
    pub(crate) fn buffered_message(&mut self) -> Result<Option<ClientMessage>, Ending> {
        decode_next(&mut self.frames, &self.stats)
    }

    /// Reads once from the socket into the buffer (zero or more whole frames may follow).
    /// Cancel-safe.
    pub(crate) async fn fill(&mut self) -> Result<(), Ending> {
        match self.read.read(self.frames.spare()).await {
            Ok(0) => Err(Ending::ClientLeft),
            Ok(n) => {
                self.frames.filled(n);
                Stats::add(&self.stats.inbound_bytes, n as u64);
                Ok(())
            }
            Err(_) => Err(Ending::Broken),
        }
    }

    /// Writes the last message of a connection whose session never opened, and shuts the
    /// socket (bounded by [`CLOSE_WRITE_TIMEOUT`]). Does nothing once the session opened:
    /// then the egress writes ([`Egress::close_with`]).
    pub(crate) async fn write_last(&mut self, message: &ServerMessage) {
        if let Some(write) = self.write.as_mut() {
            send_last(write, message).await;
        }
    }

    /// The session opens: the write half moves into an [`Egress`] that writes the frames
    /// `outbox` receives (and this task's own messages). `None` if it already did.
    pub(crate) fn open(&mut self, outbox: OutboxReader) -> Option<Arc<Egress>> {
        let write = self.write.take()?;
        Some(Arc::new(Egress::new(write, outbox)))
    }
}

/// Takes the next whole frame out of `frames` and decodes it: `Ok(None)` if no whole frame is
/// buffered; `Err` closes the connection (`FrameTooLarge`, or the decode error's reason).
pub(crate) fn decode_next(
    frames: &mut FrameReader,
    stats: &Stats,
) -> Result<Option<ClientMessage>, Ending> {
    let body = match frames.next_frame() {
        Ok(Some(body)) => body,
        Ok(None) => return Ok(None),
        Err(FrameError::TooLarge { announced, limit }) => {
            return Err(Ending::close(
                CloseReason::FrameTooLarge,
                format!("frame of {announced} bytes exceeds the limit of {limit}"),
            ));
        }
    };
    Stats::bump(&stats.inbound_frames);
    decode_client_message(body)
        .map(Some)
        .map_err(|e| Ending::close(e.close_reason(), e.to_string()))
}

/// Writes a connection's last message and shuts the socket, giving up after
/// [`CLOSE_WRITE_TIMEOUT`] so a peer that does not read cannot hold the task.
pub(crate) async fn send_last(writer: &mut (impl AsyncWrite + Unpin), message: &ServerMessage) {
    let bytes = frame_bytes(message);
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
        let _ = writer.write_all(&bytes).await;
        let _ = writer.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Input;

    fn receive(frames: &mut FrameReader, bytes: &[u8]) {
        frames.spare()[..bytes.len()].copy_from_slice(bytes);
        frames.filled(bytes.len());
    }

    fn ping(nonce: u64) -> Vec<u8> {
        frame_bytes(&ClientMessage::Ping { nonce })
    }

    #[test]
    fn pipelined_frames_come_out_one_by_one_and_a_partial_one_waits() {
        let stats = Stats::default();
        let mut frames = FrameReader::new(1024);
        let input = frame_bytes(&ClientMessage::Input(Input {
            seq: 3,
            dir_x: 0,
            dir_y: 1,
        }));
        let two = [ping(1), input.clone()].concat();
        let third = ping(2);
        receive(&mut frames, &[&two[..], &third[..3]].concat());
        assert_eq!(
            decode_next(&mut frames, &stats),
            Ok(Some(ClientMessage::Ping { nonce: 1 }))
        );
        assert!(matches!(
            decode_next(&mut frames, &stats),
            Ok(Some(ClientMessage::Input(Input { seq: 3, .. })))
        ));
        assert_eq!(decode_next(&mut frames, &stats), Ok(None));
        receive(&mut frames, &third[3..]);
        assert_eq!(
            decode_next(&mut frames, &stats),
            Ok(Some(ClientMessage::Ping { nonce: 2 }))
        );
        assert_eq!(stats.snapshot().inbound_frames, 3);
    }

    #[test]
    fn a_frame_announcing_more_than_the_limit_closes_with_frame_too_large() {
        let stats = Stats::default();
        let mut frames = FrameReader::new(64);
        receive(&mut frames, &1000u32.to_le_bytes());
        assert!(matches!(
            decode_next(&mut frames, &stats),
            Err(Ending::Close(CloseReason::FrameTooLarge, _))
        ));
    }

    #[test]
    fn an_unknown_message_type_and_a_truncated_message_close_with_their_reasons() {
        let stats = Stats::default();
        let mut frames = FrameReader::new(64);
        // Body: message type 200 (a two-byte varint), which no client message has.
        receive(&mut frames, &[2, 0, 0, 0, 0xC8, 0x01]);
        assert!(matches!(
            decode_next(&mut frames, &stats),
            Err(Ending::Close(CloseReason::UnknownMessageType, _))
        ));
        // A Ping whose nonce is cut off: only its type byte.
        let ping = ping(5);
        receive(
            &mut frames,
            &[&1u32.to_le_bytes()[..], &ping[4..5]].concat(),
        );
        assert!(matches!(
            decode_next(&mut frames, &stats),
            Err(Ending::Close(CloseReason::Malformed, _))
        ));
    }
}
