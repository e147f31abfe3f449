//! Gameplay: one bevy plugin per feature, and [`GamePlugins`], the demo game the server
//! runs by default (movement and snowball tag).
//!
//! Adding a feature: write `src/<feature>.rs` with a `Plugin` that adds its systems to
//! [`components::ServerTick`] (ordered against [`components::TickSet`]) and registers what
//! crosses the wire ([`components::GameApp`]), then add it to [`GamePlugins`].
//!
//! Architecture invariant: systems are deterministic. Time comes from
//! [`components::TickClock`], randomness from seeded resources, inputs from components and
//! messages the engine fills in; no system sees a socket, a clock or the wire format.
#![warn(missing_docs, unreachable_pub)]

use bevy_app::{App, Plugin};

pub mod movement;
pub mod snowball;

/// The standard game: walking, and snowball tag with a few NPC walkers.
pub struct GamePlugins;

impl Plugin for GamePlugins {
    fn build(&self, app: &mut App) {
        // Snowball first: its `hit` event keeps kind 0 (the examples of docs/PROTOCOL.md).
        app.add_plugins((snowball::SnowballPlugin, movement::MovementPlugin));
    }
}
