//! Ghosts: a player near a border sees what is on the other side. Each tick a zone publishes
//! its border strip (every entity within `interest_radius + cell_size` of its edges, with
//! its position and replicated values, see [`super::strip`]); its neighbours replicate those
//! entities to their own clients as read-only ghosts.
//!
//! A ghost is an entity with a `Position` and a [`Ghost`] (no `Player`, no gameplay
//! component): gameplay does not see it, persistence does not save it, and the zone does
//! not move it. Its replicated values travel as the bytes the owning zone encoded, and reach
//! this zone's clients through the same replication as local entities (a capture system
//! writes them into `ComponentChanges`), so a client cannot tell a ghost from a local
//! entity except by its id changing when the entity is handed off.
//!
//! Latency: a strip is published at the end of the owner's tick T and applied at the start
//! of the neighbour's next tick; zones' ticks are not aligned, so a ghost is 1 to 2 ticks
//! behind its entity (measured: docs/BENCHMARKS.md; `throng_ghost_age_seconds`).
//!
//! The tick never waits on NATS: strips leave through a bounded channel (a full channel
//! drops the strip, counted) and arrive through another that the tick drains without
//! waiting; buffers go back and forth, so publishing allocates nothing in steady state.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ahash::AHashMap;
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::replicated::{
    CaptureReplicated, CapturedChange, ComponentChanges, NetId, ReplicationRegistry,
};
use components::{Position, ServerTick, TickClock, TickSet};

use super::border::Zones;
use super::strip::{Strip, StripEntity, StripWriter};
use super::ticket::now_ms;
use crate::ingest::IngestStep;
use crate::replication::ReplicationStep;
use crate::replication::table::ReplicaTable;
use crate::stats::Stats;

/// Strips waiting to be published (or read) before new ones are dropped.
pub(crate) const STRIP_QUEUE: usize = 8;

/// Ticks without a strip from a zone after which its ghosts are despawned (a second at
/// 20 Hz: far beyond a lost strip or two).
const GHOST_SILENCE_TICKS: u64 = 20;

/// The tick's ends of the NATS link.
pub(crate) struct GhostLink {
    /// This tick's strip goes out here.
    pub outgoing: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Published buffers come back here, to be filled again.
    pub spare: crossbeam_channel::Receiver<Vec<u8>>,
    /// Neighbours' strips, decoded by the network side.
    pub incoming: crossbeam_channel::Receiver<Strip>,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// The network side's ends of the NATS link.
pub(crate) struct GhostNet {
    /// Strips to publish.
    pub outgoing: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// Where published buffers go back.
    pub spare: crossbeam_channel::Sender<Vec<u8>>,
    /// Where neighbours' strips go.
    pub incoming: crossbeam_channel::Sender<Strip>,
}

/// Both ends of a new link.
pub(crate) fn ghost_link(stats: Arc<Stats>) -> (GhostLink, GhostNet) {
    let (outgoing_tx, outgoing_rx) = tokio::sync::mpsc::channel(STRIP_QUEUE);
    let (spare_tx, spare_rx) = crossbeam_channel::bounded(STRIP_QUEUE);
    let (incoming_tx, incoming_rx) = crossbeam_channel::bounded(STRIP_QUEUE * 4);
    (
        GhostLink {
            outgoing: outgoing_tx,
            spare: spare_rx,
            incoming: incoming_rx,
            stats,
        },
        GhostNet {
            outgoing: outgoing_rx,
            spare: spare_tx,
            incoming: incoming_tx,
        },
    )
}

/// Adds border strips and ghosts to a zone server's simulation.
pub(crate) struct GhostPlugin {
    link: std::sync::Mutex<Option<GhostLink>>,
    /// Width of the strip published and of the band ghosts are kept in.
    strip: f32,
}

impl GhostPlugin {
    /// Ghosts through `link`, in a band `strip` units wide on each side of the borders.
    pub(crate) fn new(link: GhostLink, strip: f32) -> Self {
        Self {
            link: std::sync::Mutex::new(Some(link)),
            strip,
        }
    }
}

/// The link and the ghosts of each zone, on the tick.
#[derive(Resource)]
struct Ghosts {
    link: GhostLink,
    strip: f32,
    /// Ghost entities by (owning zone, its entity key).
    /// Each with the tick of its zone's latest strip that had it.
    index: AHashMap<(u16, u64), (Entity, u64)>,
    /// The buffer this tick's strip is written into.
    buffer: Vec<u8>,
    /// The latest strip of each zone drained this tick (older ones are skipped).
    latest: Vec<Option<Strip>>,
    /// Ghosts to despawn (scratch).
    gone: Vec<Entity>,
    /// The tick of each zone's last applied strip.
    heard: Vec<Option<u64>>,
}

/// A read-only copy of an entity another zone owns.
#[derive(Component, Debug)]
pub(crate) struct Ghost {
    /// Its replicated values: (kind, bytes), kinds ascending.
    values: Vec<(u16, Vec<u8>)>,
    /// Kinds whose value changed since captured.
    changed: u64,
    /// Kinds removed since captured.
    removed: u64,
}

impl Plugin for GhostPlugin {
    fn build(&self, app: &mut App) {
        let link = self
            .link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the ghost plugin is added once");
        app.insert_resource(Ghosts {
            link,
            strip: self.strip,
            index: AHashMap::default(),
            buffer: Vec::new(),
            latest: Vec::new(),
            gone: Vec::new(),
            heard: Vec::new(),
        })
        .add_systems(
            ServerTick,
            (
                apply_strips
                    .in_set(IngestStep::Drain)
                    .after(crate::ingest::ingest),
                capture_ghost_values
                    .in_set(CaptureReplicated)
                    .ambiguous_with(CaptureReplicated),
                publish_strip
                    .in_set(TickSet::Frames)
                    .after(ReplicationStep::Frames),
            ),
        );
    }
}

/// Encodes this zone's border strip and hands it to the network side (never waits).
fn publish_strip(
    entities: Query<(Entity, &NetId, &Position), Without<Ghost>>,
    table: Res<ReplicaTable>,
    zones: Res<Zones>,
    clock: Res<TickClock>,
    mut ghosts: ResMut<Ghosts>,
) {
    let ghosts = &mut *ghosts;
    let zone = zones.0.zone();
    // The buffer to write into: ours, or one the network side gave back (each buffer keeps
    // its capacity, so in steady state nothing is allocated).
    if ghosts.buffer.capacity() == 0
        && let Ok(spare) = ghosts.link.spare.try_recv()
    {
        ghosts.buffer = spare;
    }
    let mut out = std::mem::take(&mut ghosts.buffer);
    let mut writer = StripWriter::new(&mut out, zones.0.me as u16, clock.tick, now_ms());
    for (entity, id, position) in &entities {
        let point = [position.x, position.y];
        if zone.distance_to_edge(point) >= ghosts.strip {
            continue;
        }
        let replica = table.get(id.0);
        let present = replica.present;
        let values = replica
            .components
            .iter()
            .enumerate()
            .filter(move |(kind, _)| present & (1u64 << kind) != 0)
            .map(|(kind, bytes)| (kind as u16, bytes.as_slice()));
        writer.entity(
            entity.to_bits(),
            point,
            present.count_ones() as usize,
            values,
        );
    }
    writer.finish();
    match ghosts.link.outgoing.try_send(out) {
        Ok(()) => {
            Stats::bump(&ghosts.link.stats.ghost_strips_sent);
            // The next strip goes into a buffer the network side gives back by then (taken
            // at the top of the next call; empty until then, which allocates nothing).
        }
        Err(error) => {
            Stats::bump(&ghosts.link.stats.ghost_strips_dropped);
            ghosts.buffer = error.into_inner();
        }
    }
}

/// Applies the neighbours' latest strips: ghosts appear, move, change and vanish with the
/// entities they copy. Only entities within the strip's width of this zone are kept.
fn apply_strips(world: &mut World) {
    let Some(mut ghosts) = world.remove_resource::<Ghosts>() else {
        return;
    };
    let (zones, me, kinds) = {
        let setup = &world.resource::<Zones>().0;
        let kinds = world.resource::<ReplicationRegistry>().names.len();
        (setup.map.zones.len(), setup.me, kinds)
    };
    if ghosts.latest.len() < zones {
        ghosts.latest.resize_with(zones, || None);
        ghosts.heard.resize(zones, None);
    }
    for strip in ghosts.link.incoming.try_iter() {
        let zone = usize::from(strip.zone);
        // A strip this world's map and this game cannot read is refused whole (a zone of
        // another build, or a stranger on the subject): it must never reach replication.
        if zone >= zones || zone == me || !readable(&strip, kinds) {
            Stats::bump(&ghosts.link.stats.ghost_strips_refused);
            continue;
        }
        let newer = ghosts.latest[zone]
            .as_ref()
            .is_none_or(|held| held.tick < strip.tick);
        if newer {
            ghosts.latest[zone] = Some(strip);
        }
    }
    let rect = world.resource::<Zones>().0.zone().rect;
    let now = now_ms();
    let tick = world.resource::<TickClock>().tick;
    for zone in 0..ghosts.latest.len() {
        let Some(strip) = ghosts.latest[zone].take() else {
            // A zone silent for GHOST_SILENCE_TICKS (killed, or NATS down): its ghosts go
            // rather than stand frozen.
            if ghosts.heard[zone].is_some_and(|at| tick.saturating_sub(at) > GHOST_SILENCE_TICKS) {
                ghosts.heard[zone] = None;
                despawn_ghosts_of(world, &mut ghosts, zone as u16, None);
            }
            continue;
        };
        ghosts.heard[zone] = Some(tick);
        ghosts
            .link
            .stats
            .ghost_age_ms
            .store(now.saturating_sub(strip.sent_ms), Ordering::Relaxed);
        Stats::bump(&ghosts.link.stats.ghost_strips_applied);
        for entity in strip.entities {
            if outside_distance(rect, entity.position) > ghosts.strip {
                continue;
            }
            let key = (strip.zone, entity.key);
            match ghosts.index.get_mut(&key) {
                Some((ghost, seen)) => {
                    *seen = strip.tick;
                    update_ghost(world, *ghost, entity);
                }
                None => {
                    let spawned = world
                        .spawn((
                            Position::new(entity.position[0], entity.position[1]),
                            Ghost {
                                changed: entity
                                    .values
                                    .iter()
                                    .fold(0, |mask, (kind, _)| mask | 1u64 << kind),
                                removed: 0,
                                values: entity.values,
                            },
                        ))
                        .id();
                    ghosts.index.insert(key, (spawned, strip.tick));
                }
            }
        }
        // Ghosts of this zone that its latest strip no longer has.
        despawn_ghosts_of(world, &mut ghosts, strip.zone, Some(strip.tick));
    }
    ghosts
        .link
        .stats
        .ghosts
        .store(ghosts.index.len() as u64, Ordering::Relaxed);
    world.insert_resource(ghosts);
}

/// Despawns the ghosts of `zone` not seen in its strip of tick `seen` (all of them: `None`).
fn despawn_ghosts_of(world: &mut World, ghosts: &mut Ghosts, zone: u16, seen: Option<u64>) {
    let gone = &mut ghosts.gone;
    ghosts.index.retain(|(z, _), &mut (entity, seen_in)| {
        let keep = *z != zone || Some(seen_in) == seen;
        if !keep {
            gone.push(entity);
        }
        keep
    });
    for entity in gone.drain(..) {
        world.despawn(entity);
    }
}

/// Whether this game can replicate `strip`: finite positions, and only component kinds it
/// registered (at most 64), in ascending order.
fn readable(strip: &Strip, kinds: usize) -> bool {
    strip.entities.iter().all(|entity| {
        entity.position.iter().all(|c| c.is_finite())
            && entity.values.windows(2).all(|pair| pair[0].0 < pair[1].0)
            && entity
                .values
                .iter()
                .all(|(kind, _)| usize::from(*kind) < kinds.min(64))
    })
}

/// Moves a ghost and takes its new values (marking only what changed).
fn update_ghost(world: &mut World, entity: Entity, update: StripEntity) {
    let mut ghost_entity = world.entity_mut(entity);
    if let Some(mut position) = ghost_entity.get_mut::<Position>() {
        let next = Position::new(update.position[0], update.position[1]);
        if *position != next {
            *position = next;
        }
    }
    let Some(mut ghost_mut) = ghost_entity.get_mut::<Ghost>() else {
        return;
    };
    let ghost = ghost_mut.bypass_change_detection();
    let mut changed = 0u64;
    let mut removed = 0u64;
    for (kind, _) in &ghost.values {
        if !update.values.iter().any(|(k, _)| k == kind) {
            removed |= 1 << kind;
        }
    }
    ghost.values.retain(|(kind, _)| removed & (1 << kind) == 0);
    for (kind, bytes) in update.values {
        match ghost.values.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, held)) if *held == bytes => {}
            Some((_, held)) => {
                *held = bytes;
                changed |= 1 << kind;
            }
            None => {
                ghost.values.push((kind, bytes));
                changed |= 1 << kind;
            }
        }
    }
    ghost.values.sort_unstable_by_key(|(kind, _)| *kind);
    if changed | removed != 0 {
        ghost.changed |= changed;
        ghost.removed |= removed;
        // Now flagged for the capture system.
        ghost_mut.set_changed();
    }
}

/// Writes ghosts' changed and removed values into this tick's replicated changes, as the
/// capture systems of typed components do for local entities.
fn capture_ghost_values(
    mut ghosts: Query<(&NetId, &mut Ghost), Changed<Ghost>>,
    mut out: ResMut<ComponentChanges>,
) {
    let out = &mut *out;
    for (id, mut ghost) in &mut ghosts {
        let ghost = ghost.bypass_change_detection();
        for kind in bits(ghost.removed) {
            out.changes.push(CapturedChange {
                id: id.0,
                kind,
                value: None,
            });
        }
        for (kind, bytes) in &ghost.values {
            if ghost.changed & (1 << kind) == 0 {
                continue;
            }
            let start = out.bytes.len() as u32;
            out.bytes.extend_from_slice(bytes);
            out.changes.push(CapturedChange {
                id: id.0,
                kind: *kind,
                value: Some((start, out.bytes.len() as u32)),
            });
        }
        ghost.changed = 0;
        ghost.removed = 0;
    }
}

fn bits(mask: u64) -> impl Iterator<Item = u16> {
    (0..64u16).filter(move |bit| mask & (1 << bit) != 0)
}

/// How far `point` is outside `rect` (0 inside), along the farther axis: views are squares.
fn outside_distance([x0, y0, x1, y1]: [f32; 4], [x, y]: [f32; 2]) -> f32 {
    let dx = (x0 - x).max(x - x1).max(0.0);
    let dy = (y0 - y).max(y - y1).max(0.0);
    dx.max(dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strip_this_game_cannot_replicate_is_not_readable() {
        let entity = |position: [f32; 2], values: Vec<(u16, Vec<u8>)>| StripEntity {
            key: 1,
            position,
            values,
        };
        let strip = |entities| Strip {
            zone: 1,
            tick: 1,
            sent_ms: 0,
            entities,
        };
        assert!(readable(
            &strip(vec![entity([1.0, 2.0], vec![(0, vec![1]), (2, vec![])])]),
            3
        ));
        assert!(
            !readable(&strip(vec![entity([1.0, 2.0], vec![(3, vec![1])])]), 3),
            "unknown kind"
        );
        assert!(
            !readable(&strip(vec![entity([1.0, 2.0], vec![(64, vec![1])])]), 100),
            "beyond a mask"
        );
        assert!(
            !readable(&strip(vec![entity([f32::NAN, 2.0], vec![])]), 3),
            "not a position"
        );
        assert!(
            !readable(
                &strip(vec![entity([1.0, 2.0], vec![(1, vec![]), (1, vec![])])]),
                3
            ),
            "a kind twice"
        );
    }

    #[test]
    fn distance_outside_a_rectangle_is_along_the_farther_axis() {
        let rect = [100.0, 0.0, 200.0, 300.0];
        assert_eq!(outside_distance(rect, [150.0, 10.0]), 0.0);
        assert_eq!(outside_distance(rect, [90.0, 10.0]), 10.0);
        assert_eq!(outside_distance(rect, [230.0, 320.0]), 30.0);
    }
}
