//! WebSocket players on the web listener, over real loopback sockets: one world with TCP
//! players, the page served by the binary, and every bad upgrade or frame with its defined
//! HTTP status or close code, its counter, and bystanders that keep their frames.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::ws::{MASK, WsClient, WsRead, http, upgrade_request};
use crate::common::*;
use throng::config::ConfigLayer;
use throng::protocol::websocket::{self, Opcode};
use throng::protocol::{ClientMessage, CloseReason, Input, ServerMessage};
use throng_client::{Client, Mirror};

fn shared_world() -> ConfigLayer {
    ConfigLayer {
        world_size: Some(300.0),
        interest_radius: Some(1000.0),
        ..Default::default()
    }
}

fn web(server: &TestServer) -> SocketAddr {
    server.web_addr().expect("the web listener is on in tests")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_players_share_one_world_and_see_each_other_exactly() {
    let server = start_server(shared_world());
    let mut tcp = connect(&server, "tcp-ann").await;
    let (mut ws, welcome) = WsClient::join(web(&server), "ws-bob").await;
    let ws_id = welcome.player_id;
    let mut tcp_mirror = Mirror::default();
    let mut ws_mirror = Mirror::default();
    for seq in 1..=20 {
        ws.send(&ClientMessage::Input(Input {
            seq,
            dir_x: 90,
            dir_y: -40,
        }))
        .await;
        tcp_mirror.apply(&next_frame(&mut tcp).await).unwrap();
    }
    let (tick, state) = tokio::task::block_in_place(|| server_state(&server, 0));
    sync_to(&mut tcp, &mut tcp_mirror, tick).await;
    assert_eq!(
        tcp_mirror.entities[&ws_id].wire, state[&ws_id],
        "the TCP player sees the WebSocket player where the server has it"
    );
    while u64::from(ws_mirror.tick) < tick {
        match ws.read().await {
            WsRead::Message(ServerMessage::Frame(frame)) => ws_mirror.apply(&frame).unwrap(),
            WsRead::Message(_) => {}
            other => panic!("the WebSocket session ended: {other:?}"),
        }
    }
    assert_eq!(
        mirror_state(&ws_mirror),
        state,
        "and the WebSocket player sees both"
    );
    assert!(
        ws_mirror.ack_seq >= 1,
        "its inputs are acknowledged like a TCP player's"
    );
    let stats = server.stats();
    assert_eq!(stats.websocket_upgrades, 1);
    assert_eq!(stats.players_connected, 2);
    assert_eq!(
        (stats.players_tcp, stats.players_websocket),
        (1, 1),
        "by transport"
    );
    // Goodbye is answered with a normal close.
    ws.send(&ClientMessage::Goodbye).await;
    assert_eq!(ws.read_to_close().await, (Some(1000), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_of_both_kinds_are_answered_and_a_kick_carries_its_reason_in_the_close_code() {
    let server = start_server(shared_world());
    let (mut ws, _) = WsClient::join(web(&server), "pinger").await;
    ws.send(&ClientMessage::Ping { nonce: 77 }).await;
    loop {
        match ws.read().await {
            WsRead::Message(ServerMessage::Pong { nonce }) => {
                assert_eq!(nonce, 77);
                break;
            }
            WsRead::Message(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // A WebSocket-level ping gets a pong with its payload.
    ws.send_frame(Opcode::Ping, b"are you there").await;
    let pong = websocket::server_frame(Opcode::Pong, b"are you there");
    let mut seen = Vec::new();
    while !seen.windows(pong.len()).any(|window| window == pong) {
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(
            HANG_GUARD,
            tokio::io::AsyncReadExt::read(&mut ws.stream, &mut buffer),
        )
        .await
        .expect("in time")
        .expect("read");
        assert!(n > 0, "closed before the pong");
        seen.extend_from_slice(&buffer[..n]);
    }
    // A second Hello is kicked: the Close message, then close code 4000 + its reason.
    let (mut ws, _) = WsClient::join(web(&server), "twice").await;
    ws.send(&ClientMessage::Hello(throng::protocol::Hello {
        protocol_version: throng::protocol::PROTOCOL_VERSION,
        name: "twice".into(),
        secret: secret_of("twice"),
    }))
    .await;
    let (code, last) = ws.read_to_close().await;
    let Some(ServerMessage::Close(refusal)) = last else {
        panic!("expected the protocol's Close first, got {last:?}");
    };
    assert_eq!(refusal.reason, CloseReason::DuplicateHello);
    assert_eq!(
        code,
        Some(4000 + CloseReason::DuplicateHello.index() as u16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_a_reject_message_and_its_close_code() {
    let server = start_server(shared_world());
    let (_ws, _) = WsClient::join(web(&server), "taken").await;
    let mut again = WsClient::upgrade(web(&server)).await;
    again
        .send(&ClientMessage::Hello(throng::protocol::Hello {
            protocol_version: throng::protocol::PROTOCOL_VERSION,
            name: "taken".into(),
            secret: "someone else's secret".into(),
        }))
        .await;
    let (code, last) = again.read_to_close().await;
    let Some(ServerMessage::Reject(refusal)) = last else {
        panic!("expected a Reject, got {last:?}");
    };
    assert_eq!(refusal.reason, CloseReason::BadCredentials);
    assert_eq!(
        code,
        Some(4000 + CloseReason::BadCredentials.index() as u16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_library_are_served_by_the_binary() {
    let server = start_server(shared_world());
    let addr = web(&server);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, head, _) = http(addr, &get("/")).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html")
    );
    let (status, head, _) = http(addr, &get("/lib/index.js")).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("text/javascript"));
    let (status, _, _) = http(addr, &get("/no/such/file")).await;
    assert_eq!(status, 404);
    let (status, _, _) = http(
        addr,
        &format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 405);
}

/// A TCP player that keeps reading frames in the background; returns how many it got, and
/// panics if its stream breaks.
fn bystander(mut client: Client) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        for _ in 0..40 {
            next_frame(&mut client).await;
        }
        client
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrades_get_their_http_status_and_are_counted() {
    let server = start_server(shared_world());
    let addr = web(&server);
    let watcher = bystander(connect(&server, "bystander").await);
    let request = |extra: &str| upgrade_request(addr, "/ws", extra);
    // Not an upgrade at all.
    let plain = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, head, _) = http(addr, &plain).await;
    assert_eq!(status, 426, "{head}");
    // Version 8.
    let old = upgrade_request(addr, "/ws", "").replace("Version: 13", "Version: 8");
    let (status, head, _) = http(addr, &old).await;
    assert_eq!(status, 426);
    assert!(head.contains("13"), "names the version it speaks: {head}");
    // A key that is not 16 bytes of base64.
    let bad_key = upgrade_request(addr, "/ws", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    assert_eq!(http(addr, &bad_key).await.0, 400);
    // No key.
    let no_key = upgrade_request(addr, "/ws", "")
        .replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert_eq!(http(addr, &no_key).await.0, 400);
    // Another site's page.
    assert_eq!(
        http(addr, &request("Origin: http://evil.example\r\n"))
            .await
            .0,
        403
    );
    // The page's own origin is fine.
    let own = request(&format!("Origin: http://{addr}\r\n"));
    assert_eq!(http(addr, &own).await.0, 101);
    let stats = server.stats();
    assert_eq!(stats.websocket_refused_not_upgrade, 2);
    assert_eq!(stats.websocket_refused_bad_key, 2);
    assert_eq!(stats.websocket_refused_origin, 1);
    watcher.await.expect("the bystander kept its frames");
}

/// Upgrades, sends `bytes` as they are, and returns the close code the server answers with
/// (no protocol message must come first).
async fn close_code_for(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut ws = WsClient::upgrade(addr).await;
    ws.send_raw(bytes).await;
    let (code, last) = ws.read_to_close().await;
    assert_eq!(last, None, "a WebSocket fault gets no protocol message");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_their_close_code_and_are_counted_by_reason() {
    let server = start_server(ConfigLayer {
        max_inbound_frame_bytes: Some(512),
        ..shared_world()
    });
    let addr = web(&server);
    let watcher = bystander(connect(&server, "bystander").await);
    let malformed_before = server.stats().rejects_by_reason[CloseReason::Malformed.index()];
    let text = websocket::client_frame(Opcode::Text, b"hello", MASK);
    assert_eq!(close_code_for(addr, &text).await, Some(1003));
    let mut fragment = websocket::client_frame(Opcode::Binary, &[0, 3], MASK);
    fragment[0] &= 0x7F;
    assert_eq!(close_code_for(addr, &fragment).await, Some(1003));
    let unmasked = websocket::server_frame(Opcode::Binary, &[0, 3]);
    assert_eq!(close_code_for(addr, &unmasked).await, Some(1002));
    let (header, size) = websocket::frame_header(Opcode::Binary, 513, Some(MASK));
    assert_eq!(close_code_for(addr, &header[..size]).await, Some(1009));
    let stats = server.stats();
    assert_eq!(
        stats.rejects_by_reason[CloseReason::Malformed.index()] - malformed_before,
        3
    );
    assert_eq!(
        stats.rejects_by_reason[CloseReason::FrameTooLarge.index()],
        1
    );
    // A protocol message that does not decode is the protocol's own refusal.
    let mut ws = WsClient::upgrade(addr).await;
    ws.send_frame(Opcode::Binary, &[200, 1]).await;
    let (code, last) = ws.read_to_close().await;
    let Some(ServerMessage::Reject(refusal)) = last else {
        panic!("expected a Reject, got {last:?}");
    };
    assert_eq!(refusal.reason, CloseReason::UnknownMessageType);
    assert_eq!(
        code,
        Some(4000 + CloseReason::UnknownMessageType.index() as u16)
    );
    watcher.await.expect("the bystander kept its frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_never_finished_is_closed_at_the_handshake_timeout() {
    let server = start_server(ConfigLayer {
        handshake_timeout_s: Some(0.5),
        ..shared_world()
    });
    let addr = web(&server);
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Half a request line, then silence: the connection's premise.
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"GET /ws HTT")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(
        HANG_GUARD,
        tokio::io::AsyncReadExt::read(&mut slow, &mut buffer),
    )
    .await
    .expect("closed by the server, not the hang guard");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    eventually("the timeout is counted", || {
        server.stats().rejects_by_reason[CloseReason::HandshakeTimeout.index()] == 1
    })
    .await;
    // An upgraded socket that never sends its Hello is held to the same timeout.
    let mut ws = WsClient::upgrade(addr).await;
    let started = std::time::Instant::now();
    let (code, last) = ws.read_to_close().await;
    assert!(started.elapsed() < HANG_GUARD - Duration::from_secs(1));
    assert!(
        matches!(last, Some(ServerMessage::Reject(ref r)) if r.reason == CloseReason::HandshakeTimeout)
    );
    assert_eq!(
        code,
        Some(4000 + CloseReason::HandshakeTimeout.index() as u16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_pipelined_behind_the_upgrade_request_are_all_taken_in_order() {
    // A burst allowance for all 100 inputs at once: this test is about bytes, not rates.
    let server = start_server(ConfigLayer {
        input_burst: Some(200),
        ..shared_world()
    });
    // The Hello and 100 inputs in the upgrade request's own write: more bytes than one
    // maximal message (what the reader holds at once), all read by the HTTP server first.
    let body = |message: &ClientMessage| throng::protocol::frame_bytes(message)[4..].to_vec();
    let mut behind = websocket::client_frame(
        Opcode::Binary,
        &body(&ClientMessage::Hello(throng::protocol::Hello {
            protocol_version: throng::protocol::PROTOCOL_VERSION,
            name: "eager".into(),
            secret: secret_of("eager"),
        })),
        MASK,
    );
    for seq in 1..=100 {
        let input = ClientMessage::Input(Input {
            seq,
            dir_x: 1,
            dir_y: 0,
        });
        behind.extend(websocket::client_frame(Opcode::Binary, &body(&input), MASK));
    }
    assert!(behind.len() > 512 + websocket::MAX_HEADER_BYTES);
    let mut ws = WsClient::upgrade_pipelining(web(&server), &behind).await;
    let mut welcomed = false;
    loop {
        match ws.read().await {
            WsRead::Message(ServerMessage::Welcome(_)) => welcomed = true,
            WsRead::Message(ServerMessage::Frame(frame)) if frame.ack_seq == 100 => break,
            WsRead::Message(ServerMessage::Frame(_)) => assert!(welcomed, "Welcome first"),
            other => panic!("the session ended: {other:?}"),
        }
    }
}
