//! Server events, routed once per tick: each event (encoded once by its kind's drain, see
//! [`components::events`]) goes to one place: the sending order's list of everyone's
//! events, the cell of the entity whose viewers get it, or the target player's own list.
//! Frame assembly then gives each client, in sending order, the events of everyone, those
//! about the entities it sees (by the interest rule) and its own (see `frames`).

use bevy_ecs::prelude::*;
use components::NetId;
use components::events::{EncodedEvents, EventRegistry, EventTarget};

use super::SharedStats;
use super::cells::CellGrid;
use super::frames::Viewer;
use super::table::ReplicaTable;
use crate::protocol::put_varint;
use crate::stats::Stats;

/// Encoded event records (`protocol::Event`), each tagged with its place in this tick's
/// sending order so that a client's events from several sections can be merged in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct EventSection {
    /// Concatenated records (kind, length, value), as on the wire.
    pub bytes: Vec<u8>,
    /// Per record: its sending order this tick and where it ends in `bytes`.
    pub ends: Vec<(u32, u32)>,
}

impl EventSection {
    /// Whether the section holds no event.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties the section, keeping its memory.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Appends the record of an event of wire kind `kind` with value `value`.
    pub(crate) fn push(&mut self, order: u32, kind: u16, value: &[u8]) {
        put_varint(&mut self.bytes, u64::from(kind));
        put_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self.ends.push((order, self.bytes.len() as u32));
    }

    /// The bytes of record `index`.
    #[inline]
    pub(crate) fn record(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1].1 as usize
        };
        &self.bytes[start..self.ends[index].1 as usize]
    }
}

/// This tick's events: encoded by kind, then routed.
#[derive(Resource, Default)]
pub(crate) struct EventRouting {
    encoded: EncodedEvents,
    /// Events for every client.
    pub everyone: EventSection,
    /// Events for one player each, in sending order: (player, index in `encoded`, which is
    /// also the event's sending order).
    personal: Vec<(Entity, u32)>,
}

/// Drains every event kind (in registration order: the order of events does not depend on
/// which thread ran which system) and routes each event once.
pub(crate) fn route_events(world: &mut World) {
    world.resource_scope(|world, mut routing: Mut<EventRouting>| {
        let routing = &mut *routing;
        routing.everyone.clear();
        routing.encoded.clear();
        world.resource_scope(|world, registry: Mut<EventRegistry>| {
            for (kind, event_kind) in registry.kinds.iter().enumerate() {
                (event_kind.drain)(world, kind as u16, &mut routing.encoded);
            }
        });
        if routing.encoded.records.is_empty() {
            return;
        }
        let mut unroutable = 0;
        let EventRouting {
            encoded,
            everyone,
            personal,
        } = routing;
        world.resource_scope(|world, mut grid: Mut<CellGrid>| {
            let table = world.resource::<ReplicaTable>();
            personal.clear();
            for (order, event) in encoded.records.iter().enumerate() {
                let value = encoded.value(event);
                let order = order as u32;
                match event.target {
                    EventTarget::Everyone => everyone.push(order, event.kind, value),
                    EventTarget::ViewersOf(entity) => {
                        let Some(id) = world.get::<NetId>(entity) else {
                            unroutable += 1;
                            continue;
                        };
                        let wire = table.get(id.0).wire;
                        let cell = grid.geometry.cell_of(wire);
                        let target = grid.cell_mut(cell);
                        target.events.push(order, event.kind, value);
                        target.event_targets.push(wire);
                        // The clients that may see it are in cells whose search square
                        // holds its cell: the cells of its own square.
                        let square = grid.geometry.search_of(cell);
                        for (cx, cy) in square.cells() {
                            let index = grid.geometry.index(cx, cy);
                            grid.cell_mut(index).events_in_view = true;
                        }
                    }
                    EventTarget::Player(entity) => personal.push((entity, order)),
                }
            }
            for &(entity, order) in personal.iter() {
                let event = &encoded.records[order as usize];
                match world.get_mut::<Viewer>(entity) {
                    Some(mut viewer) => {
                        viewer
                            .personal_events
                            .push(order, event.kind, encoded.value(event))
                    }
                    None => unroutable += 1,
                }
            }
        });
        if unroutable > 0 {
            Stats::add(
                &world.resource::<SharedStats>().0.events_unroutable,
                unroutable,
            );
        }
    });
}
