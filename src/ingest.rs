//! The ingest phase: drains the inbound queues into the world. Joins spawn players (and get
//! their Welcome), leaves despawn them, and the latest input of each player becomes its
//! [`MoveIntent`]. Never blocks: it takes what is queued now and leaves the rest.

use std::sync::atomic::Ordering;

use ahash::AHashMap;
use bevy_ecs::prelude::*;
use components::{MoveIntent, Player, Position, TickClock, WorldBounds};

use crate::inbound::{ConnectionId, InboundReceiver, Leave, Lifecycle};
use crate::persistence::handoff::{self, PersistOutbox, PersistedComponents};
use crate::protocol::{CloseReason, Input, ServerMessage, Welcome, encode_frame, quantize};
use crate::replication::SharedStats;
use crate::replication::frames::{Client, Viewer};
use crate::replication::table::{NetId, ReplicaTable};
use crate::stats::Stats;

/// The tick's ends of the inbound queues.
#[derive(Resource)]
pub struct Inbound(pub InboundReceiver);

/// Which entity (and wire id) plays for which connection.
#[derive(Resource, Default)]
pub struct Connections(pub AHashMap<ConnectionId, (Entity, NetId)>);

/// Session parameters sent to every joining client (with its own player id filled in).
#[derive(Resource)]
pub struct WelcomeTemplate(pub Welcome);

/// Set once the server is shutting down: every client has been asked to close, and clients
/// that join from now on are closed at once.
#[derive(Resource, Default)]
pub struct Draining(pub bool);

/// Asks every client to close with `reason` and stops sending them frames (graceful
/// shutdown). Runs on the tick thread, between ticks.
pub fn close_all_clients(world: &mut World, reason: CloseReason) {
    world.insert_resource(Draining(true));
    let mut clients = world.query::<(&Client, &mut Viewer)>();
    for (client, mut viewer) in clients.iter_mut(world) {
        client.outbox.request_close(reason);
        viewer.closing = true;
    }
}

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

/// Drains joins and leaves, then records the latest input of each player.
pub fn ingest(world: &mut World) {
    world.resource_scope(|world, inbound: Mut<Inbound>| {
        for event in inbound.0.lifecycle.try_iter() {
            match event {
                Lifecycle::Join(join) => spawn_player(world, join),
                Lifecycle::Leave(leave) => despawn_player(world, leave),
            }
        }
        // Leavers' final records go at once, not at the next interval.
        let mut outbox = world.resource_mut::<PersistOutbox>();
        if outbox.has_finals() {
            outbox.hand_off();
        }
        let tick = world.resource::<TickClock>().tick;
        world.resource_scope(|world, mut latest: Mut<LatestInputs>| {
            let connections = &world.resource::<Connections>().0;
            let (mut applied, mut unknown) = (0, 0);
            for event in inbound.0.inputs.try_iter() {
                let Some(&(_, id)) = connections.get(&event.connection) else {
                    unknown += 1;
                    continue;
                };
                latest.record(id, tick, event.input);
                applied += 1;
            }
            let stats = &world.resource::<SharedStats>().0;
            Stats::add(&stats.inputs_applied, applied);
            Stats::add(&stats.inputs_for_unknown_connection, unknown);
        });
    });
}

/// Despawns a leaving player, after queueing its final record (with its name, released
/// once that record is saved). `leave.slot` drops here: the connection stops counting
/// against `max_players`.
fn despawn_player(world: &mut World, leave: Leave) {
    let Leave {
        connection, name, ..
    } = leave;
    if let Some((entity, _)) = world.resource_mut::<Connections>().0.remove(&connection) {
        let record = handoff::full_record(world, entity);
        if let Some(record) = record {
            world
                .resource_mut::<PersistOutbox>()
                .push_final(record, name);
        }
        world.despawn(entity);
        let stats = &world.resource::<SharedStats>().0;
        stats.players_connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The latest input of each player this tick, by wire id: ingest writes it from the queue
/// (one hash lookup per input), [`apply_inputs`] reads it in parallel over players.
#[derive(Resource, Default)]
pub struct LatestInputs(Vec<(u64, Input)>);

impl LatestInputs {
    fn record(&mut self, id: NetId, tick: u64, input: Input) {
        let index = id.0 as usize;
        if index >= self.0.len() {
            self.0.resize(
                index + 1,
                (
                    0,
                    Input {
                        seq: 0,
                        dir_x: 0,
                        dir_y: 0,
                    },
                ),
            );
        }
        self.0[index] = (tick, input);
    }

    fn this_tick(&self, id: NetId, tick: u64) -> Option<Input> {
        self.0
            .get(id.0 as usize)
            .filter(|(stamp, _)| *stamp == tick)
            .map(|(_, input)| *input)
    }
}

/// Turns each player's latest input of this tick into its [`MoveIntent`] and acknowledges it.
pub fn apply_inputs(
    mut players: Query<(&NetId, &mut MoveIntent, &mut Viewer)>,
    latest: Res<LatestInputs>,
    clock: Res<TickClock>,
) {
    let tick = clock.tick;
    players
        .par_iter_mut()
        .for_each(|(id, mut intent, mut viewer)| {
            let Some(input) = latest.this_tick(*id, tick) else {
                return;
            };
            let next = MoveIntent::from_direction(f32::from(input.dir_x), f32::from(input.dir_y));
            if *intent != next {
                *intent = next;
            }
            viewer.ack_seq = input.seq;
        });
}

fn spawn_player(world: &mut World, join: crate::inbound::Join) {
    let bounds = *world.resource::<WorldBounds>();
    let position = handoff::saved_position(&join.saved, &bounds).unwrap_or_else(|| {
        let mut rng = world.resource_mut::<SpawnRng>();
        let (x, y) = (rng.next_unit(), rng.next_unit());
        Position::new(bounds.wrap(x * bounds.size), bounds.wrap(y * bounds.size))
    });
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
    world.resource_scope(|world, kinds: Mut<PersistedComponents>| {
        handoff::restore(&mut world.entity_mut(entity), &join.saved, &kinds);
    });
    let id = world
        .resource_mut::<ReplicaTable>()
        .register(entity, [quantize(position.x), quantize(position.y)]);
    world.entity_mut(entity).insert(id);
    world
        .resource_mut::<Connections>()
        .0
        .insert(join.connection, (entity, id));
    Stats::bump(&world.resource::<SharedStats>().0.players_connected);

    let mut welcome = world.resource::<WelcomeTemplate>().0.clone();
    welcome.player_id = id.0;
    let message = ServerMessage::Welcome(welcome);
    let draining = world.get_resource::<Draining>().is_some_and(|d| d.0);
    let mut player = world.entity_mut(entity);
    if let Some(mut client) = player.get_mut::<Client>() {
        // A fresh outbox always has a free slot.
        client.outbox.publish_with(|slot| {
            encode_frame(&message, &mut slot.head);
            true
        });
        client.outbox.wake();
        if draining {
            client.outbox.request_close(CloseReason::Shutdown);
        }
    }
    if draining && let Some(mut viewer) = player.get_mut::<Viewer>() {
        viewer.closing = true;
    }
}
