//! Plain ECS data shared by the engine (`throng`) and gameplay (`systems`).
//!
//! # Layout
//! - [`spatial`]: where things are ([`Position`]) and the world they live in ([`WorldBounds`]).
//! - [`player`]: what a player asked for ([`MoveIntent`]) and gameplay tuning ([`MovementSettings`]).
//! - [`tick`]: the deterministic clock ([`TickClock`]) and the ordered phases of a tick ([`TickSet`]).
//! - [`gameplay`]: the [`Gameplay`] registration trait that gameplay modules add themselves through.
//!
//! Architecture invariant: nothing here knows about sockets, tokio or the wire format.
//! Components are not wire types; the engine translates at its boundary.
#![warn(missing_docs)]

pub mod gameplay;
pub mod player;
pub mod spatial;
pub mod tick;

pub use gameplay::Gameplay;
pub use player::{MoveIntent, MovementSettings, Player};
pub use spatial::{Position, WorldBounds};
pub use tick::{TickClock, TickSet};
