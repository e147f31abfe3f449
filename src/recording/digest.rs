//! The state digest: a compact fingerprint of the replicated state at the end of a tick,
//! recorded every `record_digest_every` ticks and recomputed by the replay. Per entity, so a
//! replay that diverges can name the entity and the component, not only the tick.
//!
//! ```text
//! digest := entity*                      (ascending wire id)
//! entity := id (varint) | kinds (varint: bit k = replicated kind k present)
//!           | crc32 of the position's f32 bits (u32 LE)
//!           | crc32 of each present kind's postcard value (u32 LE, ascending k)
//! ```
//!
//! The position is hashed bit-exact (the f32s, not the rounded wire position): a replay that
//! drifts by one ulp is a divergence.

use bevy_ecs::prelude::*;
use components::{NetId, Position};

use crate::protocol::{put_varint, take_varint};
use crate::replication::table::ReplicaTable;

/// What computing a digest reuses from one digest to the next.
pub(crate) struct DigestState {
    positions: QueryState<(&'static NetId, &'static Position)>,
    /// Position bits by wire id (`None`: no positioned entity has that id).
    by_id: Vec<Option<[u32; 2]>>,
}

impl DigestState {
    /// Ready to digest `world`.
    pub(crate) fn new(world: &mut World) -> Self {
        Self {
            positions: world.query(),
            by_id: Vec::new(),
        }
    }

    /// Appends the digest of `world`'s replicated state to `out`.
    pub(crate) fn write(&mut self, world: &World, out: &mut Vec<u8>) {
        let table = world.resource::<ReplicaTable>();
        self.by_id.clear();
        self.by_id.resize(table.slots(), None);
        for (id, position) in self.positions.iter(world) {
            if let Some(slot) = self.by_id.get_mut(id.0 as usize) {
                *slot = Some([position.x.to_bits(), position.y.to_bits()]);
            }
        }
        for (id, position) in self.by_id.iter().enumerate() {
            let Some([x, y]) = *position else { continue };
            let replica = table.get(id as u32);
            if !replica.live {
                continue;
            }
            put_varint(out, id as u64);
            put_varint(out, replica.present);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&x.to_le_bytes());
            crc.update(&y.to_le_bytes());
            out.extend_from_slice(&crc.finalize().to_le_bytes());
            for kind in kinds(replica.present) {
                let value = crc32fast::hash(&replica.components[kind as usize]);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
}

/// The kinds whose bits are set in `mask`, ascending.
fn kinds(mask: u64) -> impl Iterator<Item = u16> {
    (0..64u16).filter(move |k| mask & (1 << k) != 0)
}

/// One entity's part of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityDigest {
    id: u32,
    present: u64,
    position: u32,
    components: Vec<(u16, u32)>,
}

/// Where two digests first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Difference {
    /// The digest itself does not read (damage the checksum missed, or a bug).
    Unreadable,
    /// The recording has an entity with this wire id that the replay does not.
    Missing(u32),
    /// The replay has an entity with this wire id that the recording does not.
    Extra(u32),
    /// The entity's position differs.
    Position(u32),
    /// The entity's replicated component of this kind differs (or is present in one only).
    Component(u32, u16),
}

fn read(mut bytes: &[u8]) -> Option<Vec<EntityDigest>> {
    let mut entities = Vec::new();
    let take_u32 = |bytes: &mut &[u8]| -> Option<u32> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(u32::from_le_bytes(*head))
    };
    while !bytes.is_empty() {
        let (id, used) = take_varint(bytes)?;
        bytes = &bytes[used..];
        let (present, used) = take_varint(bytes)?;
        bytes = &bytes[used..];
        let position = take_u32(&mut bytes)?;
        let mut components = Vec::new();
        for kind in kinds(present) {
            components.push((kind, take_u32(&mut bytes)?));
        }
        entities.push(EntityDigest {
            id: u32::try_from(id).ok()?,
            present,
            position,
            components,
        });
    }
    Some(entities)
}

/// The first difference between a recorded digest and a replayed one, in wire-id order;
/// `None` if they are equal.
pub(crate) fn first_difference(recorded: &[u8], replayed: &[u8]) -> Option<Difference> {
    if recorded == replayed {
        return None;
    }
    let (Some(recorded), Some(replayed)) = (read(recorded), read(replayed)) else {
        return Some(Difference::Unreadable);
    };
    let (mut a, mut b) = (recorded.iter().peekable(), replayed.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return Some(Difference::Unreadable),
            (Some(r), None) => return Some(Difference::Missing(r.id)),
            (None, Some(p)) => return Some(Difference::Extra(p.id)),
            (Some(r), Some(p)) if r.id < p.id => return Some(Difference::Missing(r.id)),
            (Some(r), Some(p)) if r.id > p.id => return Some(Difference::Extra(p.id)),
            (Some(r), Some(p)) => {
                if r.position != p.position {
                    return Some(Difference::Position(r.id));
                }
                if r.present != p.present {
                    let kind = (r.present ^ p.present).trailing_zeros() as u16;
                    return Some(Difference::Component(r.id, kind));
                }
                if let Some(&(kind, _)) = r
                    .components
                    .iter()
                    .zip(&p.components)
                    .find(|(x, y)| x != y)
                    .map(|(x, _)| x)
                {
                    return Some(Difference::Component(r.id, kind));
                }
                a.next();
                b.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entity's wire id, position and replicated components (kind, value).
    type Entity<'a> = (u32, [f32; 2], &'a [(u16, &'a [u8])]);

    fn digest(entities: &[Entity<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, [x, y], components) in entities {
            put_varint(&mut out, u64::from(*id));
            let present = components.iter().fold(0u64, |m, (k, _)| m | 1 << k);
            put_varint(&mut out, present);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&x.to_bits().to_le_bytes());
            crc.update(&y.to_bits().to_le_bytes());
            out.extend_from_slice(&crc.finalize().to_le_bytes());
            for (_, value) in *components {
                out.extend_from_slice(&crc32fast::hash(value).to_le_bytes());
            }
        }
        out
    }

    #[test]
    fn the_first_difference_names_the_entity_and_what_differs() {
        let base = digest(&[(0, [1.0, 2.0], &[]), (3, [5.0, 5.0], &[(1, &[7])])]);
        assert_eq!(first_difference(&base, &base), None);
        let moved = digest(&[(0, [1.0, 2.0], &[]), (3, [5.0, 5.000001], &[(1, &[7])])]);
        assert_eq!(
            first_difference(&base, &moved),
            Some(Difference::Position(3))
        );
        let scored = digest(&[(0, [1.0, 2.0], &[]), (3, [5.0, 5.0], &[(1, &[8])])]);
        assert_eq!(
            first_difference(&base, &scored),
            Some(Difference::Component(3, 1))
        );
        let gained = digest(&[(0, [1.0, 2.0], &[(0, &[1])]), (3, [5.0, 5.0], &[(1, &[7])])]);
        assert_eq!(
            first_difference(&base, &gained),
            Some(Difference::Component(0, 0))
        );
        let fewer = digest(&[(3, [5.0, 5.0], &[(1, &[7])])]);
        assert_eq!(
            first_difference(&base, &fewer),
            Some(Difference::Missing(0))
        );
        assert_eq!(first_difference(&fewer, &base), Some(Difference::Extra(0)));
        assert_eq!(
            first_difference(&base, &base[..base.len() - 1]),
            Some(Difference::Unreadable)
        );
    }
}
