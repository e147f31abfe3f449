//! Agones (`--features agones`): the server's SDK calls, against the stand-in sidecar of
//! tools/agones-sidecar (the SDK's gRPC services built from the SDK's own protos, recording
//! what it receives). No Kubernetes runs here: what Agones then does with the calls (marking
//! a GameServer Unhealthy, deleting its Pod) is for a real cluster (docs/AGONES.md).
//!
//! The real binary is run with `--agones true` and `AGONES_SDK_GRPC_PORT` in its environment,
//! as Agones runs it; the heartbeat test drives the link itself with counters it sets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use throng::agones::{Agones, PLAYERS_COUNTER};
use throng::protocol::ServerMessage;
use throng::stats::Stats;
use throng_agones_sidecar::{Call, Counter, Snapshot, StandIn};
use throng_client::Client;

use crate::common::server_process::throng_command;
use crate::common::{HANG_GUARD, TempDir, fresh_data_dir, secret_of};

/// A `players` Counter as a GameServer spec would declare it.
fn players_counter(capacity: i64) -> [(&'static str, Counter); 1] {
    [(PLAYERS_COUNTER, Counter { count: 0, capacity })]
}

/// The `players` Counter the sidecar holds now.
fn players(seen: &Snapshot) -> Counter {
    seen.counters[PLAYERS_COUNTER]
}

/// The `throng` binary with `--agones true`, its SDK port pointed at `sdk_port`; its log kept
/// in its data directory for the failure messages. Killed if the test ends first.
struct AgonesServer {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    data_dir: TempDir,
}

impl AgonesServer {
    fn start(sdk_port: u16, args: &[&str]) -> AgonesServer {
        let data_dir = fresh_data_dir("agones");
        let log = std::fs::File::create(data_dir.path().join("server.log")).unwrap();
        let mut child = throng_command(data_dir.path())
            .args(["--agones", "true", "--stats-interval-s", "0"])
            // The test's clients sit idle between steps: no idle or slow-reader kicks.
            .args(["--idle-timeout-s", "600", "--slow-reader-kick-s", "600"])
            .args(args)
            .env("AGONES_SDK_GRPC_PORT", sdk_port.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the server binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = |prefix: &str| -> SocketAddr {
            let line = lines.next().expect("a line").expect("utf-8");
            assert!(line.starts_with(prefix), "unexpected line {line:?}");
            let last = line.rsplit(' ').next().unwrap();
            let addr = last
                .trim_start_matches("http://")
                .trim_end_matches("/metrics");
            addr.trim_end_matches('/').parse().expect("an address")
        };
        let addr = next("throng listening on");
        let metrics = next("throng metrics on");
        // Read, not left in the pipe (the server must not depend on it, but should not try).
        let _web = next("throng web on");
        AgonesServer {
            child,
            addr,
            metrics,
            data_dir,
        }
    }

    /// The server's log so far (for failure messages).
    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGTERM, as Kubernetes sends a terminating Pod; then waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a child's pid and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < HANG_GUARD,
                "no exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AgonesServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded by the hang guard) for what the sidecar has seen to satisfy `condition`.
async fn until(
    sidecar: &StandIn,
    what: &str,
    log: impl Fn() -> String,
    condition: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    match sidecar.until(HANG_GUARD, condition).await {
        Some(seen) => seen,
        None => panic!(
            "never happened: {what}; the sidecar saw {:?}\nserver log:\n{}",
            sidecar.snapshot(),
            log()
        ),
    }
}

async fn player(server: &AgonesServer, name: &str) -> Client {
    let secret = secret_of(name);
    tokio::time::timeout(HANG_GUARD, Client::connect(server.addr, name, &secret))
        .await
        .expect("welcomed in time")
        .expect("welcomed")
}

/// Receives `n` state frames (the server is serving this client).
async fn frames(client: &mut Client, n: usize) {
    let mut seen = 0;
    while seen < n {
        let message = tokio::time::timeout(HANG_GUARD, client.recv()).await;
        if let ServerMessage::Frame(_) = message.expect("a frame in time").expect("recv") {
            seen += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_tells_agones_ready_health_player_counts_and_shutdown() {
    let sidecar = StandIn::start(&players_counter(1000)).await.unwrap();
    let mut server = AgonesServer::start(sidecar.port(), &["--max-players", "50"]);
    let log = || server.log();

    let seen = until(&sidecar, "Ready", log, |s| s.count(&Call::Ready) == 1).await;
    assert_eq!(seen.state, "Ready");
    // The Counter's capacity is the server's max_players, whatever the spec declared.
    until(&sidecar, "capacity 50, count 0", log, |s| {
        players(s)
            == Counter {
                count: 0,
                capacity: 50,
            }
    })
    .await;
    // Pings keep arriving while the tick advances.
    let pings = until(&sidecar, "3 pings", log, |s| s.health_pings() >= 3).await;
    let pings = pings.health_pings();
    until(&sidecar, "2 more pings", log, |s| {
        s.health_pings() >= pings + 2
    })
    .await;

    let mut a = player(&server, "agones-a").await;
    let mut b = player(&server, "agones-b").await;
    frames(&mut a, 2).await;
    frames(&mut b, 2).await;
    until(&sidecar, "2 players", log, |s| players(s).count == 2).await;
    a.goodbye().await.unwrap();
    until(&sidecar, "1 player", log, |s| players(s).count == 1).await;

    let exit = tokio::task::block_in_place(|| server.terminate());
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    // The server waits for the Shutdown call to be answered before it exits.
    let seen = sidecar.snapshot();
    assert_eq!(seen.count(&Call::Shutdown), 1, "{seen:?}\n{}", server.log());
    assert_eq!(seen.state, "Shutdown");
    assert_eq!(seen.count(&Call::Ready), 1);
    assert!(seen.position(&Call::Ready) < seen.position(&Call::Shutdown));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sidecar_leaves_the_server_serving() {
    // A port that takes connections into its backlog and never answers: the SDK's calls hang
    // rather than fail fast (a refused port would be the easy case).
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let mut server = AgonesServer::start(port, &[]);
    let mut client = player(&server, "agones-alone").await;
    frames(&mut client, 3).await;

    let started = std::time::Instant::now();
    let errors = loop {
        let scrape = throng_scrape::scrape(server.metrics, Duration::from_secs(10)).unwrap();
        let errors = scrape.value("throng_agones_errors_total").unwrap_or(0.0);
        if errors >= 1.0 {
            break errors;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "no Agones error counted; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(errors >= 1.0);
    assert!(
        server.log().contains("Agones SDK call failed"),
        "the failure is logged:\n{}",
        server.log()
    );
    // Still ticking and serving after the failures.
    frames(&mut client, 5).await;
    let exit = tokio::task::block_in_place(|| server.terminate());
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    drop(black_hole);
}

/// Bumps `stats.ticks` every 10 ms while `ticking` is set, as the tick loop does per tick.
fn fake_tick_loop(stats: Arc<Stats>, ticking: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if ticking.load(Ordering::Relaxed) {
                Stats::bump(&stats.ticks);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_pings_stop_while_the_tick_stalls_and_counts_follow_the_players() {
    let sidecar = StandIn::start(&players_counter(1000)).await.unwrap();
    let stats = Arc::new(Stats::default());
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = fake_tick_loop(stats.clone(), ticking.clone());
    let agones = Agones::start(stats.clone(), 10, Some(sidecar.port())).unwrap();
    let log = String::new;

    until(&sidecar, "Ready", log, |s| s.count(&Call::Ready) == 1).await;
    until(&sidecar, "2 pings", log, |s| s.health_pings() >= 2).await;

    ticking.store(false, Ordering::Relaxed);
    // The premise is time: a stall of several ping periods. The first two seconds let a ping
    // sent just before the stall was seen arrive; the next three must bring none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = sidecar.snapshot().health_pings();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sidecar.snapshot().health_pings(),
        stalled,
        "no health ping while the tick stands still"
    );

    ticking.store(true, Ordering::Relaxed);
    until(&sidecar, "pings resume", log, |s| {
        s.health_pings() >= stalled + 2
    })
    .await;

    until(&sidecar, "capacity 10", log, |s| players(s).capacity == 10).await;
    stats.players_connected.store(7, Ordering::Relaxed);
    until(&sidecar, "7 players", log, |s| players(s).count == 7).await;
    stats.players_connected.store(3, Ordering::Relaxed);
    until(&sidecar, "3 players", log, |s| players(s).count == 3).await;
    assert_eq!(stats.agones_errors.load(Ordering::Relaxed), 0);

    // Dropping the link is the end of the drain: Shutdown has been answered once it returns.
    tokio::task::block_in_place(|| drop(agones));
    assert_eq!(sidecar.snapshot().count(&Call::Shutdown), 1);
    ticker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gameserver_without_a_players_counter_still_gets_ready_and_pings() {
    // No Counter declared: the sidecar answers NOT_FOUND, as on a cluster whose GameServer
    // spec lacks `counters: {players: ...}`.
    let sidecar = StandIn::start(&[]).await.unwrap();
    let stats = Arc::new(Stats::default());
    let ticker = fake_tick_loop(stats.clone(), Arc::new(AtomicBool::new(true)));
    stats.players_connected.store(2, Ordering::Relaxed);
    let agones = Agones::start(stats.clone(), 10, Some(sidecar.port())).unwrap();
    let log = String::new;

    let refused = |s: &Snapshot| {
        s.calls
            .iter()
            .filter(|c| matches!(c, Call::UpdateCounter { .. }))
            .count()
    };
    let seen = until(&sidecar, "a Counter update", log, |s| refused(s) == 1).await;
    assert_eq!(seen.count(&Call::Ready), 1);
    let pings = seen.health_pings();
    until(&sidecar, "3 more pings", log, |s| {
        s.health_pings() >= pings + 3
    })
    .await;
    // Refused once, counted once, not retried every second.
    assert_eq!(refused(&sidecar.snapshot()), 1);
    assert_eq!(stats.agones_errors.load(Ordering::Relaxed), 1);

    agones.begin_shutdown();
    tokio::task::block_in_place(|| drop(agones));
    assert_eq!(sidecar.snapshot().count(&Call::Shutdown), 1);
    ticker.abort();
}
