//! Zero-allocation reading of a state frame: walks the body bytes and hands each record to a
//! [`FrameVisitor`]. `decode_server_message` builds a `StateFrame` with four vectors (and
//! one per component list and per event) per frame; a load generator applying 40,000 frames
//! a second spends more time in that allocation and in hashing than in the data. This reader
//! accepts exactly the bytes postcard accepts for `ServerMessage::Frame` (tested against it)
//! and is the mirror image of the server's encoders in `replication/records.rs`.

use crate::{
    ComponentChange, ComponentValue, DecodeError, SERVER_FRAME_KIND, put_varint, take_varint,
};

/// Receives a frame's parts in wire order: header, events, removals, spawns, updates.
pub trait FrameVisitor {
    /// What the visitor can reject.
    type Error: From<DecodeError>;
    /// The frame's header.
    fn header(&mut self, tick: u32, ack_seq: u32, reset: bool) -> Result<(), Self::Error>;
    /// A server event for this client (`kind` indexes `Schema::events`; `bytes` is its
    /// postcard value). Called once per event, in the frame's order, after the header and
    /// before any removal.
    fn event(&mut self, tick: u32, kind: u16, bytes: &[u8]) -> Result<(), Self::Error>;
    /// An entity left the view.
    fn removed(&mut self, tick: u32, id: u32) -> Result<(), Self::Error>;
    /// An entity entered the view.
    fn spawned(
        &mut self,
        tick: u32,
        id: u32,
        wire: [u32; 2],
        components: Components<'_>,
    ) -> Result<(), Self::Error>;
    /// An entity in view changed: it moved by `delta`, and each of `changes` (in wire order)
    /// sets or removes one of its components.
    fn updated(
        &mut self,
        tick: u32,
        id: u32,
        delta: [i32; 2],
        changes: Changes<'_>,
    ) -> Result<(), Self::Error>;
}

/// The (already validated) component values of one record: `(kind, postcard bytes)`.
#[derive(Clone, Copy, Debug)]
pub struct Components<'a> {
    bytes: &'a [u8],
    remaining: usize,
}

impl Components<'_> {
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<'a> Iterator for Components<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut cursor = Cursor { bytes: self.bytes };
        // Validated when the record was read, so these cannot fail.
        let kind = cursor.u16().ok()?;
        let value = cursor.byte_slice().ok()?;
        self.bytes = cursor.bytes;
        Some((kind, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Components<'_> {}

/// One component change of an update, borrowed from the frame's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// The component `kind` was added or changed: its new postcard value.
    Set(u16, &'a [u8]),
    /// The component `kind` was removed from the entity.
    Removed(u16),
}

impl Change<'_> {
    /// The component kind this change is about.
    pub fn kind(&self) -> u16 {
        match *self {
            Change::Set(kind, _) | Change::Removed(kind) => kind,
        }
    }
}

/// The (already validated) component changes of one update, in wire order.
#[derive(Clone, Copy, Debug)]
pub struct Changes<'a> {
    bytes: &'a [u8],
    remaining: usize,
}

impl Changes<'_> {
    /// Whether there are no changes.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<'a> Iterator for Changes<'a> {
    type Item = Change<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut cursor = Cursor { bytes: self.bytes };
        // Validated when the record was read, so these cannot fail.
        let change = cursor.change().ok()?;
        self.bytes = cursor.bytes;
        Some(change)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Changes<'_> {}

/// A decoded component list re-encoded in wire form, so decoded frames can be fed to a
/// [`FrameVisitor`] too. Allocates nothing when the list is empty (the common case).
pub struct EncodedComponents {
    bytes: Vec<u8>,
    count: usize,
}

impl EncodedComponents {
    /// Encodes `values`.
    pub fn new(values: &[ComponentValue]) -> Self {
        let mut bytes = Vec::new();
        for value in values {
            put_varint(&mut bytes, u64::from(value.kind));
            put_varint(&mut bytes, value.bytes.len() as u64);
            bytes.extend_from_slice(&value.bytes);
        }
        Self {
            bytes,
            count: values.len(),
        }
    }

    /// The values as the visitor sees them.
    pub fn view(&self) -> Components<'_> {
        Components {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }
}

/// A decoded list of component changes re-encoded in wire form, so decoded frames can be fed
/// to a [`FrameVisitor`] too. Allocates nothing when the list is empty (the common case).
pub struct EncodedChanges {
    bytes: Vec<u8>,
    count: usize,
}

impl EncodedChanges {
    /// Encodes `changes`.
    pub fn new(changes: &[ComponentChange]) -> Self {
        let mut bytes = Vec::new();
        for change in changes {
            match change {
                ComponentChange::Set(value) => {
                    put_varint(&mut bytes, 0);
                    put_varint(&mut bytes, u64::from(value.kind));
                    put_varint(&mut bytes, value.bytes.len() as u64);
                    bytes.extend_from_slice(&value.bytes);
                }
                ComponentChange::Removed(kind) => {
                    put_varint(&mut bytes, 1);
                    put_varint(&mut bytes, u64::from(*kind));
                }
            }
        }
        Self {
            bytes,
            count: changes.len(),
        }
    }

    /// The changes as the visitor sees them.
    pub fn view(&self) -> Changes<'_> {
        Changes {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }
}

/// Whether `body` is a state frame (the first varint is the `Frame` variant).
pub fn is_state_frame(body: &[u8]) -> bool {
    take_varint(body).is_some_and(|(kind, _)| kind == u64::from(SERVER_FRAME_KIND))
}

/// Walks a `ServerMessage::Frame` body, calling `visitor` for each part in order.
pub fn visit_state_frame<V: FrameVisitor>(body: &[u8], visitor: &mut V) -> Result<(), V::Error> {
    let mut cursor = Cursor { bytes: body };
    if cursor.varint(32)? != u64::from(SERVER_FRAME_KIND) {
        return Err(malformed("not a state frame").into());
    }
    let tick = cursor.u32()?;
    let ack_seq = cursor.u32()?;
    let reset = match cursor.byte()? {
        0 => false,
        1 => true,
        _ => return Err(malformed("reset is not a bool").into()),
    };
    visitor.header(tick, ack_seq, reset)?;
    for _ in 0..cursor.length()? {
        let kind = cursor.u16()?;
        let bytes = cursor.byte_slice()?;
        visitor.event(tick, kind, bytes)?;
    }
    for _ in 0..cursor.length()? {
        let id = cursor.u32()?;
        visitor.removed(tick, id)?;
    }
    for _ in 0..cursor.length()? {
        let id = cursor.u32()?;
        let wire = [cursor.u32()?, cursor.u32()?];
        let components = cursor.components()?;
        visitor.spawned(tick, id, wire, components)?;
    }
    for _ in 0..cursor.length()? {
        let id = cursor.u32()?;
        let delta = [cursor.i32()?, cursor.i32()?];
        let changes = cursor.changes()?;
        visitor.updated(tick, id, delta, changes)?;
    }
    if !cursor.bytes.is_empty() {
        return Err(malformed("trailing bytes").into());
    }
    Ok(())
}

fn malformed(why: &str) -> DecodeError {
    DecodeError::Malformed(why.to_owned())
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| malformed("truncated"))?;
        self.bytes = rest;
        Ok(first)
    }

    /// An unsigned varint of a `bits`-wide integer, as postcard reads it: at most
    /// `ceil(bits / 7)` bytes, the last one within the width (overlong encodings pass).
    #[inline]
    fn varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        if let Some((&byte, rest)) = self.bytes.split_first()
            && byte < 0x80
        {
            self.bytes = rest; // one byte: the common case (deltas, small counts)
            return Ok(u64::from(byte));
        }
        let max_bytes = bits.div_ceil(7);
        let last_byte_max = (1u8 << (bits % 7)) - 1;
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == max_bytes - 1 && byte > last_byte_max {
                    break;
                }
                return Ok(value);
            }
        }
        Err(malformed("bad varint"))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.varint(32)? as u32)
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(self.varint(16)? as u16)
    }

    #[inline]
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let zigzag = self.u32()?;
        Ok(((zigzag >> 1) as i32) ^ -((zigzag & 1) as i32))
    }

    /// A sequence length; each element takes at least one byte, so a length beyond the
    /// remaining bytes is refused before any loop runs.
    #[inline]
    fn length(&mut self) -> Result<usize, DecodeError> {
        let length = self.varint(64)?;
        if length > self.bytes.len() as u64 {
            return Err(malformed("sequence longer than the frame"));
        }
        Ok(length as usize)
    }

    #[inline]
    fn byte_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.length()?;
        let (value, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(value)
    }

    #[inline]
    fn components(&mut self) -> Result<Components<'a>, DecodeError> {
        let count = self.length()?;
        let start = self.bytes;
        for _ in 0..count {
            self.u16()?;
            self.byte_slice()?;
        }
        Ok(Components {
            bytes: &start[..start.len() - self.bytes.len()],
            remaining: count,
        })
    }

    /// One `ComponentChange`: variant 0 `Set(kind, bytes)` or 1 `Removed(kind)`.
    #[inline]
    fn change(&mut self) -> Result<Change<'a>, DecodeError> {
        match self.varint(32)? {
            0 => Ok(Change::Set(self.u16()?, self.byte_slice()?)),
            1 => Ok(Change::Removed(self.u16()?)),
            _ => Err(malformed("unknown component change")),
        }
    }

    #[inline]
    fn changes(&mut self) -> Result<Changes<'a>, DecodeError> {
        let count = self.length()?;
        let start = self.bytes;
        for _ in 0..count {
            self.change()?;
        }
        Ok(Changes {
            bytes: &start[..start.len() - self.bytes.len()],
            remaining: count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::state_frame;
    use crate::{
        EntitySpawn, EntityUpdate, Event, ServerMessage, StateFrame, decode_server_message,
        frame_bytes,
    };
    use proptest::prelude::*;

    /// Rebuilds a `StateFrame` from the visitor calls.
    #[derive(Default)]
    struct Collect(StateFrame);

    impl FrameVisitor for Collect {
        type Error = DecodeError;
        fn header(&mut self, tick: u32, ack_seq: u32, reset: bool) -> Result<(), DecodeError> {
            self.0.tick = tick;
            self.0.ack_seq = ack_seq;
            self.0.reset = reset;
            Ok(())
        }
        fn event(&mut self, _: u32, kind: u16, bytes: &[u8]) -> Result<(), DecodeError> {
            assert!(self.0.removed.is_empty() && self.0.spawned.is_empty());
            self.0.events.push(Event {
                kind,
                bytes: bytes.to_vec(),
            });
            Ok(())
        }
        fn removed(&mut self, _: u32, id: u32) -> Result<(), DecodeError> {
            self.0.removed.push(id);
            Ok(())
        }
        fn spawned(
            &mut self,
            _: u32,
            id: u32,
            [x, y]: [u32; 2],
            components: Components<'_>,
        ) -> Result<(), DecodeError> {
            let components = owned(components);
            self.0.spawned.push(EntitySpawn {
                id,
                x,
                y,
                components,
            });
            Ok(())
        }
        fn updated(
            &mut self,
            _: u32,
            id: u32,
            [dx, dy]: [i32; 2],
            changes: Changes<'_>,
        ) -> Result<(), DecodeError> {
            let components = changes
                .map(|change| match change {
                    Change::Set(kind, bytes) => ComponentChange::Set(ComponentValue {
                        kind,
                        bytes: bytes.to_vec(),
                    }),
                    Change::Removed(kind) => ComponentChange::Removed(kind),
                })
                .collect();
            self.0.updated.push(EntityUpdate {
                id,
                dx,
                dy,
                components,
            });
            Ok(())
        }
    }

    fn owned(components: Components<'_>) -> Vec<ComponentValue> {
        components
            .map(|(kind, bytes)| ComponentValue {
                kind,
                bytes: bytes.to_vec(),
            })
            .collect()
    }

    fn body(frame: &StateFrame) -> Vec<u8> {
        frame_bytes(&ServerMessage::Frame(frame.clone()))[4..].to_vec()
    }

    /// Feeds a decoded frame to a visitor through the re-encoders.
    fn replay(frame: &StateFrame, collect: &mut Collect) {
        collect
            .header(frame.tick, frame.ack_seq, frame.reset)
            .unwrap();
        for event in &frame.events {
            collect.event(frame.tick, event.kind, &event.bytes).unwrap();
        }
        for &id in &frame.removed {
            collect.removed(frame.tick, id).unwrap();
        }
        for spawn in &frame.spawned {
            let values = EncodedComponents::new(&spawn.components);
            collect
                .spawned(frame.tick, spawn.id, [spawn.x, spawn.y], values.view())
                .unwrap();
        }
        for update in &frame.updated {
            let changes = EncodedChanges::new(&update.components);
            assert_eq!(changes.view().len(), update.components.len());
            collect
                .updated(
                    frame.tick,
                    update.id,
                    [update.dx, update.dy],
                    changes.view(),
                )
                .unwrap();
        }
    }

    #[test]
    fn a_component_change_variant_other_than_set_or_removed_is_refused() {
        let frame = StateFrame {
            tick: 1,
            updated: vec![EntityUpdate {
                id: 3,
                dx: 0,
                dy: 0,
                components: vec![ComponentChange::Removed(0)],
            }],
            ..Default::default()
        };
        let mut bytes = body(&frame);
        assert_eq!(bytes[bytes.len() - 2], 1, "the Removed variant index");
        let mut collect = Collect::default();
        visit_state_frame(&bytes, &mut collect).unwrap();
        bytes.truncate(bytes.len() - 2);
        bytes.extend_from_slice(&[2, 0]);
        assert!(decode_server_message(&bytes).is_err());
        assert!(visit_state_frame(&bytes, &mut Collect::default()).is_err());
    }

    proptest! {
        #[test]
        fn the_re_encoders_read_back_like_the_wire(frame in state_frame()) {
            let mut collect = Collect::default();
            replay(&frame, &mut collect);
            prop_assert_eq!(collect.0, frame);
        }

        #[test]
        fn reads_back_every_frame_postcard_writes(frame in state_frame()) {
            let mut collect = Collect::default();
            visit_state_frame(&body(&frame), &mut collect).unwrap();
            prop_assert_eq!(collect.0, frame);
        }

        #[test]
        fn accepts_exactly_what_postcard_accepts(
            frame in state_frame(),
            position in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let mut bytes = body(&frame);
            let at = position.index(bytes.len());
            if cut { bytes.truncate(at) } else { bytes[at] = value }
            let ours = {
                let mut collect = Collect::default();
                visit_state_frame(&bytes, &mut collect).map(|()| collect.0)
            };
            let theirs = match decode_server_message(&bytes) {
                Ok(ServerMessage::Frame(frame)) => Ok(frame),
                Ok(_) => Err(malformed("other message")),
                Err(error) => Err(error),
            };
            prop_assert_eq!(ours.ok(), theirs.ok());
        }
    }
}
