//! The ingest phase: drains the inbound queues into the world. Joins spawn players (and get
//! their Welcome), leaves despawn them, and the latest input of each player becomes its
//! [`MoveIntent`]. Never blocks: it takes what is queued now and leaves the rest.

use std::sync::atomic::Ordering;

use ahash::AHashMap;
use bevy_ecs::prelude::*;
use components::{MoveIntent, Player, Position, WorldBounds};

use crate::inbound::{ConnectionId, InboundReceiver, Lifecycle};
use crate::protocol::{ServerMessage, Welcome, encode_frame, quantize};
use crate::replication::SharedStats;
use crate::replication::frames::{Client, Viewer};
use crate::replication::table::ReplicaTable;
use crate::stats::Stats;

/// The tick's ends of the inbound queues.
#[derive(Resource)]
pub struct Inbound(pub InboundReceiver);

/// Which entity plays for which connection.
#[derive(Resource, Default)]
pub struct Connections(pub AHashMap<ConnectionId, Entity>);

/// Session parameters sent to every joining client (with its own player id filled in).
#[derive(Resource)]
pub struct WelcomeTemplate(pub Welcome);

/// The player's chosen name.
#[derive(Component, Clone, Debug)]
pub struct PlayerName(pub String);

/// Deterministic spawn positions (splitmix64), seeded from config.
#[derive(Resource)]
pub struct SpawnRng(u64);

impl SpawnRng {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Drains joins and leaves, then inputs.
pub fn ingest(world: &mut World) {
    let (lifecycle, inputs) = {
        let inbound = &world.resource::<Inbound>().0;
        (inbound.lifecycle.clone(), inbound.inputs.clone())
    };
    for event in lifecycle.try_iter() {
        match event {
            Lifecycle::Join(join) => spawn_player(world, join),
            Lifecycle::Leave(leave) => {
                if let Some(entity) = world
                    .resource_mut::<Connections>()
                    .0
                    .remove(&leave.connection)
                {
                    world.despawn(entity);
                    world
                        .resource::<SharedStats>()
                        .0
                        .players_connected
                        .fetch_sub(1, Ordering::Relaxed);
                }
                // `leave.slot` drops here: the connection stops counting against max_players.
            }
        }
    }
    let stats = world.resource::<SharedStats>().0.clone();
    for event in inputs.try_iter() {
        let Some(&entity) = world.resource::<Connections>().0.get(&event.connection) else {
            Stats::bump(&stats.inputs_for_unknown_connection);
            continue;
        };
        let mut player = world.entity_mut(entity);
        let input = event.input;
        if let Some(mut intent) = player.get_mut::<MoveIntent>() {
            let next = MoveIntent::from_direction(f32::from(input.dir_x), f32::from(input.dir_y));
            if *intent != next {
                *intent = next;
            }
        }
        if let Some(mut viewer) = player.get_mut::<Viewer>() {
            viewer.ack_seq = input.seq;
        }
        Stats::bump(&stats.inputs_applied);
    }
}

fn spawn_player(world: &mut World, join: crate::inbound::Join) {
    let size = world.resource::<WorldBounds>().size;
    let bounds = *world.resource::<WorldBounds>();
    let mut rng = world.resource_mut::<SpawnRng>();
    let position = Position::new(
        bounds.wrap(rng.next_unit() * size),
        bounds.wrap(rng.next_unit() * size),
    );
    let entity = world
        .spawn((
            Player,
            PlayerName(join.name),
            position,
            MoveIntent::default(),
            Viewer::default(),
            Client {
                connection: join.connection,
                outbox: join.outbox,
            },
        ))
        .id();
    let id = world
        .resource_mut::<ReplicaTable>()
        .register(entity, [quantize(position.x), quantize(position.y)]);
    world.entity_mut(entity).insert(id);
    world
        .resource_mut::<Connections>()
        .0
        .insert(join.connection, entity);
    Stats::bump(&world.resource::<SharedStats>().0.players_connected);

    let mut welcome = world.resource::<WelcomeTemplate>().0.clone();
    welcome.player_id = id.0;
    let message = ServerMessage::Welcome(welcome);
    if let Some(mut client) = world.get_mut::<Client>(entity) {
        // A fresh outbox always has a free slot.
        client.outbox.publish_with(|buffer| {
            encode_frame(&message, buffer);
            true
        });
    }
}
