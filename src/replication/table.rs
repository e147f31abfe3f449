//! The replication table: for every replicated entity, its wire id and what its viewers were
//! last told. Dense by wire id, so the encoder walks a flat array instead of the ECS.

use ahash::AHashMap;
use bevy_ecs::prelude::*;

use super::grid::CellIndex;

/// An entity's id on the wire (defined with the gameplay API, so events can name entities).
/// Small and dense (reused after release), so it encodes in one or two varint bytes for up
/// to 16,384 live entities.
pub(crate) use components::NetId;

/// Marks a replica not yet placed in any cell.
pub(crate) const NO_CELL: CellIndex = CellIndex::MAX;

/// Replication state of one entity.
#[derive(Debug)]
pub(crate) struct Replica {
    /// Wire position as of this tick (captured from `Position`).
    pub wire: [u32; 2],
    /// Wire position the viewers hold (as of the previous tick's frames).
    pub sent_wire: [u32; 2],
    /// Cell the viewers believe the entity is in ([`NO_CELL`] until first placed).
    pub cell: CellIndex,
    /// Latest encoding of each replicated component kind (empty until present).
    pub components: Vec<Vec<u8>>,
    /// Bit k set: kind k is present on the entity.
    pub present: u64,
    /// Bit k set: kind k changed this tick.
    pub changed: u64,
    /// Bit k set: kind k was removed this tick (viewers had it).
    pub removed: u64,
    /// Bit k set: viewers were told of kind k by the previous tick's frames (what a removal
    /// may name).
    pub announced: u64,
    /// The entity was despawned; the slot is freed after this tick's frames.
    pub despawned: bool,
    /// The slot is in use.
    pub live: bool,
}

/// All replicas, indexed by [`NetId`].
#[derive(Resource, Default)]
pub(crate) struct ReplicaTable {
    replicas: Vec<Replica>,
    free_ids: Vec<u32>,
    released: Vec<u32>,
    by_entity: AHashMap<Entity, u32>,
    component_kinds: usize,
}

impl ReplicaTable {
    /// A table for entities with `component_kinds` replicated component kinds.
    pub(crate) fn new(component_kinds: usize) -> Self {
        Self {
            component_kinds,
            ..Default::default()
        }
    }

    /// Gives `entity` a wire id. Ids released in a tick are reused only from the next tick on,
    /// so one frame never names the same id for two entities.
    pub(crate) fn register(&mut self, entity: Entity, wire: [u32; 2]) -> NetId {
        let fresh = |components: Vec<Vec<u8>>| Replica {
            wire,
            sent_wire: wire,
            cell: NO_CELL,
            components,
            present: 0,
            changed: 0,
            removed: 0,
            announced: 0,
            despawned: false,
            live: true,
        };
        let id = match self.free_ids.pop() {
            Some(id) => {
                // The slot's component buffers are reused (no allocation for a spawn that
                // reuses an id: projectiles spawn and melt every tick).
                let slot = &mut self.replicas[id as usize];
                let mut components = std::mem::take(&mut slot.components);
                components.iter_mut().for_each(Vec::clear);
                *slot = fresh(components);
                id
            }
            None => {
                self.replicas
                    .push(fresh(vec![Vec::new(); self.component_kinds]));
                (self.replicas.len() - 1) as u32
            }
        };
        self.by_entity.insert(entity, id);
        NetId(id)
    }

    /// Marks the replica of a despawned entity; the encoder emits its removal.
    pub(crate) fn despawned(&mut self, entity: Entity) {
        if let Some(id) = self.by_entity.remove(&entity) {
            self.replicas[id as usize].despawned = true;
        }
    }

    /// Frees a despawned replica's id (effective from the next tick).
    pub(crate) fn release(&mut self, id: u32) {
        let replica = &mut self.replicas[id as usize];
        replica.live = false;
        replica.despawned = false;
        replica.cell = NO_CELL;
        self.released.push(id);
    }

    /// Makes ids released during the previous tick available again.
    pub(crate) fn recycle_released(&mut self) {
        self.free_ids.append(&mut self.released);
    }

    /// The replica with wire id `id`.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &Replica {
        &self.replicas[id as usize]
    }

    /// The replica with wire id `id`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u32) -> &mut Replica {
        &mut self.replicas[id as usize]
    }

    /// Number of slots (live or free); ids are below this.
    pub(crate) fn slots(&self) -> usize {
        self.replicas.len()
    }
}
