//! Snowball tag, the demo game: a player sends the `throw` action with a direction, a
//! snowball flies from them for a while, and the first player or NPC it touches (not its
//! thrower) is hit: the thrower scores a point (replicated and saved as `score`, so the
//! thrower always learns of it), and a `hit` event goes to every client that sees the
//! target: the target, and the thrower if it is within the interest radius of the target
//! (a snowball flies 100 units and hits within 6, so a long throw can land out of the
//! thrower's view). A few NPCs walk about so that an empty world is alive.
//!
//! Settings: `[game.snowball]` (see [`SnowballSettings`]).

use bevy_app::{App, Plugin, Startup};
use bevy_ecs::prelude::*;
use components::{
    GameApp, MoveIntent, NetId, Player, PlayerAction, Position, ServerEvents, ServerTick,
    SplitMix64, TickClock, TickSet, WorldBounds,
};
use serde::{Deserialize, Serialize};

use crate::movement::MovementSet;

/// Adds snowball tag.
pub struct SnowballPlugin;

/// `[game.snowball]`: every key is optional.
#[derive(Resource, Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnowballSettings {
    /// NPC walkers in the world.
    pub npcs: u32,
    /// Seed of the NPCs' spawn positions and walks.
    pub npc_seed: u64,
    /// Ticks between an NPC's changes of direction.
    pub npc_turn_ticks: u32,
    /// Units a snowball flies per tick.
    pub speed_per_tick: f32,
    /// Ticks a snowball flies before it melts (range = speed x ticks).
    pub flight_ticks: u32,
    /// A snowball hits what is within this distance.
    pub hit_radius: f32,
    /// Ticks a player must wait between two throws (throws in between are ignored).
    pub cooldown_ticks: u32,
}

impl Default for SnowballSettings {
    fn default() -> Self {
        Self {
            npcs: 5,
            npc_seed: 7,
            npc_turn_ticks: 40,
            speed_per_tick: 10.0,
            flight_ticks: 10,
            hit_radius: 6.0,
            cooldown_ticks: 10,
        }
    }
}

/// The `throw` action: the direction `(dir_x, dir_y) / 127` (normalised by the server).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throw {
    /// Direction, x component.
    pub dir_x: i8,
    /// Direction, y component.
    pub dir_y: i8,
}

/// The `hit` event: who hit whom, by wire id.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The thrower's wire id.
    pub thrower: u32,
    /// The target's wire id.
    pub target: u32,
}

/// A player's hits (`score` on the wire and in the database). Absent until the first hit.
#[derive(Component, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Score(pub u32);

/// Marks an NPC walker (`npc` on the wire: clients draw them apart).
#[derive(Component, Serialize, Clone, Copy, Debug, Default)]
pub struct Npc;

/// Marks a snowball (`snowball` on the wire).
#[derive(Component, Serialize, Clone, Copy, Debug, Default)]
pub struct Projectile;

/// A flying snowball's state (not replicated).
#[derive(Component, Clone, Copy, Debug)]
pub struct Flight {
    thrower: Entity,
    velocity: [f32; 2],
    ticks_left: u32,
}

/// When a player last threw.
#[derive(Component, Clone, Copy, Debug)]
pub struct LastThrow(u64);

/// An NPC's walk: ticks until its next turn.
#[derive(Component, Clone, Copy, Debug)]
pub struct Walk(u32);

/// The NPCs' random numbers: seeded (`npc_seed`), advanced only by the tick.
#[derive(Resource, Debug)]
pub struct NpcRng(SplitMix64);

impl NpcRng {
    fn next_unit(&mut self) -> f32 {
        self.0.next_unit()
    }

    fn direction(&mut self) -> MoveIntent {
        let angle = self.next_unit() * std::f32::consts::TAU;
        MoveIntent::from_direction(angle.cos(), angle.sin())
    }
}

impl Plugin for SnowballPlugin {
    fn build(&self, app: &mut App) {
        app.settings::<SnowballSettings>("snowball")
            .add_action::<Throw>("throw")
            .add_event::<Hit>("hit")
            .replicate::<Npc>("npc")
            .replicate::<Projectile>("snowball")
            .replicate::<Score>("score")
            .persist::<Score>("score")
            .init_resource::<HitBuckets>()
            .add_systems(Startup, spawn_npcs)
            .add_systems(
                ServerTick,
                (
                    turn_npcs.in_set(TickSet::Simulate).before(MovementSet),
                    (throw, fly)
                        .chain()
                        .in_set(TickSet::Simulate)
                        .after(MovementSet),
                    hit.in_set(TickSet::PostSimulate),
                ),
            );
        let seed = app
            .world()
            .get_resource::<SnowballSettings>()
            .map_or(0, |settings| settings.npc_seed);
        app.insert_resource(NpcRng(SplitMix64::new(seed)));
    }
}

fn spawn_npcs(
    mut commands: Commands,
    settings: Res<SnowballSettings>,
    bounds: Res<WorldBounds>,
    mut rng: ResMut<NpcRng>,
) {
    for _ in 0..settings.npcs {
        let position = Position::new(
            bounds.wrap(rng.next_unit() * bounds.size),
            bounds.wrap(rng.next_unit() * bounds.size),
        );
        let walk = Walk(1 + (rng.next_unit() * settings.npc_turn_ticks as f32) as u32);
        commands.spawn((Npc, position, rng.direction(), walk));
    }
}

/// NPCs pick a new random direction every `npc_turn_ticks`.
fn turn_npcs(
    mut npcs: Query<(&mut MoveIntent, &mut Walk), With<Npc>>,
    settings: Res<SnowballSettings>,
    mut rng: ResMut<NpcRng>,
) {
    for (mut intent, mut walk) in &mut npcs {
        walk.0 = walk.0.saturating_sub(1);
        if walk.0 == 0 {
            *intent = rng.direction();
            walk.0 = settings.npc_turn_ticks.max(1);
        }
    }
}

/// A throw spawns a snowball at the thrower, unless it threw within the cooldown.
fn throw(
    mut throws: MessageReader<PlayerAction<Throw>>,
    mut players: Query<(&Position, Option<&mut LastThrow>), With<Player>>,
    settings: Res<SnowballSettings>,
    clock: Res<TickClock>,
    mut commands: Commands,
) {
    for PlayerAction { player, action, .. } in throws.read() {
        let Ok((position, last)) = players.get_mut(*player) else {
            continue; // left since
        };
        let direction =
            MoveIntent::from_direction(f32::from(action.dir_x), f32::from(action.dir_y));
        if direction == MoveIntent::default() {
            continue;
        }
        match last {
            Some(last) if clock.tick < last.0 + u64::from(settings.cooldown_ticks) => continue,
            Some(mut last) => last.0 = clock.tick,
            None => {
                commands.entity(*player).insert(LastThrow(clock.tick));
            }
        }
        commands.spawn((
            Projectile,
            *position,
            Flight {
                thrower: *player,
                velocity: [
                    direction.x * settings.speed_per_tick,
                    direction.y * settings.speed_per_tick,
                ],
                ticks_left: settings.flight_ticks,
            },
        ));
    }
}

/// Snowballs fly straight (wrapping like walkers) and melt at the end of their flight.
fn fly(
    mut snowballs: Query<(Entity, &mut Position, &mut Flight), Without<MoveIntent>>,
    bounds: Res<WorldBounds>,
    mut commands: Commands,
) {
    for (entity, mut position, mut flight) in &mut snowballs {
        if flight.ticks_left == 0 {
            commands.entity(entity).despawn();
            continue;
        }
        flight.ticks_left -= 1;
        position.x = bounds.wrap(position.x + flight.velocity[0]);
        position.y = bounds.wrap(position.y + flight.velocity[1]);
    }
}

/// Targets (players and NPCs) by square bucket of `hit_radius`, rebuilt every tick in
/// memory kept from tick to tick.
#[derive(Resource, Default)]
struct HitBuckets {
    side: usize,
    bucket_size: f32,
    buckets: Vec<Vec<(Entity, Position)>>,
    filled: Vec<usize>,
}

impl HitBuckets {
    fn reset(&mut self, world_size: f32, bucket_size: f32) {
        for index in self.filled.drain(..) {
            self.buckets[index].clear();
        }
        let side = (world_size / bucket_size).ceil().max(1.0) as usize;
        if side != self.side {
            self.side = side;
            self.buckets = (0..side * side).map(|_| Vec::new()).collect();
        }
        self.bucket_size = bucket_size;
    }

    fn coordinate(&self, value: f32) -> usize {
        ((value / self.bucket_size) as usize).min(self.side - 1)
    }

    fn insert(&mut self, entity: Entity, position: Position) {
        let index = self.coordinate(position.y) * self.side + self.coordinate(position.x);
        if self.buckets[index].is_empty() {
            self.filled.push(index);
        }
        self.buckets[index].push((entity, position));
    }

    /// The closest target within `radius` of `at` that is not `except`.
    fn closest(&self, at: Position, radius: f32, except: Entity) -> Option<Entity> {
        let (bx, by) = (self.coordinate(at.x), self.coordinate(at.y));
        let mut best: Option<(f32, Entity)> = None;
        for y in by.saturating_sub(1)..=(by + 1).min(self.side - 1) {
            for x in bx.saturating_sub(1)..=(bx + 1).min(self.side - 1) {
                for &(entity, position) in &self.buckets[y * self.side + x] {
                    let (dx, dy) = (position.x - at.x, position.y - at.y);
                    let distance = dx * dx + dy * dy;
                    if entity != except
                        && distance <= radius * radius
                        && best.is_none_or(|(closest, _)| distance < closest)
                    {
                        best = Some((distance, entity));
                    }
                }
            }
        }
        best.map(|(_, entity)| entity)
    }
}

/// What a snowball can hit: players and NPCs.
type Targets = Or<(With<Player>, With<Npc>)>;

/// A snowball within `hit_radius` of a player or NPC (not its thrower) hits the closest:
/// the thrower scores, everyone who sees the target is told, the snowball is gone.
#[allow(clippy::too_many_arguments)]
fn hit(
    snowballs: Query<(Entity, &Position, &Flight)>,
    targets: Query<(Entity, &Position), Targets>,
    ids: Query<&NetId>,
    mut scores: Query<&mut Score>,
    mut buckets: ResMut<HitBuckets>,
    bounds: Res<WorldBounds>,
    settings: Res<SnowballSettings>,
    mut hits: ServerEvents<Hit>,
    mut commands: Commands,
) {
    if snowballs.is_empty() {
        return;
    }
    buckets.reset(bounds.size, settings.hit_radius.max(1.0));
    for (entity, position) in &targets {
        buckets.insert(entity, *position);
    }
    for (snowball, position, flight) in &snowballs {
        let Some(target) = buckets.closest(*position, settings.hit_radius, flight.thrower) else {
            continue;
        };
        commands.entity(snowball).despawn();
        match scores.get_mut(flight.thrower) {
            Ok(mut score) => score.0 += 1,
            Err(_) => {
                if let Ok(mut thrower) = commands.get_entity(flight.thrower) {
                    thrower.insert(Score(1));
                }
            }
        }
        if let (Ok(thrower), Ok(target_id)) = (ids.get(flight.thrower), ids.get(target)) {
            hits.to_viewers_of(
                target,
                Hit {
                    thrower: thrower.0,
                    target: target_id.0,
                },
            );
        }
    }
}
