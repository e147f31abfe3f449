//! Replicated components: what clients see of an entity besides its position, declared with
//! a stable wire name: `app.replicate::<Score>("score")`.
//!
//! Each registered type gets a capture system that writes the values that changed this tick
//! (and the removals) into [`ComponentChanges`]; the engine encodes them once per tick into
//! the grid cell of the entity. Every entity with a `Position` is replicated, players or not.

use bevy_ecs::prelude::*;
use bevy_ecs::system::ScheduleSystem;
use bevy_ecs::world::EntityRef;
use serde::Serialize;

/// An entity's id on the wire, as clients know it (small, dense, reused a tick after its
/// entity is gone). Given by the engine to every entity with a `Position`; gameplay may put
/// it in events so that clients can tell which entity an event is about.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetId(pub u32);

/// Most replicated component kinds (kinds are bits of a `u64` mask).
pub const MAX_REPLICATED_KINDS: usize = 64;

/// The replicated component kinds' wire names; a kind's wire number is its index.
#[derive(Resource, Default, Clone)]
pub struct ReplicationRegistry {
    /// By wire number.
    pub names: Vec<String>,
    /// By wire number: the entity's value of the kind as JSON, if it has one (for people
    /// reading a world: a replay's dump, not the wire).
    pub describe: Vec<fn(&EntityRef) -> Option<serde_json::Value>>,
}

/// The entity's `T` as JSON.
pub fn describe<T: Component + Serialize>(entity: &EntityRef) -> Option<serde_json::Value> {
    serde_json::to_value(entity.get::<T>()?).ok()
}

/// One captured change of a replicated component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedChange {
    /// The entity's wire id.
    pub id: u32,
    /// Wire number of the component kind.
    pub kind: u16,
    /// The new value's range in [`ComponentChanges::bytes`]; `None`: the component was removed.
    pub value: Option<(u32, u32)>,
}

/// This tick's changed and removed replicated components, encoded; drained by the engine.
#[derive(Resource, Debug, Default)]
pub struct ComponentChanges {
    /// Changes, removals of a kind before its values.
    pub changes: Vec<CapturedChange>,
    /// The values, postcard-encoded.
    pub bytes: Vec<u8>,
}

impl ComponentChanges {
    /// The value bytes of a change (empty for a removal).
    pub fn value(&self, change: &CapturedChange) -> &[u8] {
        change.value.map_or(&[][..], |(start, end)| {
            &self.bytes[start as usize..end as usize]
        })
    }

    /// Empties both buffers, keeping their memory.
    pub fn clear(&mut self) {
        self.changes.clear();
        self.bytes.clear();
    }
}

/// The capture systems of every replicated kind; the engine runs them after wire ids are
/// given and before encoding.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureReplicated;

/// The system that captures kind `kind` (type `T`): removals, then changed values.
pub fn capture_system<T: Component + Serialize>(
    kind: u16,
) -> impl IntoScheduleConfigs<ScheduleSystem, ()> {
    (move |changed: Query<(&NetId, &T), Changed<T>>,
           mut removed: RemovedComponents<T>,
           ids: Query<&NetId>,
           mut out: ResMut<ComponentChanges>| {
        let out = &mut *out;
        for entity in removed.read() {
            // A despawned entity has no id any more: its removal is the entity's.
            if let Ok(id) = ids.get(entity) {
                out.changes.push(CapturedChange {
                    id: id.0,
                    kind,
                    value: None,
                });
            }
        }
        for (id, value) in &changed {
            let start = out.bytes.len() as u32;
            let bytes = std::mem::take(&mut out.bytes);
            // Serializing a serde-derived value into a Vec cannot fail.
            out.bytes = postcard::to_extend(value, bytes).expect("encode a component");
            out.changes.push(CapturedChange {
                id: id.0,
                kind,
                value: Some((start, out.bytes.len() as u32)),
            });
        }
    })
    .in_set(CaptureReplicated)
    // They share the output buffer, each writing only its own kind's records.
    .ambiguous_with(CaptureReplicated)
}
