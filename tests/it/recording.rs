//! Recording and replay: a live session over sockets replays bit-exact, and each client's
//! frames equal the ones the replay produces for it; a system that breaks determinism shows
//! up at its tick; a recording cut by kill -9 replays up to its last whole tick; damaged,
//! foreign and unwritable recordings get clear errors while the server keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use components::{Position, ServerTick, TickClock, TickSet};
use rand::Rng;
use serde::Serialize;
use systems::snowball::{Npc, Throw};
use throng::config::{Config, ConfigLayer};
use throng::harness::Harness;
use throng::protocol::{ServerMessage, decode_server_message};
use throng::recording::format::{CHUNK_TICKS, Entry, SegmentReader, entries, first_tick};
use throng::recording::{DigestCheck, Replay, ReplayError};
use throng_client::Client;

use crate::common::{
    HANG_GUARD, ServerProcess, TempDir, bots, connect, eventually, seeded_rng, start_server,
    start_server_with,
};

fn game(app: &mut App) {
    app.add_plugins(systems::GamePlugins);
}

/// The one segment file a short recording in `dir` has.
fn recording_in(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the recording directory exists")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "one segment: {files:?}");
    files.remove(0)
}

/// Ticks in the whole chunks of a segment, and whether it ends with a damaged chunk; `None`
/// while its header is not written yet.
fn whole_ticks(path: &Path) -> Option<(u64, bool)> {
    let bytes = std::fs::read(path).ok()?;
    let (_, mut reader) = SegmentReader::open(&bytes).ok()?;
    let mut last = 0;
    loop {
        match reader.next_chunk() {
            None => return Some((last, false)),
            Some(Err(_)) => return Some((last, true)),
            Some(Ok((kind, payload))) => {
                assert_eq!(kind, CHUNK_TICKS);
                assert_eq!(first_tick(payload), Some(last + 1));
                last += entries(payload)
                    .filter(|entry| matches!(entry, Ok(Entry::Tick(_))))
                    .count() as u64;
            }
        }
    }
}

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("encode")
}

/// What one client session saw: its Welcome and every frame, as bytes.
struct Session {
    name: String,
    messages: Vec<Vec<u8>>,
}

/// Walks (a new random direction now and then), throws about once a second, and leaves
/// after `leave_after_frames` frames if given, else once it has seen tick `last_tick`.
async fn play(
    mut client: Client,
    name: String,
    seed: u64,
    leave_after_frames: Option<usize>,
    last_tick: u32,
) -> Session {
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut messages = vec![client.welcome_bytes().to_vec()];
    let mut direction = (0i8, 0i8);
    loop {
        let bytes = tokio::time::timeout(HANG_GUARD, client.recv_bytes())
            .await
            .expect("a frame in time")
            .expect("the connection stays open");
        let message = decode_server_message(&bytes).expect("a server message");
        messages.push(bytes);
        let ServerMessage::Frame(frame) = message else {
            panic!("{name}: only frames after the Welcome, got {message:?}");
        };
        if rng.random_range(0..20) == 0 {
            direction = (rng.random_range(-127..=127), rng.random_range(-127..=127));
        }
        client
            .send_next_input(direction.0, direction.1)
            .await
            .unwrap();
        if rng.random_range(0..25) == 0 {
            let throw = Throw {
                dir_x: rng.random_range(-127..=127),
                dir_y: rng.random_range(-127..=127),
            };
            client.send_action("throw", &encoded(&throw)).await.unwrap();
        }
        let frames = messages.len() - 1;
        if leave_after_frames.is_some_and(|n| frames >= n) || frame.tick >= last_tick {
            break;
        }
    }
    client.goodbye().await.unwrap();
    Session { name, messages }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_replays_bit_exact_and_every_client_got_the_frames_the_replay_produces() {
    const CLIENTS: usize = 50;
    const LAST_TICK: u32 = 300;
    let recordings = TempDir::new().unwrap();
    let server = start_server(ConfigLayer {
        record: Some(recordings.path().to_owned()),
        record_digest_every: Some(1),
        // Dense enough that throws hit and views overlap; bevy's multi-threaded executor
        // (independent systems at once) on 2 threads: the order-sensitive case.
        world_size: Some(400.0),
        sim_threads: Some(2),
        executor: Some(throng::config::Executor::Multi),
        game: Some(toml::from_str("[snowball]\nnpcs = 20").unwrap()),
        ..Default::default()
    });
    let mut rng = seeded_rng("recording session");
    let mut players = Vec::new();
    for i in 0..CLIENTS {
        // A fifth of the clients churn: they leave early and come back under a new name.
        let churns = i % 5 == 0;
        let seed: u64 = rng.random();
        let (server_addr, leave) = (server.local_addr(), rng.random_range(40..120));
        players.push(tokio::spawn(async move {
            let mut sessions = Vec::new();
            let rounds = if churns { 3 } else { 1 };
            for round in 0..rounds {
                let name = format!("walker{i}r{round}");
                let client = tokio::time::timeout(
                    HANG_GUARD,
                    Client::connect(server_addr, &name, &crate::common::secret_of(&name)),
                )
                .await
                .expect("connect in time")
                .expect("welcomed");
                let last_round = round + 1 == rounds;
                let leave_after = (!last_round).then_some(leave);
                sessions.push(play(client, name, seed + round, leave_after, LAST_TICK).await);
            }
            sessions
        }));
    }
    let mut live: Vec<Session> = Vec::new();
    for player in players {
        live.extend(player.await.unwrap());
    }
    server.shutdown();

    let path = recording_in(recordings.path());
    let mut replay = Replay::open(&path, game).expect("the recording opens");
    let mut replayed: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut digests = 0;
    while let Some(check) = replay.next_tick().expect("every chunk is whole") {
        match check {
            DigestCheck::Matched => digests += 1,
            other => panic!("tick {}: {other:?}", replay.tick()),
        }
        replay.drain_frames(|_, name, frame| {
            replayed
                .entry(name.to_owned())
                .or_default()
                .push(frame.to_vec())
        });
    }
    assert!(
        replay.tick() >= u64::from(LAST_TICK),
        "recorded through tick {}",
        replay.tick()
    );
    assert_eq!(
        digests,
        replay.tick(),
        "a digest every tick, every one matched"
    );
    assert_eq!(
        live.len(),
        CLIENTS + 2 * CLIENTS / 5,
        "every session played"
    );
    let mut compared = 0;
    for session in &live {
        let produced = &replayed[&session.name];
        assert!(
            session.messages.len() <= produced.len(),
            "{}: received {} messages, the replay produced {}",
            session.name,
            session.messages.len(),
            produced.len()
        );
        for (index, (received, replay_frame)) in session.messages.iter().zip(produced).enumerate() {
            assert!(
                received == replay_frame,
                "{}: message {index} differs from the replay's",
                session.name
            );
        }
        compared += session.messages.len();
    }
    assert!(compared > CLIENTS * 200, "{compared} messages compared");
}

/// Replays the one recording in `dir`, checking that every tick's digest matches, and
/// returns the messages it produced for the player named `player`.
fn replayed_frames_of(dir: &Path, player: &str) -> Vec<Vec<u8>> {
    let mut replay = Replay::open(&recording_in(dir), game).unwrap();
    let mut produced = Vec::new();
    while let Some(check) = replay.next_tick().unwrap() {
        assert_eq!(check, DigestCheck::Matched, "tick {}", replay.tick());
        replay.drain_frames(|_, name, frame| {
            if name == player {
                produced.push(frame.to_vec());
            }
        });
    }
    produced
}

/// Set while the live server runs: the nudge below reads it, which no replay can reproduce.
static LIVE: AtomicBool = AtomicBool::new(false);

/// The tick at which the nudge breaks determinism.
const NUDGE_TICK: u64 = 40;

/// A gameplay system that breaks the determinism contract: it reads state from outside the
/// world (a process-wide flag standing for a wall clock or a thread id) and moves the NPCs
/// by a hair at one tick.
struct NudgePlugin;

impl Plugin for NudgePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            ServerTick,
            nudge
                .after(TickSet::PostSimulate)
                .before(TickSet::Replicate),
        );
    }
}

fn nudge(clock: Res<TickClock>, mut npcs: Query<&mut Position, With<Npc>>) {
    if clock.tick == NUDGE_TICK && LIVE.load(Ordering::Relaxed) {
        for mut position in &mut npcs {
            position.x = f32::from_bits(position.x.to_bits() + 1);
        }
    }
}

fn nudged_game(app: &mut App) {
    app.add_plugins((systems::GamePlugins, NudgePlugin));
}

#[test]
fn a_system_that_breaks_determinism_is_reported_at_the_tick_and_component_it_changed() {
    let recordings = TempDir::new().unwrap();
    LIVE.store(true, Ordering::Relaxed);
    let server = start_server_with(
        ConfigLayer {
            record: Some(recordings.path().to_owned()),
            record_digest_every: Some(1),
            game: Some(toml::from_str("[snowball]\nnpcs = 10").unwrap()),
            ..Default::default()
        },
        nudged_game,
    );
    server.with_world_after(NUDGE_TICK + 10, |_| ());
    server.shutdown();
    LIVE.store(false, Ordering::Relaxed);

    let path = recording_in(recordings.path());
    let mut replay = Replay::open(&path, nudged_game).unwrap();
    let divergence = loop {
        match replay
            .next_tick()
            .unwrap()
            .expect("diverges before the end")
        {
            DigestCheck::Matched => continue,
            DigestCheck::Diverged(divergence) => break divergence,
            DigestCheck::NotRecorded => panic!("a digest every tick"),
        }
    };
    assert_eq!(divergence.tick, NUDGE_TICK, "{divergence}");
    assert_eq!(divergence.component, "position differs", "{divergence}");
    assert!(
        divergence.to_string().starts_with("tick 40, entity "),
        "{divergence}"
    );
}

#[test]
fn a_recording_cut_by_kill_9_replays_every_whole_tick() {
    let recordings = TempDir::new().unwrap();
    let dir = recordings.path().to_str().unwrap();
    let mut server = ServerProcess::start(&["--record", dir, "--record-digest-every", "5"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let walkers = runtime.block_on(bots::walking_bots(server.addr, "cut", 20, &stopped));
    // Until the recording holds some ticks with players in them.
    runtime.block_on(eventually("60 recorded ticks", || {
        std::fs::read_dir(recordings.path()).is_ok_and(|mut files| {
            files
                .next()
                .and_then(|file| whole_ticks(&file.unwrap().path()))
                .is_some_and(|(ticks, _)| ticks >= 60)
        })
    }));
    server.signal("KILL");
    server.wait();
    stop.send(true).unwrap();
    runtime.block_on(bots::records(walkers));

    let path = recording_in(recordings.path());
    let (ticks, cut) = whole_ticks(&path).expect("a header");
    let (status, said) = replay_binary(&path);
    // A divergence here was seen once in a loaded full run and not reproduced since (over a
    // hundred runs, loaded and not): if it comes back, the failure carries what is needed to
    // find it.
    let evidence = || divergence_evidence(&path, &said);
    assert_eq!(
        status,
        Some(if cut { 3 } else { 0 }),
        "cut={cut}: {said}{}",
        evidence()
    );
    assert!(
        said.contains(&format!("1..={ticks} ")),
        "{ticks} ticks: {said}"
    );
    assert!(!said.contains("DIVERGED"), "{said}{}", evidence());
}

/// For a failed replay of the recording at `path` that said `said`: the entries of its
/// ticks up to the divergence, and the replayed world at the tick before it, as JSON.
fn divergence_evidence(path: &Path, said: &str) -> String {
    let Some(tick) = said
        .split("DIVERGED at tick ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|tick| tick.parse::<u64>().ok())
    else {
        return String::new();
    };
    let bytes = std::fs::read(path).unwrap();
    let (_, mut reader) = SegmentReader::open(&bytes).unwrap();
    let mut entries_until = Vec::new();
    'chunks: while let Some(Ok((_, payload))) = reader.next_chunk() {
        for entry in entries(payload) {
            if matches!(entry, Ok(Entry::Tick(next)) if next > tick) {
                break 'chunks;
            }
            entries_until.push(format!("{entry:?}"));
        }
    }
    let before = tick.saturating_sub(1).max(1);
    let world = replay_output(path, &["--until", &before.to_string()]).stdout;
    format!(
        "\nrecorded entries to tick {tick}:\n{}\nreplayed world at tick {before}:\n{}",
        entries_until.join("\n"),
        String::from_utf8_lossy(&world)
    )
}

/// A short recording made without sockets: 3 players walking for 40 ticks.
pub(crate) fn small_recording(dir: &Path) -> PathBuf {
    let config: Config = ConfigLayer {
        record: Some(dir.to_owned()),
        record_digest_every: Some(1),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    let players: Vec<_> = ["ann", "bob", "cat"]
        .iter()
        .map(|name| harness.join(name))
        .collect();
    for seq in 1..=40 {
        for (i, &player) in players.iter().enumerate() {
            harness.input(player, seq, 127 - 50 * i as i8, 60);
        }
        harness.tick();
        harness.write_all_frames();
    }
    drop(harness); // the recording thread writes the rest and ends
    recording_in(dir)
}

/// `throng replay FILE ARGS`: its exit status and what it printed.
fn replay_output(path: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_throng"))
        .arg("replay")
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

/// `throng replay FILE`: its exit status and what it said.
fn replay_binary(path: &Path) -> (Option<i32>, String) {
    let output = replay_output(path, &[]);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Offsets of the segment's tick chunks.
fn chunk_offsets(bytes: &[u8]) -> Vec<usize> {
    let (_, mut reader) = SegmentReader::open(bytes).unwrap();
    let mut offsets = vec![reader.offset()];
    while reader.next_chunk().is_some() {
        offsets.push(reader.offset());
    }
    offsets.pop();
    offsets
}

#[test]
fn damaged_and_foreign_recordings_get_a_clear_error_naming_file_offset_and_reason() {
    let dir = TempDir::new().unwrap();
    let path = small_recording(&dir.path().join("whole"));
    let (status, said) = replay_binary(&path);
    assert_eq!(status, Some(0), "{said}");
    assert!(said.contains("40 digest(s) matched"), "{said}");

    let bytes = std::fs::read(&path).unwrap();
    let chunks = chunk_offsets(&bytes);
    let tenth = chunks[10];
    let damaged = dir.path().join("damaged.rec");
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut copy = bytes.clone();
        edit(&mut copy);
        std::fs::write(&damaged, copy).unwrap();
        replay_binary(&damaged)
    };
    let file = damaged.display().to_string();

    // Cut inside the 11th tick's chunk: ticks 1-10 replay, then where and why it stopped.
    let (status, said) = with(&|copy| copy.truncate(tenth + 5));
    assert_eq!(status, Some(3), "{said}");
    assert!(
        said.contains(&format!(
            "stopped after tick 10: {file} at byte {tenth}: truncated chunk"
        )),
        "{said}"
    );
    assert!(said.contains("10 digest(s) matched"), "{said}");

    // A flipped bit in the 11th chunk: the same place, another reason.
    let (status, said) = with(&|copy| copy[tenth + 12] ^= 0x04);
    assert_eq!(status, Some(3), "{said}");
    assert!(
        said.contains(&format!(
            "{file} at byte {tenth}: corrupted chunk: checksum"
        )),
        "{said}"
    );

    // Another format version, and a file that is no recording: refused before any tick.
    let (status, said) = with(&|copy| copy[8] = 99);
    assert_eq!(status, Some(2), "{said}");
    assert!(
        said.contains(&format!("{file} at byte 8: recording format version 99")),
        "{said}"
    );
    let (status, said) = with(&|copy| *copy = b"tick_hz = 20\n".to_vec());
    assert_eq!(status, Some(2), "{said}");
    assert!(
        said.contains(&format!("{file} at byte 0: not a throng recording")),
        "{said}"
    );

    // A session whose segment 0001 is missing while 0002 exists: segment 0000 replays, then
    // the replay stops at the gap.
    let gapped = dir.path().join("gap");
    std::fs::create_dir(&gapped).unwrap();
    std::fs::write(gapped.join("throng-5-6-0000.rec"), &bytes).unwrap();
    std::fs::write(gapped.join("throng-5-6-0002.rec"), &bytes).unwrap();
    let (status, said) = replay_binary(&gapped.join("throng-5-6-0000.rec"));
    assert_eq!(status, Some(3), "{said}");
    assert!(said.contains("stopped after tick 40: "), "{said}");
    assert!(
        said.contains("segment 1 is missing, and later segments"),
        "{said}"
    );

    // A later segment without its first: a replay needs the session from its start.
    let later = dir.path().join("throng-1-2-0001.rec");
    std::fs::write(&later, &bytes).unwrap();
    let (status, said) = replay_binary(&later);
    assert_eq!(status, Some(2), "{said}");
    assert!(said.contains("segment 0 of session throng-1-2"), "{said}");
}

#[derive(Serialize)]
struct Confetti;

#[test]
fn a_recording_of_other_gameplay_is_refused_with_the_names_that_differ() {
    use components::GameApp;
    let dir = TempDir::new().unwrap();
    let path = small_recording(dir.path());
    let error = Replay::open(&path, |app| {
        app.add_plugins(systems::GamePlugins)
            .add_event::<Confetti>("confetti");
    })
    .err()
    .expect("refused");
    assert!(matches!(error, ReplayError::Gameplay { .. }), "{error}");
    let said = error.to_string();
    assert!(
        said.contains(&format!("{} at byte 10 (its header)", path.display())),
        "{said}"
    );
    assert!(
        said.contains(
            r#"events ["hit", "movement"] recorded, ["hit", "movement", "confetti"] here"#
        ),
        "{said}"
    );
}

#[test]
fn a_recording_whose_settings_this_gameplay_does_not_read_is_refused_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let config: Config = ConfigLayer {
        record: Some(dir.path().to_owned()),
        game: Some(toml::from_str("[snowball]\nnpcs = 2").unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut live = Harness::new(&config);
    live.tick();
    drop(live);
    let path = recording_in(dir.path());
    let error = Replay::open(&path, |app| {
        app.add_plugins(systems::movement::MovementPlugin);
    })
    .err()
    .expect("refused");
    assert!(matches!(error, ReplayError::Config { .. }), "{error}");
    assert!(error.to_string().contains("snowball"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_recording_directory_stops_recording_and_the_server_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let not_a_directory = dir.path().join("file");
    std::fs::write(&not_a_directory, b"").unwrap();
    let server = start_server(ConfigLayer {
        record: Some(not_a_directory.join("recordings")),
        ..Default::default()
    });
    eventually("the recording failure is counted", || {
        server.stats().recording_failures == 1
    })
    .await;
    assert_eq!(server.stats().recording_active, 0);
    let mut client = connect(&server, "still-served").await;
    let first = crate::common::next_frame(&mut client).await.tick;
    let later = crate::common::next_frame(&mut client).await.tick;
    assert!(later > first, "frames keep coming");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_a_console_kick_replays_with_the_frames_the_kicked_player_received() {
    let recordings = TempDir::new().unwrap();
    let server = start_server(ConfigLayer {
        record: Some(recordings.path().to_owned()),
        record_digest_every: Some(1),
        metrics: Some(throng::config::Endpoint::At("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    });
    let mut victim = connect(&server, "victim").await;
    let _bystander = connect(&server, "bystander").await;
    let mut live = vec![victim.welcome_bytes().to_vec()];
    for _ in 0..10 {
        live.push(victim.recv_bytes().await.unwrap());
    }
    let metrics = server.metrics_addr().unwrap();
    let (status, body) =
        crate::console::post_kick(metrics, r#"{"name": "victim", "reason": "replayed"}"#).await;
    assert_eq!(status, 200, "{body}");
    loop {
        let bytes = tokio::time::timeout(HANG_GUARD, victim.recv_bytes())
            .await
            .expect("the close in time")
            .expect("recv");
        match decode_server_message(&bytes).unwrap() {
            ServerMessage::Frame(_) => live.push(bytes),
            ServerMessage::Close(_) => break,
            other => panic!("{other:?}"),
        }
    }
    let now = server.with_world_after(0, |world| world.resource::<TickClock>().tick);
    server.with_world_after(now.unwrap() + 5, |_| ());
    server.shutdown();

    let produced = replayed_frames_of(recordings.path(), "victim");
    assert!(live.len() > 11);
    assert!(
        live == produced,
        "the victim received {} messages, the replay produced {}",
        live.len(),
        produced.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_dropped_for_a_slow_reader_are_dropped_in_the_replay_too() {
    let recordings = TempDir::new().unwrap();
    let server = start_server(ConfigLayer {
        record: Some(recordings.path().to_owned()),
        record_digest_every: Some(1),
        // Small buffers everywhere, so a client that stops reading soon has its frames
        // dropped (two frame slots; the kernel's send buffer at its minimum).
        outbound_buffers: Some(2),
        send_buffer_bytes: Some(4096),
        world_size: Some(300.0),
        game: Some(toml::from_str("[snowball]\nnpcs = 30").unwrap()),
        ..Default::default()
    });
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(server.local_addr()).await.unwrap();
    let mut sloth = Client::handshake(stream, "sloth", &crate::common::secret_of("sloth"))
        .await
        .expect("welcomed");
    let mut live = vec![sloth.welcome_bytes().to_vec()];
    for _ in 0..10 {
        live.push(sloth.recv_bytes().await.unwrap());
    }
    // Stop reading until the server has dropped some of its frames.
    eventually("frames dropped for the slow reader", || {
        server.stats().frames_dropped_slow_reader >= 5
    })
    .await;
    // Read again: what the kernel held, then the resynchronised frames.
    let mut resets = 0;
    loop {
        let bytes = tokio::time::timeout(HANG_GUARD, sloth.recv_bytes())
            .await
            .expect("a frame in time")
            .unwrap();
        let ServerMessage::Frame(frame) = decode_server_message(&bytes).unwrap() else {
            panic!("frames only");
        };
        resets += usize::from(frame.reset);
        live.push(bytes);
        if resets > 0 && live.len() > 200 {
            break;
        }
    }
    sloth.goodbye().await.unwrap();
    let dropped = server.stats().frames_dropped_slow_reader;
    server.shutdown();

    let produced = replayed_frames_of(recordings.path(), "sloth");
    assert!(dropped >= 5, "{dropped} frames dropped live");
    assert!(
        live.len() <= produced.len(),
        "received {}, replayed {}",
        live.len(),
        produced.len()
    );
    for (index, (received, replayed)) in live.iter().zip(&produced).enumerate() {
        assert!(
            received == replayed,
            "message {index} differs from the replay's"
        );
    }
}
