//! The deterministic clock, the tick schedule and the ordered phases of one tick.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// The simulation clock. Gameplay reads time from here, never from the wall clock, so a
/// tick replays identically in tests and benchmarks.
#[derive(Resource, Clone, Copy, Debug, PartialEq)]
pub struct TickClock {
    /// Number of the tick being simulated; the first tick is 1.
    pub tick: u64,
    /// Simulated seconds per tick (1 / tick rate).
    pub seconds_per_tick: f32,
}

impl TickClock {
    /// A clock before its first tick.
    pub fn new(tick_hz: u16) -> Self {
        Self {
            tick: 0,
            seconds_per_tick: 1.0 / f32::from(tick_hz.max(1)),
        }
    }
}

/// The schedule the server runs once per tick, at a fixed rate. Gameplay adds its systems
/// here (`app.add_systems(ServerTick, my_system.in_set(TickSet::Simulate))`); bevy's
/// `Startup` schedules run once before the first tick.
#[derive(ScheduleLabel, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerTick;

/// The phases of a tick, run in this order. Order gameplay against them:
/// `.in_set(TickSet::Simulate)`, or `.after(TickSet::Ingest).before(TickSet::Replicate)`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickSet {
    /// Drains the network's queues: joins spawn players, leaves despawn them, the latest
    /// input of each player lands in its [`crate::MoveIntent`], and player actions become
    /// [`crate::PlayerAction`] messages. Nothing else writes input-derived state.
    Ingest,
    /// Gameplay. Systems here see this tick's inputs and actions.
    Simulate,
    /// After gameplay, before replication: reactions to this tick's outcome (scores,
    /// despawns of what was hit). Anything changed after this set reaches clients one tick
    /// late.
    PostSimulate,
    /// Encodes every changed replicated entity once, lists entities by grid cell, and routes
    /// this tick's server events. Reads gameplay state, never writes it.
    Replicate,
    /// Cuts one frame per client (the entities within its interest radius) and publishes it for the
    /// network threads (no socket I/O here); hands changed players to persistence.
    Frames,
}
