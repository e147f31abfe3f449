//! Agones: the server tells the Agones SDK sidecar in its Pod how it is doing (only with
//! `--features agones`, and only when the `agones` setting is true; docs/AGONES.md).
//!
//! # What is reported, and from what
//! - **Ready**, once, as soon as the server listens and ticks ([`ServerHandle::start`] starts
//!   this link after its listeners are bound and its tick thread runs); retried until the
//!   sidecar takes it.
//! - **Health**, one ping a second, but only when the tick counter ([`Stats::ticks`]) moved
//!   since the previous second: the pings are the tick's heartbeat. A tick thread that stalls
//!   (a system stuck in a loop, a deadlock) stops them, and after the GameServer's
//!   `health.periodSeconds` × `failureThreshold` Agones marks it Unhealthy and replaces it:
//!   a process that is alive but not simulating is what liveness must catch, and a ping sent
//!   from a timer alone would hide it. The pings go over the SDK's one long-lived Health
//!   stream; if it closes (the sidecar restarted), a new one is opened.
//! - **Player count**, as the Counter `players` (Agones Counters and Lists, Beta and on by
//!   default since Agones 1.41): its capacity is set once to `max_players`, its count to
//!   [`Stats::players_connected`] whenever that changed, checked once a second. A Counter,
//!   not the SDK's Player Tracking, because Player Tracking is Alpha (off unless a cluster
//!   turns its feature gate on) and deprecated in favour of Counters and Lists, and because
//!   it wants one call per player with an id (a connect/disconnect pair lost to a
//!   sidecar hiccup leaves the count wrong for good), where setting the absolute count is
//!   idempotent and corrects itself on the next change. A FleetAutoscaler can scale on the
//!   Counter (policy `Counter`), and allocation can filter on it. The GameServer spec must
//!   declare `counters: {players: ...}`; if it does not (the sidecar answers NOT_FOUND), that
//!   is logged once and counts are no longer sent.
//! - **Shutdown**, when the server begins its graceful shutdown (a signal, or the tick thread
//!   died): the GameServer goes to Shutdown at once, so nothing is allocated to a server that
//!   is draining, and Agones deletes the Pod once it is told. The drain (closing every
//!   client, the last player records written) goes on meanwhile: Kubernetes signals a
//!   terminating Pod once, and waits `terminationGracePeriodSeconds` before killing it.
//!
//! # Where it runs
//! On a thread of its own with a current-thread tokio runtime, not on the network runtime:
//! the SDK is async (tonic), but the network runtime is shut down at the end of the drain
//! with a one-second limit that would cut a Shutdown call short, and the SDK's connection
//! attempts and reconnects should not share worker threads with the players' sockets. The
//! thread sleeps between its once-a-second checks; nothing here is on the tick thread, which
//! is only read through [`Stats`]' relaxed atomics.
//!
//! # When the sidecar does not answer
//! Every failed or timed-out call is counted (`throng_agones_errors_total`) and logged (the
//! first of a run of failures, then at most once a minute while they go on), and retried:
//! connecting every few seconds, Ready until it is taken, counts on the next check. The
//! server keeps serving throughout; nothing here can hold up the tick or the network.
//!
//! [`ServerHandle::start`]: crate::ServerHandle::start

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval_at, timeout};

use crate::config::Config;
use crate::stats::Stats;

/// The GameServer Counter the player count is reported in.
pub const PLAYERS_COUNTER: &str = "players";

/// Between health pings, and between checks of the player count.
pub const PING_PERIOD: Duration = Duration::from_secs(1);

/// How long one attempt to reach the sidecar may take (the SDK's own limit is 30 s).
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// How long one SDK call may take before it counts as failed.
const CALL_PATIENCE: Duration = Duration::from_secs(2);

/// Between attempts after a failure (connecting, Ready).
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// While failures go on, at most one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The link to the Agones SDK sidecar: a thread that reports until [`Agones::begin_shutdown`]
/// (then calls Shutdown). Dropping it begins the shutdown and waits (boundedly) for it.
pub struct Agones {
    stop: watch::Sender<bool>,
    finished: crossbeam_channel::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Agones {
    /// Starts reporting to the sidecar at `localhost:sdk_port` (`None`: the port in
    /// `AGONES_SDK_GRPC_PORT`, which Agones sets in the game server's container, else 9357):
    /// Ready, health pings while `stats.ticks` advances, `stats.players_connected` as the
    /// `players` Counter with capacity `player_capacity`.
    pub fn start(
        stats: Arc<Stats>,
        player_capacity: usize,
        sdk_port: Option<u16>,
    ) -> std::io::Result<Agones> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let (done, finished) = crossbeam_channel::bounded(1);
        let capacity = i64::try_from(player_capacity).unwrap_or(i64::MAX);
        let thread = std::thread::Builder::new()
            .name("throng-agones".into())
            .spawn(move || {
                runtime.block_on(run(stats, capacity, sdk_port, stopped));
                // The Health stream's task goes with the runtime.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(Agones {
            stop,
            finished,
            thread: Some(thread),
        })
    }

    /// The link a server with `config` runs: none unless `agones = true`. A link that cannot
    /// start (no thread to be had) is logged and counted, and the server serves without it.
    pub(crate) fn for_server(config: &Config, stats: &Arc<Stats>) -> Option<Agones> {
        if !config.agones {
            return None;
        }
        match Agones::start(stats.clone(), config.max_players, None) {
            Ok(agones) => Some(agones),
            Err(error) => {
                Stats::bump(&stats.agones_errors);
                tracing::error!(%error, "cannot start the Agones SDK link; serving without it");
                None
            }
        }
    }

    /// The server is draining: stop the health pings and call Shutdown. Returns at once.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Agones {
    /// Begins the shutdown if nobody did, and waits for the Shutdown call to be answered, at
    /// most a little longer than the call may take (then the thread is left to the process's
    /// exit).
    fn drop(&mut self) {
        self.begin_shutdown();
        match self
            .finished
            .recv_timeout(CALL_PATIENCE + Duration::from_secs(1))
        {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                tracing::warn!("the Agones SDK link did not finish its Shutdown call in time");
            }
        }
    }
}

/// The thread's whole life: connect, report until stopped, then Shutdown.
async fn run(stats: Arc<Stats>, capacity: i64, port: Option<u16>, mut stop: watch::Receiver<bool>) {
    let connected = tokio::select! {
        sdk = connect(&stats, port) => Some(sdk),
        () = stopped(&mut stop) => None,
    };
    let Some(mut sdk) = connected else {
        tracing::info!("draining before the Agones sidecar answered: no Shutdown to send");
        return;
    };
    tokio::select! {
        never = ping_while_ticking(&sdk, &stats) => match never {},
        never = report(&sdk, &stats, capacity) => match never {},
        () = stopped(&mut stop) => {}
    }
    match timeout(CALL_PATIENCE, sdk.shutdown()).await {
        Ok(Ok(())) => tracing::info!("Agones told: Shutdown"),
        Ok(Err(error)) => Failures::new(&stats).failed("Shutdown", &describe(&error)),
        Err(_) => Failures::new(&stats).failed("Shutdown", "no answer in time"),
    }
}

/// Resolves once the link is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Connects to the sidecar, retrying until it answers.
async fn connect(stats: &Stats, port: Option<u16>) -> agones::Sdk {
    let mut failures = Failures::new(stats);
    loop {
        match timeout(CONNECT_PATIENCE, agones::Sdk::new(port, None)).await {
            Ok(Ok(sdk)) => {
                failures.succeeded("connect");
                tracing::info!("connected to the Agones SDK sidecar");
                return sdk;
            }
            Ok(Err(error)) => failures.failed("connect", &describe(&error)),
            Err(_) => failures.failed("connect", "no answer in time"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// One health ping a second, sent only if the tick advanced during that second.
async fn ping_while_ticking(sdk: &agones::Sdk, stats: &Stats) -> std::convert::Infallible {
    let mut failures = Failures::new(stats);
    let mut health = sdk.health_check();
    let mut every = interval_at((Instant::now() + PING_PERIOD).into(), PING_PERIOD);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heartbeat = TickWatch::new(stats.ticks.load(Ordering::Relaxed));
    loop {
        every.tick().await;
        match heartbeat.observe(stats.ticks.load(Ordering::Relaxed)) {
            Beat::Advanced => {}
            Beat::Resumed { missed } => {
                tracing::info!(
                    missed,
                    "the tick advances again; Agones health pings resume"
                );
            }
            Beat::Stalled { missed } => {
                if missed == 2 {
                    // One quiet second is jitter at tick_hz = 1; two are a stall.
                    tracing::warn!("the tick has stalled; withholding Agones health pings");
                }
                continue;
            }
        }
        match health.try_send(()) {
            Ok(()) => failures.succeeded("Health"),
            // Pings are queued behind a slow stream: the queued ones say the same.
            Err(TrySendError::Full(())) => {}
            Err(TrySendError::Closed(())) => {
                // The stream ended (the sidecar restarted or went away): open another.
                failures.failed("Health", "the health stream closed; reopening it");
                health = sdk.health_check();
                let _ = health.try_send(());
            }
        }
    }
}

/// What one look at the tick counter found.
#[derive(Debug, PartialEq, Eq)]
enum Beat {
    /// It moved, as it did at the previous look.
    Advanced,
    /// It moved after `missed` looks that found it still.
    Resumed { missed: u32 },
    /// It did not move: `missed` looks in a row.
    Stalled { missed: u32 },
}

/// The tick counter between two looks.
struct TickWatch {
    last: u64,
    missed: u32,
}

impl TickWatch {
    fn new(ticks: u64) -> TickWatch {
        TickWatch {
            last: ticks,
            missed: 0,
        }
    }

    fn observe(&mut self, ticks: u64) -> Beat {
        let moved = ticks != self.last;
        self.last = ticks;
        match (moved, self.missed) {
            (true, 0) => Beat::Advanced,
            (true, missed) => {
                self.missed = 0;
                Beat::Resumed { missed }
            }
            (false, missed) => {
                self.missed = missed.saturating_add(1);
                Beat::Stalled {
                    missed: self.missed,
                }
            }
        }
    }
}

/// Ready (until taken), then the `players` Counter: capacity once, the count on change.
async fn report(sdk: &agones::Sdk, stats: &Stats, capacity: i64) -> std::convert::Infallible {
    let mut failures = Failures::new(stats);
    let mut lifecycle = sdk.clone();
    loop {
        match timeout(CALL_PATIENCE, lifecycle.ready()).await {
            Ok(Ok(())) => break,
            Ok(Err(error)) => failures.failed("Ready", &describe(&error)),
            Err(_) => failures.failed("Ready", "no answer in time"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
    failures.succeeded("Ready");
    tracing::info!("Agones told: Ready");

    let mut counters = sdk.beta().clone();
    let mut capacity_set = false;
    let mut reported = None;
    let mut every = interval_at(Instant::now().into(), PING_PERIOD);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let players = stats.players_connected.load(Ordering::Relaxed);
        let (what, answer) = if !capacity_set {
            let call = counters.set_counter_capacity(PLAYERS_COUNTER, capacity);
            ("players capacity", timeout(CALL_PATIENCE, call).await)
        } else if reported != Some(players) {
            let count = i64::try_from(players).unwrap_or(i64::MAX);
            let call = counters.set_counter_count(PLAYERS_COUNTER, count);
            ("players count", timeout(CALL_PATIENCE, call).await)
        } else {
            continue;
        };
        match answer {
            Ok(Ok(())) => {
                failures.succeeded(what);
                if capacity_set {
                    reported = Some(players);
                } else {
                    capacity_set = true;
                    // The count goes out at once, not a second later.
                    every.reset_immediately();
                }
            }
            Ok(Err(error)) if is_not_found(&error) => {
                Stats::bump(&stats.agones_errors);
                tracing::error!(
                    counter = PLAYERS_COUNTER,
                    "the GameServer declares no `{PLAYERS_COUNTER}` Counter (spec.counters); \
                     player counts are not reported to Agones"
                );
                return std::future::pending().await;
            }
            Ok(Err(error)) => failures.failed(what, &describe(&error)),
            Err(_) => failures.failed(what, "no answer in time"),
        }
    }
}

/// Whether the sidecar answered NOT_FOUND (a Counter the GameServer spec did not declare).
fn is_not_found(error: &agones::errors::Error) -> bool {
    matches!(error, agones::errors::Error::Rpc(status) if status.code() == tonic::Code::NotFound)
}

/// An SDK error with its causes (the SDK's own messages are terse: "rpc failure").
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Counts every failed SDK call and logs a run of them without flooding the log.
struct Failures<'a> {
    stats: &'a Stats,
    in_a_row: u64,
    logged: Option<Instant>,
}

impl<'a> Failures<'a> {
    fn new(stats: &'a Stats) -> Failures<'a> {
        Failures {
            stats,
            in_a_row: 0,
            logged: None,
        }
    }

    fn failed(&mut self, call: &str, why: &str) {
        Stats::bump(&self.stats.agones_errors);
        self.in_a_row += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.logged = Some(Instant::now());
            tracing::error!(
                call,
                failures_in_a_row = self.in_a_row,
                "Agones SDK call failed; still serving, will retry: {why}"
            );
        }
    }

    fn succeeded(&mut self, call: &str) {
        if self.in_a_row > 0 {
            tracing::info!(
                call,
                after_failures = self.in_a_row,
                "Agones SDK call works again"
            );
        }
        self.in_a_row = 0;
        self.logged = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_watch_tells_a_stall_from_progress() {
        let mut watch = TickWatch::new(10);
        assert_eq!(watch.observe(30), Beat::Advanced);
        assert_eq!(watch.observe(30), Beat::Stalled { missed: 1 });
        assert_eq!(watch.observe(30), Beat::Stalled { missed: 2 });
        assert_eq!(watch.observe(31), Beat::Resumed { missed: 2 });
        assert_eq!(watch.observe(50), Beat::Advanced);
    }

    #[test]
    fn an_error_is_described_with_its_causes() {
        let error = agones::errors::Error::Rpc(tonic::Status::not_found("counter not found"));
        let text = describe(&error);
        assert!(text.starts_with("rpc failure: "), "{text}");
        assert!(text.contains("counter not found"), "{text}");
        assert!(is_not_found(&error));
        let other = agones::errors::Error::Rpc(tonic::Status::unavailable("gone"));
        assert!(!is_not_found(&other));
    }
}
