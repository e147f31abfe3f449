//! The tick's side of persistence: it only marks and collects, never waits.
//!
//! Dirty tracking costs nothing per tick: the collecting systems run once per save interval
//! and ask bevy for the players whose `Position` (or a registered persistent component)
//! changed since their own last run. Their records go into one [`Batch`] handed to the
//! persistence thread without waiting; if it is behind, the batch stays here and the next
//! interval's records join it (latest per player). A player who leaves is saved at once,
//! with everything persistent, and their name is released only after that save commits.

use std::sync::{Arc, Mutex};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::persistent::{CollectPersistent, PersistChanges, PersistRegistry};
use components::{Position, ServerTick, TickClock, TickSet};

use crate::bridge::Held;
use crate::ingest::IngestStep;
use crate::ingest::{Joined, Leaving};

use super::store::Store;
use super::store::{AccountId, PlayerRecord, Release};
use super::writer::{self, Batch, ComponentUpdate, HandOff, PersistenceHandle, PositionUpdate};
use crate::stats::Stats;

/// The player's account in the store.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account(pub AccountId);

/// The tick's side of persistence: once every `every_ticks` ticks the players whose
/// position or persistent components changed are collected and handed off; leavers' final
/// records go at once (from ingest). With a store, the plugin starts the persistence thread
/// once every plugin has registered its persistent components (`Plugin::finish`) and leaves
/// it in [`PersistenceThread`] for the server; without one (simulations in tests and
/// benches) records are dropped.
pub struct PersistencePlugin {
    every_ticks: u64,
    max_logins: usize,
    store: Mutex<Option<Box<dyn Store>>>,
}

impl PersistencePlugin {
    /// Hands off every `every_ticks` ticks to a thread writing to `store` (if any), which
    /// serves at most `max_logins` waiting logins.
    pub fn new(every_ticks: u64, max_logins: usize, store: Option<Box<dyn Store>>) -> Self {
        Self {
            every_ticks,
            max_logins,
            store: Mutex::new(store),
        }
    }
}

/// The persistence thread the plugin started: the server keeps it (logins go to its handle;
/// shutdown waits for it).
#[derive(Resource)]
pub struct PersistenceThread(
    /// Its handle (logins and batches go there) and the thread, or why it could not start.
    pub std::io::Result<(PersistenceHandle, std::thread::JoinHandle<()>)>,
);

/// The steps of a persistence hand-off, once per save interval, inside `TickSet::Frames`
/// beside frame assembly (they read gameplay state and write only the pending saves).
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PersistStep {
    /// Players whose position changed since the last hand-off.
    Positions,
    /// Players whose registered persistent components changed (gameplay's collect systems,
    /// then their records by account).
    Components,
    /// The batch goes to the persistence thread.
    HandOff,
}

impl Plugin for PersistencePlugin {
    fn build(&self, app: &mut App) {
        // The counters are the engine's; the pending saves keep their own handle to them.
        let stats = app
            .world()
            .get_resource::<crate::replication::SharedStats>()
            .map(|shared| shared.0.clone())
            .unwrap_or_default();
        app.insert_resource(PendingSaves::new(None, self.every_ticks, stats));
        app.edit_schedule(ServerTick, |schedule| {
            schedule.configure_sets(
                (
                    PersistStep::Positions,
                    PersistStep::Components,
                    PersistStep::HandOff,
                )
                    .chain()
                    .in_set(TickSet::Frames)
                    .run_if(save_due),
            );
            schedule.configure_sets(CollectPersistent.in_set(PersistStep::Components));
            schedule.add_systems((
                close_players_when_holds_lapse
                    .in_set(IngestStep::Drain)
                    .before(crate::ingest::ingest),
                (restore_joined, save_leavers)
                    .chain()
                    .in_set(IngestStep::Lifecycle),
                collect_positions.in_set(PersistStep::Positions),
                collect_components
                    .after(CollectPersistent)
                    .in_set(PersistStep::Components),
                hand_off.in_set(PersistStep::HandOff),
            ));
        });
    }

    fn finish(&self, app: &mut App) {
        let Some(store) = self.store.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let world = app.world_mut();
        let kinds = world.resource::<PersistRegistry>().names();
        let stats = world.resource::<PendingSaves>().stats.clone();
        let started = writer::spawn(store, kinds, self.max_logins, stats);
        if let Ok((handle, _)) = &started {
            world.resource_mut::<PendingSaves>().handle = Some(handle.clone());
        }
        world.insert_resource(PersistenceThread(started));
    }
}

/// Records waiting to be handed to the persistence thread.
#[derive(Resource)]
pub struct PendingSaves {
    handle: Option<PersistenceHandle>,
    stats: Arc<Stats>,
    batch: Batch,
    every_ticks: u64,
    finals: bool,
}

impl PendingSaves {
    /// Hands off to `handle` every `every_ticks` ticks (`None`: records are dropped, for
    /// simulations without a store), counting delayed hand-offs in `stats`.
    pub fn new(handle: Option<PersistenceHandle>, every_ticks: u64, stats: Arc<Stats>) -> Self {
        Self {
            handle,
            stats,
            batch: Batch::default(),
            every_ticks: every_ticks.max(1),
            finals: false,
        }
    }

    /// Sends hand-offs to `handle` from now on (benches that drive a simulation and a
    /// persistence thread of their own; the server's plugin connects its own thread).
    pub fn connect(&mut self, handle: PersistenceHandle) {
        self.handle = Some(handle);
    }

    /// Hands the pending records off now; if the thread is behind they stay, merged per
    /// player, and join the next hand-off.
    pub fn hand_off(&mut self) {
        self.finals = false;
        let pending = &mut self.batch;
        if pending.positions.is_empty()
            && pending.components.is_empty()
            && pending.records.is_empty()
            && pending.released.is_empty()
            && pending.releases.is_empty()
        {
            return;
        }
        let Some(handle) = &self.handle else {
            pending.positions.clear(); // no store: nothing to keep
            pending.components.clear();
            pending.component_bytes.clear();
            pending.records.clear();
            pending.released.clear();
            pending.releases.clear();
            pending.committed.clear(); // dropped: a handoff waiting on it is told it failed
            return;
        };
        // The batch leaves with its buffers; the next one fills buffers the thread gave
        // back (no allocation, no page faults), or new ones of the same size.
        let next = handle.spare_batch().unwrap_or_else(|| Batch {
            positions: Vec::with_capacity(pending.positions.len()),
            components: Vec::with_capacity(pending.components.len()),
            component_bytes: Vec::with_capacity(pending.component_bytes.len()),
            ..Batch::default()
        });
        let mut batch = std::mem::replace(pending, next);
        batch.handed_off.get_or_insert_with(std::time::Instant::now);
        if let HandOff::Busy(mut batch) = handle.hand_off(batch) {
            Stats::bump(&self.stats.persist_handoffs_delayed);
            merge_per_player(&mut batch.records);
            latest_position_per_player(&mut batch.positions);
            latest_component_per_player(&mut batch.components, &mut batch.component_bytes);
            self.batch = batch;
        }
    }

    /// Whether leavers' final records are waiting (they are handed off at once).
    pub fn has_finals(&self) -> bool {
        self.finals
    }

    /// Queues a leaving player's final record; their name is released after it commits,
    /// and the store stops holding them online (with their handoff nonce, if handed off) in
    /// the same transaction. `committed` is told whether it was.
    pub fn push_final(
        &mut self,
        record: PlayerRecord,
        name: Option<Held>,
        handoff: Option<u64>,
        committed: Option<tokio::sync::oneshot::Sender<bool>>,
    ) {
        self.batch.releases.push(Release {
            account: record.account,
            handoff,
        });
        self.batch.records.push(record);
        self.batch.released.extend(name);
        self.batch.committed.extend(committed);
        self.finals = true;
    }
}

/// Keeps one position per player (the later one).
fn latest_position_per_player(positions: &mut Vec<PositionUpdate>) {
    positions.sort_by_key(|(account, _)| *account); // stable: later updates stay later
    positions.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
}

/// Keeps one value per player and component kind (the later one), and only their bytes.
fn latest_component_per_player(updates: &mut Vec<ComponentUpdate>, bytes: &mut Vec<u8>) {
    updates.sort_by_key(|&(account, kind, _, _)| (account, kind)); // stable
    updates.dedup_by(|later, kept| {
        let same = (later.0, later.1) == (kept.0, kept.1);
        if same {
            (kept.2, kept.3) = (later.2, later.3);
        }
        same
    });
    let mut compact = Vec::with_capacity(bytes.len());
    for update in updates.iter_mut() {
        let start = compact.len() as u32;
        compact.extend_from_slice(&bytes[update.2 as usize..update.3 as usize]);
        (update.2, update.3) = (start, compact.len() as u32);
    }
    *bytes = compact;
}

/// Keeps one record per player (the later one wins, components merged).
fn merge_per_player(records: &mut Vec<PlayerRecord>) {
    records.sort_by_key(|record| record.account); // stable: later records stay later
    let mut merged: Vec<PlayerRecord> = Vec::with_capacity(records.len());
    for record in records.drain(..) {
        match merged.last_mut() {
            Some(last) if last.account == record.account => last.absorb(record),
            _ => merged.push(record),
        }
    }
    *records = merged;
}

/// Run condition: this tick ends a save interval.
pub fn save_due(clock: Res<TickClock>, saves: Res<PendingSaves>) -> bool {
    clock.tick.is_multiple_of(saves.every_ticks)
}

/// Collects the players whose position changed since the last flush. Sequential on
/// purpose: a parallel collect (per-thread buffers) measured 154-188 us at 10,000 players
/// against 63-73 us for this loop; waking the compute pool costs more than it saves.
pub fn collect_positions(
    moved: Query<(&Account, &Position), Changed<Position>>,
    mut saves: ResMut<PendingSaves>,
) {
    let positions = &mut saves.batch.positions;
    for (account, position) in &moved {
        positions.push((account.0, [position.x, position.y]));
    }
}

/// Takes the players' persistent components that changed since the last flush (collected
/// by the gameplay-side systems of each kind) into the pending batch, by account, without
/// allocating.
pub fn collect_components(
    mut changes: ResMut<PersistChanges>,
    accounts: Query<&Account>,
    mut saves: ResMut<PendingSaves>,
) {
    let changes = &mut *changes;
    let pending = &mut saves.batch;
    for &(entity, kind, start, end) in &changes.records {
        if let Ok(account) = accounts.get(entity) {
            let from = pending.component_bytes.len() as u32;
            pending
                .component_bytes
                .extend_from_slice(&changes.bytes[start as usize..end as usize]);
            let to = pending.component_bytes.len() as u32;
            pending.components.push((account.0, kind, from, to));
        }
    }
    changes.clear();
}

/// Hands the interval's records to the persistence thread.
pub fn hand_off(mut saves: ResMut<PendingSaves>) {
    saves.hand_off();
}

/// Everything persistent about `entity` (a leaving player's final record).
pub fn full_record(world: &World, entity: Entity) -> Option<PlayerRecord> {
    let entity_ref = world.get_entity(entity).ok()?;
    let account = entity_ref.get::<Account>()?.0;
    let position = entity_ref.get::<Position>().map(|p| [p.x, p.y]);
    let kinds = world.get_resource::<PersistRegistry>()?;
    let components = kinds
        .kinds
        .iter()
        .enumerate()
        .filter_map(|(index, kind)| Some((index as u16, (kind.save)(&entity_ref)?)))
        .collect();
    Some(PlayerRecord {
        account,
        position,
        components,
    })
}

/// The name of an online player, released when its final record is saved.
#[derive(Component)]
pub struct OnlineName(Option<Held>);

/// Gives the players who joined this tick their saved state: their account, and their saved
/// persistent components (the position was applied by the spawn, wrapped into the world).
pub fn restore_joined(
    world: &mut World,
    joined: &mut QueryState<Entity, With<Joined>>,
    mut found: Local<Vec<Entity>>,
) {
    found.extend(joined.iter(world));
    if found.is_empty() {
        return;
    }
    world.resource_scope(|world, kinds: Mut<PersistRegistry>| {
        for entity in found.drain(..) {
            let mut player = world.entity_mut(entity);
            let Some(Joined { saved, name_claim }) = player.take::<Joined>() else {
                continue;
            };
            player.insert((Account(saved.account), OnlineName(name_claim)));
            for (name, bytes) in &saved.components {
                if let Some(kind) = kinds.kinds.iter().find(|kind| &kind.name == name)
                    && !(kind.load)(&mut player, bytes)
                {
                    tracing::warn!(component = %name, account = saved.account, "a saved component no longer decodes; dropped");
                }
            }
        }
    });
}

/// Queues the final record of every player leaving this tick (with its name, released once
/// that record is saved) and hands them off at once, not at the next interval.
pub fn save_leavers(
    world: &mut World,
    leaving: &mut QueryState<Entity, (With<Leaving>, With<Account>)>,
    mut found: Local<Vec<Entity>>,
) {
    found.extend(leaving.iter(world));
    if found.is_empty() {
        return;
    }
    for entity in found.drain(..) {
        let record = full_record(world, entity);
        let name = world
            .get_mut::<OnlineName>(entity)
            .and_then(|mut online| online.0.take());
        let (handoff, committed) = world
            .get_mut::<SaveThenTransfer>(entity)
            .map_or((None, None), |mut transfer| {
                (Some(transfer.nonce), transfer.committed.take())
            });
        if let Some(record) = record {
            world
                .resource_mut::<PendingSaves>()
                .push_final(record, name, handoff, committed);
        }
    }
    world.resource_mut::<PendingSaves>().hand_off();
}

/// On a leaving player who is handed off to another zone (see `zones::border`): its final
/// record carries the ticket's `nonce` to the store, and `committed` tells its connection
/// when the record is saved (only then does the client get its ticket).
#[derive(Component)]
pub struct SaveThenTransfer {
    /// The ticket's single-use nonce.
    pub nonce: u64,
    /// Told whether the final record was committed.
    pub committed: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// Closes every player when a shared store's holds on them may lapse (its renewals keep
/// failing): other servers may soon admit them, and they could not be saved here anyway.
/// Once per lapse; new logins fail meanwhile, as the store does not answer.
pub(crate) fn close_players_when_holds_lapse(world: &mut World, mut closed: Local<bool>) {
    let at_risk = world
        .resource::<crate::replication::SharedStats>()
        .0
        .store_holds_at_risk
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0;
    if !at_risk || *closed {
        *closed = at_risk;
        return;
    }
    *closed = true;
    crate::replication::welcome::close_clients(
        world,
        crate::protocol::CloseReason::InternalError,
        Some("this server lost its player database; log in again"),
    );
}

/// At shutdown, after the last tick: every player still in the world, whole, handed off.
pub fn save_everyone(world: &mut World) {
    let players: Vec<Entity> = world
        .query_filtered::<Entity, With<Account>>()
        .iter(world)
        .collect();
    let records: Vec<PlayerRecord> = players
        .into_iter()
        .filter_map(|entity| full_record(world, entity))
        .collect();
    let mut saves = world.resource_mut::<PendingSaves>();
    // A store shared with other servers stops holding them online here.
    saves
        .batch
        .releases
        .extend(records.iter().map(|record| Release {
            account: record.account,
            handoff: None,
        }));
    saves.batch.records.extend(records);
    let batch = std::mem::take(&mut saves.batch);
    if let Some(handle) = &saves.handle
        && !handle.hand_off_waiting(batch, std::time::Duration::from_secs(5))
    {
        tracing::error!("the persistence thread did not take the final save");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_are_closed_once_when_the_stores_holds_may_lapse_and_not_before() {
        let config = crate::config::ConfigLayer::default().resolve().unwrap();
        let mut harness = crate::harness::Harness::new(&config);
        let ann = harness.join("ann");
        let bob = harness.join("bob");
        harness.tick();
        harness.tick();
        assert_eq!(
            harness.close_requested(ann),
            None,
            "holds renewed: nobody closed"
        );
        harness
            .stats
            .store_holds_at_risk
            .store(1, std::sync::atomic::Ordering::Relaxed);
        harness.tick();
        for player in [ann, bob] {
            assert_eq!(
                harness.close_requested(player),
                Some(crate::protocol::CloseReason::InternalError)
            );
        }
    }

    #[test]
    fn a_delayed_batch_keeps_the_latest_state_of_each_player() {
        let mut positions = vec![
            (2, [1.0, 1.0]),
            (1, [0.0, 0.0]),
            (2, [3.0, 3.0]),
            (1, [4.0, 4.0]),
        ];
        latest_position_per_player(&mut positions);
        assert_eq!(positions, vec![(1, [4.0, 4.0]), (2, [3.0, 3.0])]);
        let record = |account, x: f32, kind: u16, byte: u8| PlayerRecord {
            account,
            position: Some([x, x]),
            components: vec![(kind, vec![byte])],
        };
        let mut records = vec![
            record(7, 1.0, 0, 1),
            record(3, 2.0, 0, 2),
            record(7, 5.0, 1, 3),
        ];
        merge_per_player(&mut records);
        assert_eq!(
            records,
            vec![
                record(3, 2.0, 0, 2),
                PlayerRecord {
                    account: 7,
                    position: Some([5.0, 5.0]),
                    components: vec![(0, vec![1]), (1, vec![3])],
                },
            ]
        );
    }
}
