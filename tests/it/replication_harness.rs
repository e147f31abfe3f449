//! Replication without sockets: clients' mirrors, fed with the real frames from the real
//! outboxes, must equal the server's world under the documented interest rule.

use crate::common::{expected_view, mirror_state, wire_positions};
use bevy_ecs::prelude::*;
use components::{NetId, Position};
use throng::config::{Config, ConfigLayer};
use throng::harness::Harness;
use throng::protocol::ServerMessage;
use throng_client::Mirror;

fn config(world_size: f32, radius: f32) -> Config {
    config_with_cells(world_size, radius, None)
}

fn config_with_cells(world_size: f32, radius: f32, cell_size: Option<f32>) -> Config {
    ConfigLayer {
        world_size: Some(world_size),
        interest_radius: Some(radius),
        cell_size,
        sim_threads: Some(2),
        // Systems at once too (the default runs them in order): the ordering-sensitive case.
        executor: Some(throng::config::Executor::Multi),
        ..Default::default()
    }
    .resolve()
    .unwrap()
}

struct Player {
    connection: u64,
    /// First input seq sent to this player (acks are checked from then on).
    first_seq: u32,
    id: u32,
    mirror: Mirror,
}

fn apply_messages(harness: &mut Harness, player: &mut Player) {
    for message in harness.messages(player.connection) {
        match message {
            ServerMessage::Welcome(welcome) => player.id = welcome.player_id,
            ServerMessage::Frame(frame) => player.mirror.apply(&frame).expect("frame applies"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn mirrors_equal_the_server_view_through_joins_walks_jumps_and_leaves() {
    mirrors_follow_the_rule(config(400.0, 60.0));
}

/// Cells a third of the radius: most of a view is cells wholly inside the circle, whose
/// members the cut takes without testing them. They divide the world (20 cells of 20), so
/// a position that rounds up to the world's side is in the last cell, past its nominal end.
#[test]
fn mirrors_equal_the_server_view_with_cells_finer_than_the_radius() {
    mirrors_follow_the_rule(config_with_cells(400.0, 60.0, Some(20.0)));
}

fn mirrors_follow_the_rule(config: Config) {
    let mut harness = Harness::new(&config);
    let mut players: Vec<Player> = (0..40)
        .map(|i| Player {
            connection: harness.join(&format!("p{i}")),
            first_seq: 1,
            id: u32::MAX,
            mirror: Mirror::default(),
        })
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seq = 0;
    for tick in 0..300 {
        seq += 1;
        for player in &players {
            let r = next();
            harness.input(player.connection, seq, (r as i8) | 1, ((r >> 8) as i8) | 1);
        }
        if tick % 50 == 25 {
            // Churn: one leaves, one joins.
            let gone = players.remove((next() % players.len() as u64) as usize);
            harness.leave(gone.connection);
            players.push(Player {
                connection: harness.join("late"),
                first_seq: seq + 1,
                id: u32::MAX,
                mirror: Mirror::default(),
            });
        }
        if tick % 7 == 3 {
            // A jump across the world: the player's view changes whole, and so does its
            // place in every other view.
            let who = players[(next() % players.len() as u64) as usize].id;
            let to = Position::new((next() % 400) as f32, (next() % 400) as f32);
            teleport(&mut harness, who, to);
        }
        if tick % 5 == 1 {
            // A hop of up to half the radius along x (often within its cell): a move the
            // cut bounds without a square root (see `ViewChange::cut`), for the hopper's own
            // view and for every view it is in.
            let who = players[(next() % players.len() as u64) as usize].id;
            if let Some(at) = position_of(&mut harness, who) {
                let dx = (next() % 61) as f32 - 30.0;
                teleport(
                    &mut harness,
                    who,
                    Position::new((at.x + dx).clamp(0.0, 399.0), at.y),
                );
            }
        }
        harness.tick();
        let state = wire_positions(&mut harness.simulation.world);
        for player in &mut players {
            apply_messages(&mut harness, player);
            if player.id == u32::MAX {
                continue;
            }
            assert_eq!(
                mirror_state(&player.mirror),
                expected_view(&state, player.id, &config),
                "tick {tick}"
            );
            if seq >= player.first_seq {
                assert_eq!(
                    player.mirror.ack_seq, seq,
                    "every frame acknowledges the latest input"
                );
            }
        }
    }
}

#[test]
fn a_slow_reader_is_resynchronised_with_a_reset_frame() {
    let config = config(200.0, 500.0);
    let mut harness = Harness::new(&config);
    let reader = harness.join("reader");
    let walker = harness.join("walker");
    harness.tick();
    let mut mirror = Mirror::default();
    for message in harness.messages(reader) {
        if let ServerMessage::Frame(frame) = message {
            mirror.apply(&frame).unwrap();
        }
    }
    // The reader stops draining: after its buffers fill, frames are dropped and counted.
    for seq in 1..=10 {
        harness.input(walker, seq, 127, 0);
        harness.tick();
        let _ = harness.messages(walker);
    }
    let dropped = harness
        .stats
        .frames_dropped_slow_reader
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 10 - config.outbound_buffers as u64);
    // Everything it had queued is stale; it drains and then gets a full resync.
    let _ = harness.messages(reader);
    harness.tick();
    let messages = harness.messages(reader);
    let ServerMessage::Frame(frame) = &messages[0] else {
        panic!("expected a frame")
    };
    assert!(frame.reset, "the first frame after drops resets the view");
    mirror.apply(frame).unwrap();
    let state = wire_positions(&mut harness.simulation.world);
    assert_eq!(mirror_state(&mirror), state);
    assert_eq!(
        harness
            .stats
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn replicated_components_arrive_on_spawn_and_on_change() {
    #[derive(Component, serde::Serialize, serde::Deserialize, Clone, Copy, PartialEq, Debug)]
    struct Score(u32);
    fn grow(mut scores: Query<&mut Score>, clock: Res<components::TickClock>) {
        if clock.tick.is_multiple_of(3) {
            for mut score in &mut scores {
                score.0 += 1;
            }
        }
    }
    fn give_score(mut commands: Commands, new: Query<Entity, Added<components::Player>>) {
        for entity in &new {
            commands.entity(entity).insert(Score(10));
        }
    }
    let config = config(200.0, 500.0);
    let mut harness = Harness::with_gameplay(&config, |app| {
        use components::{GameApp, ServerTick, TickSet};
        app.add_plugins(systems::movement::MovementPlugin)
            .add_systems(
                ServerTick,
                (give_score, grow).chain().in_set(TickSet::Simulate),
            )
            .replicate::<Score>("score");
    });
    let a = harness.join("a");
    let mut mirror = Mirror::default();
    let mut welcome_components = Vec::new();
    for _ in 0..7 {
        harness.tick();
        for message in harness.messages(a) {
            match message {
                ServerMessage::Welcome(w) => welcome_components = w.schema.components,
                ServerMessage::Frame(frame) => mirror.apply(&frame).unwrap(),
                _ => {}
            }
        }
    }
    assert_eq!(welcome_components, vec!["score".to_string()]);
    let (_, entity) = mirror.entities.iter().next().unwrap();
    let score: Score = postcard::from_bytes(entity.component(0).unwrap()).unwrap();
    let server: Vec<Score> = harness
        .simulation
        .world
        .query::<&Score>()
        .iter(&harness.simulation.world)
        .copied()
        .collect();
    assert_eq!(vec![score], server);
    assert_eq!(score, Score(12), "ticks 3 and 6 each added one");
}

#[test]
fn a_view_too_large_for_one_frame_closes_that_client_instead_of_sending_it() {
    let config = ConfigLayer {
        world_size: Some(200.0),
        interest_radius: Some(500.0),
        max_outbound_frame_bytes: Some(1024),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    let crowd: Vec<u64> = (0..200).map(|i| harness.join(&format!("p{i}"))).collect();
    harness.tick();
    let first = crowd[0];
    let frames = harness
        .messages(first)
        .into_iter()
        .filter(|m| matches!(m, ServerMessage::Frame(_)))
        .count();
    assert_eq!(
        frames, 0,
        "200 spawn records do not fit in 1024 bytes: no frame is sent"
    );
    assert_eq!(
        harness.close_requested(first),
        Some(throng::protocol::CloseReason::ViewTooLarge)
    );
    harness.tick();
    assert!(
        harness.messages(first).is_empty(),
        "nothing more for a closing client"
    );
}

#[test]
fn a_client_that_takes_no_frame_for_the_kick_time_is_closed_as_a_slow_reader() {
    let config = ConfigLayer {
        tick_hz: Some(20),
        slow_reader_kick_s: Some(1.0),
        sim_threads: Some(2),
        // Systems at once too (the default runs them in order): the ordering-sensitive case.
        executor: Some(throng::config::Executor::Multi),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    let stalled = harness.join("stalled");
    let intermittent = harness.join("intermittent");
    let kick_ticks = 20;
    // Both stop draining; the intermittent one takes one frame every 15 ticks (under the
    // kick time), so it is resynchronised but never kicked.
    let buffers = config.outbound_buffers as u64;
    for tick in 1..=(buffers + kick_ticks + 5) {
        harness.tick();
        if tick % 15 == 0 {
            let _ = harness.messages(intermittent);
        }
        // The Welcome takes one slot: the first frame is dropped at tick `buffers`.
        let expect_kicked = tick >= buffers + kick_ticks;
        assert_eq!(
            harness.close_requested(stalled),
            expect_kicked.then_some(throng::protocol::CloseReason::SlowReader),
            "tick {tick}: kicked once every frame was dropped for {kick_ticks} ticks"
        );
    }
    assert_eq!(harness.close_requested(intermittent), None);
}

/// Moves entity `id` to `to` between two ticks.
fn teleport(harness: &mut Harness, id: u32, to: Position) {
    let world = &mut harness.simulation.world;
    let mut positions = world.query::<(&NetId, &mut Position)>();
    for (net_id, mut position) in positions.iter_mut(world) {
        if net_id.0 == id {
            *position = to;
        }
    }
}

/// Where entity `id` is, if it is in the world.
fn position_of(harness: &mut Harness, id: u32) -> Option<Position> {
    let world = &mut harness.simulation.world;
    let mut positions = world.query::<(&NetId, &Position)>();
    positions
        .iter(world)
        .find_map(|(net_id, position)| (net_id.0 == id).then_some(*position))
}

/// The frames `connection` got since the last call.
fn frames(harness: &mut Harness, connection: u64) -> Vec<throng::protocol::StateFrame> {
    let mut frames = Vec::new();
    for message in harness.messages(connection) {
        if let ServerMessage::Frame(frame) = message {
            frames.push(frame);
        }
    }
    frames
}

/// docs/PROTOCOL.md: a client whose own entity moves more than half the interest radius in
/// one tick gets its view anew (every entity it saw removed, every entity it sees spawned,
/// its own included) without a reset; a smaller move is an update.
#[test]
fn a_jump_of_the_client_itself_removes_and_spawns_its_view_a_step_updates_it() {
    let config = config(1000.0, 100.0);
    let mut harness = Harness::new(&config);
    let jumper = harness.join("jumper");
    let neighbour = harness.join("neighbour");
    harness.tick();
    let mut mirror = Mirror::default();
    let mut ids = Vec::new();
    for connection in [jumper, neighbour] {
        for message in harness.messages(connection) {
            match message {
                ServerMessage::Welcome(welcome) => ids.push(welcome.player_id),
                ServerMessage::Frame(frame) if connection == jumper => {
                    mirror.apply(&frame).expect("frame applies")
                }
                _ => {}
            }
        }
    }
    let (jumper_id, neighbour_id) = (ids[0], ids[1]);
    let _ = frames(&mut harness, neighbour);
    teleport(&mut harness, jumper_id, Position::new(500.0, 500.0));
    teleport(&mut harness, neighbour_id, Position::new(530.0, 500.0));
    harness.tick();
    let apply = |frames: Vec<throng::protocol::StateFrame>, mirror: &mut Mirror| {
        let last = frames.last().expect("a frame a tick").clone();
        for frame in &frames {
            mirror.apply(frame).expect("frame applies");
        }
        last
    };
    let _ = apply(frames(&mut harness, jumper), &mut mirror);
    assert!(mirror.entities.contains_key(&neighbour_id));

    // A step of 40 units (less than half the radius): an update of the jumper's own entity.
    teleport(&mut harness, jumper_id, Position::new(540.0, 500.0));
    harness.tick();
    let frame = apply(frames(&mut harness, jumper), &mut mirror);
    assert!(!frame.reset);
    assert!(
        frame.removed.is_empty() && frame.spawned.is_empty(),
        "{frame:?}"
    );
    assert!(frame.updated.iter().any(|update| update.id == jumper_id));

    // A jump of 160 units (more than half): its view is removed and spawned anew.
    teleport(&mut harness, jumper_id, Position::new(700.0, 500.0));
    harness.tick();
    let frame = apply(frames(&mut harness, jumper), &mut mirror);
    assert!(!frame.reset);
    let mut removed = frame.removed.clone();
    removed.sort_unstable();
    let mut expected = vec![jumper_id, neighbour_id];
    expected.sort_unstable();
    assert_eq!(removed, expected, "everything it saw");
    let spawned: Vec<u32> = frame.spawned.iter().map(|spawn| spawn.id).collect();
    assert_eq!(
        spawned,
        [jumper_id],
        "its own entity, seen anew (the neighbour is 170 away)"
    );
    let state = wire_positions(&mut harness.simulation.world);
    assert_eq!(
        mirror_state(&mirror),
        expected_view(&state, jumper_id, &config)
    );
}
