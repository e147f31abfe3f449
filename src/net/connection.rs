//! A connection's socket and its inbound buffer: whole client messages read off the socket,
//! and, until its session opens, messages written straight to it. Once the session opens,
//! its write half moves into an [`Egress`] shared with the flush tasks (see
//! [`Connection::open`]); the read half stays here.
//!
//! Reading is zero-copy into a fixed buffer sized by `max_inbound_frame_bytes`: a
//! [`FrameReader`] for TCP, a [`WsReader`] for WebSocket (after the HTTP upgrade; see
//! `super::web`). Every read may bring zero or more whole frames, which are decoded one by
//! one ([`Connection::buffered`]) before the socket is read again. Decoding is sans I/O
//! ([`decode_next`], [`decode_next_ws`]) and unit tested below; a frame that is too large or
//! does not decode ends the connection with its reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::Transport;
use super::egress::Egress;
use super::session::Ending;
use crate::bridge::OutboxReader;
use crate::protocol::framing::{FrameError, FrameReader};
use crate::protocol::websocket::{
    self, CLOSE_NORMAL, MAX_CONTROL_PAYLOAD, Opcode, WsError, WsFrame, WsReader,
};
use crate::protocol::{
    ClientMessage, CloseReason, FRAME_HEADER_BYTES, ServerMessage, decode_client_message,
    frame_bytes,
};
use crate::stats::Stats;

/// How long a connection's last message may take to write before the socket is dropped
/// anyway.
pub(crate) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A TCP connection's inbound buffer to start with: room for a few inputs (a frame is 4 +
/// about 8 bytes). It grows up to `max_inbound_frame_bytes` only for a frame that needs it,
/// so thousands of players sending inputs keep 128 bytes each, not a maximal frame each.
const INITIAL_READ_BYTES: usize = 128;

/// One client's socket and its inbound buffer.
pub(crate) struct Connection {
    read: OwnedReadHalf,
    /// Until the session opens; then the [`Egress`] owns it.
    write: Option<OwnedWriteHalf>,
    frames: Framing,
    /// Bytes that arrived before this connection had its socket (read by the HTTP server
    /// past a WebSocket upgrade), taken before the socket is read; empty otherwise.
    early: Vec<u8>,
    stats: Arc<Stats>,
}

/// How bytes become messages on this connection.
enum Framing {
    Tcp(FrameReader),
    WebSocket(WsReader),
}

/// What a connection received.
#[derive(Debug, PartialEq)]
pub(crate) enum Received {
    /// A protocol message.
    Message(ClientMessage),
    /// A WebSocket ping: answer with a pong carrying these bytes.
    Ping(PingPayload),
}

/// A WebSocket ping's payload, kept without allocating.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PingPayload {
    bytes: [u8; MAX_CONTROL_PAYLOAD],
    len: usize,
}

impl PingPayload {
    /// The pong frame that answers it.
    pub(crate) fn pong(&self) -> Vec<u8> {
        websocket::server_frame(Opcode::Pong, &self.bytes[..self.len])
    }
}

impl Connection {
    /// Wraps an accepted TCP socket; frames larger than `max_frame_bytes` end it.
    pub(crate) fn tcp(stream: TcpStream, max_frame_bytes: u32, stats: Arc<Stats>) -> Self {
        Self::new(
            stream,
            Framing::Tcp(FrameReader::growing(INITIAL_READ_BYTES, max_frame_bytes)),
            stats,
        )
    }

    /// Wraps a socket upgraded to WebSocket, whose first bytes after the upgrade request
    /// (`early`, read by the HTTP server) are already in; payloads larger than
    /// `max_frame_bytes` end it.
    pub(crate) fn websocket(
        stream: TcpStream,
        early: &[u8],
        max_frame_bytes: u32,
        stats: Arc<Stats>,
    ) -> Self {
        let mut connection = Self::new(
            stream,
            Framing::WebSocket(WsReader::client_frames(max_frame_bytes)),
            stats,
        );
        // The HTTP server may have read several pipelined frames past the request (up to its
        // 8 KiB buffer), more than the reader holds at once: they are handed to the reader
        // before the socket is read again, never cut.
        connection.early = early.to_vec();
        connection
    }

    fn new(stream: TcpStream, frames: Framing, stats: Arc<Stats>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read,
            write: Some(write),
            frames,
            early: Vec::new(),
            stats,
        }
    }

    /// The connection's transport.
    pub(crate) fn transport(&self) -> Transport {
        match self.frames {
            Framing::Tcp(_) => Transport::Tcp,
            Framing::WebSocket(_) => Transport::WebSocket,
        }
    }

    /// The next protocol message: one already buffered, else read from the socket; a
    /// WebSocket ping before the session opens is answered here. Cancel-safe: a cancelled
    /// call loses nothing (bytes are kept only once a read completes).
    pub(crate) async fn read_message(&mut self) -> Result<ClientMessage, Ending> {
        loop {
            match self.buffered()? {
                Some(Received::Message(message)) => return Ok(message),
                Some(Received::Ping(ping)) => {
                    if let Some(write) = self.write.as_mut() {
                        let pong = ping.pong();
                        let _ =
                            tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write.write_all(&pong)).await;
                    }
                }
                None => self.fill().await?,
            }
        }
    }

    /// The next message or ping already in the buffer, if a whole one is there (no I/O).
    pub(crate) fn buffered(&mut self) -> Result<Option<Received>, Ending> {
        match &mut self.frames {
            Framing::Tcp(frames) => Ok(decode_next(frames, &self.stats)?.map(Received::Message)),
            Framing::WebSocket(frames) => decode_next_ws(frames, &self.stats),
        }
    }

    /// Reads once from the socket into the buffer (zero or more whole frames may follow).
    /// Cancel-safe.
    pub(crate) async fn fill(&mut self) -> Result<(), Ending> {
        let spare = match &mut self.frames {
            Framing::Tcp(frames) => frames.spare(),
            Framing::WebSocket(frames) => frames.spare(),
        };
        let read = if self.early.is_empty() {
            self.read.read(spare).await
        } else {
            let n = self.early.len().min(spare.len());
            spare[..n].copy_from_slice(&self.early[..n]);
            self.early.drain(..n);
            Ok(n)
        };
        match read {
            Ok(0) => Err(Ending::ClientLeft),
            Ok(n) => {
                match &mut self.frames {
                    Framing::Tcp(frames) => frames.filled(n),
                    Framing::WebSocket(frames) => frames.filled(n),
                }
                Stats::add(&self.stats.inbound_bytes, n as u64);
                Ok(())
            }
            Err(_) => Err(Ending::Broken),
        }
    }

    /// Writes the last message of a connection whose session never opened (`None`: nothing
    /// but, over WebSocket, the close frame) and shuts the socket (bounded by
    /// [`CLOSE_WRITE_TIMEOUT`]). Over WebSocket the message is followed by a close frame
    /// with `ws_close`'s code and reason. Does nothing once the session opened: then the
    /// egress writes ([`Egress::close_with`]).
    pub(crate) async fn write_last(
        &mut self,
        message: Option<&ServerMessage>,
        ws_close: (u16, &str),
    ) {
        let transport = self.transport();
        let Some(write) = self.write.as_mut() else {
            return;
        };
        let mut bytes = message.map(frame_bytes).unwrap_or_default();
        if transport == Transport::WebSocket {
            if !bytes.is_empty() {
                bytes = websocket::server_frame(Opcode::Binary, &bytes[FRAME_HEADER_BYTES..]);
            }
            bytes.extend(websocket::close_frame(ws_close.0, ws_close.1));
        }
        write_and_shut(write, &bytes).await;
    }

    /// The session opens: the write half moves into an [`Egress`] that writes the frames
    /// `outbox` receives (and this task's own messages). `None` if it already did.
    pub(crate) fn open(&mut self, outbox: OutboxReader) -> Option<Arc<Egress>> {
        let transport = self.transport();
        let write = self.write.take()?;
        Some(Arc::new(Egress::new(write, outbox, transport)))
    }
}

/// Takes the next whole WebSocket frame out of `frames`: a binary message is decoded like a
/// TCP frame body; a ping is returned to be answered; a pong is skipped; a close frame ends
/// the connection as the client's choice; anything else is a WebSocket fault with its close
/// code (no protocol message first).
pub(crate) fn decode_next_ws(
    frames: &mut WsReader,
    stats: &Stats,
) -> Result<Option<Received>, Ending> {
    loop {
        let frame = match frames.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(error) => {
                let reason = match error {
                    WsError::TooLarge { .. } => CloseReason::FrameTooLarge,
                    _ => CloseReason::Malformed,
                };
                return Err(Ending::Fault {
                    reason,
                    code: error.close_code(),
                    detail: error.to_string(),
                });
            }
        };
        match frame {
            WsFrame::Binary(body) => {
                Stats::bump(&stats.inbound_frames);
                return decode_client_message(body)
                    .map(|message| Some(Received::Message(message)))
                    .map_err(|e| Ending::close(e.close_reason(), e.to_string()));
            }
            WsFrame::Ping(payload) => {
                let mut bytes = [0; MAX_CONTROL_PAYLOAD];
                bytes[..payload.len()].copy_from_slice(payload);
                return Ok(Some(Received::Ping(PingPayload {
                    bytes,
                    len: payload.len(),
                })));
            }
            WsFrame::Pong => continue,
            WsFrame::Close(_) => return Err(Ending::ClientLeft),
        }
    }
}

/// The close frame a WebSocket client gets with a protocol close reason: code 4000 + the
/// reason's wire index, the reason's name as text.
pub(crate) fn ws_close_for(reason: CloseReason) -> (u16, &'static str) {
    (
        websocket::CLOSE_REASON_BASE + reason.index() as u16,
        reason.as_str(),
    )
}

/// The normal WebSocket close (`1000`): the client left.
pub(crate) const WS_CLOSE_NORMAL: (u16, &str) = (CLOSE_NORMAL, "");

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

/// Writes a connection's last message (a TCP frame) and shuts the socket, giving up after
/// [`CLOSE_WRITE_TIMEOUT`] so a peer that does not read cannot hold the task.
pub(crate) async fn send_last(writer: &mut (impl AsyncWrite + Unpin), message: &ServerMessage) {
    write_and_shut(writer, &frame_bytes(message)).await;
}

/// Writes `bytes` and shuts the socket, within [`CLOSE_WRITE_TIMEOUT`].
async fn write_and_shut(writer: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) {
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
        let _ = writer.write_all(bytes).await;
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
