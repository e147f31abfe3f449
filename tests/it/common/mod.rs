//! Helpers shared by the end-to-end tests: real servers on loopback, real clients.
#![allow(dead_code)]

pub mod bots;
pub mod server_process;
pub mod ws;
#[allow(unused_imports)]
pub use server_process::ServerProcess;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use bevy_ecs::world::World;
use components::NetId;
use components::Position;
use throng::ServerHandle;
use throng::config::{Config, ConfigLayer, Endpoint};
use throng::protocol::{
    ClientMessage, Hello, PROTOCOL_VERSION, Refusal, ServerMessage, StateFrame,
    decode_server_message, frame_bytes, quantize,
};
use throng_client::{Client, Mirror};
use throng_protocol::framing::FrameReader;

pub use tempfile::TempDir;

/// Guards against a hung test; never a speed assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// A server started by [`start_server`]: the [`ServerHandle`] (through `Deref`) and, unless
/// the test chose the data directory, the temporary one it owns. The server stops before the
/// directory is removed (fields drop in order; dropping a `ServerHandle` shuts it down and
/// joins its threads, the database's included).
pub struct TestServer {
    handle: ServerHandle,
    _data_dir: Option<TempDir>,
}

impl TestServer {
    /// `handle`, owning `data_dir` (removed once the server has stopped).
    pub fn owning(handle: ServerHandle, data_dir: Option<TempDir>) -> TestServer {
        TestServer {
            handle,
            _data_dir: data_dir,
        }
    }

    /// Graceful shutdown ([`ServerHandle::shutdown`]), then the owned directory goes.
    pub fn shutdown(self) {
        self.handle.shutdown();
    }
}

impl Deref for TestServer {
    type Target = ServerHandle;

    fn deref(&self) -> &ServerHandle {
        &self.handle
    }
}

/// Starts a server on an ephemeral loopback port with `settings` over test defaults; its
/// data directory is a fresh temporary one unless `settings` names one (a test that restarts
/// a server on the same data owns that directory itself).
pub fn start_server(settings: ConfigLayer) -> TestServer {
    start_server_with(settings, |app| {
        app.add_plugins(systems::GamePlugins);
    })
}

/// Like [`start_server`], with the game added to the app by `game` (as
/// [`ServerHandle::start_with`]).
pub fn start_server_with(
    settings: ConfigLayer,
    game: impl FnOnce(&mut bevy_app::App),
) -> TestServer {
    let owned = settings
        .data_dir
        .is_none()
        .then(|| fresh_data_dir("server"));
    let defaults = ConfigLayer {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tick_hz: Some(50),
        stats_interval_s: Some(0.0),
        metrics: Some(Endpoint::Off),
        web: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        net_threads: Some(2),
        sim_threads: Some(2),
        // Generous slack so a test process starved by a busy CI machine is not treated as
        // a slow reader (which would turn exact frame sequences into resyncs).
        outbound_buffers: Some(64),
        data_dir: owned.as_ref().map(|dir| dir.path().to_owned()),
        // Every test client connects from 127.0.0.1: no per-address caps unless a test
        // sets them.
        max_players_per_addr: Some(1 << 20),
        max_handshakes_per_addr: Some(1 << 20),
        // Only the test's own players in the world: no NPC walkers.
        game: Some(no_npcs()),
        ..Default::default()
    };
    let handle = ServerHandle::start_with(
        settings
            .over(defaults)
            .resolve()
            .expect("valid test config"),
        game,
    )
    .expect("server starts");
    TestServer::owning(handle, owned)
}

/// `[game]` settings of a world with no NPC walkers.
pub fn no_npcs() -> toml::Table {
    toml::from_str("[snowball]\nnpcs = 0").expect("valid TOML")
}

/// Connects a client named `name`.
pub async fn connect(server: &ServerHandle, name: &str) -> Client {
    tokio::time::timeout(
        HANG_GUARD,
        Client::connect(server.local_addr(), name, &secret_of(name)),
    )
    .await
    .expect("connect in time")
    .expect("welcomed")
}

/// Receives the next state frame, skipping pongs.
pub async fn next_frame(client: &mut Client) -> StateFrame {
    loop {
        let message = tokio::time::timeout(HANG_GUARD, client.recv())
            .await
            .expect("a frame in time")
            .expect("recv");
        match message {
            ServerMessage::Frame(frame) => return frame,
            ServerMessage::Pong { .. } => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Applies frames until the mirror has reached `tick`.
pub async fn sync_to(client: &mut Client, mirror: &mut Mirror, tick: u64) {
    while u64::from(mirror.tick) < tick {
        let frame = next_frame(client).await;
        mirror.apply(&frame).expect("frame is consistent");
    }
}

/// Wire positions of every replicated entity, by wire id.
pub fn wire_positions(world: &mut World) -> BTreeMap<u32, [u32; 2]> {
    let mut query = world.query::<(&NetId, &Position)>();
    query
        .iter(world)
        .map(|(id, p)| (id.0, [quantize(p.x), quantize(p.y)]))
        .collect()
}

/// The server's replicated state (wire positions by wire id) and its tick, taken right after
/// tick `after` (0: the next tick).
pub fn server_state(server: &ServerHandle, after: u64) -> (u64, BTreeMap<u32, [u32; 2]>) {
    server
        .with_world_after(after, |world| {
            let tick = world.resource::<components::TickClock>().tick;
            (tick, wire_positions(world))
        })
        .expect("tick thread alive")
}

/// The interest rule of docs/PROTOCOL.md, written out independently of the server's grid:
/// the entities of `state` that `viewer` sees (at most the interest radius away, in wire
/// units).
pub fn expected_view(
    state: &BTreeMap<u32, [u32; 2]>,
    viewer: u32,
    config: &Config,
) -> BTreeMap<u32, [u32; 2]> {
    let radius = (config.interest_radius * 8.0).round() as i64;
    let [vx, vy] = state[&viewer].map(i64::from);
    state
        .iter()
        .filter(|(_, w)| {
            let (dx, dy) = (i64::from(w[0]) - vx, i64::from(w[1]) - vy);
            dx * dx + dy * dy <= radius * radius
        })
        .map(|(id, w)| (*id, *w))
        .collect()
}

/// Moves entity `id` to `(x, y)` between two ticks (a jump, as a teleport would be).
pub fn teleport(server: &ServerHandle, id: u32, x: f32, y: f32) -> u64 {
    server
        .with_world(move |world| {
            let mut query = world.query::<(&NetId, &mut Position)>();
            for (net_id, mut position) in query.iter_mut(world) {
                if net_id.0 == id {
                    *position = Position::new(x, y);
                }
            }
            world.resource::<components::TickClock>().tick
        })
        .expect("tick thread alive")
}

/// The mirror as wire positions by id.
pub fn mirror_state(mirror: &Mirror) -> BTreeMap<u32, [u32; 2]> {
    mirror
        .entities
        .iter()
        .map(|(id, e)| (*id, e.wire))
        .collect()
}

/// Waits (bounded by [`HANG_GUARD`]) until `condition` holds; for counters that the server
/// updates just after the event a test observed.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < HANG_GUARD, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads `stream` until the server closes it; returns the last Reject or Close it sent and
/// whether it was a Close (an open session) rather than a Reject, plus the state frames seen.
pub async fn read_to_refusal(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> (Refusal, bool, usize) {
    use tokio::io::AsyncReadExt;
    let mut reader = FrameReader::new(1 << 20);
    let (mut answer, mut frames) = (None, 0);
    loop {
        while let Some(body) = reader.next_frame().unwrap() {
            match decode_server_message(body).unwrap() {
                ServerMessage::Reject(r) => answer = Some((r, false)),
                ServerMessage::Close(r) => answer = Some((r, true)),
                ServerMessage::Frame(_) => frames += 1,
                _ => {}
            }
        }
        let n = tokio::time::timeout(HANG_GUARD, stream.read(reader.spare()))
            .await
            .expect("the server answers")
            .unwrap_or(0);
        if n == 0 {
            let (refusal, open) = answer.expect("a refusal before the socket closed");
            return (refusal, open, frames);
        }
        reader.filled(n);
    }
}

/// The secret tests log `name` in with.
pub fn secret_of(name: &str) -> String {
    format!("test-secret-of-{name}")
}

/// Hello frame bytes for `name` (with its test secret).
pub fn hello(name: &str) -> Vec<u8> {
    frame_bytes(&ClientMessage::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        secret: secret_of(name),
    }))
}

/// A fresh, empty data directory for the servers of one test, removed with everything in it
/// when dropped (keep it alive as long as a server uses it).
pub fn fresh_data_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("throng-test-{tag}-"))
        .tempdir()
        .expect("a temporary directory")
}

/// The seed of a test's randomness: `THRONG_TEST_SEED` if set (to replay a failure), else a
/// random one; printed either way (libtest shows a test's output when it fails).
pub fn test_seed(what: &str) -> u64 {
    let seed = std::env::var("THRONG_TEST_SEED")
        .ok()
        .map(|seed| {
            seed.parse()
                .unwrap_or_else(|_| panic!("THRONG_TEST_SEED={seed:?} is not a u64"))
        })
        .unwrap_or_else(rand::random::<u64>);
    println!("{what} seed: THRONG_TEST_SEED={seed}");
    seed
}

/// A random generator seeded by [`test_seed`]: every random choice a test makes goes
/// through one, so a failing run can be replayed.
pub fn seeded_rng(what: &str) -> rand::rngs::SmallRng {
    use rand::SeedableRng;
    rand::rngs::SmallRng::seed_from_u64(test_seed(what))
}

/// Held by each soak test for its whole run, so that the soaks run one at a time whatever
/// `--test-threads` says: each loads a small machine fully, and their well-behaved bots must
/// miss no frame, which another soak's load beside them (in this one process) can break.
pub async fn soak_alone() -> tokio::sync::MutexGuard<'static, ()> {
    static SOAK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SOAK.lock().await
}

/// Raises this test process's open-file limit (tests with thousands of sockets).
pub fn raise_fd_limit() {
    throng_host::fd_limit::raise_fd_limit().expect("raise the open-file limit");
}

/// Connections refused for `reason` in a scrape (`throng_connections_rejected_total`).
pub fn rejected(scrape: &throng_scrape::Scrape, reason: throng::protocol::CloseReason) -> f64 {
    scrape
        .labelled(
            "throng_connections_rejected_total",
            "reason",
            reason.as_str(),
        )
        .expect("every reason is exported")
}

/// Open sessions closed for `reason` in a scrape (`throng_kicks_total`).
pub fn kicked(scrape: &throng_scrape::Scrape, reason: throng::protocol::CloseReason) -> f64 {
    scrape
        .labelled("throng_kicks_total", "reason", reason.as_str())
        .expect("every reason is exported")
}

/// A TCP connection to `server` from the loopback address `127.0.0.<from>` (per-address
/// budgets see each as another client).
pub async fn connect_from(server: &ServerHandle, from: u8) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, from], 0)))
        .unwrap();
    socket.connect(server.local_addr()).await.unwrap()
}

/// Logs `name` in with `secret` from `127.0.0.<from>`.
pub async fn login_from(
    server: &ServerHandle,
    from: u8,
    name: &str,
    secret: &str,
) -> Result<Client, throng_client::ClientError> {
    let stream = connect_from(server, from).await;
    tokio::time::timeout(HANG_GUARD, Client::handshake(stream, name, secret))
        .await
        .expect("an answer in time")
}

/// The reason of a refused login (panics if it was not refused).
pub fn refusal_reason(
    result: Result<Client, throng_client::ClientError>,
) -> throng::protocol::CloseReason {
    match result {
        Err(throng_client::ClientError::Refused(refusal)) => refusal.reason,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a session"),
    }
}

/// Connections refused for `reason` so far (the server's counter).
pub fn rejects(server: &ServerHandle, reason: throng::protocol::CloseReason) -> u64 {
    server.stats().rejects_by_reason[reason.index()]
}

/// Logs `name` in at `addr`, retrying while a killed server still holds it online (a shared
/// store's hold lasts until its lease ends: `--online-lease-s`).
pub async fn connect_when_released(addr: std::net::SocketAddr, name: &str) -> Client {
    let started = std::time::Instant::now();
    loop {
        match Client::connect(addr, name, &secret_of(name)).await {
            Ok(client) => return client,
            Err(throng_client::ClientError::Refused(refusal))
                if refusal.reason == throng::protocol::CloseReason::AlreadyOnline =>
            {
                assert!(
                    started.elapsed() < crate::common::HANG_GUARD,
                    "{name} never released: {}",
                    refusal.detail
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{name} cannot log in: {error}"),
        }
    }
}
