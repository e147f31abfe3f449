//! The tick's side of zones: players who are outside this zone's rectangle are handed off to
//! the zone that owns their position; every other entity stays inside the rectangle (it
//! wraps at the zone's edges, as the world wraps at its own).
//!
//! The handoff is decided from the world's state alone (a position), in the Ingest phase,
//! so the player is saved and despawned in the same tick it is found outside: the frames it
//! got last showed it just across the border, and its saved position is that point.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::{MoveIntent, Player, PlayerName, Position, ServerTick, TickSet};

use super::ZoneSetup;
use super::ticket::{Ticket, now_ms};
use crate::bridge::outbox::PendingTransfer;
use crate::ingest::{Connections, IngestStep, Joined, LatestInputs, Leaving};
use crate::persistence::handoff::{Account, SaveThenTransfer, restore_joined};
use crate::protocol::{ServerMessage, Transfer, frame_bytes};
use crate::replication::frames::{Connected, Viewer};

/// Adds the zone rules to a simulation.
pub(crate) struct ZonePlugin(pub ZoneSetup);

/// The zone rules, for the tick's systems.
#[derive(Resource)]
pub(crate) struct Zones(pub ZoneSetup);

/// Where entities are kept inside the zone: after gameplay moved them, before
/// `TickSet::PostSimulate` reacts to where they are.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeepInZone;

impl Plugin for ZonePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Zones(self.0.clone()))
            .configure_sets(
                ServerTick,
                KeepInZone
                    .after(TickSet::Simulate)
                    .before(TickSet::PostSimulate),
            )
            .add_systems(
                ServerTick,
                (
                    cross_borders
                        .in_set(IngestStep::Lifecycle)
                        .before(restore_joined),
                    keep_in_zone.in_set(KeepInZone),
                ),
            );
    }
}

/// The entities a zone keeps inside itself: what moved and is neither a player (handed off)
/// nor a ghost (another zone's).
type KeptInZone = (
    Without<Player>,
    Without<super::ghosts::Ghost>,
    Changed<Position>,
);

/// Only players cross borders. Other entities outside the zone:
/// - spawned there (gameplay that populates the whole world, like the demo's NPCs, spawns
///   everywhere on every zone): despawned, so each zone keeps its own share;
/// - walkers (a `MoveIntent`: NPCs) that walked out: back in at the opposite edge, as the
///   world wraps at its own edges;
/// - anything else that left (a snowball in flight): despawned at the border.
pub(crate) fn keep_in_zone(
    mut entities: Query<(Entity, Ref<Position>, Has<MoveIntent>), KeptInZone>,
    zones: Res<Zones>,
    mut commands: Commands,
) {
    let zone = zones.0.zone();
    for (entity, position, walker) in &mut entities {
        let point = [position.x, position.y];
        if zone.contains(point) {
            continue;
        }
        if walker && !position.is_added() {
            let [x, y] = zone.wrap(point);
            commands.entity(entity).insert(Position::new(x, y));
        } else {
            commands.entity(entity).despawn();
        }
    }
}

/// What `cross_borders` reads of a player.
type PlayerPlace = (
    Entity,
    &'static Position,
    &'static PlayerName,
    &'static Viewer,
    Option<&'static Account>,
    Option<&'static Joined>,
);

/// A player to hand off: (entity, destination zone, account, name, last acknowledged seq).
type Crossing = (Entity, usize, i64, String, u32);

/// Hands off every player outside this zone (see the module doc and `zones`' handoff
/// steps). A player who has just logged in here without a saved position (a new name)
/// is placed inside the zone instead; one with a saved position elsewhere is handed off in
/// the tick after its Welcome.
pub(crate) fn cross_borders(
    world: &mut World,
    players: &mut QueryState<PlayerPlace, (With<Player>, Without<Leaving>)>,
    mut crossing: Local<Vec<Crossing>>,
    mut newcomers: Local<Vec<Entity>>,
) {
    // Taken out of the world for the call (no clone: nothing is allocated per tick).
    world.resource_scope(|world, zones: Mut<Zones>| {
        let setup = &zones.0;
        let zone = setup.zone();
        for (entity, position, name, viewer, account, joined) in players.iter(world) {
            let point = [position.x, position.y];
            if zone.contains(point) {
                continue;
            }
            if let Some(joined) = joined {
                // A new name is placed inside this zone. A returning player whose saved
                // position is another zone's is welcomed here first (a session always
                // opens with a Welcome) and handed off in the next tick.
                if joined.saved.position.is_none() {
                    newcomers.push(entity);
                }
                continue;
            }
            let Some(Account(account)) = account.copied() else {
                continue; // not a stored player (a harness without a store)
            };
            // The world wraps, so every point of it is some zone's.
            if let Some(to) = setup.map.zone_at(point) {
                crossing.push((entity, to, account, name.0.clone(), viewer.ack_seq));
            }
        }
        for entity in newcomers.drain(..) {
            let mut position = world
                .get_mut::<Position>(entity)
                .expect("queried with a position");
            let [x, y] = zone.wrap([position.x, position.y]);
            *position = Position::new(x, y);
        }
        let tick = world.resource::<components::TickClock>().tick;
        for (entity, to, account, name, acked) in crossing.drain(..) {
            // Inputs drained this tick are not applied here: the ticket acknowledges the
            // latest seq, so the destination's frames account for them (the player stops
            // where it was saved; the client re-sends its intent there).
            let ack_seq = world
                .resource::<LatestInputs>()
                .seq_this_tick(entity, tick)
                .unwrap_or(acked);
            hand_off(world, setup, entity, to, account, name, ack_seq);
        }
    });
}

/// Signs `entity`'s ticket for zone `to`, gives its connection the Transfer to send once the
/// player is saved, and marks it leaving (saved and despawned in this Ingest phase).
fn hand_off(
    world: &mut World,
    setup: &ZoneSetup,
    entity: Entity,
    to: usize,
    account: i64,
    name: String,
    ack_seq: u32,
) {
    let destination = &setup.map.zones[to];
    let nonce = random_nonce();
    let ticket = setup.key.sign(&Ticket {
        to_zone: destination.name.clone(),
        from_zone: setup.zone().name.clone(),
        account,
        name,
        ack_seq,
        nonce,
        expires_ms: now_ms() + super::TICKET_TTL.as_millis() as u64,
    });
    let message = frame_bytes(&ServerMessage::Transfer(Transfer {
        zone: destination.name.clone(),
        address: destination.address.clone(),
        websocket: destination.websocket.clone(),
        ticket,
    }));
    let (committed_tx, committed) = tokio::sync::oneshot::channel();
    let mut player = world.entity_mut(entity);
    let connection = player.get::<Connected>().map(|connected| {
        connected.outbox.request_transfer(PendingTransfer {
            zone: destination.name.clone(),
            message,
            committed,
        });
        connected.connection
    });
    player.insert((
        Leaving,
        SaveThenTransfer {
            nonce,
            committed: Some(committed_tx),
        },
    ));
    // Inputs still queued for its connection are dropped from now on.
    if let Some(connection) = connection {
        world.resource_mut::<Connections>().0.remove(&connection);
    }
}

/// A ticket's single-use nonce: unpredictable, so a ticket cannot be guessed from another.
fn random_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    u64::from_le_bytes(bytes)
}
