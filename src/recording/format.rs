//! The recording file format, sans I/O: what a segment file holds and how its bytes are
//! checked. docs/RECORDING.md is its prose; the writer (`writer.rs`) and the replay
//! (`replay.rs`) both go through this module, so the two cannot disagree.
//!
//! ```text
//! segment := MAGIC (8 bytes) | FORMAT_VERSION (u16 LE) | chunk*
//! chunk   := length (u32 LE, bytes of body) | crc32 (u32 LE, of body) | body
//! body    := kind (u8) | payload
//! ```
//!
//! The first chunk of a segment is its [`Header`] (kind [`CHUNK_HEADER`]); every other chunk
//! ([`CHUNK_TICKS`]) holds whole ticks: postcard-encoded [`Entry`] values, each tick opened by
//! [`Entry::Tick`]. A tick never spans two chunks, so a file cut anywhere (a server killed
//! mid-write) loses at most the ticks of its last chunk, and the checksum tells a damaged
//! chunk from a whole one.

use serde::{Deserialize, Serialize};

use crate::protocol::{MAX_VARINT_BYTES, Schema, put_varint_into};

/// The first bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"THRONGRC";

/// The format this build writes and reads. Raised whenever [`Header`] or [`Entry`] change.
pub const FORMAT_VERSION: u16 = 2;

/// Bytes before the first chunk: magic and version.
pub const PREAMBLE_BYTES: usize = MAGIC.len() + 2;

/// Bytes before a chunk's body: length and checksum.
pub const CHUNK_PREFIX_BYTES: usize = 8;

/// Chunk kind: the segment's header.
pub const CHUNK_HEADER: u8 = 1;

/// Chunk kind: whole ticks.
pub const CHUNK_TICKS: u8 = 2;

/// Largest chunk body a reader accepts (a length beyond it is damage, not data).
pub const MAX_CHUNK_BYTES: u32 = 256 << 20;

/// What every segment of a recording starts with: enough to rebuild the simulation that
/// produced it and to refuse a replay that could not reproduce it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Header {
    /// Version of the server that recorded (informative; the format version is what counts).
    pub throng_version: String,
    /// Name shared by all segments of one recording (its files are `SESSION-NNNN.rec`).
    pub session: String,
    /// This segment's number, from 0.
    pub segment: u32,
    /// The first tick this segment holds.
    pub first_tick: u64,
    /// A state digest is recorded every this many ticks.
    pub digest_every: u32,
    /// The server's whole configuration as TOML (the keys of the config file), `[game]`
    /// sections included: the replay builds its simulation from it.
    pub config: String,
    /// The game's registered names (components, actions, events): a replay with different
    /// gameplay is refused.
    pub schema: Schema,
    /// The game's persistent component names (saved state in joins is keyed by them).
    pub persisted: Vec<String>,
}

/// One thing the tick consumed, or a check of what it produced. Borrowed from the chunk's
/// bytes when read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// Opens the tick numbered by its field: what follows until the next `Tick` belongs to it.
    Tick(u64),
    /// A connection completed its handshake; the player spawns with its saved state.
    Join {
        /// The connection's id (names it in later entries).
        connection: u64,
        /// The player's name.
        name: &'a str,
        /// The player's account.
        account: i64,
        /// Its saved position, if it has one.
        position: Option<[f32; 2]>,
        /// Its saved persistent components: (registered name, postcard bytes).
        components: Vec<(&'a str, &'a [u8])>,
        /// The seq its frames acknowledge until its first input (handed off from another
        /// zone: its last seq there; else 0).
        ack_seq: u32,
    },
    /// A connection ended.
    Leave {
        /// The connection.
        connection: u64,
    },
    /// A movement input, in arrival order among inputs and actions.
    Input {
        /// The sender.
        connection: u64,
        /// Its seq.
        seq: u32,
        /// Direction x.
        dir_x: i8,
        /// Direction y.
        dir_y: i8,
    },
    /// A player action, in arrival order among inputs and actions.
    Action {
        /// The sender.
        connection: u64,
        /// Its seq.
        seq: u32,
        /// Its wire kind.
        kind: u16,
        /// Its postcard value.
        bytes: &'a [u8],
    },
    /// The replicated state at the end of this tick (see `digest.rs`).
    Digest(&'a [u8]),
    /// An operator kicked a player between the previous tick and this one (recorded because
    /// the kick stops that player's frames at once).
    Kick {
        /// The player's name key (`protocol::name_key`).
        player: &'a str,
        /// The operator's reason, sent in the Close.
        detail: &'a str,
    },
    /// The server asked every client to close (its shutdown) between the previous tick and
    /// this one: from then on no client gets frames and new joiners are closed.
    CloseAll {
        /// The close reason's wire index.
        reason: u8,
    },
    /// This tick's frame to this connection was dropped: its outbox was full (a slow
    /// reader). Recorded because a ring's fullness is the network's state, not the world's.
    FrameDropped {
        /// The connection.
        connection: u64,
    },
}

/// Why bytes are not a readable recording, at a given offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The file does not start with [`MAGIC`].
    #[error("not a throng recording (no THRONGRC magic)")]
    NotARecording,
    /// Written by another version of the format.
    #[error("recording format version {found}, this build reads version {FORMAT_VERSION}")]
    Version {
        /// The file's version.
        found: u16,
    },
    /// The file ends inside a chunk (the server was killed while writing it).
    #[error("truncated chunk: {needed} bytes needed (prefix included), {available} present")]
    Truncated {
        /// Bytes the chunk needs from its start.
        needed: usize,
        /// Bytes left in the file.
        available: usize,
    },
    /// A chunk's bytes do not match its checksum.
    #[error("corrupted chunk: checksum {found:08x}, expected {expected:08x}")]
    Checksum {
        /// The checksum written with the chunk.
        expected: u32,
        /// The checksum of the bytes found.
        found: u32,
    },
    /// A chunk length no writer produces.
    #[error("corrupted chunk: length {0} is out of range")]
    Length(u32),
    /// The segment does not start with a header chunk.
    #[error("no header chunk at the start of the segment")]
    NoHeader,
    /// A chunk of a kind this version does not know.
    #[error("unknown chunk kind {0}")]
    UnknownChunk(u8),
    /// A whole chunk whose entries do not decode.
    #[error("undecodable entry: {0}")]
    Entry(String),
}

/// Damage at a byte offset of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageAt {
    /// Offset from the start of the file of the chunk (or preamble) in question.
    pub offset: usize,
    /// What is wrong there.
    pub damage: Damage,
}

/// Appends the preamble (magic and version) of a new segment.
pub fn write_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
}

/// Appends one chunk of `kind` with `payload`.
pub fn write_chunk(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Appends `entry` to a tick buffer (postcard; no allocation beyond the buffer's growth).
pub fn push_entry(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let buffer = std::mem::take(out);
    // Serializing into a Vec cannot fail.
    *out = postcard::to_extend(entry, buffer).expect("encode a recording entry");
}

/// Appends an [`Entry::Input`], byte for byte what [`push_entry`] writes, without serde:
/// it is the one entry written for every player every tick, and postcard's serializer took
/// 174 instructions per input against 83 here (callgrind, docs/BENCHMARKS.md).
pub fn push_input(out: &mut Vec<u8>, connection: u64, seq: u32, dir_x: i8, dir_y: i8) {
    // Assembled on the stack and appended with one copy (one capacity check, not six).
    let mut entry = [0u8; 1 + MAX_VARINT_BYTES + MAX_VARINT_BYTES + 2];
    entry[0] = ENTRY_INPUT;
    let mut length = 1;
    length += put_varint_into(&mut entry[length..], connection);
    length += put_varint_into(&mut entry[length..], u64::from(seq));
    entry[length] = dir_x as u8;
    entry[length + 1] = dir_y as u8;
    out.extend_from_slice(&entry[..length + 2]);
}

/// Postcard's variant index of [`Entry::Input`].
const ENTRY_INPUT: u8 = 3;

/// The first tick of a tick buffer (it starts with [`Entry::Tick`]).
pub fn first_tick(ticks: &[u8]) -> Option<u64> {
    match postcard::take_from_bytes::<Entry<'_>>(ticks) {
        Ok((Entry::Tick(tick), _)) => Some(tick),
        _ => None,
    }
}

/// A segment's bytes, checked chunk by chunk.
pub struct SegmentReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> SegmentReader<'a> {
    /// Checks the preamble and reads the header chunk.
    pub fn open(bytes: &'a [u8]) -> Result<(Header, SegmentReader<'a>), DamageAt> {
        let at = |offset, damage| DamageAt { offset, damage };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(at(0, Damage::NotARecording));
        }
        if bytes.len() < PREAMBLE_BYTES {
            return Err(at(
                MAGIC.len(),
                Damage::Truncated {
                    needed: 2,
                    available: bytes.len() - MAGIC.len(),
                },
            ));
        }
        let found = u16::from_le_bytes([bytes[8], bytes[9]]);
        if found != FORMAT_VERSION {
            return Err(at(MAGIC.len(), Damage::Version { found }));
        }
        let mut reader = SegmentReader {
            bytes,
            offset: PREAMBLE_BYTES,
        };
        let header_offset = reader.offset;
        match reader.next_chunk() {
            Some(Ok((CHUNK_HEADER, payload))) => postcard::from_bytes::<Header>(payload)
                .map(|header| (header, reader))
                .map_err(|error| at(header_offset, Damage::Entry(error.to_string()))),
            Some(Ok(_)) | None => Err(at(header_offset, Damage::NoHeader)),
            Some(Err(damage)) => Err(damage),
        }
    }

    /// Reads the chunks of `bytes` from `offset` (an offset [`SegmentReader::offset`] gave).
    pub fn at(bytes: &'a [u8], offset: usize) -> Self {
        Self { bytes, offset }
    }

    /// Offset of the next chunk.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The next chunk's (kind, payload), `None` at the clean end of the file, or the damage
    /// that stops the reading (it does not advance past damage).
    pub fn next_chunk(&mut self) -> Option<Result<(u8, &'a [u8]), DamageAt>> {
        let rest = &self.bytes[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let at = |damage| {
            Some(Err(DamageAt {
                offset: self.offset,
                damage,
            }))
        };
        if rest.len() < CHUNK_PREFIX_BYTES {
            return at(Damage::Truncated {
                needed: CHUNK_PREFIX_BYTES,
                available: rest.len(),
            });
        }
        let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let expected = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if length == 0 || length > MAX_CHUNK_BYTES {
            return at(Damage::Length(length));
        }
        let end = CHUNK_PREFIX_BYTES + length as usize;
        if rest.len() < end {
            return at(Damage::Truncated {
                needed: end,
                available: rest.len(),
            });
        }
        let body = &rest[CHUNK_PREFIX_BYTES..end];
        let found = crc32fast::hash(body);
        if found != expected {
            return at(Damage::Checksum { expected, found });
        }
        let kind = body[0];
        if kind != CHUNK_HEADER && kind != CHUNK_TICKS {
            return at(Damage::UnknownChunk(kind));
        }
        self.offset += end;
        Some(Ok((kind, &body[1..])))
    }
}

/// The entries of one ticks chunk, in order.
pub fn entries(payload: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, Damage>> + '_ {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match postcard::take_from_bytes::<Entry<'_>>(rest) {
            Ok((entry, after)) => {
                rest = after;
                Some(Ok(entry))
            }
            Err(error) => {
                rest = &[];
                Some(Err(Damage::Entry(error.to_string())))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            throng_version: "0.1.0".into(),
            session: "throng-1-2".into(),
            segment: 0,
            first_tick: 1,
            digest_every: 20,
            config: "tick_hz = 20\n".into(),
            schema: Schema {
                components: vec!["score".into()],
                actions: vec!["throw".into()],
                events: vec!["hit".into()],
            },
            persisted: vec!["score".into()],
        }
    }

    fn segment(ticks: &[Vec<Entry<'_>>]) -> Vec<u8> {
        let mut out = Vec::new();
        write_preamble(&mut out);
        write_chunk(
            &mut out,
            CHUNK_HEADER,
            &postcard::to_allocvec(&header()).unwrap(),
        );
        for tick in ticks {
            let mut payload = Vec::new();
            for entry in tick {
                push_entry(&mut payload, entry);
            }
            write_chunk(&mut out, CHUNK_TICKS, &payload);
        }
        out
    }

    fn sample() -> Vec<Vec<Entry<'static>>> {
        vec![
            vec![
                Entry::Tick(1),
                Entry::Join {
                    connection: 7,
                    name: "ada",
                    account: 3,
                    position: Some([1.5, 2.5]),
                    components: vec![("score", &[4])],
                    ack_seq: 0,
                },
                Entry::Input {
                    connection: 7,
                    seq: 1,
                    dir_x: -127,
                    dir_y: 0,
                },
            ],
            vec![
                Entry::Tick(2),
                Entry::Action {
                    connection: 7,
                    seq: 2,
                    kind: 0,
                    bytes: &[1, 2],
                },
                Entry::Leave { connection: 7 },
                Entry::Kick {
                    player: "ada",
                    detail: "spam",
                },
                Entry::CloseAll { reason: 3 },
                Entry::FrameDropped { connection: 7 },
                Entry::Digest(&[0, 0, 1, 2, 3, 4]),
            ],
        ]
    }

    #[test]
    fn what_is_written_reads_back_entry_by_entry() {
        let ticks = sample();
        let bytes = segment(&ticks);
        let (read_header, mut reader) = SegmentReader::open(&bytes).unwrap();
        assert_eq!(read_header, header());
        for tick in &ticks {
            let (kind, payload) = reader.next_chunk().unwrap().unwrap();
            assert_eq!(kind, CHUNK_TICKS);
            assert_eq!(first_tick(payload), Some(tick_of(&tick[0])));
            let read: Vec<Entry<'_>> = entries(payload).map(Result::unwrap).collect();
            assert_eq!(&read, tick);
        }
        assert!(reader.next_chunk().is_none(), "a clean end");
    }

    fn tick_of(entry: &Entry<'_>) -> u64 {
        match entry {
            Entry::Tick(tick) => *tick,
            _ => panic!("a tick opens each chunk"),
        }
    }

    #[test]
    fn an_input_written_by_hand_is_what_serde_writes() {
        for (connection, seq, dir_x, dir_y) in [
            (1, 0, 0, 0),
            (300, 70_000, -127, 127),
            (u64::MAX, u32::MAX, -1, 5),
        ] {
            let (mut by_hand, mut by_serde) = (vec![9], vec![9]);
            push_input(&mut by_hand, connection, seq, dir_x, dir_y);
            let entry = Entry::Input {
                connection,
                seq,
                dir_x,
                dir_y,
            };
            push_entry(&mut by_serde, &entry);
            assert_eq!(by_hand, by_serde);
        }
    }

    #[test]
    fn a_file_cut_inside_a_chunk_reads_the_whole_chunks_then_says_where_it_stops() {
        let bytes = segment(&sample());
        let (_, mut whole) = SegmentReader::open(&bytes).unwrap();
        let first = whole.offset();
        whole.next_chunk().unwrap().unwrap();
        let second = whole.offset();
        for cut in second + 1..bytes.len() {
            let (_, mut reader) = SegmentReader::open(&bytes[..cut]).unwrap();
            assert!(
                reader.next_chunk().unwrap().is_ok(),
                "the first tick is whole"
            );
            let damage = reader.next_chunk().unwrap().unwrap_err();
            assert_eq!(damage.offset, second, "cut at {cut}");
            assert!(matches!(damage.damage, Damage::Truncated { .. }));
        }
        assert!(first < second);
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error_at_its_chunk() {
        let mut bytes = segment(&sample());
        let (_, mut reader) = SegmentReader::open(&bytes).unwrap();
        reader.next_chunk().unwrap().unwrap();
        let last_chunk = reader.offset();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        let (_, mut reader) = SegmentReader::open(&bytes).unwrap();
        reader.next_chunk().unwrap().unwrap();
        let damage = reader.next_chunk().unwrap().unwrap_err();
        assert!(matches!(damage.damage, Damage::Checksum { .. }));
        assert_eq!(damage.offset, last_chunk);
    }

    #[test]
    fn other_files_and_other_versions_are_refused_at_the_preamble() {
        let damage = |bytes: &[u8]| SegmentReader::open(bytes).err().unwrap();
        assert_eq!(damage(b"PK\x03\x04 a zip").damage, Damage::NotARecording);
        let mut other = segment(&[]);
        other[8] = 9;
        assert_eq!(
            damage(&other),
            DamageAt {
                offset: 8,
                damage: Damage::Version { found: 9 }
            }
        );
        let mut no_header = Vec::new();
        write_preamble(&mut no_header);
        write_chunk(&mut no_header, CHUNK_TICKS, &[0, 1]);
        assert_eq!(damage(&no_header).damage, Damage::NoHeader);
    }
}
