//! The deterministic clock and the ordered phases of one tick.

use bevy_ecs::prelude::*;

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

/// The phases of a tick, run in this order. Every system belongs to exactly one.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickSet {
    /// Drains the network inbound queues: joins spawn players, leaves despawn them, the
    /// latest input of each player lands in its [`crate::MoveIntent`]. Nothing else writes
    /// input-derived state.
    Ingest,
    /// Gameplay. Systems here see this tick's inputs and must finish all state changes that
    /// clients should see this tick: anything changed after this set reaches clients one
    /// tick late.
    Simulate,
    /// Encodes every changed replicated entity once into its grid cell's buffers and tracks
    /// which cells each client sees. Reads gameplay state, never writes it.
    Replicate,
    /// Assembles one frame per client from the cell buffers and hands it to the client's
    /// connection task. Never performs socket I/O itself.
    Flush,
}
