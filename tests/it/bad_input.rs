//! Bad input over real sockets: every case gets a clear refusal or close with a reason, is
//! counted, and does not disturb the other players' ticks.

use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::{ClientMessage, CloseReason, Hello, Input, Refusal, frame_bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh raw connection and returns the refusal the server sends before
/// closing the socket, and whether it was a Close (session accepted) rather than a Reject.
async fn refusal_for(server: &throng::ServerHandle, bytes: &[u8]) -> (Refusal, bool) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let (refusal, open, _) = read_to_refusal(&mut stream).await;
    (refusal, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_is_refused_with_its_reason_and_counted() {
    let server = start_server(ConfigLayer {
        max_inbound_frame_bytes: Some(64),
        ..Default::default()
    });
    let mut bystander = connect(&server, "bystander").await;
    let first_tick = next_frame(&mut bystander).await.tick;

    let mut oversize = 65u32.to_le_bytes().to_vec();
    oversize.extend_from_slice(&[0; 8]); // the body never needs to arrive
    let mut wrong_version = frame_bytes(&ClientMessage::Hello(Hello {
        protocol_version: 99,
        name: "old".into(),
        secret: secret_of("old"),
    }));
    let input = frame_bytes(&ClientMessage::Input(Input {
        seq: 1,
        dir_x: 1,
        dir_y: 0,
    }));
    let mut second_hello = hello("twice");
    second_hello.extend_from_slice(&hello("twice"));
    let mut in_session_garbage = hello("garbler");
    in_session_garbage.extend_from_slice(&[3, 0, 0, 0, 1, 0xff, 0xff]);

    // (case, bytes, reason, answered by Close (session was open) rather than Reject)
    let cases: Vec<(&str, Vec<u8>, CloseReason, bool)> = vec![
        (
            "oversize frame",
            oversize,
            CloseReason::FrameTooLarge,
            false,
        ),
        (
            "undecodable bytes",
            vec![3, 0, 0, 0, 0, 0xff, 0xff],
            CloseReason::Malformed,
            false,
        ),
        (
            "empty frame",
            vec![0, 0, 0, 0],
            CloseReason::Malformed,
            false,
        ),
        (
            "unknown message type",
            vec![1, 0, 0, 0, 42],
            CloseReason::UnknownMessageType,
            false,
        ),
        (
            "input before hello",
            input,
            CloseReason::ExpectedHello,
            false,
        ),
        (
            "wrong protocol version",
            std::mem::take(&mut wrong_version),
            CloseReason::VersionMismatch,
            false,
        ),
        (
            "invalid name",
            hello("no spaces allowed"),
            CloseReason::InvalidName,
            false,
        ),
        (
            "second hello",
            second_hello,
            CloseReason::DuplicateHello,
            true,
        ),
        (
            "garbage after hello",
            in_session_garbage,
            CloseReason::Malformed,
            true,
        ),
    ];
    for (case, bytes, reason, in_session) in cases {
        let before = server.stats().closes(reason);
        let (refusal, was_close) = refusal_for(&server, &bytes).await;
        assert_eq!(refusal.reason, reason, "{case}: {}", refusal.detail);
        assert_eq!(
            was_close, in_session,
            "{case}: Reject before the session, Close in it"
        );
        assert!(
            !refusal.detail.is_empty(),
            "{case}: a human-readable detail"
        );
        assert_eq!(
            server.stats().closes(reason),
            before + 1,
            "{case} is counted"
        );
    }

    // The bystander's tick never stalled: consecutive frames throughout.
    let mut last = first_tick;
    for _ in 0..10 {
        let tick = next_frame(&mut bystander).await.tick;
        assert_eq!(tick, last + 1, "frames kept coming one per tick");
        last = tick;
    }
    let stats = server.stats();
    assert_eq!(
        stats.players_connected, 1,
        "refused sessions left nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_rejects_newcomers_and_keeps_serving() {
    let server = start_server(ConfigLayer {
        max_players: Some(2),
        ..Default::default()
    });
    let _a = connect(&server, "a").await;
    let mut b = connect(&server, "b").await;
    let (refusal, _) = refusal_for(&server, &hello("c")).await;
    assert_eq!(refusal.reason, CloseReason::ServerFull);
    assert_eq!(server.stats().closes(CloseReason::ServerFull), 1);
    next_frame(&mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_after_the_handshake_timeout() {
    let server = start_server(ConfigLayer {
        handshake_timeout_s: Some(0.3),
        ..Default::default()
    });
    let (refusal, _) = refusal_for(&server, &[]).await;
    assert_eq!(refusal.reason, CloseReason::HandshakeTimeout);
    eventually("the connection task ends", || {
        server.stats().connections_live == 0
    })
    .await;
}
