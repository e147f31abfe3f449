//! What players ask for, and the tuning that turns requests into motion.

use bevy_ecs::prelude::*;
use serde::Deserialize;

/// Marks an entity controlled by a connected client.
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct Player;

/// The name a player logged in with (as it typed it; names are unique regardless of case).
#[derive(Component, Clone, Debug, PartialEq, Eq)]
pub struct PlayerName(pub String);

/// The direction a player most recently asked to move in: a unit vector, or zero to stand.
/// Written by the engine's ingest phase from the latest input; read by gameplay.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq)]
pub struct MoveIntent {
    /// Unit direction, x component (0 when standing).
    pub x: f32,
    /// Unit direction, y component (0 when standing).
    pub y: f32,
}

impl MoveIntent {
    /// Normalises a raw direction; a zero (or non-finite) vector means "stand still".
    pub fn from_direction(x: f32, y: f32) -> Self {
        let length = (x * x + y * y).sqrt();
        if length.is_finite() && length > f32::EPSILON {
            Self {
                x: x / length,
                y: y / length,
            }
        } else {
            Self::default()
        }
    }
}

/// Movement tuning (`[game.movement]` in the configuration), a resource so that tests and
/// configs can change it without code.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MovementSettings {
    /// Units a moving player travels per tick.
    pub speed_per_tick: f32,
}

impl Default for MovementSettings {
    fn default() -> Self {
        Self {
            speed_per_tick: 5.0,
        }
    }
}
