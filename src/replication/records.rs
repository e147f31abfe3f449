//! Byte encoders for the records inside a state frame. Each writes exactly what postcard
//! writes for the matching `protocol` type, so a frame assembled from these pieces decodes
//! as a plain [`crate::protocol::ServerMessage`].

use crate::protocol::{put_signed_varint, put_varint};

use super::table::Replica;

/// A run of encoded records and how many there are.
#[derive(Default, Debug)]
pub(crate) struct Section {
    /// Concatenated records.
    pub bytes: Vec<u8>,
    /// Number of records in `bytes`.
    pub count: u32,
}

impl Section {
    /// Empties the section, keeping its memory.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
    }

    /// The records and how many there are.
    #[inline]
    pub(crate) fn records(&self) -> (u32, &[u8]) {
        (self.count, &self.bytes)
    }

    /// Appends a removal record (an entity id).
    #[inline]
    pub(crate) fn push_removal(&mut self, id: u32) {
        put_varint(&mut self.bytes, u64::from(id));
        self.count += 1;
    }

    /// Appends a spawn record: id, absolute wire position, every present component of
    /// `replica` (`None`: the entity has none).
    pub(crate) fn push_spawn(&mut self, id: u32, wire: [u32; 2], replica: Option<&Replica>) {
        put_varint(&mut self.bytes, u64::from(id));
        put_varint(&mut self.bytes, u64::from(wire[0]));
        put_varint(&mut self.bytes, u64::from(wire[1]));
        match replica {
            Some(replica) => push_components(&mut self.bytes, replica, replica.present),
            // An empty `Vec<ComponentValue>`: its length, 0.
            None => put_varint(&mut self.bytes, 0),
        }
        self.count += 1;
    }
}

/// Writes an update record: id, position change since the last frame, changed components.
pub(crate) fn push_update(out: &mut Vec<u8>, id: u32, replica: &Replica) {
    put_varint(out, u64::from(id));
    put_signed_varint(
        out,
        i64::from(replica.wire[0]) - i64::from(replica.sent_wire[0]),
    );
    put_signed_varint(
        out,
        i64::from(replica.wire[1]) - i64::from(replica.sent_wire[1]),
    );
    push_component_changes(out, replica);
}

/// Writes `Vec<ComponentChange>`: a `Set` for each kind that changed, a `Removed` for each
/// kind that was removed.
fn push_component_changes(out: &mut Vec<u8>, replica: &Replica) {
    let set = replica.changed & replica.present;
    let removed = replica.removed;
    put_varint(out, u64::from(set.count_ones() + removed.count_ones()));
    let mut remaining = set;
    while remaining != 0 {
        let kind = remaining.trailing_zeros();
        remaining &= remaining - 1;
        let bytes = &replica.components[kind as usize];
        put_varint(out, COMPONENT_SET);
        put_varint(out, u64::from(kind));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut remaining = removed;
    while remaining != 0 {
        let kind = remaining.trailing_zeros();
        remaining &= remaining - 1;
        put_varint(out, COMPONENT_REMOVED);
        put_varint(out, u64::from(kind));
    }
}

/// Wire index of `ComponentChange::Set`.
const COMPONENT_SET: u64 = 0;
/// Wire index of `ComponentChange::Removed`.
const COMPONENT_REMOVED: u64 = 1;

/// Writes `Vec<ComponentValue>` for the kinds in `mask`.
fn push_components(out: &mut Vec<u8>, replica: &Replica, mask: u64) {
    put_varint(out, u64::from(mask.count_ones()));
    let mut remaining = mask;
    while remaining != 0 {
        let kind = remaining.trailing_zeros();
        remaining &= remaining - 1;
        let bytes = &replica.components[kind as usize];
        put_varint(out, u64::from(kind));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use bevy_ecs::entity::Entity;

    use super::*;
    use crate::replication::table::ReplicaTable;

    #[test]
    fn a_spawn_without_its_replica_is_the_spawn_of_a_replica_with_no_component() {
        let mut table = ReplicaTable::new(2);
        let id = table
            .register(Entity::from_raw_u32(7).unwrap(), [300, 70_000])
            .0;
        let (mut bare, mut read) = (Section::default(), Section::default());
        bare.push_spawn(id, [300, 70_000], None);
        read.push_spawn(id, [300, 70_000], Some(table.get(id)));
        assert_eq!((bare.count, &bare.bytes), (read.count, &read.bytes));
        assert_eq!(bare.bytes, [id as u8, 0xac, 0x02, 0xf0, 0xa2, 0x04, 0]);
    }
}
