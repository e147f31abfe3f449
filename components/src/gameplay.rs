//! How gameplay modules plug into the tick.

use bevy_ecs::prelude::*;
use bevy_ecs::system::ScheduleSystem;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a gameplay module may add to a server: systems (run in [`crate::TickSet::Simulate`])
/// and components that clients should see.
///
/// A module exposes one function `pub fn register(game: &mut impl Gameplay)`; the engine
/// implements this trait on its builder. Keeping it a trait here means gameplay never depends
/// on the engine, its sockets or its wire format.
pub trait Gameplay {
    /// Adds systems to the simulate phase of every tick.
    fn add_systems<M>(&mut self, systems: impl IntoScheduleConfigs<ScheduleSystem, M>)
    -> &mut Self;

    /// Makes component `T` visible to clients: its value is sent when an entity enters a
    /// client's view and again on every tick it changes. One line per component.
    fn replicate<T: Component + Serialize>(&mut self) -> &mut Self;

    /// Makes component `T` part of a player's saved state: written with the player's record
    /// when it changes (at most once per flush interval) and when the player leaves, and
    /// restored when they log in again. One line per component; `Position` always is.
    fn persist<T: Component + Serialize + DeserializeOwned>(&mut self) -> &mut Self;

    /// Gives access to the world at build time, to insert resources gameplay needs.
    fn world_mut(&mut self) -> &mut World;
}
