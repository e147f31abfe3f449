//! End-to-end sessions over real loopback sockets.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::{ClientMessage, ServerMessage};
use throng_client::Mirror;

fn world(size: f32, radius: f32) -> ConfigLayer {
    ConfigLayer {
        world_size: Some(size),
        interest_radius: Some(radius),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_player_is_seen_by_the_other_at_the_servers_exact_position() {
    let server = start_server(world(300.0, 1000.0));
    let mut mover = connect(&server, "mover").await;
    let mut watcher = connect(&server, "watcher").await;
    let mover_id = mover.player_id();
    let mut watcher_mirror = Mirror::default();
    for seq in 1..=20 {
        mover.send_input(seq, 90, -40).await.unwrap();
        let frame = next_frame(&mut watcher).await;
        watcher_mirror.apply(&frame).unwrap();
    }
    let (tick, state) = tokio::task::block_in_place(|| server_state(&server, 0));
    sync_to(&mut watcher, &mut watcher_mirror, tick).await;
    assert_eq!(watcher_mirror.entities[&mover_id].wire, state[&mover_id]);
    assert_eq!(
        mirror_state(&watcher_mirror),
        state,
        "sees both, exactly where the server has them"
    );
    let spawn_wire = state[&mover_id];
    assert_ne!(spawn_wire, [0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_players_are_removed_from_every_view_and_despawned() {
    let server = start_server(world(300.0, 1000.0));
    let polite = connect(&server, "polite").await;
    let rude = connect(&server, "rude").await;
    let mut watcher = connect(&server, "watcher").await;
    let (polite_id, rude_id) = (polite.player_id(), rude.player_id());
    let mut mirror = Mirror::default();
    while mirror.entities.len() < 3 {
        mirror.apply(&next_frame(&mut watcher).await).unwrap();
    }

    polite.goodbye().await.unwrap();
    while mirror.entities.contains_key(&polite_id) {
        mirror.apply(&next_frame(&mut watcher).await).unwrap();
    }
    drop(rude); // socket dropped without Goodbye
    while mirror.entities.contains_key(&rude_id) {
        mirror.apply(&next_frame(&mut watcher).await).unwrap();
    }
    assert_eq!(
        mirror.entities.keys().copied().collect::<Vec<_>>(),
        vec![watcher.player_id()]
    );
    let (_, state) = tokio::task::block_in_place(|| server_state(&server, 0));
    assert_eq!(state.len(), 1, "both leavers were despawned");
    assert_eq!(server.stats().players_connected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_walking_past_appears_updates_then_disappears() {
    // 1000 x 1000 world, radius 100, cells of 50 (the server searches 2 cells each way).
    let server = start_server(ConfigLayer {
        cell_size: Some(50.0),
        ..world(1000.0, 100.0)
    });
    let mut observer = connect(&server, "observer").await;
    let mut walker = connect(&server, "walker").await;
    let (observer_id, walker_id) = (observer.player_id(), walker.player_id());
    tokio::task::block_in_place(|| {
        teleport(&server, observer_id, 525.0, 525.0);
        teleport(&server, walker_id, 300.0, 530.0)
    });
    let mut mirror = Mirror::default();
    let mut seen_x = Vec::new(); // the walker's mirrored x on each frame it was in view
    let mut seq = 0;
    loop {
        seq += 1;
        walker.send_input(seq, 127, 0).await.unwrap();
        mirror.apply(&next_frame(&mut observer).await).unwrap();
        match mirror.entities.get(&walker_id) {
            Some(entity) => seen_x.push(entity.wire[0]),
            None if !seen_x.is_empty() => break, // it left the view
            None => {}
        }
        assert!(seq < 400, "the walker never came into view and left");
    }
    // The walker passes 5 units off the observer's row, so it is in view while its x is at
    // most sqrt(800^2 - 40^2) = 799.0 wire units (99.875 units) from the observer's 525:
    // x in [425.125, 624.875]. It walks 5 units a tick, so it appears within 5 units past
    // the first bound and is last seen within 5 units before the second.
    let first = f32::from(u16::try_from(seen_x[0]).unwrap()) / 8.0;
    let last = f32::from(u16::try_from(*seen_x.last().unwrap()).unwrap()) / 8.0;
    assert!(
        (425.125..430.125).contains(&first),
        "appeared at x = {first}"
    );
    assert!(last <= 624.875 && last > 619.875, "last seen at x = {last}");
    assert!(
        seen_x.windows(2).all(|w| w[1] == w[0] + 40),
        "updated every tick by 5 units: {seen_x:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_carries_the_last_processed_input_and_idle_clients_still_get_frames() {
    let server = start_server(world(300.0, 1000.0));
    let mut active = connect(&server, "active").await;
    let mut idle = connect(&server, "idle").await;
    let mut last_ack = 0;
    for seq in 1..=30u32 {
        active.send_input(seq, 0, 127).await.unwrap();
        let frame = next_frame(&mut active).await;
        assert!(
            frame.ack_seq >= last_ack && frame.ack_seq <= seq,
            "ack {} after {last_ack}, sent {seq}",
            frame.ack_seq
        );
        last_ack = frame.ack_seq;
    }
    while last_ack < 30 {
        last_ack = next_frame(&mut active).await.ack_seq;
    }
    let mut ticks = Vec::new();
    for _ in 0..30 {
        let frame = next_frame(&mut idle).await;
        assert_eq!(frame.ack_seq, 0);
        ticks.push(frame.tick);
    }
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "one frame per tick, none skipped: {ticks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_with_the_same_nonce() {
    let server = start_server(world(300.0, 1000.0));
    let mut client = connect(&server, "pinger").await;
    client
        .send(&ClientMessage::Ping { nonce: 0xDEAD_BEEF })
        .await
        .unwrap();
    loop {
        match client.recv().await.unwrap() {
            ServerMessage::Pong { nonce } => {
                assert_eq!(nonce, 0xDEAD_BEEF);
                break;
            }
            ServerMessage::Frame(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(server.stats().pongs, 1);
}

/// 50 clients random-walk; at one tick every client's mirror must equal exactly the
/// entities the interest rule says it sees, at the server's positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_random_walkers_mirror_exactly_what_the_interest_rule_says() {
    const CLIENTS: usize = 50;
    const TICKS: u64 = 200;
    let settings = world(600.0, 100.0);
    let server = Arc::new(start_server(settings.clone()));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(connect(&server, &format!("walker{i}")).await);
    }
    let (start_tick, _) = tokio::task::block_in_place(|| server_state(&server, 0));
    let target = start_tick + TICKS;
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let id = client.player_id();
            let mut mirror = Mirror::default();
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
            let (mut dir_x, mut dir_y, mut seq) = (0i8, 0i8, 0u32);
            loop {
                let frame = next_frame(&mut client).await;
                mirror.apply(&frame).expect("consistent frame");
                if u64::from(mirror.tick) >= target {
                    assert_eq!(
                        u64::from(mirror.tick),
                        target,
                        "client {i} skipped the target tick"
                    );
                    return (id, mirror);
                }
                if seq.is_multiple_of(40) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (dir_x, dir_y) = ((rng as i8) | 1, ((rng >> 8) as i8) | 1);
                }
                seq += 1;
                client.send_input(seq, dir_x, dir_y).await.unwrap();
            }
        }));
    }
    let (tick, state) = tokio::task::block_in_place(|| server_state(&server, target));
    assert_eq!(tick, target);
    let config = settings.resolve().unwrap();
    for task in tasks {
        let (id, mirror) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            mirror_state(&mirror),
            expected_view(&state, id, &config),
            "client {id}"
        );
    }
    assert_eq!(server.stats().frames_dropped_slow_reader, 0);
}

/// A client that stops reading fills its socket: the server's flush then cannot write whole
/// frames (partial writes, then a full socket), the client's outbox fills and frames are
/// dropped. When it reads again, every byte it gets must still be whole frames in order, and
/// after the resynchronisation its mirror must equal what the interest rule says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_resynchronised_and_never_gets_a_broken_stream() {
    const WALKERS: usize = 30;
    // Everyone sees everyone, so each frame carries every walker.
    let settings = ConfigLayer {
        outbound_buffers: Some(4),
        send_buffer_bytes: Some(4096),
        ..world(300.0, 500.0)
    };
    let server = Arc::new(start_server(settings.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut walkers = Vec::new();
    for i in 0..WALKERS {
        let mut client = connect(&server, &format!("walker{i}")).await;
        let stop = stop.clone();
        walkers.push(tokio::spawn(async move {
            let mut seq = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                next_frame(&mut client).await;
                seq += 1;
                let turn = if (seq / 25).is_multiple_of(2) {
                    90
                } else {
                    -90
                };
                client
                    .send_input(seq, turn, (i as i8) * 4 - 60)
                    .await
                    .unwrap();
            }
        }));
    }

    // A tiny receive buffer so the server's socket fills after a few frames.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(server.local_addr()).await.unwrap();
    let mut paused = throng_client::Client::handshake(stream, "paused", &secret_of("paused"))
        .await
        .unwrap();
    let id = paused.player_id();
    let mut mirror = Mirror::default();
    for _ in 0..5 {
        mirror.apply(&next_frame(&mut paused).await).unwrap();
    }
    eventually("frames to the paused client are dropped", || {
        server.stats().frames_dropped_slow_reader > 0
    })
    .await;

    // Reading again: every frame decodes and applies in order (no torn frame), a reset
    // arrives, and the mirror then matches the server exactly.
    let mut resets = 0;
    while resets == 0 {
        let frame = next_frame(&mut paused).await;
        resets += usize::from(frame.reset);
        mirror
            .apply(&frame)
            .expect("every frame after the pause is whole and in order");
    }
    let (target, state) = tokio::task::block_in_place(|| {
        let target = server_state(&server, 0).0 + 5;
        server_state(&server, target)
    });
    sync_to(&mut paused, &mut mirror, target).await;
    assert_eq!(u64::from(mirror.tick), target);
    let config = settings.resolve().unwrap();
    assert_eq!(mirror_state(&mirror), expected_view(&state, id, &config));
    assert!(server.stats().resyncs > 0);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for walker in walkers {
        let _ = tokio::time::timeout(HANG_GUARD, walker).await;
    }
}

/// Reads the server's messages on `stream` until it closes the socket (or `enough` of them
/// arrived), in order.
async fn messages_until_closed(
    stream: &mut tokio::net::TcpStream,
    enough: usize,
) -> Vec<ServerMessage> {
    use tokio::io::AsyncReadExt;
    let mut reader = throng_protocol::framing::FrameReader::new(1 << 20);
    let mut messages = Vec::new();
    loop {
        while let Some(body) = reader.next_frame().unwrap() {
            messages.push(throng::protocol::decode_server_message(body).unwrap());
            if messages.len() == enough {
                return messages;
            }
        }
        let n = tokio::time::timeout(HANG_GUARD, stream.read(reader.spare()))
            .await
            .expect("the server answers")
            .unwrap_or(0);
        if n == 0 {
            return messages;
        }
        reader.filled(n);
    }
}

/// Finding 4 of issue 13: whatever a client pipelines behind its Hello, the Welcome is the
/// first message of the session; the answers (a Pong, the Close of a second Hello) follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_comes_first_whatever_the_client_pipelines_behind_its_hello() {
    use throng::protocol::{CloseReason, frame_bytes};
    use tokio::io::AsyncWriteExt;
    // A slow tick: the Welcome is published up to 200 ms after the join, so anything
    // answered by the connection task before it would overtake it.
    let server = start_server(ConfigLayer {
        tick_hz: Some(5),
        ..Default::default()
    });
    for round in 0..5 {
        // Hello and a Ping in one write: Welcome, then the Pong (the first frame, published in
        // the same tick as the Welcome, may come between them).
        let name = format!("pinger{round}");
        let mut bytes = hello(&name);
        bytes.extend_from_slice(&frame_bytes(&ClientMessage::Ping { nonce: 77 }));
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let messages = messages_until_closed(&mut stream, 3).await;
        assert!(
            matches!(messages[0], ServerMessage::Welcome(_)),
            "the Welcome first, got {:?}",
            messages[0]
        );
        assert!(
            messages[1..]
                .iter()
                .any(|m| matches!(m, ServerMessage::Pong { nonce: 77 })),
            "then the Pong: {messages:?}"
        );
        drop(stream);

        // Two Hellos in one write: Welcome, then Close{DuplicateHello} (frames may come
        // between them), never a Close for a session that was never announced.
        let kicked_before = server.stats().kicks_by_reason[CloseReason::DuplicateHello.index()];
        let name = format!("twice{round}");
        let mut bytes = hello(&name);
        bytes.extend_from_slice(&hello(&name));
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let messages = messages_until_closed(&mut stream, usize::MAX).await;
        assert!(
            matches!(messages.first(), Some(ServerMessage::Welcome(_))),
            "the Welcome first, got {messages:?}"
        );
        match messages.last() {
            Some(ServerMessage::Close(refusal)) => {
                assert_eq!(refusal.reason, CloseReason::DuplicateHello)
            }
            other => panic!("the session ends with Close{{DuplicateHello}}, got {other:?}"),
        }
        assert_eq!(
            server.stats().kicks_by_reason[CloseReason::DuplicateHello.index()],
            kicked_before + 1,
            "counted once, as a close of an open session"
        );
    }
}
