//! Bytes to frames, sans I/O: the connection task reads into [`FrameReader::spare`] and then
//! takes whole frames out with [`FrameReader::next_frame`]. One `read` syscall may yield many
//! frames, and a frame split over several reads is reassembled.

use crate::FRAME_HEADER_BYTES;

/// A frame that cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the limit; refused before buffering the body.
    #[error("frame of {announced} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length in the prefix.
        announced: u32,
        /// The configured limit.
        limit: u32,
    },
}

/// Reassembles length-prefixed frames from a byte stream into a bounded buffer.
///
/// The buffer never grows beyond one maximal frame plus its header, so a connection's
/// inbound memory is bounded whatever the peer sends. It may start smaller
/// ([`FrameReader::growing`]) and grow when a frame needs it, up to that bound.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_body: u32,
}

impl FrameReader {
    /// A reader accepting bodies of at most `max_body` bytes, with room for one from the
    /// start.
    pub fn new(max_body: u32) -> Self {
        Self::growing(FRAME_HEADER_BYTES + max_body as usize, max_body)
    }

    /// A reader accepting bodies of at most `max_body` bytes whose buffer starts at
    /// `initial` bytes and grows (up to one maximal frame) only when a frame does not fit: a
    /// server holding thousands of connections that send small frames keeps little per
    /// connection.
    pub fn growing(initial: usize, max_body: u32) -> Self {
        let capacity = FRAME_HEADER_BYTES + max_body as usize;
        Self {
            buf: vec![0; initial.clamp(FRAME_HEADER_BYTES, capacity)],
            start: 0,
            end: 0,
            max_body,
        }
    }

    /// Free space to read into. Call [`FrameReader::filled`] with the number of bytes read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0
            && (self.start == self.end || self.buf.len() - self.end < FRAME_HEADER_BYTES)
        {
            self.compact();
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written into [`FrameReader::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Takes the next whole frame body, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let available = self.end - self.start;
        if available < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let header: [u8; FRAME_HEADER_BYTES] = self.buf
            [self.start..self.start + FRAME_HEADER_BYTES]
            .try_into()
            .expect("header length");
        let announced = u32::from_le_bytes(header);
        if announced > self.max_body {
            return Err(FrameError::TooLarge {
                announced,
                limit: self.max_body,
            });
        }
        let total = FRAME_HEADER_BYTES + announced as usize;
        if available < total {
            if self.buf.len() < total {
                // Within the limit (checked above): room for this frame, and some to spare.
                let limit = FRAME_HEADER_BYTES + self.max_body as usize;
                self.compact();
                self.buf.resize(total.max(2 * self.buf.len()).min(limit), 0);
            } else if self.buf.len() - self.start < total {
                self.compact();
            }
            return Ok(None);
        }
        let body = self.start + FRAME_HEADER_BYTES..self.start + total;
        self.start += total;
        Ok(Some(&self.buf[body]))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMessage, Input, frame_bytes};
    use proptest::prelude::*;

    fn feed(reader: &mut FrameReader, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let spare = reader.spare();
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            reader.filled(n);
            bytes = &bytes[n..];
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
        }
        frames
    }

    #[test]
    fn oversize_prefix_is_refused_before_the_body_arrives() {
        let mut reader = FrameReader::new(16);
        let spare = reader.spare();
        spare[..4].copy_from_slice(&17u32.to_le_bytes());
        reader.filled(4);
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::TooLarge {
                announced: 17,
                limit: 16
            })
        );
    }

    #[test]
    fn a_growing_reader_grows_to_a_frame_that_does_not_fit_and_never_past_the_limit() {
        let mut reader = FrameReader::growing(8, 300);
        let body = [7u8; 300];
        let mut stream = (body.len() as u32).to_le_bytes().to_vec();
        stream.extend_from_slice(&body);
        assert_eq!(feed(&mut reader, &stream), vec![body.to_vec()]);
        assert!(reader.buf.len() <= FRAME_HEADER_BYTES + 300);
        assert!(reader.buf.len() >= FRAME_HEADER_BYTES + 300);
        let mut small = FrameReader::growing(8, 300);
        let too_big = 301u32.to_le_bytes();
        small.spare()[..4].copy_from_slice(&too_big);
        small.filled(4);
        assert!(small.next_frame().is_err());
        assert_eq!(small.buf.len(), 8, "refused before growing");
    }

    proptest! {
        #[test]
        fn frames_survive_any_split(seqs in proptest::collection::vec(any::<u32>(), 1..40), chunk in 1usize..50) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for seq in &seqs {
                let frame = frame_bytes(&ClientMessage::Input(Input { seq: *seq, dir_x: 1, dir_y: -1 }));
                expected.push(frame[FRAME_HEADER_BYTES..].to_vec());
                stream.extend_from_slice(&frame);
            }
            for mut reader in [FrameReader::new(64), FrameReader::growing(1, 64)] {
                let mut got = Vec::new();
                for piece in stream.chunks(chunk) {
                    got.extend(feed(&mut reader, piece));
                }
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(reader.buffered(), 0);
            }
        }
    }
}
