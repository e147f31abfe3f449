//! A client's copy of the entities in its view, kept by applying state frames in order.
//! Sans I/O: tests, tools and the load generator feed it whatever frames they received.
//! Every inconsistency a server could cause is an error, so applying frames verifies them.
//!
//! Frames can be applied decoded ([`Mirror::apply`]) or straight from their bytes
//! ([`Mirror::apply_body`], which allocates only for new entities, component values and
//! events); both run the same [`FrameVisitor`] code.
//!
//! Events are not state: the mirror collects them, in the order frames deliver them, until
//! the caller takes them ([`Mirror::take_events`]). A reset forgets every entity, never an
//! event (the events of frames applied before it were delivered).

use ahash::AHashMap;

use throng_protocol::visit::{
    Change, Changes, Components, EncodedChanges, EncodedComponents, FrameVisitor, visit_state_frame,
};
use throng_protocol::{DecodeError, Event, StateFrame};

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

    /// The kinds of the components the entity has, in the order they arrived.
    pub fn component_kinds(&self) -> impl Iterator<Item = u16> + '_ {
        self.components
            .iter()
            .flat_map(|c| c.iter().map(|(k, _)| *k))
    }

    fn set_components(&mut self, values: Components<'_>) {
        for (kind, bytes) in values {
            self.set(kind, bytes);
        }
    }

    fn set(&mut self, kind: u16, bytes: &[u8]) {
        let components = self.components.get_or_insert_default();
        match components.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, old)) => {
                old.clear();
                old.extend_from_slice(bytes);
            }
            None => components.push((kind, bytes.to_vec())),
        }
    }

    /// Removes component `kind`; false if the entity did not have it.
    fn remove(&mut self, kind: u16) -> bool {
        let Some(components) = self.components.as_mut() else {
            return false;
        };
        let Some(at) = components.iter().position(|(k, _)| *k == kind) else {
            return false;
        };
        components.remove(at);
        if components.is_empty() {
            self.components = None;
        }
        true
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
    /// An update removed a component the entity does not have.
    #[error("tick {tick}: entity {id} has no component of kind {kind} to remove")]
    MissingComponent {
        /// Frame tick.
        tick: u32,
        /// Entity id.
        id: u32,
        /// Component kind.
        kind: u16,
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
    /// Seq of the input or action acknowledged by the last applied frame.
    pub ack_seq: u32,
    /// Events received and not yet taken, in delivery order.
    events: Vec<Event>,
}

impl Mirror {
    /// Applies one decoded frame: reset, events, removals, spawns, then updates.
    pub fn apply(&mut self, frame: &StateFrame) -> Result<(), MirrorError> {
        let tick = frame.tick;
        self.header(tick, frame.ack_seq, frame.reset)?;
        for event in &frame.events {
            self.event(tick, event.kind, &event.bytes)?;
        }
        for &id in &frame.removed {
            self.removed(tick, id)?;
        }
        for spawn in &frame.spawned {
            let values = EncodedComponents::new(&spawn.components);
            self.spawned(tick, spawn.id, [spawn.x, spawn.y], values.view())?;
        }
        for update in &frame.updated {
            let changes = EncodedChanges::new(&update.components);
            self.updated(tick, update.id, [update.dx, update.dy], changes.view())?;
        }
        Ok(())
    }

    /// Applies one frame straight from a `ServerMessage::Frame` body, without decoding it
    /// into a `StateFrame` (allocating only as the entity table, component values and the
    /// event list grow).
    pub fn apply_body(&mut self, body: &[u8]) -> Result<(), MirrorError> {
        visit_state_frame(body, self)
    }

    /// The events received and not yet taken, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the events received since the last call, oldest first. Events accumulate until
    /// taken: a caller that applies frames for long should take them now and then.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
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

    fn event(&mut self, _tick: u32, kind: u16, bytes: &[u8]) -> Result<(), MirrorError> {
        self.events.push(Event {
            kind,
            bytes: bytes.to_vec(),
        });
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
        changes: Changes<'_>,
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
        for change in changes {
            match change {
                Change::Set(kind, bytes) => entity.set(kind, bytes),
                Change::Removed(kind) => {
                    if !entity.remove(kind) {
                        return Err(MirrorError::MissingComponent { tick, id, kind });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_protocol::{
        ComponentChange, ComponentValue, EntitySpawn, EntityUpdate, ServerMessage, frame_bytes,
    };

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

    fn value(kind: u16, bytes: &[u8]) -> ComponentValue {
        ComponentValue {
            kind,
            bytes: bytes.to_vec(),
        }
    }

    fn event(kind: u16, bytes: &[u8]) -> Event {
        Event {
            kind,
            bytes: bytes.to_vec(),
        }
    }

    fn update(id: u32, components: Vec<ComponentChange>) -> EntityUpdate {
        EntityUpdate {
            id,
            dx: 0,
            dy: 0,
            components,
        }
    }

    /// Applies `frames` to two mirrors, one decoded and one from the bytes; both must agree.
    fn apply_both(mirrors: &mut [Mirror; 2], frame: &StateFrame) -> Result<(), MirrorError> {
        let decoded = mirrors[0].apply(frame);
        let body = frame_bytes(&ServerMessage::Frame(frame.clone()));
        let from_bytes = mirrors[1].apply_body(&body[4..]);
        assert_eq!(decoded, from_bytes);
        assert_eq!(mirrors[0].entities, mirrors[1].entities);
        assert_eq!(mirrors[0].events(), mirrors[1].events());
        decoded
    }

    #[test]
    fn components_are_set_replaced_and_removed() {
        let mut mirrors = [Mirror::default(), Mirror::default()];
        let first = StateFrame {
            tick: 1,
            reset: true,
            spawned: vec![EntitySpawn {
                id: 4,
                x: 8,
                y: 8,
                components: vec![value(0, &[]), value(2, &[1])],
            }],
            ..Default::default()
        };
        apply_both(&mut mirrors, &first).unwrap();
        assert_eq!(mirrors[0].entities[&4].component(0), Some(&[][..]));
        assert_eq!(mirrors[0].entities[&4].component(2), Some(&[1][..]));

        let second = StateFrame {
            tick: 2,
            updated: vec![update(
                4,
                vec![
                    ComponentChange::Removed(0),
                    ComponentChange::Set(value(2, &[5])),
                    ComponentChange::Set(value(1, &[])),
                ],
            )],
            ..Default::default()
        };
        apply_both(&mut mirrors, &second).unwrap();
        let entity = &mirrors[0].entities[&4];
        assert_eq!(entity.component(0), None);
        assert_eq!(entity.component(2), Some(&[5][..]));
        assert_eq!(entity.component(1), Some(&[][..]));
        assert_eq!(entity.component_kinds().collect::<Vec<_>>(), [2, 1]);

        let third = StateFrame {
            tick: 3,
            updated: vec![update(
                4,
                vec![ComponentChange::Removed(2), ComponentChange::Removed(1)],
            )],
            ..Default::default()
        };
        apply_both(&mut mirrors, &third).unwrap();
        assert_eq!(mirrors[0].entities[&4].component_kinds().count(), 0);

        // Removing what the entity does not have is the server's mistake.
        let again = StateFrame {
            tick: 4,
            updated: vec![update(4, vec![ComponentChange::Removed(2)])],
            ..Default::default()
        };
        assert_eq!(
            apply_both(&mut mirrors, &again),
            Err(MirrorError::MissingComponent {
                tick: 4,
                id: 4,
                kind: 2
            })
        );
    }

    #[test]
    fn events_are_collected_in_order_until_taken() {
        let mut mirrors = [Mirror::default(), Mirror::default()];
        let first = StateFrame {
            tick: 1,
            reset: true,
            events: vec![event(0, &[3, 9]), event(1, &[])],
            spawned: vec![spawn(3, 8, 8)],
            ..Default::default()
        };
        apply_both(&mut mirrors, &first).unwrap();
        let second = StateFrame {
            tick: 2,
            events: vec![event(0, &[9, 3])],
            ..Default::default()
        };
        apply_both(&mut mirrors, &second).unwrap();
        assert_eq!(
            mirrors[0].events(),
            [event(0, &[3, 9]), event(1, &[]), event(0, &[9, 3])]
        );
        for mirror in &mut mirrors {
            assert_eq!(mirror.take_events().len(), 3);
            assert!(mirror.take_events().is_empty());
        }
        let quiet = StateFrame {
            tick: 3,
            ..Default::default()
        };
        apply_both(&mut mirrors, &quiet).unwrap();
        assert!(mirrors[0].events().is_empty());
    }

    #[test]
    fn a_reset_keeps_nothing_but_what_its_frame_carries() {
        let mut mirrors = [Mirror::default(), Mirror::default()];
        let first = StateFrame {
            tick: 1,
            reset: true,
            events: vec![event(0, &[1, 2])],
            spawned: vec![
                spawn(1, 8, 8),
                EntitySpawn {
                    id: 2,
                    x: 16,
                    y: 16,
                    components: vec![value(2, &[7])],
                },
            ],
            ..Default::default()
        };
        apply_both(&mut mirrors, &first).unwrap();
        for mirror in &mut mirrors {
            assert_eq!(mirror.take_events(), [event(0, &[1, 2])]);
        }
        // Frames 2 to 4 were dropped; the resync frame carries their events and the view.
        let resync = StateFrame {
            tick: 5,
            ack_seq: 3,
            reset: true,
            events: vec![event(0, &[2, 1]), event(0, &[1, 1])],
            spawned: vec![spawn(2, 24, 24)],
            ..Default::default()
        };
        apply_both(&mut mirrors, &resync).unwrap();
        let mirror = &mut mirrors[0];
        assert_eq!(mirror.entities.len(), 1);
        assert_eq!(mirror.entities[&2].wire, [24, 24]);
        assert_eq!(
            mirror.entities[&2].component(2),
            None,
            "nothing kept of before"
        );
        assert_eq!((mirror.tick, mirror.ack_seq), (5, 3));
        assert_eq!(mirror.take_events(), [event(0, &[2, 1]), event(0, &[1, 1])]);

        // Events not yet taken when a reset arrives were delivered: the reset keeps them.
        let mut mirror = Mirror::default();
        mirror.apply(&first).unwrap();
        mirror.apply(&resync).unwrap();
        assert_eq!(mirror.take_events().len(), 3);
    }
}
