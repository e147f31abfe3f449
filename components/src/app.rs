//! What a gameplay plugin calls on the bevy `App`: [`GameApp`].
//!
//! ```ignore
//! impl Plugin for SnowballPlugin {
//!     fn build(&self, app: &mut App) {
//!         app.settings::<SnowballSettings>("snowball")   // [game.snowball] in the TOML file
//!             .add_action::<Throw>("throw")              // clients send it
//!             .add_event::<Hit>("hit")                   // clients receive it
//!             .replicate::<Score>("score")               // clients see it
//!             .persist::<Score>("score")                 // saved with the player
//!             .add_systems(ServerTick, throw.in_set(TickSet::Simulate));
//!     }
//! }
//! ```

use bevy_app::App;
use bevy_ecs::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::actions::{ActionLimits, ActionRegistry, PlayerAction};
use crate::events::{EventRegistry, OutgoingEvent};
use crate::persistent::{PersistRegistry, collect_system};
use crate::replicated::{MAX_REPLICATED_KINDS, ReplicationRegistry, capture_system, describe};
use crate::settings::GameSettings;
use crate::tick::ServerTick;

/// Registration of the game's wire-visible parts, each under a stable name.
pub trait GameApp {
    /// Declares a player action clients may send, with default limits
    /// ([`ActionLimits::default`]). Systems read it as [`PlayerAction<A>`] messages.
    fn add_action<A: DeserializeOwned + Send + Sync + 'static>(&mut self, name: &str) -> &mut Self;

    /// Like [`GameApp::add_action`], with its own size and rate limits.
    fn add_action_with_limits<A: DeserializeOwned + Send + Sync + 'static>(
        &mut self,
        name: &str,
        limits: ActionLimits,
    ) -> &mut Self;

    /// Declares a server event; systems send it with [`crate::ServerEvents<E>`].
    fn add_event<E: Serialize + Send + Sync + 'static>(&mut self, name: &str) -> &mut Self;

    /// Makes component `T` visible to clients under `name`: its value is sent when an entity
    /// enters a client's view, again on every tick it changes, and its removal is sent too.
    fn replicate<T: Component + Serialize>(&mut self, name: &str) -> &mut Self;

    /// Makes component `T` part of a player's saved state under `name`: written when it
    /// changes (at most once per save interval) and when the player leaves, restored at login.
    fn persist<T: Component + Serialize + DeserializeOwned>(&mut self, name: &str) -> &mut Self;

    /// Reads the `[game.SECTION]` table of the configuration into resource `S`. A missing
    /// section reads as empty (fields with serde defaults take them); a section that does not
    /// read, or one that no plugin reads, stops the server at startup with the reason.
    fn settings<S: Resource + DeserializeOwned>(&mut self, section: &str) -> &mut Self;
}

impl GameApp for App {
    fn add_action<A: DeserializeOwned + Send + Sync + 'static>(&mut self, name: &str) -> &mut Self {
        self.add_action_with_limits::<A>(name, ActionLimits::default())
    }

    fn add_action_with_limits<A: DeserializeOwned + Send + Sync + 'static>(
        &mut self,
        name: &str,
        limits: ActionLimits,
    ) -> &mut Self {
        self.world_mut()
            .get_resource_or_init::<ActionRegistry>()
            .register::<A>(name, limits);
        self.add_message::<PlayerAction<A>>()
    }

    fn add_event<E: Serialize + Send + Sync + 'static>(&mut self, name: &str) -> &mut Self {
        self.world_mut()
            .get_resource_or_init::<EventRegistry>()
            .register::<E>(name);
        self.add_message::<OutgoingEvent<E>>()
    }

    fn replicate<T: Component + Serialize>(&mut self, name: &str) -> &mut Self {
        let mut registry = self
            .world_mut()
            .get_resource_or_init::<ReplicationRegistry>();
        assert!(
            !registry.names.iter().any(|known| known == name),
            "replicated component {name:?} registered twice"
        );
        assert!(
            registry.names.len() < MAX_REPLICATED_KINDS,
            "at most {MAX_REPLICATED_KINDS} replicated components"
        );
        registry.names.push(name.to_owned());
        registry.describe.push(describe::<T>);
        let kind = (registry.names.len() - 1) as u16;
        self.add_systems(ServerTick, capture_system::<T>(kind))
    }

    fn persist<T: Component + Serialize + DeserializeOwned>(&mut self, name: &str) -> &mut Self {
        let kind = self
            .world_mut()
            .get_resource_or_init::<PersistRegistry>()
            .register::<T>(name);
        self.add_systems(ServerTick, collect_system::<T>(kind))
    }

    fn settings<S: Resource + DeserializeOwned>(&mut self, section: &str) -> &mut Self {
        let read = self
            .world_mut()
            .get_resource_or_init::<GameSettings>()
            .read::<S>(section);
        if let Some(settings) = read {
            self.insert_resource(settings);
        }
        self
    }
}
