//! A client's copy of the entities in its view, kept by applying state frames in order.
//! Sans I/O: tests, tools and the load generator feed it whatever frames they received.
//! Every inconsistency a server could cause is an error, so applying frames verifies them.

use ahash::AHashMap;

use crate::protocol::{ComponentValue, StateFrame};

/// One entity as the client knows it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MirroredEntity {
    /// Wire position (world units times the position scale).
    pub wire: [u32; 2],
    /// Latest value bytes of each replicated component kind it has.
    pub components: AHashMap<u16, Vec<u8>>,
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
    /// Applies one frame: reset, removals, spawns, then updates.
    pub fn apply(&mut self, frame: &StateFrame) -> Result<(), MirrorError> {
        if self.tick != 0 && frame.tick <= self.tick {
            return Err(MirrorError::TickOrder {
                tick: frame.tick,
                previous: self.tick,
            });
        }
        let tick = frame.tick;
        if frame.reset {
            self.entities.clear();
        }
        for &id in &frame.removed {
            self.entities
                .remove(&id)
                .ok_or(MirrorError::UnknownEntity { tick, id })?;
        }
        for spawn in &frame.spawned {
            let entity = MirroredEntity {
                wire: [spawn.x, spawn.y],
                components: collect(&spawn.components),
            };
            if self.entities.insert(spawn.id, entity).is_some() {
                return Err(MirrorError::DuplicateSpawn { tick, id: spawn.id });
            }
        }
        for update in &frame.updated {
            let id = update.id;
            let entity = self
                .entities
                .get_mut(&id)
                .ok_or(MirrorError::UnknownEntity { tick, id })?;
            let moved = |wire: u32, delta: i32| {
                wire.checked_add_signed(delta)
                    .ok_or(MirrorError::OutOfRange { tick, id })
            };
            entity.wire = [
                moved(entity.wire[0], update.dx)?,
                moved(entity.wire[1], update.dy)?,
            ];
            for value in &update.components {
                entity.components.insert(value.kind, value.bytes.clone());
            }
        }
        self.tick = tick;
        self.ack_seq = frame.ack_seq;
        Ok(())
    }
}

fn collect(values: &[ComponentValue]) -> AHashMap<u16, Vec<u8>> {
    values.iter().map(|v| (v.kind, v.bytes.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EntitySpawn, EntityUpdate};

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
