//! The real `throng` binary: starts on embedded defaults, serves a client, and shuts down
//! gracefully on SIGTERM (every player gets Close{Shutdown}, exit code 0); a second signal
//! during the shutdown exits at once.

use crate::common::*;
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

/// Issue 13, finding 5: a log written to a pipe (or a file) carries no terminal colour codes.
#[test]
fn a_log_to_a_pipe_has_no_colour_codes() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let data_dir = fresh_data_dir("log-pipe");
    let mut child = crate::common::server_process::throng_command(data_dir.path())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("throng listening on"), "{line:?}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // (Whether the TERM came before the signal handler was set up does not matter here.)
    let _ = child.wait();
    assert!(log.contains("throng listening"), "the info log: {log}");
    assert!(
        !log.contains('\x1b'),
        "no ANSI escape codes in a piped log: {log:?}"
    );
}

/// A script that closes the server's stdout (it read what it wanted, or never wanted it)
/// must not take the server down: its address lines go to a closed pipe, and the server
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_the_server() {
    use std::process::{Command, Stdio};
    let data_dir = fresh_data_dir("closed-stdout");
    // The address is chosen here because the server cannot tell it (its stdout is closed).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_throng"))
        .args(["--listen", &addr.to_string()])
        .args(["--metrics", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts");
    // The pipe's read end closes before the server has written a line.
    drop(child.stdout.take());
    let started = std::time::Instant::now();
    let mut client = loop {
        assert!(started.elapsed() < HANG_GUARD, "never listened");
        match Client::connect(addr, "after", &secret_of("after")).await {
            Ok(client) => break client,
            Err(_) => {
                assert!(child.try_wait().unwrap().is_none(), "the server died");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    for _ in 0..20 {
        client.recv().await.expect("frames keep coming");
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
