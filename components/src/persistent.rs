//! Persistent components: part of a player's saved state, declared with a stable name:
//! `app.persist::<Score>("score")`. The name, not the Rust type's, keys the saved rows, so a
//! renamed type keeps its players' data.

use bevy_ecs::prelude::*;
use bevy_ecs::system::ScheduleSystem;
use bevy_ecs::world::EntityRef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Player;

/// How to save and load one persistent component type.
#[derive(Clone)]
pub struct PersistKind {
    /// Stable name in the store.
    pub name: String,
    /// Encodes the entity's component, if it has one.
    pub save: fn(&EntityRef) -> Option<Vec<u8>>,
    /// Decodes and inserts the component; false if the bytes do not decode.
    pub load: fn(&mut EntityWorldMut, &[u8]) -> bool,
}

/// The registered persistent component types, by kind number.
#[derive(Resource, Default, Clone)]
pub struct PersistRegistry {
    /// By kind number.
    pub kinds: Vec<PersistKind>,
}

impl PersistRegistry {
    /// Registers `T` as persistent under `name`; returns its kind number.
    pub fn register<T: Component + Serialize + DeserializeOwned>(&mut self, name: &str) -> u16 {
        assert!(
            !self.kinds.iter().any(|kind| kind.name == name),
            "persistent component {name:?} registered twice"
        );
        self.kinds.push(PersistKind {
            name: name.to_owned(),
            save: save::<T>,
            load: load::<T>,
        });
        (self.kinds.len() - 1) as u16
    }

    /// The names, by kind number (what the store needs).
    pub fn names(&self) -> Vec<String> {
        self.kinds.iter().map(|kind| kind.name.clone()).collect()
    }
}

fn save<T: Component + Serialize>(entity: &EntityRef) -> Option<Vec<u8>> {
    postcard::to_allocvec(entity.get::<T>()?).ok()
}

fn load<T: Component + DeserializeOwned>(entity: &mut EntityWorldMut, bytes: &[u8]) -> bool {
    match postcard::from_bytes::<T>(bytes) {
        Ok(value) => {
            entity.insert(value);
            true
        }
        Err(_) => false,
    }
}

/// Players' persistent components that changed since the last save, encoded into one
/// buffer (no allocation per value). Filled once per save interval by the collect systems,
/// drained by the engine.
#[derive(Resource, Debug, Default)]
pub struct PersistChanges {
    /// (player, kind, start, end of its value in `bytes`).
    pub records: Vec<(Entity, u16, u32, u32)>,
    /// The values, postcard-encoded.
    pub bytes: Vec<u8>,
}

impl PersistChanges {
    /// Empties both buffers, keeping their memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
    }
}

/// The collect systems of every persistent kind; the engine runs them once per flush
/// interval, so `Changed` means "since the last save".
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CollectPersistent;

/// Players whose `T` changed since the system last ran.
type ChangedPlayers<'w, 's, T> = Query<'w, 's, (Entity, &'static T), (Changed<T>, With<Player>)>;

/// The system that collects the players whose `T` (kind `kind`) changed.
pub fn collect_system<T: Component + Serialize>(
    kind: u16,
) -> impl IntoScheduleConfigs<ScheduleSystem, ()> {
    (move |changed: ChangedPlayers<T>, mut out: ResMut<PersistChanges>| {
        let out = &mut *out;
        for (entity, value) in &changed {
            let start = out.bytes.len() as u32;
            let bytes = std::mem::take(&mut out.bytes);
            // Serializing a serde-derived value into a Vec cannot fail.
            out.bytes = postcard::to_extend(value, bytes).expect("encode a component");
            out.records
                .push((entity, kind, start, out.bytes.len() as u32));
        }
    })
    .in_set(CollectPersistent)
    .ambiguous_with(CollectPersistent)
}
