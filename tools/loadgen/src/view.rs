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
//!
//! One position is kept: the bot's own entity's (a compare per spawn and update), which a
//! zone handoff checks for continuity; and the speed of the `movement` event, which bounds
//! how far that entity may move between the origin's last frame and the destination's first.

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
    /// The bot's own entity (its Welcome's `player_id`), whose position is kept.
    own_id: Option<u32>,
    /// Its wire position, while it is in view.
    own_wire: Option<[u32; 2]>,
    /// Kind index of the `movement` event in the session's schema.
    movement_kind: Option<u16>,
    /// Units per tick, from the last `movement` event (kept across sessions).
    pub speed_per_tick: Option<f32>,
}

impl ViewSet {
    /// Entities in view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Starts a new session's view (after a Welcome): nothing in view, ticks and acks start
    /// over (another zone server counts its own ticks); events counted and the movement
    /// speed are kept.
    pub fn restart(&mut self, own_id: u32, movement_kind: Option<u16>) {
        self.clear();
        self.tick = 0;
        self.ack_seq = 0;
        self.own_id = Some(own_id);
        self.movement_kind = movement_kind;
    }

    /// The bot's own wire position, if its entity is in view.
    pub fn own_wire(&self) -> Option<[u32; 2]> {
        self.own_wire
    }

    fn clear(&mut self) {
        self.dense.iter_mut().for_each(|w| *w = 0);
        self.sparse.clear();
        self.len = 0;
        self.own_wire = None;
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
            self.clear();
        }
        self.tick = tick;
        self.ack_seq = ack_seq;
        Ok(())
    }

    fn event(&mut self, _: u32, kind: u16, bytes: &[u8]) -> Result<(), MirrorError> {
        self.events += 1;
        if Some(kind) == self.movement_kind {
            // `MovementInfo { speed_per_tick: f32 }`: postcard writes an f32 as 4 LE bytes.
            if let Ok(speed) = <[u8; 4]>::try_from(bytes) {
                self.speed_per_tick = Some(f32::from_le_bytes(speed));
            }
        }
        Ok(())
    }

    fn removed(&mut self, tick: u32, id: u32) -> Result<(), MirrorError> {
        if Some(id) == self.own_id {
            self.own_wire = None;
        }
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
        wire: [u32; 2],
        _: Components<'_>,
    ) -> Result<(), MirrorError> {
        if Some(id) == self.own_id {
            self.own_wire = Some(wire);
        }
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
        [dx, dy]: [i32; 2],
        _: Changes<'_>,
    ) -> Result<(), MirrorError> {
        if Some(id) == self.own_id
            && let Some([x, y]) = self.own_wire
        {
            self.own_wire = Some([x.wrapping_add_signed(dx), y.wrapping_add_signed(dy)]);
        }
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

    /// The own entity's position follows its spawn and updates, is forgotten when it leaves
    /// view, and a restart (a new session) starts the view and the ticks over.
    #[test]
    fn keeps_the_own_position_and_the_movement_speed() {
        let mut set = ViewSet::default();
        set.restart(3, Some(1));
        let frames = [
            StateFrame {
                tick: 10,
                reset: true,
                events: vec![Event {
                    kind: 1,
                    bytes: 5.0f32.to_le_bytes().to_vec(),
                }],
                spawned: vec![spawn(3), spawn(4)],
                ..Default::default()
            },
            StateFrame {
                tick: 11,
                updated: vec![update(3), update(4)],
                ..Default::default()
            },
            StateFrame {
                tick: 12,
                updated: vec![EntityUpdate {
                    dx: -40,
                    dy: 4,
                    ..update(3)
                }],
                ..Default::default()
            },
        ];
        for frame in frames {
            visit_state_frame(&body(frame), &mut set).unwrap();
        }
        assert_eq!(set.own_wire(), Some([80 + 8 - 40, 84]));
        assert_eq!(set.speed_per_tick, Some(5.0));
        let gone = StateFrame {
            tick: 13,
            removed: vec![3],
            ..Default::default()
        };
        visit_state_frame(&body(gone), &mut set).unwrap();
        assert_eq!(set.own_wire(), None);

        set.restart(9, None);
        assert_eq!((set.len(), set.tick, set.ack_seq), (0, 0, 0));
        assert_eq!(set.speed_per_tick, Some(5.0), "kept across sessions");
        let other_zone = StateFrame {
            tick: 2, // another server's ticks: lower than the origin's
            ack_seq: 7,
            spawned: vec![spawn(4), spawn(9)],
            ..Default::default()
        };
        visit_state_frame(&body(other_zone), &mut set).unwrap();
        assert_eq!(set.own_wire(), Some([80, 80]));
        assert_eq!(set.len(), 2);
    }
}
