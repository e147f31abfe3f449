//! Replication: from ECS state to one frame per client per tick.
//!
//! # Layout
//! - [`grid`]: cell geometry and the interest rule.
//! - [`table`]: wire ids and what viewers were last told, per entity.
//! - [`records`]: byte encoders for spawn, update and removal records.
//! - [`cells`]: encode each changed entity once, into its cell's sections.
//! - [`frames`]: per-client frame assembly from cell sections, and hand-off to the socket task.
//!
//! Systems run in [`components::TickSet::Replicate`] (capture, then encode) and
//! [`components::TickSet::Flush`] (views, then frames).

pub mod cells;
pub mod frames;
pub mod grid;
pub mod records;
pub mod table;

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::system::ScheduleSystem;
use components::{Position, TickSet};
use serde::Serialize;

use crate::protocol::quantize;
use crate::stats::Stats;
use table::{NetId, ReplicaTable};

/// Steps inside the replicate and flush phases.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicationStep {
    /// Wire ids for new entities, removals for despawned ones.
    Track,
    /// Copies changed positions and components into the replica table.
    Capture,
    /// Writes records into cell sections.
    Encode,
    /// Computes views and the snapshot/previous sections they need.
    Views,
    /// Assembles and submits frames.
    Frames,
}

/// What the server allows itself to send a client, and for how long a client may refuse it.
#[derive(Resource, Clone, Copy)]
pub struct OutboundLimits {
    /// Largest frame the server sends, bytes; a view that needs more closes the client.
    pub max_frame_bytes: u32,
    /// Ticks a client may go without taking a single frame (every outbox slot in flight)
    /// before it is closed as a slow reader.
    pub slow_reader_kick_ticks: u64,
}

/// The server's counters, for systems.
#[derive(Resource, Clone)]
pub struct SharedStats(pub Arc<Stats>);

/// Names of the replicated component kinds; a kind's wire number is its index.
#[derive(Resource, Default, Clone)]
pub struct ReplicatedComponents {
    /// Short type names, by kind.
    pub names: Vec<String>,
}

/// Most replicated component kinds (kinds are bits of a `u64` mask).
pub const MAX_COMPONENT_KINDS: usize = 64;

/// Adds the replication systems to `schedule`.
pub fn add_systems(schedule: &mut Schedule) {
    schedule.configure_sets(
        (
            ReplicationStep::Track,
            ReplicationStep::Capture,
            ReplicationStep::Encode,
        )
            .chain()
            .in_set(TickSet::Replicate),
    );
    schedule.configure_sets(
        (ReplicationStep::Views, ReplicationStep::Frames)
            .chain()
            .in_set(TickSet::Flush),
    );
    schedule.add_systems((
        (register_new_entities, forget_despawned)
            .chain()
            .in_set(ReplicationStep::Track),
        capture_positions.in_set(ReplicationStep::Capture),
        cells::encode_cells.in_set(ReplicationStep::Encode),
        frames::prepare_views.in_set(ReplicationStep::Views),
        frames::assemble_frames.in_set(ReplicationStep::Frames),
    ));
}

/// The system that copies component `T` (wire kind `kind`) into the table when it changes.
pub fn capture_component_system<T: Component + Serialize>(
    kind: usize,
) -> impl IntoScheduleConfigs<ScheduleSystem, ()> {
    assert!(
        kind < MAX_COMPONENT_KINDS,
        "at most {MAX_COMPONENT_KINDS} replicated components"
    );
    let bit = 1u64 << kind;
    (move |changed: Query<(&NetId, &T), Changed<T>>, mut table: ResMut<ReplicaTable>| {
        for (id, value) in &changed {
            let replica = table.get_mut(id.0);
            let mut bytes = std::mem::take(&mut replica.components[kind]);
            bytes.clear();
            // Serializing into a Vec cannot fail for serde-derived types.
            bytes = postcard::to_extend(value, bytes).unwrap_or_default();
            replica.components[kind] = bytes;
            replica.present |= bit;
            replica.changed |= bit;
        }
    })
    .in_set(ReplicationStep::Capture)
    // Capture systems share the table but each writes only its own kind's slots and bits.
    .ambiguous_with(ReplicationStep::Capture)
}

/// Gives a wire id to every positioned entity that has none (entities spawned by gameplay;
/// players get theirs at join so the Welcome can name it).
fn register_new_entities(
    world: &mut World,
    new: &mut QueryState<(Entity, &Position), Without<NetId>>,
) {
    let found: Vec<(Entity, [u32; 2])> = new
        .iter(world)
        .map(|(entity, p)| (entity, [quantize(p.x), quantize(p.y)]))
        .collect();
    if found.is_empty() {
        return;
    }
    for (entity, wire) in found {
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
