//! Replication: from ECS state to one frame per client per tick.
//!
//! # Layout
//! - [`grid`]: cell geometry and the interest rule (a circle of the interest radius).
//! - [`table`]: wire ids and what viewers were last told, per entity.
//! - [`records`]: byte encoders for spawn, update and removal records.
//! - [`cells`]: every entity's place in its cell, and each changed entity's update record
//!   written once.
//! - [`events`]: routes this tick's server events to cells, players or everyone.
//! - [`welcome`]: a new viewer's Welcome, and the shutdown's close of every client.
//! - [`frames`]: each client's frame cut from the cells around it by the interest rule, and
//!   hand-off to the socket task.
//!
//! Systems run in [`components::TickSet::Replicate`] (capture, encode, route events) and
//! [`components::TickSet::Frames`] (views, then frames).

pub(crate) mod cells;
pub(crate) mod events;
pub(crate) mod frames;
pub(crate) mod grid;
pub(crate) mod records;
pub(crate) mod table;
pub(crate) mod welcome;

use std::sync::{Arc, Mutex};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::replicated::{CaptureReplicated, ComponentChanges, ReplicationRegistry};
use components::{NetId, Position, ServerTick, TickSet};

use crate::bridge::TickSignal;
use crate::config::Config;
use crate::ingest::IngestStep;
use crate::protocol::{POSITION_SCALE, Welcome, quantize};
use crate::stats::Stats;
use cells::CellGrid;
use grid::GridGeometry;
use table::ReplicaTable;

/// Replication: the grid, the replica table, encode once per entity, events, one frame per
/// client per tick, and the signal that tells the network threads to write them.
pub(crate) struct ReplicationPlugin {
    geometry: GridGeometry,
    welcome: Welcome,
    limits: OutboundLimits,
    signal: Mutex<Option<TickSignal>>,
}

impl ReplicationPlugin {
    /// Replication of the world `config` describes; `signal` is sent once per tick.
    pub(crate) fn new(config: &Config, signal: TickSignal) -> Self {
        let geometry = GridGeometry::new(
            config.world_size,
            config.cell_size,
            config.interest_radius,
            POSITION_SCALE,
        );
        Self {
            geometry,
            welcome: Welcome {
                player_id: 0,
                tick_hz: config.tick_hz,
                world_size: config.world_size,
                interest_radius: config.interest_radius,
                cell_size: config.cell_size,
                view_cells: geometry.view_cells,
                position_scale: POSITION_SCALE,
                max_frame_bytes: config.max_outbound_frame_bytes,
                schema: Default::default(),
                idle_timeout_ms: (config.idle_timeout_s * 1000.0) as u32,
                max_inputs_per_s: config.max_inputs_per_s,
            },
            limits: OutboundLimits {
                max_frame_bytes: config.max_outbound_frame_bytes,
                slow_reader_kick_ticks: (config.slow_reader_kick_s * f32::from(config.tick_hz))
                    .ceil() as u64,
                max_pending_event_bytes: frames::MAX_PENDING_EVENT_BYTES,
            },
            signal: Mutex::new(Some(signal)),
        }
    }
}

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        let signal = self
            .signal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the replication plugin is added once");
        app.insert_resource(CellGrid::new(self.geometry))
            .insert_resource(self.limits)
            .insert_resource(signal)
            .insert_resource(welcome::WelcomeTemplate(self.welcome.clone()))
            .init_resource::<events::EventRouting>()
            .init_resource::<frames::FramesDropped>();
        app.edit_schedule(ServerTick, add_systems);
    }
}

/// After every plugin registered: the table knows how many component kinds there are, and
/// the Welcome carries the game's schema.
pub(crate) fn finish_registration(world: &mut World) {
    let kinds = world.resource::<ReplicationRegistry>().names.len();
    world.insert_resource(ReplicaTable::new(kinds));
    let schema = crate::game::schema(world);
    world.resource_mut::<welcome::WelcomeTemplate>().0.schema = schema;
}

/// Steps inside the replicate and flush phases.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ReplicationStep {
    /// Wire ids for new entities, removals for despawned ones.
    Track,
    /// Copies changed positions and components into the replica table.
    Capture,
    /// Writes update records and lists entities by cell.
    Encode,
    /// Routes this tick's server events.
    Events,
    /// Welcomes the clients that joined this tick (before their first frame).
    Welcome,
    /// Assembles and submits frames.
    Frames,
}

/// What the server allows itself to send a client, and for how long a client may refuse it.
#[derive(Resource, Clone, Copy, Debug)]
pub(crate) struct OutboundLimits {
    /// Largest frame the server sends, bytes; a view that needs more closes the client.
    pub max_frame_bytes: u32,
    /// Ticks a client may go without taking a single frame (every outbox slot in flight)
    /// before it is closed as a slow reader.
    pub slow_reader_kick_ticks: u64,
    /// Event bytes kept for a client whose frames are being dropped; beyond it the client is
    /// closed (`EventBacklog`) rather than lose events silently.
    pub max_pending_event_bytes: usize,
}

/// The server's counters, for systems.
#[derive(Resource, Clone)]
pub(crate) struct SharedStats(pub Arc<Stats>);

/// Adds the replication systems to the tick schedule.
fn add_systems(schedule: &mut Schedule) {
    schedule.configure_sets(
        (
            ReplicationStep::Track,
            CaptureReplicated,
            ReplicationStep::Capture,
            ReplicationStep::Encode,
            ReplicationStep::Events,
        )
            .chain()
            .in_set(TickSet::Replicate),
    );
    schedule.configure_sets(
        (ReplicationStep::Welcome, ReplicationStep::Frames)
            .chain()
            .in_set(TickSet::Frames),
    );
    schedule.add_systems((
        register_new_entities.in_set(IngestStep::Identify),
        (register_new_entities, forget_despawned)
            .chain()
            .in_set(ReplicationStep::Track),
        (capture_positions, apply_component_changes)
            .chain()
            .in_set(ReplicationStep::Capture),
        cells::encode_cells.in_set(ReplicationStep::Encode),
        events::route_events.in_set(ReplicationStep::Events),
        welcome::welcome_new_clients.in_set(ReplicationStep::Welcome),
        frames::assemble_frames.in_set(ReplicationStep::Frames),
    ));
}

/// Takes the replicated components that gameplay changed or removed this tick into the
/// table (their values are encoded already; see [`components::replicated`]).
fn apply_component_changes(mut changes: ResMut<ComponentChanges>, mut table: ResMut<ReplicaTable>) {
    for change in &changes.changes {
        let replica = table.get_mut(change.id);
        if !replica.live {
            continue;
        }
        let bit = 1u64 << change.kind;
        let slot = &mut replica.components[usize::from(change.kind)];
        slot.clear();
        match change.value {
            Some(_) => {
                slot.extend_from_slice(changes.value(change));
                replica.present |= bit;
                replica.changed |= bit;
                replica.removed &= !bit;
            }
            None => {
                // Viewers hear of a removal only if they were told of the component: one
                // added and removed within a tick never reaches them.
                replica.present &= !bit;
                replica.changed &= !bit;
                if replica.announced & bit != 0 {
                    replica.removed |= bit;
                }
            }
        }
    }
    changes.clear();
}

/// Gives a wire id to every positioned entity that has none: players who joined this tick
/// (in the Ingest phase, so gameplay and the Welcome can name them in that tick), and
/// entities gameplay spawned (in the Replicate phase).
fn register_new_entities(
    world: &mut World,
    new: &mut QueryState<(Entity, &Position), Without<NetId>>,
    mut found: Local<Vec<(Entity, [u32; 2])>>,
) {
    found.extend(
        new.iter(world)
            .map(|(entity, p)| (entity, [quantize(p.x), quantize(p.y)])),
    );
    for (entity, wire) in found.drain(..) {
        let id = world.resource_mut::<ReplicaTable>().register(entity, wire);
        world.entity_mut(entity).insert(id);
    }
}

fn forget_despawned(mut removed: RemovedComponents<NetId>, mut table: ResMut<ReplicaTable>) {
    for entity in removed.read() {
        table.despawned(entity);
    }
}

fn capture_positions(
    moved: Query<(&NetId, &Position), Changed<Position>>,
    mut table: ResMut<ReplicaTable>,
) {
    for (id, position) in &moved {
        table.get_mut(id.0).wire = [quantize(position.x), quantize(position.y)];
    }
}
