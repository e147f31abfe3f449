//! What a bot keeps of its view: the set of entity ids it has been told about, as a bitset.
//!
//! The full [`throng_client::Mirror`] keeps a hash map entry per visible entity with its
//! position; a load generator with 2,000 bots touches each bot's map cold once per tick, and
//! in the arena variant (every bot sees every player) those cache misses made the bots
//! themselves the bottleneck. The checks the workload asks of a bot need only membership:
//! every frame must decode, no removal or update may name an entity the bot does not have,
//! no spawn one it has, and ticks must increase. Server ids are dense slot numbers, so a
//! bitset holds a whole view in a few cache lines (1,000 ids: 125 bytes); ids beyond
//! [`DENSE_IDS`] fall back to a hash set so a server with sparse ids still verifies.

use std::collections::HashSet;

use throng_client::MirrorError;
use throng_protocol::visit::{Changes, Components, FrameVisitor};

/// Ids below this live in the bitset (at most 128 KiB per bot).
const DENSE_IDS: u32 = 1 << 20;

/// The ids in a bot's view, and the last frame's tick and ack.
#[derive(Default)]
pub struct ViewSet {
    dense: Vec<u64>,
    sparse: HashSet<u32>,
    len: usize,
    /// Tick of the last frame.
    pub tick: u32,
    /// Seq of the input or action acknowledged by the last frame.
    pub ack_seq: u32,
    /// Server events received (counted, not kept: a bot checks the frame, not the game).
    pub events: u64,
}

impl ViewSet {
    /// Entities in view.
    pub fn len(&self) -> usize {
        self.len
    }

    fn contains(&self, id: u32) -> bool {
        if id < DENSE_IDS {
            let (word, bit) = (id as usize / 64, id % 64);
            self.dense.get(word).is_some_and(|w| w & (1 << bit) != 0)
        } else {
            self.sparse.contains(&id)
        }
    }

    /// Sets membership of `id`; returns whether it changed.
    fn set(&mut self, id: u32, member: bool) -> bool {
        let changed = if id < DENSE_IDS {
            let (word, bit) = (id as usize / 64, id % 64);
            if word >= self.dense.len() {
                if !member {
                    return false;
                }
                self.dense.resize(word + 1, 0);
            }
            let before = self.dense[word] & (1 << bit) != 0;
            if member {
                self.dense[word] |= 1 << bit;
            } else {
                self.dense[word] &= !(1 << bit);
            }
            before != member
        } else if member {
            self.sparse.insert(id)
        } else {
            self.sparse.remove(&id)
        };
        if changed {
            if member {
                self.len += 1;
            } else {
                self.len -= 1;
            }
        }
        changed
    }
}

impl FrameVisitor for ViewSet {
    type Error = MirrorError;

    fn header(&mut self, tick: u32, ack_seq: u32, reset: bool) -> Result<(), MirrorError> {
        MirrorError::check_tick_order(self.tick, tick)?;
        if reset {
            self.dense.iter_mut().for_each(|w| *w = 0);
            self.sparse.clear();
            self.len = 0;
        }
        self.tick = tick;
        self.ack_seq = ack_seq;
        Ok(())
    }

    fn event(&mut self, _: u32, _: u16, _: &[u8]) -> Result<(), MirrorError> {
        self.events += 1;
        Ok(())
    }

    fn removed(&mut self, tick: u32, id: u32) -> Result<(), MirrorError> {
        if self.set(id, false) {
            Ok(())
        } else {
            Err(MirrorError::UnknownEntity { tick, id })
        }
    }

    fn spawned(
        &mut self,
        tick: u32,
        id: u32,
        _: [u32; 2],
        _: Components<'_>,
    ) -> Result<(), MirrorError> {
        if self.set(id, true) {
            Ok(())
        } else {
            Err(MirrorError::DuplicateSpawn { tick, id })
        }
    }

    fn updated(
        &mut self,
        tick: u32,
        id: u32,
        _: [i32; 2],
        _: Changes<'_>,
    ) -> Result<(), MirrorError> {
        if self.contains(id) {
            Ok(())
        } else {
            Err(MirrorError::UnknownEntity { tick, id })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_client::Mirror;
    use throng_protocol::visit::visit_state_frame;
    use throng_protocol::{
        ComponentChange, ComponentValue, EntitySpawn, EntityUpdate, Event, ServerMessage,
        StateFrame, frame_bytes,
    };

    fn body(frame: StateFrame) -> Vec<u8> {
        frame_bytes(&ServerMessage::Frame(frame))[4..].to_vec()
    }

    fn spawn(id: u32) -> EntitySpawn {
        EntitySpawn {
            id,
            x: 80,
            y: 80,
            components: vec![],
        }
    }

    fn update(id: u32) -> EntityUpdate {
        EntityUpdate {
            id,
            dx: 8,
            dy: 0,
            components: vec![],
        }
    }

    fn hit(thrower: u8, target: u8) -> Event {
        Event {
            kind: 0,
            bytes: vec![thrower, target],
        }
    }

    /// The set accepts and refuses exactly the frames the full mirror does (for membership),
    /// and counts the events the mirror collects.
    #[test]
    fn agrees_with_the_mirror_on_every_membership_mistake() {
        let frames = [
            StateFrame {
                tick: 1,
                reset: true,
                spawned: vec![
                    EntitySpawn {
                        components: vec![ComponentValue {
                            kind: 0,
                            bytes: vec![],
                        }],
                        ..spawn(3)
                    },
                    spawn(2_000_000),
                ],
                ..Default::default()
            },
            StateFrame {
                tick: 2,
                ack_seq: 4,
                events: vec![hit(3, 70)],
                updated: vec![
                    EntityUpdate {
                        components: vec![
                            ComponentChange::Removed(0),
                            ComponentChange::Set(ComponentValue {
                                kind: 2,
                                bytes: vec![1],
                            }),
                        ],
                        ..update(3)
                    },
                    update(2_000_000),
                ],
                ..Default::default()
            },
            StateFrame {
                tick: 3,
                events: vec![hit(70, 3), hit(3, 70)],
                removed: vec![3],
                spawned: vec![spawn(70)],
                ..Default::default()
            },
            StateFrame {
                tick: 4,
                updated: vec![update(3)],
                ..Default::default()
            }, // gone
            StateFrame {
                tick: 5,
                spawned: vec![spawn(70)],
                ..Default::default()
            }, // twice
            StateFrame {
                tick: 6,
                removed: vec![999],
                ..Default::default()
            }, // never seen
            StateFrame {
                tick: 6,
                ..Default::default()
            }, // tick repeats
            StateFrame {
                tick: 8,
                reset: true,
                spawned: vec![spawn(3)],
                ..Default::default()
            },
        ];
        let (mut set, mut mirror) = (ViewSet::default(), Mirror::default());
        for frame in frames {
            let bytes = body(frame);
            let ours = visit_state_frame(&bytes, &mut set);
            let theirs = mirror.apply_body(&bytes);
            assert_eq!(ours, theirs);
            assert_eq!(set.len(), mirror.entities.len());
            assert_eq!(set.ack_seq, mirror.ack_seq);
            assert_eq!(set.events, mirror.events().len() as u64);
        }
        assert_eq!(set.events, 3);
        assert_eq!(set.len(), 1);
        assert!(set.contains(3) && !set.contains(70) && !set.contains(2_000_000));
    }
}
