//! Persistence with real SQLite files: identity (claim, wrong secret, one login per name),
//! positions and registered components restored after a graceful restart, clear startup
//! errors for a database that cannot be used. The restart and the `kill -9` tests run
//! against PostgreSQL too (`--store postgres://...`, a throwaway cluster per test process).

use std::path::Path;

use crate::common::*;
use bevy_ecs::prelude::*;
use components::{GameApp, Position, ServerTick, TickSet};
use throng::ServerHandle;
use throng::config::{ConfigLayer, Endpoint};
use throng::persistence::handoff::Account;
use throng::protocol::{CloseReason, ServerMessage, StateFrame};
use throng_client::{Client, ClientError};

/// A component a test game makes persistent.
#[derive(Component, serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq)]
struct Coins(u32);

/// Gives every new player 5 coins.
fn starting_coins(mut commands: Commands, new: Query<Entity, (Added<Account>, Without<Coins>)>) {
    for entity in &new {
        commands.entity(entity).insert(Coins(5));
    }
}

/// The store a test runs against.
#[derive(Clone, Copy, Debug)]
enum StoreKind {
    /// The embedded default: `throng.db` in the data directory.
    Sqlite,
    /// A fresh database in this test process's PostgreSQL cluster.
    Postgres,
}

impl StoreKind {
    /// The `store` setting: empty for SQLite, else the URL of a new, empty database.
    fn setting(self) -> String {
        match self {
            StoreKind::Sqlite => String::new(),
            StoreKind::Postgres => throng_testdb::TestPostgres::shared().fresh_database(),
        }
    }

    /// Checks that the players `names` are kept where `setting` says (and not in the other
    /// store): a test that passes on the wrong store proves nothing.
    fn assert_keeps(self, setting: &str, data_dir: &Path, names: &[&str]) {
        let sqlite_file = data_dir.join("throng.db").exists();
        match self {
            StoreKind::Sqlite => assert!(sqlite_file, "SQLite keeps the players"),
            StoreKind::Postgres => {
                assert!(!sqlite_file, "no SQLite file next to a PostgreSQL store");
                let (url, listed) = (setting.to_owned(), names.join(","));
                // The sync client cannot run on an async test's runtime thread.
                let kept: i64 = std::thread::spawn(move || {
                    postgres::Client::connect(&url, postgres::NoTls)
                        .unwrap()
                        .query_one(
                            "SELECT count(*) FROM players \
                             WHERE name = ANY(string_to_array($1, ','))",
                            &[&listed],
                        )
                        .unwrap()
                        .get(0)
                })
                .join()
                .unwrap();
                assert_eq!(kept as usize, names.len(), "PostgreSQL keeps the players");
            }
        }
    }

    /// The binary's flags for `setting`.
    fn flags(setting: &str) -> Vec<&str> {
        if setting.is_empty() {
            Vec::new()
        } else {
            // A killed server's holds end after a second (the default is 15 s).
            vec!["--store", setting, "--online-lease-s", "1"]
        }
    }
}

fn server_on(data_dir: &Path) -> ServerHandle {
    server_on_store(data_dir, "")
}

/// [`server_on`] with the `store` setting `store` (empty: SQLite in `data_dir`).
fn server_on_store(data_dir: &Path, store: &str) -> ServerHandle {
    server_with_store(data_dir, store, |app| {
        app.add_systems(ServerTick, starting_coins.in_set(TickSet::Simulate))
            .persist::<Coins>("coins");
    })
}

fn server_with(data_dir: &Path, game: impl FnOnce(&mut bevy_app::App)) -> ServerHandle {
    server_with_store(data_dir, "", game)
}

fn server_with_store(
    data_dir: &Path,
    store: &str,
    game: impl FnOnce(&mut bevy_app::App),
) -> ServerHandle {
    let config = ConfigLayer {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tick_hz: Some(50),
        metrics: Some(Endpoint::Off),
        web: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        stats_interval_s: Some(0.0),
        world_size: Some(500.0),
        data_dir: Some(data_dir.to_owned()),
        store: Some(store.to_owned()),
        save_interval_s: Some(0.2),
        game: Some(no_npcs()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    ServerHandle::start_with(config, |app| {
        app.add_plugins(systems::GamePlugins);
        game(app);
    })
    .expect("server starts")
}

/// The same component under a new Rust name, registered under the same stable name.
#[derive(Component, serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq)]
struct Purse(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_the_rust_type_keeps_saved_rows_and_the_wire_name() {
    let dir = fresh_data_dir("rename");
    let server = server_with(dir.path(), |app| {
        app.add_systems(ServerTick, starting_coins.in_set(TickSet::Simulate))
            .persist::<Coins>("coins")
            .replicate::<Coins>("coins");
    });
    let client = login(&server, "renamer", &secret_of("renamer"))
        .await
        .unwrap();
    let before = client.schema().components.clone();
    eventually("coins given", || {
        server
            .with_world(|world| world.query::<&Coins>().iter(world).count())
            .unwrap()
            == 1
    })
    .await;
    client.goodbye().await.unwrap();
    server.shutdown();

    let server = server_with(dir.path(), |app| {
        app.persist::<Purse>("coins").replicate::<Purse>("coins");
    });
    let client = login(&server, "renamer", &secret_of("renamer"))
        .await
        .unwrap();
    assert_eq!(client.schema().components, before, "same wire names");
    let kind = client.component_kind("coins").unwrap();
    let purses = server
        .with_world(|world| {
            world
                .query::<&Purse>()
                .iter(world)
                .copied()
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(
        purses,
        [Purse(5)],
        "the saved row loads into the renamed type"
    );
    assert!(usize::from(kind) < before.len());
}

async fn login(server: &ServerHandle, name: &str, secret: &str) -> Result<Client, ClientError> {
    Client::connect(server.local_addr(), name, secret).await
}

/// The client's own position in `frame` (wire units), if the frame mentions it.
fn own_position(client: &Client, frame: &StateFrame, last: &mut Option<[i64; 2]>) {
    let me = client.player_id();
    if let Some(spawn) = frame.spawned.iter().find(|s| s.id == me) {
        *last = Some([i64::from(spawn.x), i64::from(spawn.y)]);
    }
    if let Some(update) = frame.updated.iter().find(|u| u.id == me)
        && let Some([x, y]) = last
    {
        *x += i64::from(update.dx);
        *y += i64::from(update.dy);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_login_claims_a_name_and_only_its_secret_opens_it_again() {
    let dir = fresh_data_dir("identity");
    let server = server_on(dir.path());
    let ann = login(&server, "ann", "ann-secret-1")
        .await
        .expect("claimed");
    assert_eq!(
        refusal_reason(login(&server, "ann", "ann-secret-1").await),
        CloseReason::AlreadyOnline,
        "a second login of an online name is refused"
    );
    ann.goodbye().await.unwrap();
    // A wrong secret is refused as such, online or not (the secret is checked first).
    assert_eq!(
        refusal_reason(login(&server, "ann", "not-the-secret").await),
        CloseReason::BadCredentials
    );
    assert_eq!(
        refusal_reason(login(&server, "bob", "short").await),
        CloseReason::BadCredentials,
        "a secret under 8 bytes"
    );
    // The name stays online until the final save of the first session has committed; then
    // the right secret opens it.
    let started = std::time::Instant::now();
    loop {
        match login(&server, "ann", "ann-secret-1").await {
            Ok(_) => break,
            Err(ClientError::Refused(r)) if r.reason == CloseReason::AlreadyOnline => {}
            Err(other) => panic!("the right secret logs in: {other}"),
        }
        assert!(started.elapsed() < HANG_GUARD, "the name never came free");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server.stats().closes(CloseReason::BadCredentials), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_and_persistent_components_survive_a_graceful_restart() {
    graceful_restart(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_and_persistent_components_survive_a_graceful_restart_on_postgres() {
    graceful_restart(StoreKind::Postgres).await;
}

async fn graceful_restart(kind: StoreKind) {
    let dir = fresh_data_dir("restart");
    let store = kind.setting();
    let names = ["walker0", "walker1", "walker2"];
    let mut last_seen = Vec::new();
    {
        let server = server_on_store(dir.path(), &store);
        for (i, name) in names.iter().enumerate() {
            let mut client = login(&server, name, &secret_of(name)).await.unwrap();
            let mut position = None;
            // Walk for 30 frames, then stand still until the position is stable.
            let dir_x = [127, -127, 0][i];
            client.send_input(1, dir_x, 60).await.unwrap();
            for _ in 0..30 {
                let frame = next_frame(&mut client).await;
                own_position(&client, &frame, &mut position);
            }
            client.send_input(2, 0, 0).await.unwrap();
            loop {
                let frame = next_frame(&mut client).await;
                own_position(&client, &frame, &mut position);
                if frame.ack_seq == 2 && !frame.updated.iter().any(|u| u.id == client.player_id()) {
                    break;
                }
            }
            last_seen.push((position.expect("own position"), client));
        }
        // Some coins change while online: the persistent component is saved too.
        let before = server
            .with_world(|world| {
                let mut coins = world.query::<&mut Coins>();
                let mut seen = Vec::new();
                for mut c in coins.iter_mut(world) {
                    c.0 += 10;
                    seen.push(c.0);
                }
                seen
            })
            .unwrap();
        assert_eq!(
            before,
            vec![15, 15, 15],
            "every player got 5 coins, then 10 more"
        );
        server.shutdown();
        for (_, client) in &mut last_seen {
            // Every player is told, and the shutdown saved them.
            loop {
                match client.recv().await {
                    Ok(ServerMessage::Close(refusal)) => {
                        assert_eq!(refusal.reason, CloseReason::Shutdown);
                        break;
                    }
                    Ok(_) => continue,
                    Err(error) => panic!("{error}"),
                }
            }
        }
    }

    let server = server_on_store(dir.path(), &store);
    let mut online = Vec::new();
    for (name, (position, _)) in names.iter().zip(&last_seen) {
        let mut client = login(&server, name, &secret_of(name)).await.unwrap();
        let mut restored = None;
        let frame = next_frame(&mut client).await;
        own_position(&client, &frame, &mut restored);
        assert_eq!(restored, Some(*position), "{name} is back where it stopped");
        online.push(client);
    }
    let coins = server
        .with_world(|world| {
            let mut coins = world.query::<&Coins>();
            coins.iter(world).map(|c| c.0).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(
        coins,
        vec![15, 15, 15],
        "5 at the start, 10 more while online"
    );
    let positions = server
        .with_world(|world| world.query::<&Position>().iter(world).count())
        .unwrap();
    assert_eq!(positions, 3);
    kind.assert_keeps(&store, dir.path(), &names);
}

/// Starts the binary on `dir`, expects it to exit 1 at once; returns what it printed.
fn failed_start(dir: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_throng"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--web",
            "off",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn a_data_file_that_is_not_a_database_stops_the_binary_with_a_clear_error() {
    let dir = fresh_data_dir("garbage");
    std::fs::write(dir.path().join("throng.db"), vec![0x42u8; 8192]).unwrap();
    let stderr = failed_start(dir.path());
    assert!(
        stderr.contains("cannot open the player database") && stderr.contains("not a database"),
        "{stderr}"
    );
}

#[test]
fn a_database_held_by_a_running_server_stops_a_second_one_with_a_clear_error() {
    let dir = fresh_data_dir("locked");
    let _first = server_on(dir.path());
    let stderr = failed_start(dir.path());
    assert!(stderr.contains("locked"), "{stderr}");
}

/// Wire units a player walks per tick (5 world units at 8 wire units each).
const WIRE_STEP: i64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_player_is_back_where_it_was_at_most_one_save_interval_earlier() {
    after_kill_9(StoreKind::Sqlite).await;
}

/// The same on PostgreSQL: the players the killed server held online are released when it
/// starts again (same owner name), so they log straight back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_on_postgres_every_player_is_back_at_most_one_save_interval_earlier() {
    after_kill_9(StoreKind::Postgres).await;
}

async fn after_kill_9(kind: StoreKind) {
    use rand::Rng;
    let dir = fresh_data_dir("kill9");
    let world_wire = 2000 * 8;
    let store = kind.setting();
    let mut args = vec![
        "--tick-hz",
        "20",
        "--world-size",
        "2000",
        "--save-interval-s",
        "1",
    ];
    args.extend(StoreKind::flags(&store));
    let interval_ticks = 20;
    let mut server = ServerProcess::start_in(dir.path(), &args);
    let names: Vec<String> = (0..10).map(|i| format!("runner{i}")).collect();
    let mut players = Vec::new();
    for name in &names {
        let mut client = Client::connect(server.addr, name, &secret_of(name))
            .await
            .unwrap();
        client.send_input(1, 127, 0).await.unwrap(); // walk east, for good
        players.push((client, Vec::<(u32, [i64; 2])>::new(), None::<[i64; 2]>));
    }
    // A random moment, from a seed printed so that a failure can be replayed
    // (THRONG_TEST_SEED=... cargo test -p throng --test it after_kill).
    let kill_after = std::time::Duration::from_millis(
        seeded_rng(&format!("kill -9 test, {kind:?}")).random_range(1500..4000),
    );
    let started = std::time::Instant::now();
    // Every client reads up to the newest tick any of them has seen, so that the ones that
    // connected first (and have frames queued from while the others connected) keep up.
    let mut newest = 0;
    while started.elapsed() < kill_after {
        for (client, history, position) in &mut players {
            loop {
                let frame = next_frame(client).await;
                own_position(client, &frame, position);
                if let Some(position) = *position {
                    history.push((frame.tick, position));
                }
                newest = newest.max(frame.tick);
                if frame.tick >= newest {
                    break;
                }
            }
        }
    }
    server.signal("KILL");
    tokio::task::block_in_place(|| server.wait());

    let server = ServerProcess::start_in(dir.path(), &args);
    for (name, (_, history, _)) in names.iter().zip(&players) {
        let mut client = crate::common::connect_when_released(server.addr, name).await;
        let mut restored = None;
        let frame = next_frame(&mut client).await;
        own_position(&client, &frame, &mut restored);
        let [x, y] = restored.expect("own entity in the first frame");
        let &(last_tick, [last_x, last_y]) = history.last().expect("frames before the kill");
        assert_eq!(y, last_y, "{name} walked east only");
        // Ticks between the last position the client saw and the restored one (negative:
        // older), along the walk, across the world's wrap.
        let ahead = (x - last_x).rem_euclid(world_wire);
        let ahead = if ahead > world_wire / 2 {
            ahead - world_wire
        } else {
            ahead
        };
        assert_eq!(ahead % WIRE_STEP, 0, "{name}: a position on its walk");
        let ticks = ahead / WIRE_STEP;
        assert!(
            ticks >= -(interval_ticks + 1) && ticks <= 3,
            "{name}: restored {ticks} ticks from the last position seen (tick {last_tick}); \
             at most one save interval ({interval_ticks} ticks) plus one earlier"
        );
        eprintln!(
            "{name}: restored at {ticks} ticks from the last seen (killed after {kill_after:?}, \
             {kind:?})"
        );
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    kind.assert_keeps(&store, dir.path(), &names);
}
