//! The property that the fuzz target (`fuzz/fuzz_targets/client_bytes.rs`) and its checked-in
//! corpus (replayed by `tests/it/fuzz_corpus.rs`) check: whatever bytes a client sends, the
//! server's inbound path, [`FrameReader`] then [`decode_client_message`], never panics,
//! never holds more than one maximal frame, stops at the first frame it refuses (as a
//! connection does), and every message it accepts survives a round trip (postcard accepts
//! overlong varints, so the canonical re-encoding may be shorter than the bytes received,
//! never longer).

use crate::protocol::framing::{FrameError, FrameReader};
use crate::protocol::{FRAME_HEADER_BYTES, decode_client_message, frame_bytes};

/// The inbound frame limit the check runs with (the server's default).
pub const CHECK_MAX_BODY: u32 = 512;

/// What the inbound path made of a byte stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages decoded (and verified to re-encode to their own bytes).
    pub accepted: usize,
    /// Whether the stream ended in a refusal (a frame too large or not decodable).
    pub refused: bool,
}

/// Feeds `input` to a [`FrameReader`] the way sockets deliver it: the first byte picks the
/// size of the reads (so frames are split across reads in every way), the rest is the
/// stream. Panics if a property is violated.
pub fn check_client_bytes(input: &[u8]) -> Outcome {
    let Some((&chunk, stream)) = input.split_first() else {
        return Outcome::default();
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new(CHECK_MAX_BODY);
    let mut outcome = Outcome::default();
    let mut rest = stream;
    while !rest.is_empty() {
        let spare = reader.spare();
        assert!(
            !spare.is_empty(),
            "the reader always has room while no whole frame is buffered"
        );
        let n = chunk.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        reader.filled(n);
        rest = &rest[n..];
        loop {
            let body = match reader.next_frame() {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(FrameError::TooLarge { announced, limit }) => {
                    assert!(announced > limit);
                    outcome.refused = true;
                    return outcome;
                }
            };
            assert!(body.len() <= CHECK_MAX_BODY as usize);
            match decode_client_message(body) {
                Ok(message) => {
                    let again = frame_bytes(&message);
                    let canonical = &again[FRAME_HEADER_BYTES..];
                    assert!(canonical.len() <= body.len());
                    assert_eq!(
                        decode_client_message(canonical).as_ref(),
                        Ok(&message),
                        "an accepted message survives a round trip"
                    );
                    outcome.accepted += 1;
                }
                Err(_) => {
                    outcome.refused = true;
                    return outcome;
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMessage, Hello, Input, PROTOCOL_VERSION};

    #[test]
    fn a_valid_stream_split_every_way_is_accepted_whole() {
        let mut stream = frame_bytes(&ClientMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            name: "ann".into(),
            secret: "a-secret-token".into(),
        }));
        for seq in 0..20 {
            stream.extend(frame_bytes(&ClientMessage::Input(Input {
                seq,
                dir_x: -3,
                dir_y: 100,
            })));
        }
        for chunk in 1..=255u8 {
            let input: Vec<u8> = std::iter::once(chunk).chain(stream.clone()).collect();
            let outcome = check_client_bytes(&input);
            assert_eq!(
                outcome,
                Outcome {
                    accepted: 21,
                    refused: false
                }
            );
        }
    }

    #[test]
    fn oversize_and_undecodable_frames_end_the_stream() {
        let mut oversize = vec![7u8];
        oversize.extend_from_slice(&(CHECK_MAX_BODY + 1).to_le_bytes());
        assert!(check_client_bytes(&oversize).refused);
        let unknown = [7u8, 1, 0, 0, 0, 9];
        assert!(check_client_bytes(&unknown).refused);
    }

    #[test]
    fn an_overlong_varint_is_accepted_and_re_encodes_shorter() {
        // Input { seq: 0 } with seq written as two bytes (0x80 0x00).
        let input = [9u8, 5, 0, 0, 0, 1, 0x80, 0x00, 0, 0];
        assert_eq!(check_client_bytes(&input).accepted, 1);
    }
}
