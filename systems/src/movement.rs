//! Movement: every entity with a [`MoveIntent`] walks at a fixed speed in its direction and
//! wraps around the world's edges (leaving at one edge re-enters at the opposite one).
//! Players' intents come from their inputs; NPCs' from gameplay. Each player is told its
//! speed when it joins (the `movement` event), so a client can predict its own walking.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::{
    GameApp, MoveIntent, MovementSettings, Player, Position, ServerEvents, ServerTick, TickSet,
    Workers, WorldBounds,
};
use serde::{Deserialize, Serialize};

/// Adds movement; tuned by `[game.movement]` (`speed_per_tick`, default 5).
pub struct MovementPlugin;

/// The movement system, for ordering: systems that set intents run before it, systems
/// that react to where things are after it.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovementSet;

/// The `movement` event, sent to each player in the tick it joins: how far it walks per
/// tick along its normalised input direction (a client predicting its own movement needs
/// exactly the server's rule).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct MovementInfo {
    /// Units per tick.
    pub speed_per_tick: f32,
}

impl Plugin for MovementPlugin {
    fn build(&self, app: &mut App) {
        app.settings::<MovementSettings>("movement")
            .add_event::<MovementInfo>("movement")
            .add_systems(
                ServerTick,
                (apply_movement.in_set(MovementSet), tell_joined_players).in_set(TickSet::Simulate),
            );
    }
}

/// Tells players who joined this tick how fast they walk.
fn tell_joined_players(
    joined: Query<Entity, Added<Player>>,
    settings: Res<MovementSettings>,
    mut events: ServerEvents<MovementInfo>,
) {
    for player in &joined {
        events.to_player(
            player,
            MovementInfo {
                speed_per_tick: settings.speed_per_tick,
            },
        );
    }
}

/// Moves every entity with an intent by `speed_per_tick` along it, in parallel (on the
/// simulation's [`Workers`], which allocate nothing, unlike bevy's `par_iter_mut`).
pub fn apply_movement(
    mut movers: Query<(&mut Position, &MoveIntent)>,
    bounds: Res<WorldBounds>,
    settings: Res<MovementSettings>,
) {
    let workers = Workers::get();
    let speed = settings.speed_per_tick;
    let bounds = *bounds;
    workers.for_each_mut(&mut movers, |(mut position, intent)| {
        if intent.x == 0.0 && intent.y == 0.0 {
            return; // standing still must not mark the position changed
        }
        position.x = bounds.wrap(position.x + intent.x * speed);
        position.y = bounds.wrap(position.y + intent.y * speed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world_with_mover(position: Position, intent: MoveIntent) -> (World, Entity) {
        let mut world = World::new();
        world.insert_resource(WorldBounds { size: 100.0 });
        world.insert_resource(MovementSettings::default());
        let entity = world.spawn((position, intent)).id();
        (world, entity)
    }

    fn run_movement(world: &mut World) {
        let mut schedule = Schedule::default();
        schedule.add_systems(apply_movement);
        schedule.run(world);
    }

    #[test]
    fn moves_five_units_along_the_intent() {
        let (mut world, mover) = world_with_mover(
            Position::new(10.0, 10.0),
            MoveIntent::from_direction(3.0, 4.0),
        );
        run_movement(&mut world);
        let position = world.get::<Position>(mover).unwrap();
        assert!((position.x - 13.0).abs() < 1e-4 && (position.y - 14.0).abs() < 1e-4);
    }

    #[test]
    fn crossing_an_edge_re_enters_at_the_opposite_edge() {
        let (mut world, mover) = world_with_mover(
            Position::new(98.0, 2.0),
            MoveIntent::from_direction(1.0, -1.0),
        );
        run_movement(&mut world);
        let position = world.get::<Position>(mover).unwrap();
        let step = 5.0 / 2f32.sqrt();
        assert!(
            (position.x - (98.0 + step - 100.0)).abs() < 1e-4,
            "{position:?}"
        );
        assert!(
            (position.y - (2.0 - step + 100.0)).abs() < 1e-4,
            "{position:?}"
        );
    }

    #[test]
    fn standing_still_leaves_the_position_unchanged() {
        let (mut world, mover) = world_with_mover(Position::new(50.0, 50.0), MoveIntent::default());
        run_movement(&mut world);
        assert_eq!(
            *world.get::<Position>(mover).unwrap(),
            Position::new(50.0, 50.0)
        );
    }
}
