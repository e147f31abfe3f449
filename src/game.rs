//! Building the simulation: the world, its resources and the ordered tick schedule, with
//! gameplay plugged in through [`components::Gameplay`].

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleBuildSettings, SingleThreadedExecutor};
use bevy_ecs::system::ScheduleSystem;
use bevy_tasks::{ComputeTaskPool, TaskPoolBuilder};
use components::{Gameplay, TickClock, TickSet, WorldBounds};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::inbound::InboundReceiver;
use crate::ingest::{
    Connections, Inbound, LatestInputs, SpawnRng, WelcomeTemplate, apply_inputs, ingest,
};
use crate::net::flush::TickSignal;
use crate::persistence::handoff::{self, PersistOutbox, PersistedComponents};
use crate::protocol::{POSITION_SCALE, Welcome};
use crate::replication::cells::CellGrid;
use crate::replication::grid::GridGeometry;
use crate::replication::table::ReplicaTable;
use crate::replication::{self, OutboundLimits, ReplicatedComponents, SharedStats};
use crate::stats::Stats;

/// The world and schedule under construction. Gameplay modules receive it as
/// `&mut impl Gameplay`.
pub struct GameBuilder {
    world: World,
    schedule: Schedule,
    replicated: ReplicatedComponents,
}

/// A built simulation: run [`Simulation::tick`] once per tick.
pub struct Simulation {
    /// All game state.
    pub world: World,
    schedule: Schedule,
}

impl GameBuilder {
    /// A world configured from `config`, fed by `inbound`, with the engine's own phases
    /// (ingest, replicate, flush) and no gameplay yet.
    pub fn new(config: &Config, inbound: InboundReceiver, stats: Arc<Stats>) -> Self {
        // The pool is process-wide: the first simulation built sizes it.
        let sim_threads = config.sim_threads;
        ComputeTaskPool::get_or_init(|| {
            TaskPoolBuilder::new()
                .num_threads(sim_threads)
                .thread_name("throng-sim".into())
                .build()
        });
        let mut world = World::new();
        let geometry = GridGeometry::new(
            config.world_size,
            config.cell_size,
            config.interest_radius,
            POSITION_SCALE,
        );
        world.insert_resource(TickClock::new(config.tick_hz));
        world.insert_resource(WorldBounds {
            size: config.world_size,
        });
        world.insert_resource(Inbound(inbound));
        world.insert_resource(Connections::default());
        world.insert_resource(LatestInputs::default());
        world.insert_resource(SpawnRng::new(config.spawn_seed));
        world.insert_resource(CellGrid::new(geometry));
        world.insert_resource(bevy_ecs::error::FallbackErrorHandler(
            crate::system_failure::report,
        ));
        world.insert_resource(OutboundLimits {
            max_frame_bytes: config.max_outbound_frame_bytes,
            slow_reader_kick_ticks: (config.slow_reader_kick_s * f32::from(config.tick_hz)).ceil()
                as u64,
        });
        world.insert_resource(SharedStats(stats.clone()));
        // Replaced by the server with one connected to its network runtime.
        world.insert_resource(TickSignal::default());
        world.insert_resource(WelcomeTemplate(Welcome {
            player_id: 0,
            tick_hz: config.tick_hz,
            world_size: config.world_size,
            interest_radius: config.interest_radius,
            cell_size: config.cell_size,
            view_cells: geometry.view_cells,
            position_scale: POSITION_SCALE,
            max_frame_bytes: config.max_outbound_frame_bytes,
            components: Vec::new(),
            idle_timeout_ms: (config.idle_timeout_s * 1000.0) as u32,
            max_inputs_per_s: config.max_inputs_per_s,
        }));

        let mut schedule = Schedule::default();
        if config.sim_threads == 1 {
            schedule.set_executor(SingleThreadedExecutor::default());
        }
        schedule.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: bevy_ecs::schedule::LogLevel::Error,
            ..Default::default()
        });
        schedule.configure_sets(
            (
                TickSet::Ingest,
                TickSet::Simulate,
                TickSet::Replicate,
                TickSet::Flush,
            )
                .chain(),
        );
        schedule.add_systems((ingest, apply_inputs).chain().in_set(TickSet::Ingest));
        replication::add_systems(&mut schedule);
        schedule.configure_sets(
            (
                PersistStep::Positions,
                PersistStep::Components,
                PersistStep::HandOff,
            )
                .chain()
                .in_set(TickSet::Flush)
                .run_if(handoff::flush_due),
        );
        schedule.add_systems((
            handoff::collect_positions.in_set(PersistStep::Positions),
            handoff::hand_off.in_set(PersistStep::HandOff),
        ));
        world.insert_resource(PersistedComponents::default());
        world.insert_resource(PersistOutbox::new(
            None,
            (config.flush_interval_s * f32::from(config.tick_hz)).round() as u64,
            stats.clone(),
        ));
        Self {
            world,
            schedule,
            replicated: ReplicatedComponents::default(),
        }
    }

    /// Finishes the build. Fails if two systems conflict without an order between them.
    pub fn build(mut self) -> Result<Simulation, String> {
        let kinds = self.replicated.names.len();
        self.world.insert_resource(ReplicaTable::new(kinds));
        self.world.resource_mut::<WelcomeTemplate>().0.components = self.replicated.names.clone();
        self.world.insert_resource(self.replicated);
        if let Err(error) = self.schedule.initialize(&mut self.world) {
            return Err(error.to_string(self.schedule.graph(), &self.world));
        }
        Ok(Simulation {
            world: self.world,
            schedule: self.schedule,
        })
    }
}

impl Gameplay for GameBuilder {
    fn add_systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M>,
    ) -> &mut Self {
        self.schedule.add_systems(systems.in_set(TickSet::Simulate));
        self
    }

    fn replicate<T: Component + Serialize>(&mut self) -> &mut Self {
        let kind = self.replicated.names.len();
        self.replicated.names.push(short_type_name::<T>());
        self.schedule
            .add_systems(replication::capture_component_system::<T>(kind));
        self
    }

    fn persist<T: Component + Serialize + DeserializeOwned>(&mut self) -> &mut Self {
        let kind = handoff::persist_kind::<T>(
            &mut self.world.resource_mut::<PersistedComponents>(),
            short_type_name::<T>(),
        );
        self.schedule.add_systems(
            handoff::collect_component_system::<T>(kind)
                .in_set(PersistStep::Components)
                .ambiguous_with(PersistStep::Components),
        );
        self
    }

    fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

/// A type's name without its module path: how replicated and persistent components are
/// named on the wire (`Welcome.components`) and in the store.
fn short_type_name<T>() -> String {
    let full_name = std::any::type_name::<T>();
    full_name
        .rsplit("::")
        .next()
        .unwrap_or(full_name)
        .to_owned()
}

/// The steps of a persistence hand-off, once per flush interval, inside `TickSet::Flush`
/// beside frame assembly (they read gameplay state and write only the persistence outbox).
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PersistStep {
    /// Players whose position changed since the last hand-off.
    Positions,
    /// Players whose registered persistent components changed.
    Components,
    /// The batch goes to the persistence thread.
    HandOff,
}

impl Simulation {
    /// Runs one tick: advances the clock, runs every phase, then clears change trackers so
    /// that `Changed<T>` means "changed during this tick".
    pub fn tick(&mut self) {
        self.world.resource_mut::<TickClock>().tick += 1;
        self.schedule.run(&mut self.world);
        self.world.clear_trackers();
    }

    /// Number of the last tick run.
    pub fn current_tick(&self) -> u64 {
        self.world.resource::<TickClock>().tick
    }

    /// After the last tick: processes the joins and leaves still queued (leavers' final
    /// records) and hands everyone's state to the persistence thread.
    pub fn save_everyone(&mut self) {
        ingest(&mut self.world);
        handoff::save_everyone(&mut self.world);
    }

    /// Inputs waiting in the inbound queue.
    pub fn queued_inputs(&self) -> usize {
        self.world.resource::<Inbound>().0.inputs.len()
    }

    /// Entities in the world (a sum over archetypes: cheap enough for every tick).
    pub fn entity_count(&self) -> u64 {
        self.world
            .archetypes()
            .iter()
            .map(|archetype| u64::from(archetype.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;
    use crate::inbound::inbound_queues;
    use components::Position;

    fn builder() -> GameBuilder {
        let config = ConfigLayer::default().resolve().unwrap();
        let (_, receiver) = inbound_queues(4, 4);
        GameBuilder::new(&config, receiver, Arc::new(Stats::default()))
    }

    #[test]
    fn the_standard_schedule_has_no_ambiguous_system_order() {
        let mut game = builder();
        systems::register_all(&mut game);
        assert!(game.build().is_ok());
    }

    #[test]
    fn two_unordered_systems_writing_the_same_data_are_refused() {
        fn push_right(mut q: Query<&mut Position>) {
            q.iter_mut().for_each(|mut p| p.x += 1.0);
        }
        fn push_left(mut q: Query<&mut Position>) {
            q.iter_mut().for_each(|mut p| p.x -= 1.0);
        }
        let mut game = builder();
        game.add_systems((push_right, push_left));
        let error = game.build().err().expect("ambiguity is an error");
        assert!(
            error.contains("push_right") && error.contains("push_left"),
            "{error}"
        );
    }
}
