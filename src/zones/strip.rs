//! The border strip: what a zone server publishes each tick for its neighbours (every entity
//! within the interest radius, and a margin, of its edges, with its exact position and its
//! replicated values),
//! and how it is read back. Sans I/O.
//!
//! The bytes are postcard's encoding of [`Strip`]; the tick writes them field by field into a
//! reused buffer ([`StripWriter`]) so publishing allocates nothing, and a test checks that
//! they equal what serde writes.

use serde::{Deserialize, Serialize};

use crate::protocol::{MAX_VARINT_BYTES, put_varint, put_varint_into};

/// One zone's border strip at one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strip {
    /// The publishing zone (index in the zones file).
    pub zone: u16,
    /// Its tick.
    pub tick: u64,
    /// Unix milliseconds when it was published (a ghost's age is measured from here).
    pub sent_ms: u64,
    /// The entities in the strip.
    pub entities: Vec<StripEntity>,
}

/// One entity of a strip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripEntity {
    /// The entity on the publishing zone (`Entity::to_bits`: unlike a wire id, never reused
    /// for another entity a tick later).
    pub key: u64,
    /// Its exact position.
    pub position: [f32; 2],
    /// Its replicated components: (kind, postcard value), kinds ascending.
    pub values: Vec<(u16, Vec<u8>)>,
}

/// Writes a [`Strip`]'s bytes without building one.
pub struct StripWriter<'a> {
    out: &'a mut Vec<u8>,
    count_at: usize,
    count: u32,
}

/// Room kept for the entity count's varint (patched in at the end): at most 5 bytes.
const COUNT_ROOM: usize = 5;

impl<'a> StripWriter<'a> {
    /// Starts a strip in `out` (cleared).
    pub fn new(out: &'a mut Vec<u8>, zone: u16, tick: u64, sent_ms: u64) -> Self {
        out.clear();
        put_varint(out, u64::from(zone));
        put_varint(out, tick);
        put_varint(out, sent_ms);
        let count_at = out.len();
        out.extend_from_slice(&[0; COUNT_ROOM]);
        Self {
            out,
            count_at,
            count: 0,
        }
    }

    /// Adds an entity with its `count` `values` ((kind, bytes) in ascending kind order).
    pub fn entity<'v>(
        &mut self,
        key: u64,
        position: [f32; 2],
        count: usize,
        values: impl Iterator<Item = (u16, &'v [u8])>,
    ) {
        put_varint(self.out, key);
        self.out.extend_from_slice(&position[0].to_le_bytes());
        self.out.extend_from_slice(&position[1].to_le_bytes());
        put_varint(self.out, count as u64);
        for (kind, bytes) in values {
            put_varint(self.out, u64::from(kind));
            put_varint(self.out, bytes.len() as u64);
            self.out.extend_from_slice(bytes);
        }
        self.count += 1;
    }

    /// Writes the entity count; returns the number of entities.
    pub fn finish(self) -> u32 {
        let mut room = [0u8; MAX_VARINT_BYTES];
        let used = put_varint_into(&mut room, u64::from(self.count));
        // The count's varint goes where the room was; the room's unused bytes are removed.
        self.out.splice(
            self.count_at..self.count_at + COUNT_ROOM,
            room[..used].iter().copied(),
        );
        self.count
    }
}

/// Reads a strip's bytes.
pub fn read(bytes: &[u8]) -> Result<Strip, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_writes_what_serde_writes() {
        let strip = Strip {
            zone: 2,
            tick: 123_456,
            sent_ms: 1_764_500_000_000,
            entities: (0..200u64)
                .map(|i| StripEntity {
                    key: i * 0x1_0000_0001,
                    position: [i as f32 * 1.5, -0.25],
                    values: (0..(i % 3) as u16)
                        .map(|k| (k * 7, vec![k as u8; i as usize % 5]))
                        .collect(),
                })
                .collect(),
        };
        let mut out = Vec::new();
        let mut writer = StripWriter::new(&mut out, strip.zone, strip.tick, strip.sent_ms);
        for entity in &strip.entities {
            writer.entity(
                entity.key,
                entity.position,
                entity.values.len(),
                entity.values.iter().map(|(k, v)| (*k, v.as_slice())),
            );
        }
        assert_eq!(writer.finish(), 200);
        assert_eq!(out, postcard::to_stdvec(&strip).unwrap());
        assert_eq!(read(&out).unwrap(), strip);
        let mut empty = Vec::new();
        StripWriter::new(&mut empty, 0, 1, 2).finish();
        assert_eq!(read(&empty).unwrap().entities, vec![]);
    }

    #[test]
    fn a_damaged_strip_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let mut writer = StripWriter::new(&mut out, 1, 2, 3);
        writer.entity(9, [1.0, 2.0], 1, [(0u16, &[1u8, 2][..])].into_iter());
        writer.finish();
        for cut in 0..out.len() {
            assert!(read(&out[..cut]).is_err(), "cut at {cut}");
        }
    }
}
