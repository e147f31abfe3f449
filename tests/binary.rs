//! The real `throng` binary: starts on embedded defaults, serves a client, and shuts down
//! gracefully on SIGTERM (every player gets Close{Shutdown}, exit code 0); a second signal
//! during the shutdown exits at once.

mod common;

use common::*;
use throng::protocol::{CloseReason, ServerMessage};
use throng::server::FORCED_EXIT_CODE;
use throng_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_players_and_shuts_down_cleanly_on_sigterm() {
    let mut server = ServerProcess::start(&["--tick-hz", "50"]);
    let mut client = Client::connect(server.addr, "e2e", &secret_of("e2e"))
        .await
        .expect("welcomed");
    assert_eq!(client.welcome.tick_hz, 50);
    let mut frames = 0;
    while frames < 5 {
        if let ServerMessage::Frame(frame) = client.recv().await.unwrap() {
            assert!(frame.spawned.iter().any(|s| s.id == client.player_id()) || frames > 0);
            frames += 1;
        }
    }

    server.signal("TERM");
    let close = loop {
        match tokio::time::timeout(HANG_GUARD, client.recv())
            .await
            .expect("close in time")
            .unwrap()
        {
            ServerMessage::Close(refusal) => break refusal,
            ServerMessage::Frame(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.reason, CloseReason::Shutdown);
    let exit = tokio::task::block_in_place(|| server.wait());
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_shutdown_exits_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let mut server = ServerProcess::start(&["--tick-hz", "5"]);
    let _client = Client::connect(server.addr, "e2e", &secret_of("e2e"))
        .await
        .expect("welcomed");
    // Both signals reach the process together: it starts the graceful shutdown on one and
    // must then exit at once on the other, without waiting for the drain.
    server.signal("STOP");
    server.signal("TERM");
    server.signal("INT");
    server.signal("CONT");
    let exit = tokio::task::block_in_place(|| server.wait());
    assert_eq!(
        exit.code(),
        Some(FORCED_EXIT_CODE),
        "a second signal cuts the shutdown short, got {exit:?} (signal {:?})",
        exit.signal()
    );
}
