//! The real `throng` binary: starts on embedded defaults, serves a client, and shuts down
//! gracefully on SIGTERM (every player gets Close{Shutdown}, exit code 0).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use throng::client::Client;
use throng::protocol::{CloseReason, ServerMessage};

/// Kills the server process if the test fails before it exits on its own.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_players_and_shuts_down_cleanly_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_throng"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tick-hz",
            "50",
            "--metrics",
            "off",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("address in the first line");

    let mut client = Client::connect(addr, "e2e").await.expect("welcomed");
    assert_eq!(client.welcome.tick_hz, 50);
    let mut frames = 0;
    while frames < 5 {
        if let ServerMessage::Frame(frame) = client.recv().await.unwrap() {
            assert!(frame.spawned.iter().any(|s| s.id == client.player_id()) || frames > 0);
            frames += 1;
        }
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
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
    let exit = tokio::task::block_in_place(|| child.0.wait()).unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}
