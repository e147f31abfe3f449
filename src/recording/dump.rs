//! A world's entities as JSON, for a person reading a replay stopped at a tick
//! (`throng replay FILE --until TICK`): every entity with a wire id, in wire-id order, with
//! its player name, its exact position, its replicated components' values (through the
//! registry's `describe`), and the type names of all its components.

use bevy_ecs::prelude::*;
use components::replicated::ReplicationRegistry;
use components::{NetId, PlayerName, Position, TickClock};
use serde_json::{Map, Value, json};

/// The entities of `world` as one JSON object: `{"tick": T, "entities": [...]}`.
pub fn entities(world: &mut World) -> Value {
    let mut found: Vec<(u32, Entity)> = world
        .query::<(Entity, &NetId)>()
        .iter(world)
        .map(|(entity, id)| (id.0, entity))
        .collect();
    found.sort_unstable();
    let registry = world.resource::<ReplicationRegistry>();
    let entities: Vec<Value> = found
        .into_iter()
        .map(|(id, entity)| {
            let entity_ref = world.entity(entity);
            let mut replicated = Map::new();
            for (name, describe) in registry.names.iter().zip(&registry.describe) {
                if let Some(value) = describe(&entity_ref) {
                    replicated.insert(name.clone(), value);
                }
            }
            let others: Vec<String> = world
                .inspect_entity(entity)
                .map(|components| {
                    components
                        .map(|(_, info)| info.name().to_string())
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "net_id": id,
                "entity": format!("{entity}"),
                "player": entity_ref.get::<PlayerName>().map(|name| name.0.clone()),
                "position": entity_ref.get::<Position>().map(|p| [p.x, p.y]),
                "replicated": replicated,
                "components": others,
            })
        })
        .collect();
    json!({
        "tick": world.resource::<TickClock>().tick,
        "entities": entities,
    })
}
