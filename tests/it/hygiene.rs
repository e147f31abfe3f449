//! Connection hygiene over real sockets, in process: idle players are kicked and despawned,
//! floods are dropped and then kicked, and neither disturbs the other players' frames.

use std::time::Duration;

use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::{ClientMessage, CloseReason, Input, ServerMessage, frame_bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Receives frames until `count` have arrived; asserts they are consecutive ticks and none
/// is a reset (nothing was dropped for this client). Answers pongs silently.
async fn consecutive_frames(client: &mut throng_client::Client, count: usize) {
    let mut last = next_frame(client).await.tick;
    for _ in 1..count {
        let frame = next_frame(client).await;
        assert_eq!(frame.tick, last + 1, "no frame skipped");
        assert!(!frame.reset, "no frame dropped");
        last = frame.tick;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_player_is_kicked_and_despawned_while_a_pinging_one_stays() {
    let server = start_server(ConfigLayer {
        idle_timeout_s: Some(0.5),
        ..Default::default()
    });
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    silent.write_all(&hello("silent")).await.unwrap();
    let mut pinger = connect(&server, "pinger").await;
    assert_eq!(pinger.welcome.idle_timeout_ms, 500);

    let pings = tokio::spawn(async move {
        // Pings every 100 ms for twice the idle timeout, reading everything meanwhile.
        for nonce in 0..10 {
            pinger.send(&ClientMessage::Ping { nonce }).await.unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
            while let Ok(message) = tokio::time::timeout_at(deadline, pinger.recv()).await {
                let message = message.expect("the pinging player stays connected");
                assert!(!matches!(message, ServerMessage::Close(_)), "{message:?}");
            }
        }
        pinger
    });
    let (refusal, open, frames) = read_to_refusal(&mut silent).await;
    assert!(open && frames > 0, "the session was open and playing");
    assert_eq!(refusal.reason, CloseReason::IdleTimeout);
    let mut pinger = pings.await.unwrap();
    consecutive_frames(&mut pinger, 5).await;

    eventually("the silent player is despawned", || {
        server.stats().players_connected == 1
    })
    .await;
    let players = server
        .with_world(|world| world.query::<&components::Player>().iter(world).count())
        .unwrap();
    assert_eq!(players, 1);
    assert_eq!(server.stats().closes(CloseReason::IdleTimeout), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_inputs_is_dropped_then_kicked_and_other_players_miss_no_frame() {
    let server = start_server(ConfigLayer {
        max_inputs_per_s: Some(60),
        input_burst: Some(20),
        flood_kick_s: Some(1.0),
        ..Default::default()
    });
    let mut bystander = connect(&server, "bystander").await;
    let flood = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut flood_rd, mut flood_wr) = flood.into_split();
    flood_wr.write_all(&hello("flooder")).await.unwrap();
    // 100 inputs per write, written as fast as the socket takes them, until the server
    // closes the connection.
    let batch: Vec<u8> = (0..100u32)
        .flat_map(|seq| {
            frame_bytes(&ClientMessage::Input(Input {
                seq,
                dir_x: 127,
                dir_y: 0,
            }))
        })
        .collect();
    let writer = tokio::spawn(async move {
        while flood_wr.write_all(&batch).await.is_ok() {
            tokio::task::yield_now().await;
        }
    });
    let bystander_frames = tokio::spawn(async move {
        consecutive_frames(&mut bystander, 40).await;
        bystander
    });

    let (refusal, open, _) = read_to_refusal(&mut flood_rd).await;
    assert!(open);
    assert_eq!(refusal.reason, CloseReason::InputFlood);
    writer.await.unwrap();
    let mut bystander = bystander_frames.await.unwrap();
    consecutive_frames(&mut bystander, 5).await;

    let stats = server.stats();
    assert_eq!(stats.closes(CloseReason::InputFlood), 1);
    assert!(
        stats.inputs_dropped_rate_limited > 0,
        "inputs over the rate were dropped before the kick"
    );
    eventually("the flooder is despawned", || {
        server.stats().players_connected == 1
    })
    .await;
}
