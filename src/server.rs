//! Starting and stopping a server: the tokio network runtime, the tick thread and the
//! handle that ties them together. The binary is a thin wrapper around this; tests start
//! servers the same way on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::World;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};

use crate::bridge::inbound_queues;
use crate::config::{Config, Endpoint};
use crate::game::EngineLinks;
use crate::metrics::console::{self, Console};
use crate::metrics::http::{self, MetricsSource};
use crate::net::admission::PerAddress;
use crate::net::flush::{FlushRegistry, FlushTask, tick_signal};
use crate::net::session::SessionLimits;
use crate::net::{NetContext, Transport, listener};
use crate::persistence::handoff::PersistenceThread;
use crate::persistence::login::Logins;
use crate::persistence::login_throttle::LoginThrottle;
use crate::persistence::postgres::PostgresStore;
use crate::persistence::sqlite::SqliteStore;
use crate::persistence::store::{Store, StoreError};
use crate::persistence::writer::PersistenceHandle;
use crate::protocol::CloseReason;
use crate::recording::capture::close_all_clients;
use crate::stats::{Stats, StatsSnapshot};
use crate::tick::{WorldTask, run_tick_loop};
use crate::zones::ZoneSetup;
use bevy_app::App;
use components::actions::ActionRegistry;

/// How long a graceful shutdown waits for connections to send their close and leave.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a shutdown waits for the last player records to be committed.
const PERSIST_FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status after a second signal cut a graceful shutdown short (128 + SIGINT).
pub const FORCED_EXIT_CODE: i32 = 130;

/// The next delivery of a signal; never, if the signal could not be registered.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Creating threads or the runtime failed.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
    /// A listening socket could not be bound.
    #[error(transparent)]
    Bind(BindError),
    /// The game cannot be built (ambiguous system order, settings that do not read).
    #[error(transparent)]
    Build(#[from] crate::game::BuildError),
    /// The player database cannot be used.
    #[error("cannot open the player database: {0}")]
    Store(#[from] StoreError),
    /// The zone settings cannot be used (zones file, zone name, secret, store).
    #[error("zones: {0}")]
    Zones(String),
}

/// A listener that could not be bound (address in use, no permission...).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {purpose} on {addr}: {source}")]
pub struct BindError {
    /// What the listener was for.
    pub purpose: &'static str,
    /// The address it was asked to listen on.
    pub addr: SocketAddr,
    /// The operating system's refusal.
    pub source: std::io::Error,
}

/// How a server stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Shut down on request or signal, gracefully.
    Requested,
    /// The tick thread died (a panic in a system): the server must not keep accepting.
    TickDied,
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    web_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop_tick: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    flushes: Arc<FlushRegistry>,
    world_tasks: crossbeam_channel::Sender<WorldTask>,
    tick_thread: Option<JoinHandle<()>>,
    net: tokio::runtime::Handle,
    net_thread: Option<JoinHandle<()>>,
    persistence: PersistenceHandle,
    persistence_thread: Option<JoinHandle<()>>,
    /// Reports to Agones (`agones = true`): told when the drain begins, waited for at its end.
    #[cfg(feature = "agones")]
    agones: Option<crate::agones::Agones>,
}

/// The store `config` names: PostgreSQL for a `postgres://` URL (shared by the zone servers
/// of a world; this server holds players online under its zone's name), else the embedded
/// SQLite file in the data directory (when `store` is empty; `Config::validate` refuses
/// anything else).
fn open_store(config: &Config) -> Result<Box<dyn Store>, StoreError> {
    if !config.store_is_postgres() {
        return Ok(Box::new(SqliteStore::open(&config.data_dir)?));
    }
    let owner = crate::persistence::postgres::owner_name(&config.zone);
    let lease = Duration::from_secs_f32(config.online_lease_s);
    Ok(Box::new(PostgresStore::connect_with_lease(
        &config.store,
        &owner,
        lease,
    )?))
}

impl ServerHandle {
    /// Starts the standard server: the demo game of `systems` ([`systems::GamePlugins`]).
    pub fn start(config: Config) -> Result<Self, StartError> {
        Self::start_with(config, |app| {
            app.add_plugins(systems::GamePlugins);
        })
    }

    /// Starts a server whose game is added to the app by `game` (usually
    /// `app.add_plugins(MyGamePlugins)`).
    pub fn start_with(config: Config, game: impl FnOnce(&mut App)) -> Result<Self, StartError> {
        let stats = Arc::new(Stats::default());
        let (inbound_tx, inbound_rx) =
            inbound_queues(config.max_players, config.input_queue_capacity);
        let flushes = Arc::new(FlushRegistry::new(config.net_threads));
        let (tick_signal, flush_tasks) = tick_signal(flushes.clone(), stats.clone());
        let zone = ZoneSetup::from_config(&config).map_err(StartError::Zones)?;
        let zone_admission = zone
            .as_ref()
            .map(|setup| (setup.zone().name.clone(), setup.key.clone()));
        let zone_origins = zone
            .as_ref()
            .map_or_else(Vec::new, |setup| setup.map.page_origins());
        // Zones with NATS exchange border strips (ghosts); the network side starts below.
        let (ghosts, ghost_net) = match &zone {
            Some(setup) if !config.nats.is_empty() => {
                let (link, net) = crate::zones::ghosts::ghost_link(stats.clone());
                let strips = (
                    config.nats.clone(),
                    setup.zone().name.clone(),
                    setup.me as u16,
                    net,
                );
                (Some(link), Some(strips))
            }
            _ => (None, None),
        };
        let links = EngineLinks {
            inbound: inbound_rx,
            tick_signal,
            stats: stats.clone(),
            store: Some(open_store(&config)?),
            zone,
            ghosts,
        };
        let mut simulation = crate::game::build(&config, links, game)?;
        let PersistenceThread(started) = simulation
            .world
            .remove_resource::<PersistenceThread>()
            .expect("the persistence plugin starts its thread when given a store");
        let (persistence, persistence_thread) = started?;
        let actions = Arc::new(simulation.world.resource::<ActionRegistry>().clone());

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (world_tasks, world_tasks_rx) = crossbeam_channel::unbounded();
        let ctx = Arc::new(NetContext {
            next_connection_id: 1.into(),
            inbound: inbound_tx,
            stats: stats.clone(),
            max_inbound_frame_bytes: config.max_inbound_frame_bytes,
            outbound_buffers: config.outbound_buffers,
            send_buffer_bytes: config.send_buffer_bytes,
            session: SessionLimits {
                handshake_timeout: Duration::from_secs_f32(config.handshake_timeout_s),
                idle_timeout: Duration::from_secs_f32(config.idle_timeout_s),
                max_inputs_per_s: config.max_inputs_per_s,
                input_burst: config.input_burst,
                flood_kick: Duration::from_secs_f32(config.flood_kick_s),
            },
            shutdown: shutdown_rx,
            flushes: flushes.clone(),
            logins: Logins::new(
                LoginThrottle::new(
                    config.failed_logins_burst,
                    Duration::from_secs_f32(config.failed_login_refill_s),
                ),
                persistence.clone(),
                stats.clone(),
            )
            .for_zone_if(zone_admission),
            actions: actions.clone(),
            slots: Arc::new(Semaphore::new(config.max_players)),
            max_players: config.max_players,
            players_per_addr: PerAddress::new(config.max_players_per_addr),
            handshakes: Arc::new(Semaphore::new(config.max_pending_handshakes)),
            handshakes_per_addr: PerAddress::new(config.max_handshakes_per_addr),
            zone_page_origins: zone_origins,
        });
        let Network {
            local_addr,
            metrics_addr,
            web_addr,
            handle: net,
            thread: net_thread,
        } = spawn_network(&config, ctx, flush_tasks, world_tasks.clone())?;
        if let Some((url, zone, index, strips)) = ghost_net {
            net.spawn(crate::zones::nats::run(
                url,
                zone,
                index,
                strips,
                stats.clone(),
            ));
        }

        let stop_tick = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(1.0 / f64::from(config.tick_hz));
        let tick_thread = {
            let (stop, stats) = (stop_tick.clone(), stats.clone());
            std::thread::Builder::new()
                .name("throng-tick".into())
                .spawn(move || {
                    let mut simulation =
                        run_tick_loop(simulation, period, stop, world_tasks_rx, stats);
                    simulation.save_everyone();
                })?
        };
        // Listening and ticking: now Agones may be told Ready.
        #[cfg(feature = "agones")]
        let agones = crate::agones::Agones::for_server(&config, &stats);
        tracing::info!(
            %local_addr,
            web = %shown(web_addr),
            metrics = %shown(metrics_addr),
            tick_hz = config.tick_hz,
            world_size = config.world_size,
            "throng listening"
        );
        Ok(Self {
            local_addr,
            metrics_addr,
            web_addr,
            stats,
            stop_tick,
            shutdown,
            flushes,
            world_tasks,
            tick_thread: Some(tick_thread),
            net,
            net_thread: Some(net_thread),
            persistence,
            persistence_thread: Some(persistence_thread),
            #[cfg(feature = "agones")]
            agones,
        })
    }

    /// The address players connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the web listener (page and WebSocket players) listens, if it is on.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Where the metrics endpoint listens, if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Runs `inspect` on the tick thread right after the next tick and returns its result;
    /// `None` if the tick thread is gone. The world then holds exactly the state that tick's
    /// frames described.
    pub fn with_world<R: Send + 'static>(
        &self,
        inspect: impl FnOnce(&mut World) -> R + Send + 'static,
    ) -> Option<R> {
        self.with_world_after(0, inspect)
    }

    /// Like [`ServerHandle::with_world`], but right after tick `tick` (blocks until then).
    pub fn with_world_after<R: Send + 'static>(
        &self,
        tick: u64,
        inspect: impl FnOnce(&mut World) -> R + Send + 'static,
    ) -> Option<R> {
        self.run_on_tick_thread(tick, None, inspect)
    }

    /// Sends `inspect` to the tick thread and waits for its result, at most `patience` if
    /// given (`None` when it ran out or the tick thread is gone).
    fn run_on_tick_thread<R: Send + 'static>(
        &self,
        tick: u64,
        patience: Option<Duration>,
        inspect: impl FnOnce(&mut World) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let run = Box::new(move |world: &mut World| {
            let _ = reply.send(inspect(world));
        });
        self.world_tasks
            .send(WorldTask {
                after_tick: tick,
                run,
            })
            .ok()?;
        match patience {
            Some(patience) => answer.recv_timeout(patience).ok(),
            None => answer.recv().ok(),
        }
    }

    /// Whether the tick thread is still running.
    pub fn is_ticking(&self) -> bool {
        self.tick_thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Blocks until SIGINT or SIGTERM (then shuts down gracefully; a second signal during
    /// the shutdown exits the process at once with [`FORCED_EXIT_CODE`]) or until the tick
    /// thread dies (then every connection is closed with `InternalError`). Call from a
    /// thread that is not running async code (such as `main`).
    pub fn run_until_signal(self) -> StopCause {
        use tokio::signal::unix::{SignalKind, signal};
        let (tick_died, signals) = self.net.block_on(async {
            // Registered before waiting, so that a second signal is never missed.
            let mut interrupt = signal(SignalKind::interrupt()).ok();
            let mut terminate = signal(SignalKind::terminate()).ok();
            let mut watchdog = tokio::time::interval(Duration::from_millis(200));
            let tick_died = loop {
                tokio::select! {
                    _ = next_signal(&mut interrupt) => break false,
                    _ = next_signal(&mut terminate) => break false,
                    _ = watchdog.tick() => if !self.is_ticking() { break true },
                }
            };
            (tick_died, (interrupt, terminate))
        });
        if tick_died {
            tracing::error!("the tick thread stopped; closing every connection and exiting");
            self.flushes.close_all(CloseReason::InternalError);
            drop(self);
            return StopCause::TickDied;
        }
        tracing::info!("signal received; shutting down (a second signal exits at once)");
        self.net.spawn(async move {
            let (mut interrupt, mut terminate) = signals;
            tokio::select! {
                _ = next_signal(&mut interrupt) => {}
                _ = next_signal(&mut terminate) => {}
            }
            tracing::warn!("second signal; exiting without finishing the shutdown");
            std::process::exit(FORCED_EXIT_CODE);
        });
        self.shutdown();
        StopCause::Requested
    }

    /// Graceful shutdown: stop accepting, close every connection with reason `Shutdown`,
    /// let the tick process the leaves, then stop the network threads and the tick.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        #[cfg(feature = "agones")]
        if let Some(agones) = &self.agones {
            agones.begin_shutdown();
        }
        if self.is_ticking() {
            // Open sessions learn of the shutdown through their outboxes. A tick thread that
            // is alive but stuck does not hold the shutdown up for longer than the drain.
            let closed = self.run_on_tick_thread(0, Some(DRAIN_TIMEOUT), |world| {
                close_all_clients(world, CloseReason::Shutdown)
            });
            if closed.is_none() {
                tracing::warn!("the tick thread did not answer; closing connections directly");
                self.flushes.close_all(CloseReason::Shutdown);
            }
        }
        if let Some(thread) = self.net_thread.take() {
            let _ = thread.join();
        }
        self.stop_tick.store(true, Ordering::Release);
        if let Some(thread) = self.tick_thread.take() {
            // The tick thread's last act is to hand everyone's final state off.
            let _ = thread.join();
        }
        if let Some(thread) = self.persistence_thread.take() {
            if self.persistence.finish(PERSIST_FINISH_TIMEOUT) {
                let _ = thread.join();
            } else {
                tracing::error!("the player database did not finish writing in time");
            }
        }
        // Waits (boundedly) for the Shutdown call begun above.
        #[cfg(feature = "agones")]
        drop(self.agones.take());
    }
}

/// The running network side.
struct Network {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    web_addr: Option<SocketAddr>,
    handle: tokio::runtime::Handle,
    thread: JoinHandle<()>,
}

/// Starts the network runtime on its own thread (so a server can be started and stopped
/// from any context, async tests included), binds the listeners and runs the accept loop
/// until shutdown, then drains connections.
fn spawn_network(
    config: &Config,
    ctx: Arc<NetContext>,
    flush_tasks: Vec<FlushTask>,
    world_tasks: crossbeam_channel::Sender<WorldTask>,
) -> Result<Network, StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.net_threads)
        .thread_name("throng-net")
        .enable_all()
        .build()?;
    let (listener, metrics_listener, web_listener) = {
        let _context = runtime.enter();
        let players = bind(config.listen, "players").map_err(StartError::Bind)?;
        let optional = |endpoint: Endpoint, purpose| match endpoint {
            Endpoint::Off => Ok(None),
            Endpoint::At(addr) => bind(addr, purpose).map(Some).map_err(StartError::Bind),
        };
        let metrics = optional(config.metrics, "metrics")?;
        let web = optional(config.web, "web")?;
        (players, metrics, web)
    };
    let local_addr = listener.local_addr()?;
    let bound =
        |listener: &Option<TcpListener>| listener.as_ref().map(|l| l.local_addr()).transpose();
    let metrics_addr = bound(&metrics_listener)?;
    let web_addr = bound(&web_listener)?;
    let handle = runtime.handle().clone();
    let stats_every = config.stats_interval_s;
    let action_names = Arc::new(ctx.actions.names());
    let console = Arc::new(Console::new(
        world_tasks,
        config.tick_hz,
        config.world_size,
        config.cell_size,
    ));
    let (console_enabled, admin_token) = (config.console, config.admin_token.clone());
    let thread = std::thread::Builder::new()
        .name("throng-net-main".into())
        .spawn(move || {
            let mut shutdown = ctx.shutdown.clone();
            let stats = ctx.stats.clone();
            runtime.block_on(async {
                let slots = ctx.slots.clone();
                if let Some(metrics_listener) = metrics_listener {
                    // Serves until the runtime stops, so probes see the drain (/readyz 503).
                    let source = Arc::new(MetricsSource {
                        stats: stats.clone(),
                        inbound: ctx.inbound.clone(),
                        slots: slots.clone(),
                        shutdown: shutdown.clone(),
                        action_names: action_names.clone(),
                        console: console.clone(),
                        console_enabled,
                        admin_token,
                    });
                    // One snapshot a second for every console viewer (none while nobody watches).
                    tokio::spawn(console::run_snapshots(
                        console,
                        stats.clone(),
                        ctx.inbound.clone(),
                    ));
                    tokio::spawn(http::serve(metrics_listener, source));
                }
                if let Some(web_listener) = web_listener {
                    tokio::spawn(listener::accept_loop(
                        web_listener,
                        ctx.clone(),
                        Transport::WebSocket,
                    ));
                }
                tokio::spawn(listener::accept_loop(listener, ctx, Transport::Tcp));
                for flush_task in flush_tasks {
                    tokio::spawn(flush_task.run());
                }
                if stats_every > 0.0 {
                    tokio::spawn(log_stats(
                        stats.clone(),
                        Duration::from_secs_f32(stats_every),
                    ));
                }
                crate::net::handler::stopping(&mut shutdown).await;
                let started = Instant::now();
                while stats.connections_live.load(Ordering::Relaxed) > 0
                    && started.elapsed() < DRAIN_TIMEOUT
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(Network {
        local_addr,
        metrics_addr,
        web_addr,
        handle,
        thread,
    })
}

/// A TCP listener on `addr`; the error names what it was for.
fn bind(addr: SocketAddr, purpose: &'static str) -> Result<TcpListener, BindError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(4096)
    };
    listen().map_err(|source| BindError {
        purpose,
        addr,
        source,
    })
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn log_stats(stats: Arc<Stats>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    loop {
        interval.tick().await;
        let s = stats.snapshot();
        stats.tick_max_us.store(0, Ordering::Relaxed);
        tracing::info!(
            players = s.players_connected,
            ticks = s.ticks,
            tick_last_us = s.tick_last_us,
            tick_max_us = s.tick_max_us,
            overruns = s.tick_overruns,
            frames = s.frames_written,
            dropped_slow = s.frames_dropped_slow_reader,
            inputs_dropped = s.inputs_dropped_queue_full,
            "stats"
        );
    }
}

/// An optional listener's address for the log: the address, or `off`.
fn shown(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".into(), |addr| addr.to_string())
}
