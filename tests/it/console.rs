//! The live operator console on the metrics address, over real sockets: the page, the
//! once-a-second snapshot stream (Server-Sent Events) and the player lookup; a viewer that
//! never reads costs neither memory nor the players' frames.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::bots::{records, walking_bots};
use crate::common::*;
use throng::config::{ConfigLayer, Endpoint};
use throng::protocol::{CloseReason, ServerMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Sends `GET path` and returns the status code and the whole body (the server closes).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: console\r\n\r\n"),
    )
    .await
}

/// Sends `request` and returns the answer's status code and whole body (the server closes).
async fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply))
        .await
        .expect("answered in time")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A console stream being read.
struct Stream {
    lines: BufReader<TcpStream>,
}

impl Stream {
    async fn open(addr: SocketAddr) -> Stream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /console/stream HTTP/1.1\r\nHost: console\r\n\r\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(stream);
        let mut status = String::new();
        lines.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        Stream { lines }
    }

    /// The next `snapshot` event's data, parsed (chunked framing lines are skipped).
    async fn next_snapshot(&mut self) -> serde_json::Value {
        let mut event = None;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(HANG_GUARD, self.lines.read_line(&mut line))
                .await
                .expect("an event in time")
                .unwrap();
            assert!(read > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = Some(name.trim().to_owned());
            } else if let Some(data) = line.strip_prefix("data:")
                && event.as_deref() == Some("snapshot")
            {
                return serde_json::from_str(data.trim()).expect("one JSON object");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_streams_snapshots_and_finds_players() {
    let server = start_server(ConfigLayer {
        metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        tick_hz: Some(20),
        ..Default::default()
    });
    let metrics = server.metrics_addr().expect("metrics on");
    let mut players = Vec::new();
    for i in 0..5 {
        players.push(connect(&server, &format!("Viewer{i}")).await);
    }
    let mut stream = Stream::open(metrics).await;
    let first = stream.next_snapshot().await;
    let second = stream.next_snapshot().await;
    for snapshot in [&first, &second] {
        assert_eq!(snapshot["players"], 5, "{snapshot}");
        assert_eq!(snapshot["tick_hz"], 20);
        assert_eq!(snapshot["tick_ms"]["budget"], 50.0);
        let positions = snapshot["positions"].as_array().unwrap();
        let of_players = positions.iter().filter(|p| p[2] == 0).count();
        assert!(of_players >= 5, "{snapshot}");
        // The count an operator reads is the game's entities, the dots on the minimap (the
        // test world has no NPCs and nobody moves between ticks here).
        assert_eq!(snapshot["entities"], positions.len(), "{snapshot}");
        for field in ["p50", "p99", "max"] {
            assert!(snapshot["tick_ms"][field].as_f64().unwrap() >= 0.0);
        }
        assert!(snapshot["rss_bytes"].as_u64().unwrap() > 0);
        assert!(snapshot["rejects"].is_object() && snapshot["kicks"].is_object());
    }
    assert!(
        second["tick"].as_u64().unwrap() > first["tick"].as_u64().unwrap(),
        "{first} then {second}"
    );

    let (status, body) = get(metrics, "/console/player?name=vIEWER3").await;
    assert_eq!(status, 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["name"], "Viewer3");
    assert!(found["id"].as_u64().is_some() && found["x"].as_f64().is_some());
    let (status, _) = get(metrics, "/console/player?name=nobody").await;
    assert_eq!(status, 404);
    let (status, page) = get(metrics, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.to_ascii_lowercase().contains("<html") || page.contains("<!"),
        "{page}"
    );
    drop(players);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_viewer_that_never_reads_costs_nothing() {
    let server = ServerProcess::start(&[]);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let bots = walking_bots(server.addr, "bystander", 5, &stop).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_bytes();
    // Asks for the stream with a tiny receive buffer, and never reads a byte.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(server.metrics).await.unwrap();
    stuck
        .write_all(b"GET /console/stream HTTP/1.1\r\nHost: console\r\n\r\n")
        .await
        .unwrap();
    let mut rss_peak = rss_before;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_peak = rss_peak.max(server.rss_bytes());
    }
    stop_tx.send(true).unwrap();
    let records = records(bots).await;
    let growth = rss_peak.saturating_sub(rss_before);
    assert!(growth < 16 << 20, "RSS grew {growth} bytes");
    for record in &records {
        assert_eq!(record.ended, None, "{record:?}");
        assert_eq!(record.resets, 0, "{record:?}");
        assert_eq!(record.skipped_ticks, 0, "{record:?}");
        assert!(record.frames >= 60, "{record:?}");
    }
    drop(stuck);
}

/// Sends `POST /console/kick` with `body` and returns the status code and the whole body.
pub(crate) async fn post_kick(addr: SocketAddr, body: &str) -> (u16, String) {
    let request = format!(
        "POST /console/kick HTTP/1.1\r\nHost: console\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_kicks_a_player_by_name_with_a_reason() {
    let server = start_server(ConfigLayer {
        metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    });
    let metrics = server.metrics_addr().expect("metrics on");
    let mut victim = connect(&server, "Victim").await;
    let _bystander = connect(&server, "Bystander").await;
    let (status, body) = post_kick(metrics, r#"{"name": "vICTIM", "reason": "be nice"}"#).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["kicked"], "Victim");
    let refusal = loop {
        let message = tokio::time::timeout(HANG_GUARD, victim.recv())
            .await
            .expect("the close in time")
            .expect("recv");
        if let ServerMessage::Close(refusal) = message {
            break refusal;
        }
    };
    assert_eq!(refusal.reason, CloseReason::Kicked);
    assert_eq!(refusal.detail, "be nice");

    let (status, _) = post_kick(metrics, r#"{"name": "nobody", "reason": "x"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = post_kick(metrics, r#"{"name": "Bystander""#).await;
    assert_eq!(status, 400);
    let long = format!(
        r#"{{"name": "Bystander", "reason": "{}"}}"#,
        "a".repeat(201)
    );
    let (status, _) = post_kick(metrics, &long).await;
    assert_eq!(status, 400);
    let (status, _) = get(metrics, "/console/kick").await;
    assert_eq!(status, 405);
    let (_, scrape) = get(metrics, "/metrics").await;
    assert!(
        scrape.contains("throng_kicks_total{reason=\"kicked\"} 1\n"),
        "{scrape}"
    );
    assert!(scrape.contains("throng_console_kicks_refused_total 0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_turned_off_is_not_found() {
    let server = start_server(ConfigLayer {
        metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        console: Some(false),
        ..Default::default()
    });
    let metrics = server.metrics_addr().expect("metrics on");
    for path in [
        "/",
        "/console/stream",
        "/console.js",
        "/console/player?name=a",
    ] {
        assert_eq!(get(metrics, path).await.0, 404, "{path}");
    }
    assert_eq!(post_kick(metrics, r#"{"name": "a"}"#).await.0, 404);
    assert_eq!(get(metrics, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_non_http_requests_cost_the_players_nothing() {
    let server = ServerProcess::start(&[]);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let bots = walking_bots(server.addr, "bystander", 3, &stop).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for request in [
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec(),
    ] {
        let mut stream = TcpStream::connect(server.metrics).await.unwrap();
        // The server may answer and close before the whole request is written.
        let _ = stream.write_all(&request).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply))
            .await
            .expect("answered or closed in time");
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty()
                || reply.starts_with("HTTP/1.1 431 ")
                || reply.starts_with("HTTP/1.1 400 "),
            "{reply}"
        );
    }
    assert_eq!(get(server.metrics, "/healthz").await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    for record in records(bots).await {
        assert_eq!(record.ended, None, "{record:?}");
        assert_eq!(record.skipped_ticks, 0, "{record:?}");
        assert!(record.frames >= 30, "{record:?}");
    }
}
