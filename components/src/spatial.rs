//! Positions in the plane and the bounds of the world.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// Where an entity is, in world units. Every entity with a `Position` is replicated to the
/// clients that can see it.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Horizontal coordinate, `0 <= x < WorldBounds::size`.
    pub x: f32,
    /// Vertical coordinate, `0 <= y < WorldBounds::size`.
    pub y: f32,
}

impl Position {
    /// A position at `(x, y)`.
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// The square world `[0, size) x [0, size)`.
#[derive(Resource, Clone, Copy, Debug, PartialEq)]
pub struct WorldBounds {
    /// Side of the square world in units.
    pub size: f32,
}

impl WorldBounds {
    /// Wraps a coordinate into `[0, size)`: leaving one edge re-enters at the opposite one.
    pub fn wrap(&self, coordinate: f32) -> f32 {
        let wrapped = coordinate.rem_euclid(self.size);
        // rem_euclid can round up to exactly `size` for tiny negative inputs.
        if wrapped >= self.size { 0.0 } else { wrapped }
    }
}
