//! The gameplay API of throng: plain ECS data shared by the engine (`throng`) and gameplay
//! (`systems`), and the registration of what crosses the wire.
//!
//! A feature is a bevy `Plugin`: it adds systems to [`ServerTick`] ordered against
//! [`TickSet`], reads its settings with [`GameApp::settings`], and declares its player
//! actions, server events, replicated and persistent components with stable names
//! ([`GameApp`]).
//!
//! # Layout
//! - [`app`]: [`GameApp`], the registration methods on bevy's `App`.
//! - [`tick`]: the clock ([`TickClock`]), the tick schedule ([`ServerTick`]) and its phases ([`TickSet`]).
//! - [`spatial`]: where things are ([`Position`]) and the world they live in ([`WorldBounds`]).
//! - [`player`]: players, what they asked for ([`MoveIntent`]) and movement tuning.
//! - [`actions`]: player actions ([`PlayerAction`]).
//! - [`events`]: server events ([`ServerEvents`]).
//! - [`replicated`]: wire ids ([`NetId`]) and the capture of replicated components.
//! - [`persistent`]: the registry of persistent components.
//! - [`settings`]: `[game.NAME]` sections of the configuration.
//! - [`random`]: the seeded generator systems draw from ([`SplitMix64`]).
//! - [`parallel`]: the worker threads systems update players on in parallel ([`Workers`]).
//!
//! Architecture invariant: nothing here knows about sockets, tokio or message framing.
//! Components are not wire types: values are postcard-encoded here, framed by the engine.
#![warn(missing_docs, unreachable_pub)]

pub mod actions;
pub mod app;
pub mod events;
pub mod parallel;
pub mod persistent;
pub mod player;
pub mod random;
pub mod replicated;
pub mod settings;
pub mod spatial;
pub mod tick;

pub use actions::{ActionLimits, PlayerAction};
pub use app::GameApp;
pub use events::{EventTarget, ServerEvents};
pub use parallel::Workers;
pub use player::{MoveIntent, MovementSettings, Player, PlayerName};
pub use random::SplitMix64;
pub use replicated::NetId;
pub use spatial::{Position, WorldBounds};
pub use tick::{ServerTick, TickClock, TickSet};
