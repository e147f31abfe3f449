//! Building the simulation with bevy_app: the engine's own plugins (tick, ingest,
//! replication, events, persistence hand-off), then the game's plugins, then the checks
//! (ambiguous system order, settings that do not read). The result is a [`Simulation`]: the
//! world with its schedules, which the tick thread runs at a fixed rate.
//!
//! The `App` is built where the server starts (so that every build error is returned to the
//! caller) and its `World` is then moved to the tick thread: an `App` is not `Send`, its world
//! is. The deadline loop in [`crate::tick`] plays the part of bevy's runner.

use std::sync::Arc;

use bevy_app::{App, Plugin, PostStartup, PreStartup, Startup};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleBuildSettings, ScheduleLabel, SingleThreadedExecutor};
use bevy_tasks::{ComputeTaskPool, TaskPoolBuilder};
use components::actions::ActionRegistry;
use components::events::EventRegistry;
use components::persistent::{PersistChanges, PersistRegistry};
use components::replicated::{ComponentChanges, ReplicationRegistry};
use components::settings::GameSettings;
use components::{ServerTick, TickClock, TickSet, Workers, WorldBounds};

use crate::bridge::TickSignal;
use crate::config::{Config, Executor};
use crate::ingest::{self, Inbound, IngestPlugin};
use crate::persistence::handoff::{self, PersistencePlugin};
use crate::persistence::store::Store;
use crate::protocol::Schema;
use crate::recording::capture;
use crate::replication::{self, ReplicationPlugin};
use crate::stats::Stats;

/// What the engine's plugins are connected to: the inbound queues from the network, the
/// signal that wakes the network's writers, the counters.
pub(crate) struct EngineLinks {
    /// The tick's ends of the inbound queues.
    pub inbound: crate::bridge::InboundReceiver,
    /// Sent once per tick after the frames are published.
    pub tick_signal: TickSignal,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Where players are saved (`None`: nowhere, for simulations in tests and benches).
    pub store: Option<Box<dyn Store>>,
    /// This server's zone of a world split between servers (`None`: the whole world).
    pub zone: Option<crate::zones::ZoneSetup>,
    /// The tick's ends of the border-strip link to the neighbour zones (zones with NATS).
    pub ghosts: Option<crate::zones::ghosts::GhostLink>,
}

/// Why a simulation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Two systems conflict without an order between them, or a set is misconfigured.
    #[error("invalid schedule: {0}")]
    Schedule(String),
    /// A `[game.NAME]` section does not read, or no plugin reads it.
    #[error("invalid game settings: {0}")]
    Settings(String),
}

/// A built simulation: run [`Simulation::tick`] once per tick.
pub struct Simulation {
    /// All game state, and the schedules.
    pub world: World,
}

/// Builds the simulation: the engine's plugins configured from `config` and connected by
/// `links`, then the game registered by `game` (usually `app.add_plugins(...)`).
pub(crate) fn build(
    config: &Config,
    links: EngineLinks,
    game: impl FnOnce(&mut App),
) -> Result<Simulation, BuildError> {
    let mut app = App::empty();
    app.main_mut().update_schedule = Some(ServerTick.intern());
    app.insert_resource(GameSettings::new(config.game.clone()));
    app.insert_resource(replication::SharedStats(links.stats.clone()));
    app.add_plugins((
        TickPlugin {
            tick_hz: config.tick_hz,
            world_size: config.world_size,
            sim_threads: config.sim_threads,
            executor: config.executor,
        },
        IngestPlugin::new(config, links.inbound),
        ReplicationPlugin::new(config, links.tick_signal),
        PersistencePlugin::new(
            (config.save_interval_s * f32::from(config.tick_hz)).round() as u64,
            config.max_players,
            links.store,
        ),
    ));
    if let Some(zone) = links.zone {
        app.add_plugins(crate::zones::border::ZonePlugin(zone));
        if let Some(link) = links.ghosts {
            // A client sees what is within the interest radius of it: across a border, what
            // is within the radius of the border, and a little more: wire positions round
            // (up to 1/16 unit each), and a player is handed off in the tick after it
            // crossed, so its frame of that tick is cut up to one step past the border. A
            // cell is more than both at every sensible setting.
            let strip = config.interest_radius + config.cell_size;
            app.add_plugins(crate::zones::ghosts::GhostPlugin::new(link, strip));
        }
    }
    game(&mut app);
    app.finish();
    app.cleanup();
    let world = app.world_mut();
    world
        .resource::<GameSettings>()
        .check()
        .map_err(BuildError::Settings)?;
    replication::finish_registration(world);
    world
        .schedule_scope(ServerTick, |world, schedule| {
            schedule
                .initialize(world)
                .map_err(|error| error.to_string(schedule.graph(), world))
        })
        .map_err(BuildError::Schedule)?;
    for startup in [PreStartup.intern(), Startup.intern(), PostStartup.intern()] {
        let _ = world.try_run_schedule(startup);
    }
    if !config.record.as_os_str().is_empty() {
        capture::start(world, config, links.stats);
    }
    Ok(Simulation {
        world: std::mem::take(world),
    })
}

/// The wire schema of the registered game: what the Welcome carries.
pub(crate) fn schema(world: &World) -> Schema {
    // The tick plugin inserts every registry, so a built world has them all.
    Schema {
        components: world.resource::<ReplicationRegistry>().names.clone(),
        actions: world.resource::<ActionRegistry>().names(),
        events: world.resource::<EventRegistry>().names(),
    }
}

/// The tick schedule and its phases, the clock, the world's bounds, the compute pool, the
/// registries gameplay adds to, and bevy's message updates once per tick.
struct TickPlugin {
    tick_hz: u16,
    world_size: f32,
    sim_threads: usize,
    executor: Executor,
}

impl Plugin for TickPlugin {
    fn build(&self, app: &mut App) {
        // The pool is process-wide: the first simulation built sizes it.
        let sim_threads = self.sim_threads;
        ComputeTaskPool::get_or_init(|| {
            TaskPoolBuilder::new()
                .num_threads(sim_threads)
                .thread_name("throng-sim".into())
                .build()
        });
        // The engine's and the demo game's parallel loops run on these (they allocate
        // nothing per loop, unlike bevy's task scopes); bevy's pool above runs the systems
        // under `executor = "multi"` and any `par_iter` a game writes. Process-wide too.
        Workers::init(sim_threads);
        let mut schedule = Schedule::new(ServerTick);
        if self.executor == Executor::Single || self.sim_threads == 1 {
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
                TickSet::PostSimulate,
                TickSet::Replicate,
                TickSet::Frames,
            )
                .chain(),
        );
        // Messages written in a tick are readable in that tick and the next (bevy's double
        // buffer), then dropped.
        schedule.add_systems(
            bevy_ecs::message::message_update_system
                .before(TickSet::Ingest)
                .ambiguous_with_all(),
        );
        app.add_schedule(schedule);
        app.insert_resource(TickClock::new(self.tick_hz))
            .insert_resource(WorldBounds {
                size: self.world_size,
            })
            .insert_resource(bevy_ecs::error::FallbackErrorHandler(
                crate::system_failure::report,
            ))
            .init_resource::<ReplicationRegistry>()
            .init_resource::<ComponentChanges>()
            .init_resource::<ActionRegistry>()
            .init_resource::<EventRegistry>()
            .init_resource::<PersistRegistry>()
            .init_resource::<PersistChanges>();
    }
}

impl Simulation {
    /// Runs one tick: advances the clock, runs every phase, then clears change trackers so
    /// that `Changed<T>` means "changed during this tick".
    pub fn tick(&mut self) {
        self.world.resource_mut::<TickClock>().tick += 1;
        self.world.run_schedule(ServerTick);
        capture::end_tick(&mut self.world);
        self.world.clear_trackers();
    }

    /// Number of the last tick run.
    pub fn current_tick(&self) -> u64 {
        self.world.resource::<TickClock>().tick
    }

    /// After the last tick: processes the joins and leaves still queued (leavers' final
    /// records) and hands everyone's state to the persistence thread.
    pub fn save_everyone(&mut self) {
        use bevy_ecs::system::RunSystemOnce;
        ingest::ingest(&mut self.world);
        // The rest of the Ingest phase for those joins and leaves (the systems cannot fail).
        let _ = self.world.run_system_once(handoff::restore_joined);
        let _ = self.world.run_system_once(handoff::save_leavers);
        let _ = self.world.run_system_once(ingest::despawn_leavers);
        handoff::save_everyone(&mut self.world);
    }

    /// Inputs waiting in the inbound queue.
    pub fn queued_inputs(&self) -> usize {
        self.world.resource::<Inbound>().0.inputs.len()
    }

    /// The game's entities: those with a wire id (players, NPCs, game objects), which is
    /// what an operator counts. bevy keeps entities of its own too (observers, resources),
    /// so a count of every entity would not match what clients and the console see. A sum
    /// over the archetypes that hold a `NetId`: cheap enough for every tick.
    pub fn entity_count(&self) -> u64 {
        let Some(net_id) = self.world.component_id::<components::NetId>() else {
            return 0;
        };
        self.world
            .archetypes()
            .iter()
            .filter(|archetype| archetype.contains(net_id))
            .map(|archetype| u64::from(archetype.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::inbound_queues;
    use crate::config::ConfigLayer;
    use components::Position;

    fn build_with(game: impl FnOnce(&mut App)) -> Result<Simulation, BuildError> {
        let config = ConfigLayer::default().resolve().unwrap();
        let (_, receiver) = inbound_queues(4, 4);
        let links = EngineLinks {
            inbound: receiver,
            tick_signal: TickSignal::default(),
            stats: Arc::new(Stats::default()),
            store: None,
            zone: None,
            ghosts: None,
        };
        build(&config, links, game)
    }

    #[test]
    fn the_standard_schedule_has_no_ambiguous_system_order() {
        assert!(
            build_with(|app| {
                app.add_plugins(systems::GamePlugins);
            })
            .is_ok()
        );
    }

    #[test]
    fn two_unordered_systems_writing_the_same_data_are_refused() {
        fn push_right(mut q: Query<&mut Position>) {
            q.iter_mut().for_each(|mut p| p.x += 1.0);
        }
        fn push_left(mut q: Query<&mut Position>) {
            q.iter_mut().for_each(|mut p| p.x -= 1.0);
        }
        let error = build_with(|app| {
            app.add_systems(
                ServerTick,
                (push_right, push_left).in_set(TickSet::Simulate),
            );
        })
        .err()
        .expect("ambiguity is an error");
        let error = error.to_string();
        assert!(
            error.contains("push_right") && error.contains("push_left"),
            "{error}"
        );
    }
}
