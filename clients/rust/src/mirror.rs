//! A client's copy of the entities in its view, kept by applying state frames in order.
//! Sans I/O: tests, tools and the load generator feed it whatever frames they received.
//! Every inconsistency a server could cause is an error, so applying frames verifies them.
//!
//! Frames can be applied decoded ([`Mirror::apply`]) or straight from their bytes without
//! allocating ([`Mirror::apply_body`]); both run the same [`FrameVisitor`] code.

use ahash::AHashMap;

use throng_protocol::visit::{Components, EncodedComponents, FrameVisitor, visit_state_frame};
use throng_protocol::{DecodeError, StateFrame};

/// Component kinds with their latest value bytes.
type ComponentValues = Vec<(u16, Vec<u8>)>;

/// One entity as the client knows it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MirroredEntity {
    /// Wire position (world units times the position scale).
    pub wire: [u32; 2],
    /// Latest value bytes of each replicated component kind it has. Boxed so that an entry
    /// of the entity table stays small (24 bytes): a load generator keeps thousands of
    /// mirrors and touches each one cold once per tick.
    components: Option<Box<ComponentValues>>,
}

impl MirroredEntity {
    /// The latest value bytes of component `kind`, if the entity has it.
    pub fn component(&self, kind: u16) -> Option<&[u8]> {
        self.components
            .as_deref()?
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, bytes)| bytes.as_slice())
    }

    fn set_components(&mut self, values: Components<'_>) {
        if values.is_empty() {
            return;
        }
        let components = self.components.get_or_insert_default();
        for (kind, bytes) in values {
            match components.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, old)) => {
                    old.clear();
                    old.extend_from_slice(bytes);
                }
                None => components.push((kind, bytes.to_vec())),
            }
        }
    }
}

/// A frame that does not fit the mirror: the server (or the wire) broke a promise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// A removal or update named an entity the client does not have.
    #[error("tick {tick}: entity {id} is not in view")]
    UnknownEntity {
        /// Frame tick.
        tick: u32,
        /// Entity id.
        id: u32,
    },
    /// A spawn named an entity the client already has.
    #[error("tick {tick}: entity {id} spawned twice")]
    DuplicateSpawn {
        /// Frame tick.
        tick: u32,
        /// Entity id.
        id: u32,
    },
    /// An update moved a position outside the wire range.
    #[error("tick {tick}: entity {id} moved out of range")]
    OutOfRange {
        /// Frame tick.
        tick: u32,
        /// Entity id.
        id: u32,
    },
    /// Frame ticks went backwards or repeated.
    #[error("frame tick {tick} after {previous}")]
    TickOrder {
        /// This frame's tick.
        tick: u32,
        /// The previous frame's tick.
        previous: u32,
    },
    /// The frame's bytes are not a valid state frame.
    #[error("undecodable frame: {0}")]
    Decode(#[from] DecodeError),
}

impl MirrorError {
    /// A frame's tick must be above the previous frame's (`previous` 0: no frame yet).
    pub fn check_tick_order(previous: u32, tick: u32) -> Result<(), MirrorError> {
        if previous != 0 && tick <= previous {
            return Err(MirrorError::TickOrder { tick, previous });
        }
        Ok(())
    }
}

/// The entities a client sees.
#[derive(Default, Debug, Clone)]
pub struct Mirror {
    /// Entities by id.
    pub entities: AHashMap<u32, MirroredEntity>,
    /// Tick of the last applied frame.
    pub tick: u32,
    /// Input seq acknowledged by the last applied frame.
    pub ack_seq: u32,
}

impl Mirror {
    /// Applies one decoded frame: reset, removals, spawns, then updates.
    pub fn apply(&mut self, frame: &StateFrame) -> Result<(), MirrorError> {
        let tick = frame.tick;
        self.header(tick, frame.ack_seq, frame.reset)?;
        for &id in &frame.removed {
            self.removed(tick, id)?;
        }
        for spawn in &frame.spawned {
            let values = EncodedComponents::new(&spawn.components);
            self.spawned(tick, spawn.id, [spawn.x, spawn.y], values.view())?;
        }
        for update in &frame.updated {
            let values = EncodedComponents::new(&update.components);
            self.updated(tick, update.id, [update.dx, update.dy], values.view())?;
        }
        Ok(())
    }

    /// Applies one frame straight from a `ServerMessage::Frame` body, without allocating
    /// (beyond the entity table growing).
    pub fn apply_body(&mut self, body: &[u8]) -> Result<(), MirrorError> {
        visit_state_frame(body, self)
    }
}

impl FrameVisitor for Mirror {
    type Error = MirrorError;

    fn header(&mut self, tick: u32, ack_seq: u32, reset: bool) -> Result<(), MirrorError> {
        MirrorError::check_tick_order(self.tick, tick)?;
        if reset {
            self.entities.clear();
        }
        self.tick = tick;
        self.ack_seq = ack_seq;
        Ok(())
    }

    fn removed(&mut self, tick: u32, id: u32) -> Result<(), MirrorError> {
        self.entities
            .remove(&id)
            .map(drop)
            .ok_or(MirrorError::UnknownEntity { tick, id })
    }

    fn spawned(
        &mut self,
        tick: u32,
        id: u32,
        wire: [u32; 2],
        components: Components<'_>,
    ) -> Result<(), MirrorError> {
        let mut entity = MirroredEntity {
            wire,
            components: None,
        };
        entity.set_components(components);
        match self.entities.insert(id, entity) {
            None => Ok(()),
            Some(_) => Err(MirrorError::DuplicateSpawn { tick, id }),
        }
    }

    fn updated(
        &mut self,
        tick: u32,
        id: u32,
        [dx, dy]: [i32; 2],
        components: Components<'_>,
    ) -> Result<(), MirrorError> {
        let entity = self
            .entities
            .get_mut(&id)
            .ok_or(MirrorError::UnknownEntity { tick, id })?;
        let moved = |wire: u32, delta: i32| {
            wire.checked_add_signed(delta)
                .ok_or(MirrorError::OutOfRange { tick, id })
        };
        entity.wire = [moved(entity.wire[0], dx)?, moved(entity.wire[1], dy)?];
        entity.set_components(components);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_protocol::{EntitySpawn, EntityUpdate};

    fn spawn(id: u32, x: u32, y: u32) -> EntitySpawn {
        EntitySpawn {
            id,
            x,
            y,
            components: vec![],
        }
    }

    #[test]
    fn frames_apply_in_order_and_mistakes_are_errors() {
        let mut mirror = Mirror::default();
        let first = StateFrame {
            tick: 1,
            reset: true,
            spawned: vec![spawn(1, 10, 10), spawn(2, 0, 0)],
            ..Default::default()
        };
        mirror.apply(&first).unwrap();
        let second = StateFrame {
            tick: 2,
            ack_seq: 7,
            removed: vec![2],
            updated: vec![EntityUpdate {
                id: 1,
                dx: -3,
                dy: 5,
                components: vec![],
            }],
            ..Default::default()
        };
        mirror.apply(&second).unwrap();
        assert_eq!(mirror.entities.len(), 1);
        assert_eq!(mirror.entities[&1].wire, [7, 15]);
        assert_eq!(mirror.ack_seq, 7);

        let unknown = StateFrame {
            tick: 3,
            removed: vec![2],
            ..Default::default()
        };
        assert_eq!(
            mirror.clone().apply(&unknown),
            Err(MirrorError::UnknownEntity { tick: 3, id: 2 })
        );
        let duplicate = StateFrame {
            tick: 3,
            spawned: vec![spawn(1, 0, 0)],
            ..Default::default()
        };
        assert_eq!(
            mirror.clone().apply(&duplicate),
            Err(MirrorError::DuplicateSpawn { tick: 3, id: 1 })
        );
        let stale = StateFrame {
            tick: 2,
            ..Default::default()
        };
        assert_eq!(
            mirror.clone().apply(&stale),
            Err(MirrorError::TickOrder {
                tick: 2,
                previous: 2
            })
        );
        let negative = StateFrame {
            tick: 3,
            updated: vec![EntityUpdate {
                id: 1,
                dx: -8,
                dy: 0,
                components: vec![],
            }],
            ..Default::default()
        };
        assert_eq!(
            mirror.apply(&negative),
            Err(MirrorError::OutOfRange { tick: 3, id: 1 })
        );
    }
}
