//! Adding gameplay: a `Health` component that regenerates every tick, reaches clients and is
//! saved with the player, as one bevy plugin with its own settings (`[game.health]`).
//!
//! In the server proper this file would be `systems/src/health.rs`, added to
//! `systems::GamePlugins` with one line. Run it as a server with
//! `cargo run --release --example health_regen`; every client then sees each player's
//! `health` (its name in the Welcome schema).

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use clap::Parser;
use components::{GameApp, Player, ServerTick, TickSet};
use serde::{Deserialize, Serialize};
use throng::ServerHandle;
use throng::config::{Cli, Config};

/// Hit points, replicated to every client that sees the entity, and saved with the player.
#[derive(Component, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Current hit points.
    pub current: u16,
    /// The most it regenerates to.
    pub max: u16,
}

/// `[game.health]` in the server's TOML file; every key is optional.
#[derive(Resource, Deserialize, Clone, Copy, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Hit points a new player starts with.
    pub start: u16,
    /// The most a player regenerates to.
    pub max: u16,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            start: 10,
            max: 100,
        }
    }
}

/// New players start wounded (returning ones come back with their saved Health).
fn give_health(
    mut commands: Commands,
    newcomers: Query<Entity, (Added<Player>, Without<Health>)>,
    settings: Res<HealthSettings>,
) {
    for player in &newcomers {
        commands.entity(player).insert(Health {
            current: settings.start,
            max: settings.max,
        });
    }
}

/// One point per tick until full. Only entities whose Health changed are re-sent.
fn regenerate(mut healths: Query<&mut Health>) {
    healths.par_iter_mut().for_each(|mut health| {
        if health.current < health.max {
            health.current += 1;
        }
    });
}

/// The feature: its settings, its systems, the component clients see, and that it is part
/// of a player's saved state.
pub struct HealthPlugin;

impl Plugin for HealthPlugin {
    fn build(&self, app: &mut App) {
        app.settings::<HealthSettings>("health")
            .replicate::<Health>("health")
            .persist::<Health>("health")
            .add_systems(
                ServerTick,
                (give_health, regenerate).chain().in_set(TickSet::Simulate),
            );
    }
}

fn main() {
    let config = Config::from_cli(Cli::parse()).expect("valid settings");
    let server = ServerHandle::start_with(config, |app| {
        app.add_plugins((systems::GamePlugins, HealthPlugin));
    })
    .expect("server starts");
    println!("throng (with health) listening on {}", server.local_addr());
    server.run_until_signal();
}
