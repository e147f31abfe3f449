//! The WebSocket transport (RFC 6455), sans I/O: one protocol message per binary WebSocket
//! message, its payload the message body (a TCP frame without its length prefix).
//!
//! Both ends use this module: the server reads masked client frames with a [`WsReader`] and
//! writes unmasked frames by putting a [`frame_header`] in front of a body it already has
//! (so a body shared by many clients is written by reference, never copied or re-framed);
//! a client (loadgen) writes masked frames and reads the server's unmasked ones.
//!
//! Only what the protocol needs is accepted: binary messages in one frame, pings, pongs and
//! close. Anything else is a [`WsError`] with the close code the peer gets.

use sha1::{Digest, Sha1};

/// The GUID of RFC 6455's accept-key derivation.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most bytes of a frame header: 2, 8 of extended length, 4 of mask.
pub const MAX_HEADER_BYTES: usize = 14;

/// Largest payload of a control frame (ping, pong, close).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: protocol error (unmasked client frame, reserved bits, unknown opcode, ...).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a data type the endpoint does not accept (text, fragmented messages).
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code: a message too big to process.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close codes 4000 + a close reason's wire index carry the protocol's close reason.
pub const CLOSE_REASON_BASE: u16 = 4000;

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// A continuation of a fragmented message (refused).
    Continuation = 0x0,
    /// A text message (refused).
    Text = 0x1,
    /// A binary message: one protocol message.
    Binary = 0x2,
    /// Close, with an optional code and reason.
    Close = 0x8,
    /// Ping: answered with a pong carrying the same payload.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

/// A frame the reader does not accept, and the close code it calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// A text frame.
    #[error("text messages are not accepted")]
    Text,
    /// A fragmented message (FIN clear, or a continuation frame).
    #[error("fragmented messages are not accepted")]
    Fragmented,
    /// A payload over the limit (decided from the header, before it is buffered).
    #[error("message of {announced} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length in the header.
        announced: u64,
        /// The limit.
        limit: u32,
    },
    /// A client frame without a mask, or a server frame with one.
    #[error("frame masking is wrong for its direction")]
    Masking,
    /// Reserved bits set (no extension was negotiated).
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode this protocol does not know.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("malformed control frame")]
    BadControl,
}

impl WsError {
    /// The close code the peer gets.
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Text | WsError::Fragmented => CLOSE_UNSUPPORTED_DATA,
            WsError::TooLarge { .. } => CLOSE_TOO_BIG,
            WsError::Masking
            | WsError::ReservedBits
            | WsError::UnknownOpcode(_)
            | WsError::BadControl => CLOSE_PROTOCOL_ERROR,
        }
    }
}

/// One frame taken out of a [`WsReader`], its payload unmasked.
#[derive(Debug, PartialEq, Eq)]
pub enum WsFrame<'a> {
    /// A binary message: one protocol message body.
    Binary(&'a [u8]),
    /// A ping with its payload (at most 125 bytes).
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// The peer closes, with its code if it gave one.
    Close(Option<u16>),
}

/// Reassembles WebSocket frames from a byte stream into a fixed-capacity buffer, like
/// [`crate::framing::FrameReader`] does for TCP frames: a connection's inbound memory stays
/// bounded by one maximal frame whatever the peer sends.
pub struct WsReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max_payload: u32,
    /// Whether frames must be masked (a server reading a client) or must not be (a client).
    masked: bool,
}

impl WsReader {
    /// A server's reader of client frames: masked, payloads of at most `max_payload` bytes.
    pub fn client_frames(max_payload: u32) -> Self {
        Self::new(max_payload, true)
    }

    /// A client's reader of server frames: unmasked, payloads of at most `max_payload` bytes.
    pub fn server_frames(max_payload: u32) -> Self {
        Self::new(max_payload, false)
    }

    fn new(max_payload: u32, masked: bool) -> Self {
        let capacity = MAX_HEADER_BYTES + (max_payload as usize).max(MAX_CONTROL_PAYLOAD);
        Self {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            max_payload,
            masked,
        }
    }

    /// Free space to read into. Call [`WsReader::filled`] with the number of bytes read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0
            && (self.start == self.end || self.buf.len() - self.end < MAX_HEADER_BYTES)
        {
            self.compact();
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written into [`WsReader::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Takes the next whole frame, if one is buffered. After an error the stream is over.
    pub fn next_frame(&mut self) -> Result<Option<WsFrame<'_>>, WsError> {
        let available = &self.buf[self.start..self.end];
        let Some(header) = parse_header(available)? else {
            return Ok(None);
        };
        if header.masked != self.masked {
            return Err(WsError::Masking);
        }
        let limit = match header.opcode {
            Opcode::Binary => u64::from(self.max_payload),
            _ => MAX_CONTROL_PAYLOAD as u64,
        };
        if header.length > limit {
            return Err(match header.opcode {
                Opcode::Binary => WsError::TooLarge {
                    announced: header.length,
                    limit: self.max_payload,
                },
                _ => WsError::BadControl,
            });
        }
        let total = header.size + header.length as usize;
        if available.len() < total {
            if self.buf.len() - self.start < total {
                self.compact();
            }
            return Ok(None);
        }
        let payload = self.start + header.size..self.start + total;
        self.start += total;
        let payload = &mut self.buf[payload];
        if let Some(mask) = header.mask {
            unmask(payload, mask);
        }
        Ok(Some(match header.opcode {
            Opcode::Binary => WsFrame::Binary(payload),
            Opcode::Ping => WsFrame::Ping(payload),
            Opcode::Pong => WsFrame::Pong,
            Opcode::Close => WsFrame::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            Opcode::Text | Opcode::Continuation => unreachable!("refused by parse_header"),
        }))
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

/// A parsed frame header.
struct Header {
    opcode: Opcode,
    masked: bool,
    mask: Option<[u8; 4]>,
    length: u64,
    /// Bytes of the header.
    size: usize,
}

/// The header at the start of `bytes`, if all of it is there.
fn parse_header(bytes: &[u8]) -> Result<Option<Header>, WsError> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(WsError::ReservedBits);
    }
    let fin = first & 0x80 != 0;
    let opcode = match first & 0x0F {
        0x0 => return Err(WsError::Fragmented),
        0x1 => return Err(WsError::Text),
        0x2 => Opcode::Binary,
        0x8 => Opcode::Close,
        0x9 => Opcode::Ping,
        0xA => Opcode::Pong,
        other => return Err(WsError::UnknownOpcode(other)),
    };
    if !fin {
        return Err(match opcode {
            Opcode::Binary => WsError::Fragmented,
            _ => WsError::BadControl,
        });
    }
    let masked = second & 0x80 != 0;
    let (length, mut size) = match second & 0x7F {
        126 => {
            let Some(extended) = bytes.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([extended[0], extended[1]])), 4)
        }
        127 => {
            let Some(extended) = bytes.get(2..10) else {
                return Ok(None);
            };
            (
                u64::from_be_bytes(extended.try_into().expect("8 bytes")),
                10,
            )
        }
        short => (u64::from(short), 2),
    };
    let mask = if masked {
        let Some(mask) = bytes.get(size..size + 4) else {
            return Ok(None);
        };
        size += 4;
        Some(mask.try_into().expect("4 bytes"))
    } else {
        None
    };
    Ok(Some(Header {
        opcode,
        masked,
        mask,
        length,
        size,
    }))
}

/// XORs `payload` with the 4-byte `mask` (masking and unmasking are the same operation).
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// The header of a final frame of `opcode` carrying `length` payload bytes, masked with
/// `mask` if given (clients) or not (servers). Returns the buffer and how much of it is used.
pub fn frame_header(
    opcode: Opcode,
    length: usize,
    mask: Option<[u8; 4]>,
) -> ([u8; MAX_HEADER_BYTES], usize) {
    let mut header = [0u8; MAX_HEADER_BYTES];
    header[0] = 0x80 | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut size = if length < 126 {
        header[1] = mask_bit | length as u8;
        2
    } else if length <= usize::from(u16::MAX) {
        header[1] = mask_bit | 126;
        header[2..4].copy_from_slice(&(length as u16).to_be_bytes());
        4
    } else {
        header[1] = mask_bit | 127;
        header[2..10].copy_from_slice(&(length as u64).to_be_bytes());
        10
    };
    if let Some(mask) = mask {
        header[size..size + 4].copy_from_slice(&mask);
        size += 4;
    }
    (header, size)
}

/// A whole unmasked frame (a server's control frames, tests): header then payload.
pub fn server_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let (header, size) = frame_header(opcode, payload.len(), None);
    [&header[..size], payload].concat()
}

/// A whole masked frame (a client's): header, then `payload` masked with `mask`.
pub fn client_frame(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let (header, size) = frame_header(opcode, payload.len(), Some(mask));
    let mut frame = [&header[..size], payload].concat();
    unmask(&mut frame[size..], mask);
    frame
}

/// An unmasked close frame with `code` and a reason (cut to fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CONTROL_PAYLOAD - 2)];
    let payload = [&code.to_be_bytes()[..], reason].concat();
    server_frame(Opcode::Close, &payload)
}

/// The `Sec-WebSocket-Accept` value for a request's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut sha1 = Sha1::new();
    sha1.update(key.trim().as_bytes());
    sha1.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of 16 bytes.
pub fn valid_key(key: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .is_ok_and(|bytes| bytes.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn feed(reader: &mut WsReader, bytes: &[u8]) {
        let spare = reader.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        reader.filled(bytes.len());
    }

    #[test]
    fn the_rfc_accept_key_example() {
        // RFC 6455, section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key("not base64 !"));
        assert!(!valid_key("AAAA"));
    }

    #[test]
    fn the_rfc_masked_hello_example_unmasks() {
        // RFC 6455, section 5.7: a single-frame masked text "Hello" (here as binary).
        let frame = [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut reader = WsReader::client_frames(512);
        feed(&mut reader, &frame);
        assert_eq!(reader.next_frame(), Ok(Some(WsFrame::Binary(b"Hello"))));
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(client_frame(Opcode::Binary, b"Hello", MASK), frame);
    }

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        for (length, size) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let (header, used) = frame_header(Opcode::Binary, length, None);
            assert_eq!(used, size, "{length}");
            assert_eq!(header[0], 0x82);
            let frame = [&header[..used], &vec![7u8; length][..]].concat();
            let parsed = parse_header(&frame).unwrap().unwrap();
            assert_eq!(parsed.length, length as u64);
            assert_eq!(parsed.size, size);
        }
    }

    #[test]
    fn frames_split_anywhere_are_reassembled_and_pipelined_ones_come_out_in_order() {
        let stream = [
            client_frame(Opcode::Binary, &[1, 2, 3], MASK),
            client_frame(Opcode::Ping, b"hi", MASK),
            client_frame(Opcode::Binary, &vec![9u8; 300], MASK),
            client_frame(Opcode::Close, &1000u16.to_be_bytes(), MASK),
        ]
        .concat();
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut reader = WsReader::client_frames(512);
            let mut seen = Vec::new();
            for piece in stream.chunks(chunk) {
                feed(&mut reader, piece);
                while let Some(frame) = reader.next_frame().unwrap() {
                    seen.push(format!("{frame:?}").len());
                    if let WsFrame::Close(code) = frame {
                        assert_eq!(code, Some(1000));
                    }
                }
            }
            assert_eq!(seen.len(), 4, "chunk {chunk}");
        }
    }

    #[test]
    fn every_refused_frame_has_its_error_and_close_code() {
        let cases: [(Vec<u8>, WsError, u16); 7] = [
            (
                client_frame(Opcode::Text, b"hi", MASK),
                WsError::Text,
                CLOSE_UNSUPPORTED_DATA,
            ),
            (
                // FIN clear: the first fragment of a binary message.
                {
                    let mut frame = client_frame(Opcode::Binary, b"hi", MASK);
                    frame[0] &= 0x7F;
                    frame
                },
                WsError::Fragmented,
                CLOSE_UNSUPPORTED_DATA,
            ),
            (
                client_frame(Opcode::Continuation, b"hi", MASK),
                WsError::Fragmented,
                CLOSE_UNSUPPORTED_DATA,
            ),
            (
                server_frame(Opcode::Binary, b"hi"),
                WsError::Masking,
                CLOSE_PROTOCOL_ERROR,
            ),
            (
                {
                    let mut frame = client_frame(Opcode::Binary, b"hi", MASK);
                    frame[0] |= 0x40;
                    frame
                },
                WsError::ReservedBits,
                CLOSE_PROTOCOL_ERROR,
            ),
            (
                {
                    let mut frame = client_frame(Opcode::Binary, b"hi", MASK);
                    frame[0] = 0x83;
                    frame
                },
                WsError::UnknownOpcode(3),
                CLOSE_PROTOCOL_ERROR,
            ),
            (
                client_frame(Opcode::Ping, &[0; 126], MASK),
                WsError::BadControl,
                CLOSE_PROTOCOL_ERROR,
            ),
        ];
        for (frame, error, code) in cases {
            let mut reader = WsReader::client_frames(512);
            feed(&mut reader, &frame);
            assert_eq!(reader.next_frame(), Err(error));
            assert_eq!(error.close_code(), code);
        }
    }

    #[test]
    fn an_oversize_message_is_refused_from_its_header_alone() {
        let (header, size) = frame_header(Opcode::Binary, 1 << 20, Some(MASK));
        let mut reader = WsReader::client_frames(512);
        feed(&mut reader, &header[..size]);
        assert_eq!(
            reader.next_frame(),
            Err(WsError::TooLarge {
                announced: 1 << 20,
                limit: 512
            })
        );
    }

    #[test]
    fn a_client_reads_unmasked_server_frames_and_refuses_masked_ones() {
        let mut reader = WsReader::server_frames(1024);
        feed(&mut reader, &server_frame(Opcode::Binary, &[5; 200]));
        assert_eq!(reader.next_frame(), Ok(Some(WsFrame::Binary(&[5; 200]))));
        feed(&mut reader, &close_frame(4011, "idle_timeout"));
        assert_eq!(reader.next_frame(), Ok(Some(WsFrame::Close(Some(4011)))));
        feed(&mut reader, &client_frame(Opcode::Binary, &[1], MASK));
        assert_eq!(reader.next_frame(), Err(WsError::Masking));
    }
}
