//! Adding gameplay: a `Health` component that regenerates every tick and reaches clients.
//!
//! In the server proper this file would be `systems/src/health.rs`, registered with one line
//! (`health::register(game);`) in `systems::register_all`. Run it as a server with
//! `cargo run --example health_regen`; every client then sees each player's Health.

use bevy_ecs::prelude::*;
use clap::Parser;
use components::{Gameplay, Player};
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

/// New players start wounded (returning ones come back with their saved Health).
fn give_health(mut commands: Commands, newcomers: Query<Entity, (Added<Player>, Without<Health>)>) {
    for player in &newcomers {
        commands.entity(player).insert(Health {
            current: 10,
            max: 100,
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

/// The feature's one entry point: its systems, the component clients should see, and
/// that it is part of a player's saved state.
pub fn register(game: &mut impl Gameplay) {
    game.add_systems((give_health, regenerate).chain());
    game.replicate::<Health>();
    game.persist::<Health>();
}

fn main() {
    let config = Config::from_cli(Cli::parse()).expect("valid settings");
    let server = ServerHandle::start_with(config, |game| {
        systems::register_all(game);
        register(game);
    })
    .expect("server starts");
    println!("throng (with health) listening on {}", server.local_addr());
    server.run_until_signal();
}
