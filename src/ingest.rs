//! The ingest phase: drains the inbound queues into the world. Joins spawn players (marked
//! `Joined`; replication welcomes them), leaves mark theirs `Leaving` (despawned at the end
//! of the phase, after persistence saved them), the latest input of each player becomes its
//! [`MoveIntent`], and actions become [`components::PlayerAction`] messages in arrival
//! order. Never blocks: it takes what is queued now and leaves the rest.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use ahash::AHashMap;
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::actions::ActionRegistry;
use components::{
    MoveIntent, Player, PlayerName, Position, ServerTick, SplitMix64, TickClock, TickSet, Workers,
    WorldBounds,
};

use crate::bridge::{ConnectionId, Held, InboundReceiver, Join, Leave, Lifecycle, PlayerMessage};
use crate::config::Config;
use crate::persistence::store::SavedPlayer;
use crate::recording::capture::Capture;
use crate::replication::SharedStats;
use crate::replication::frames::{Connected, Viewer};
use crate::stats::Stats;

/// On a player spawned this tick: what its join brought (its saved state and the claim on its
/// name), for whoever restores players (persistence) to take during the Ingest phase.
#[derive(Component)]
pub struct Joined {
    /// The player's saved state.
    pub saved: SavedPlayer,
    /// The claim on the player's name (see [`Join::name_claim`]).
    pub name_claim: Option<Held>,
}

/// On a player whose connection ended: it is despawned at the end of this tick's Ingest
/// phase, after whoever saves players (persistence) has taken its final state.
#[derive(Component)]
pub struct Leaving;

/// Drains the network's queues at the start of every tick (joins, leaves, inputs, actions).
pub(crate) struct IngestPlugin {
    inbound: Mutex<Option<InboundReceiver>>,
    spawn_seed: u64,
}

impl IngestPlugin {
    /// Ingest from `inbound`, spawning players as `config` says.
    pub(crate) fn new(config: &Config, inbound: InboundReceiver) -> Self {
        Self {
            inbound: Mutex::new(Some(inbound)),
            spawn_seed: config.spawn_seed,
        }
    }
}

impl Plugin for IngestPlugin {
    fn build(&self, app: &mut App) {
        let inbound = self
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the ingest plugin is added once");
        app.insert_resource(Inbound(inbound))
            .insert_resource(SpawnRng(SplitMix64::new(self.spawn_seed)))
            .init_resource::<Connections>()
            .init_resource::<LatestInputs>()
            .init_resource::<ActionInbox>()
            .configure_sets(
                ServerTick,
                (
                    IngestStep::Drain,
                    IngestStep::Identify,
                    IngestStep::Lifecycle,
                    IngestStep::Apply,
                )
                    .chain()
                    .in_set(TickSet::Ingest),
            )
            .add_systems(
                ServerTick,
                (
                    ingest.in_set(IngestStep::Drain),
                    (despawn_leavers, apply_inputs)
                        .chain()
                        .in_set(IngestStep::Apply),
                ),
            );
    }
}

/// The steps of the Ingest phase.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IngestStep {
    /// Joins spawn players (marked [`Joined`]), leaves mark theirs [`Leaving`], inputs and
    /// actions are recorded.
    Drain,
    /// Players who joined get their wire ids (replication), so that the reactions that
    /// follow, gameplay and the Welcome can name them in the tick they join.
    Identify,
    /// Other parts react to the players who joined or are leaving (persistence restores the
    /// joined and saves the leaving).
    Lifecycle,
    /// Leaving players are despawned; inputs become intents.
    Apply,
}

/// This tick's actions, waiting to be delivered as messages (kept to reuse its memory).
#[derive(Resource, Default)]
struct ActionInbox(Vec<(Entity, crate::protocol::Action)>);

/// The tick's ends of the inbound queues.
#[derive(Resource)]
pub(crate) struct Inbound(pub InboundReceiver);

/// Which entity plays for which connection.
#[derive(Resource, Default)]
pub(crate) struct Connections(pub AHashMap<ConnectionId, Entity>);

/// Deterministic spawn positions, seeded from config (`spawn_seed`).
#[derive(Resource)]
pub(crate) struct SpawnRng(pub SplitMix64);

/// Drains joins and leaves, then records the latest input of each player and delivers
/// actions as messages, in arrival order.
pub(crate) fn ingest(world: &mut World) {
    let tick = world.resource::<TickClock>().tick;
    // What is drained is recorded as it is taken, when the simulation is recorded.
    let mut capture = world.remove_resource::<Capture>();
    let mut recording = capture
        .as_mut()
        .and_then(|capture| capture.begin(tick).then_some(capture));
    world.resource_scope(|world, inbound: Mut<Inbound>| {
        for event in inbound.0.lifecycle.try_iter() {
            match event {
                Lifecycle::Join(join) => {
                    if let Some(recording) = recording.as_mut() {
                        recording.join(&join);
                    }
                    spawn_player(world, *join)
                }
                Lifecycle::Leave(leave) => {
                    if let Some(recording) = recording.as_mut() {
                        recording.leave(&leave);
                    }
                    mark_leaving(world, leave)
                }
            }
        }
        let mut actions = std::mem::take(&mut world.resource_mut::<ActionInbox>().0);
        world.resource_scope(|world, mut latest: Mut<LatestInputs>| {
            let connections = &world.resource::<Connections>().0;
            let (mut applied, mut unknown) = (0, 0);
            for event in inbound.0.inputs.try_iter() {
                if let Some(recording) = recording.as_mut() {
                    recording.message(event.connection, &event.message);
                }
                let Some(&entity) = connections.get(&event.connection) else {
                    unknown += 1;
                    continue;
                };
                match event.message {
                    PlayerMessage::Input(input) => {
                        latest.record(entity, tick, input.seq, Some([input.dir_x, input.dir_y]));
                    }
                    PlayerMessage::Action(action) => {
                        latest.record(entity, tick, action.seq, None);
                        actions.push((entity, action));
                    }
                }
                applied += 1;
            }
            let stats = &world.resource::<SharedStats>().0;
            Stats::add(&stats.inputs_applied, applied);
            Stats::add(&stats.inputs_for_unknown_connection, unknown);
        });
        if !actions.is_empty() {
            deliver_actions(world, &mut actions);
        }
        world.resource_mut::<ActionInbox>().0 = actions;
    });
    if let Some(capture) = capture {
        world.insert_resource(capture);
    }
}

/// Writes each action as its kind's message (the network side checked that it decodes).
fn deliver_actions(world: &mut World, actions: &mut Vec<(Entity, crate::protocol::Action)>) {
    world.resource_scope(|world, registry: Mut<ActionRegistry>| {
        for (player, action) in actions.drain(..) {
            if let Some(kind) = registry.kinds.get(usize::from(action.kind)) {
                (kind.deliver)(world, player, action.seq, &action.bytes);
            }
        }
    });
}

/// Marks a leaving player [`Leaving`] (despawned at the end of this Ingest phase, once
/// others have reacted) and forgets its connection: inputs still queued for it are dropped.
/// `leave.slot` drops here: the connection stops counting against `max_players`.
fn mark_leaving(world: &mut World, leave: Leave) {
    if let Some(entity) = world
        .resource_mut::<Connections>()
        .0
        .remove(&leave.connection)
    {
        world.entity_mut(entity).insert(Leaving);
    }
}

/// Despawns the players marked [`Leaving`] this tick.
pub(crate) fn despawn_leavers(
    world: &mut World,
    leaving: &mut QueryState<Entity, With<Leaving>>,
    mut found: Local<Vec<Entity>>,
) {
    found.extend(leaving.iter(world));
    for entity in found.drain(..) {
        world.despawn(entity);
        let stats = &world.resource::<SharedStats>().0;
        stats.players_connected.fetch_sub(1, Ordering::Relaxed);
        Stats::bump(&stats.leaves);
    }
}

/// The latest input of each player this tick, by entity index (dense, and unique among live
/// entities; an entry is stamped with its tick, so one left by an earlier owner of the index
/// is stale): ingest writes it from the queue (one hash lookup per input), [`apply_inputs`]
/// reads it in parallel over players.
#[derive(Resource, Default)]
pub(crate) struct LatestInputs(Vec<LatestInput>);

/// What one player sent this tick.
#[derive(Clone, Copy, Default)]
struct LatestInput {
    /// The tick this entry is for (older entries are stale).
    tick: u64,
    /// Seq of the latest input or action (what `ack_seq` acknowledges).
    seq: u32,
    /// The latest movement direction, if an input (not only actions) arrived.
    direction: Option<[i8; 2]>,
}

impl LatestInputs {
    fn record(&mut self, player: Entity, tick: u64, seq: u32, direction: Option<[i8; 2]>) {
        let index = player.index_u32() as usize;
        if index >= self.0.len() {
            self.0.resize(index + 1, LatestInput::default());
        }
        let entry = &mut self.0[index];
        if entry.tick != tick {
            *entry = LatestInput {
                tick,
                seq,
                direction,
            };
        } else {
            entry.seq = seq;
            if direction.is_some() {
                entry.direction = direction;
            }
        }
    }

    /// The seq of `player`'s latest input or action drained this tick, if any.
    pub(crate) fn seq_this_tick(&self, player: Entity, tick: u64) -> Option<u32> {
        self.this_tick(player, tick).map(|latest| latest.seq)
    }

    fn this_tick(&self, player: Entity, tick: u64) -> Option<LatestInput> {
        self.0
            .get(player.index_u32() as usize)
            .filter(|entry| entry.tick == tick)
            .copied()
    }
}

/// Turns each player's latest input of this tick into its [`MoveIntent`] and acknowledges
/// the latest input or action.
pub(crate) fn apply_inputs(
    mut players: Query<(Entity, &mut MoveIntent, &mut Viewer)>,
    latest: Res<LatestInputs>,
    clock: Res<TickClock>,
) {
    let workers = Workers::get();
    let tick = clock.tick;
    workers.for_each_mut(&mut players, |(player, mut intent, mut viewer)| {
        let Some(latest) = latest.this_tick(player, tick) else {
            return;
        };
        if let Some([x, y]) = latest.direction {
            let next = MoveIntent::from_direction(f32::from(x), f32::from(y));
            if *intent != next {
                *intent = next;
            }
        }
        viewer.ack_seq = latest.seq;
    });
}

/// The saved position, wrapped into the world (which may have shrunk since).
fn saved_position(saved: &Option<[f32; 2]>, bounds: &WorldBounds) -> Option<Position> {
    saved
        .filter(|[x, y]| x.is_finite() && y.is_finite())
        .map(|[x, y]| Position::new(bounds.wrap(x), bounds.wrap(y)))
}

fn spawn_player(world: &mut World, join: Join) {
    let bounds = *world.resource::<WorldBounds>();
    let position = saved_position(&join.saved.position, &bounds).unwrap_or_else(|| {
        let rng = &mut world.resource_mut::<SpawnRng>().0;
        let (x, y) = (rng.next_unit(), rng.next_unit());
        Position::new(bounds.wrap(x * bounds.size), bounds.wrap(y * bounds.size))
    });
    let entity = world
        .spawn((
            Player,
            PlayerName(join.name),
            position,
            MoveIntent::default(),
            Viewer {
                ack_seq: join.ack_seq,
                ..Viewer::default()
            },
            Connected {
                outbox: join.outbox,
                connection: join.connection,
            },
            Joined {
                saved: join.saved,
                name_claim: join.name_claim,
            },
        ))
        .id();
    world
        .resource_mut::<Connections>()
        .0
        .insert(join.connection, entity);
    Stats::bump(&world.resource::<SharedStats>().0.players_connected);
}
