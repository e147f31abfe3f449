//! Gameplay systems, one module per feature.
//!
//! Adding a feature: write `src/<feature>.rs` with `pub fn register(game: &mut impl Gameplay)`,
//! then add one line to [`register_all`] (and its `mod` line).
//!
//! Architecture invariant: systems are deterministic. Time comes from
//! [`components::TickClock`], inputs from components the engine fills in; no system sees a
//! socket, a clock or the wire format.
#![warn(missing_docs)]

use components::Gameplay;

pub mod movement;

/// Registers every gameplay feature of the standard server.
pub fn register_all(game: &mut impl Gameplay) {
    movement::register(game);
}
