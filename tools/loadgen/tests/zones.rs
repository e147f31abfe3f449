//! Bots following zone transfers, against two scripted stand-in zone servers (no throng
//! process, no database): an origin that welcomes a bot and hands it over with a Transfer,
//! and a destination that takes (or refuses) its Resume. Over TCP and WebSocket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use throng_protocol::framing::FrameReader;
use throng_protocol::websocket::{Opcode, WsFrame, WsReader, accept_key, server_frame};
use throng_protocol::{
    ClientMessage, CloseReason, EntitySpawn, EntityUpdate, Event, Refusal, Schema, ServerMessage,
    StateFrame, Transfer, Welcome, decode_client_message, frame_bytes,
};

const WORLD: f32 = 1000.0;
/// How long a stand-in serves one connection at most.
const SERVE_FOR: Duration = Duration::from_secs(8);

/// How the destination answers a Resume.
#[derive(Clone, Copy)]
enum Answer {
    /// Welcome, then frames with the bot `offset` units (x) from where the origin left it.
    Welcome { offset: f32 },
    /// Reject with this reason.
    Refuse(CloseReason),
    /// None: the Transfer names a TCP address nobody listens on, and no WebSocket URL.
    Unreachable,
}

fn welcome(player_id: u32) -> ServerMessage {
    ServerMessage::Welcome(Welcome {
        player_id,
        tick_hz: 20,
        world_size: WORLD,
        interest_radius: 50.0,
        cell_size: 50.0,
        view_cells: 1,
        position_scale: 8.0,
        max_frame_bytes: 1 << 20,
        schema: Schema {
            components: vec![],
            actions: vec![],
            events: vec!["movement".into()],
        },
        idle_timeout_ms: 10_000,
        max_inputs_per_s: 60,
    })
}

/// The sending half of a stand-in's connection.
struct Conn {
    stream: TcpStream,
    ws: bool,
}

/// The receiving half.
struct Incoming {
    stream: TcpStream,
    ws: Option<WsReader>,
    tcp: FrameReader,
}

/// Accepts a connection (upgrading it for WebSocket).
fn accept(listener: &TcpListener, ws: bool) -> Option<(Conn, Incoming)> {
    let (mut stream, _) = listener.accept().ok()?;
    stream.set_read_timeout(Some(SERVE_FOR)).unwrap();
    stream.set_nodelay(true).unwrap();
    if ws {
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).ok()?;
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("GET /ws HTTP/1.1\r\n"), "{head}");
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(key)
        );
        stream.write_all(response.as_bytes()).ok()?;
    }
    let incoming = Incoming {
        stream: stream.try_clone().unwrap(),
        ws: ws.then(|| WsReader::client_frames(1 << 16)),
        tcp: FrameReader::new(1 << 16),
    };
    Some((Conn { stream, ws }, incoming))
}

impl Conn {
    fn send(&mut self, message: &ServerMessage) -> std::io::Result<()> {
        let frame = frame_bytes(message);
        if self.ws {
            self.stream
                .write_all(&server_frame(Opcode::Binary, &frame[4..]))
        } else {
            self.stream.write_all(&frame)
        }
    }
}

impl Incoming {
    /// The next client message (`None` once the client closed).
    fn recv(&mut self) -> Option<ClientMessage> {
        loop {
            let body = match &mut self.ws {
                Some(reader) => match reader.next_frame().unwrap() {
                    Some(WsFrame::Binary(body)) => Some(body.to_vec()),
                    Some(WsFrame::Close(_)) => return None,
                    Some(_) => continue,
                    None => None,
                },
                None => self.tcp.next_frame().unwrap().map(<[u8]>::to_vec),
            };
            if let Some(body) = body {
                return Some(decode_client_message(&body).unwrap());
            }
            let spare = match &mut self.ws {
                Some(reader) => reader.spare(),
                None => self.tcp.spare(),
            };
            let n = self.stream.read(spare).ok().filter(|&n| n > 0)?;
            match &mut self.ws {
                Some(reader) => reader.filled(n),
                None => self.tcp.filled(n),
            }
        }
    }

    /// Reads inputs in the background; the returned seq is the last one seen (from
    /// `first`).
    fn read_inputs(mut self, first: u32) -> Arc<AtomicU32> {
        let last = Arc::new(AtomicU32::new(first));
        let seen = last.clone();
        std::thread::spawn(move || {
            while let Some(message) = self.recv() {
                if let ClientMessage::Input(input) = message {
                    seen.fetch_max(input.seq, Ordering::Relaxed);
                }
            }
        });
        last
    }
}

/// Serves frames where the bot walks +1 unit in x per tick from `start` (wire units), with
/// acks from `acks`, until `ticks` frames went out or the client is gone; returns the last
/// position sent.
fn serve_frames(
    conn: &mut Conn,
    id: u32,
    first_tick: u32,
    start: [u32; 2],
    ticks: Option<u32>,
    acks: &AtomicU32,
) -> [u32; 2] {
    let mut position = start;
    let until = Instant::now() + SERVE_FOR;
    for n in 0.. {
        if ticks.is_some_and(|t| n >= t) || Instant::now() > until {
            break;
        }
        let mut frame = StateFrame {
            tick: first_tick + n,
            ack_seq: acks.load(Ordering::Relaxed),
            ..Default::default()
        };
        if n == 0 {
            frame.reset = true;
            frame.events = vec![Event {
                kind: 0,
                bytes: 5.0f32.to_le_bytes().to_vec(),
            }];
            frame.spawned = vec![EntitySpawn {
                id,
                x: position[0],
                y: position[1],
                components: vec![],
            }];
        } else {
            position[0] += 8;
            frame.updated = vec![EntityUpdate {
                id,
                dx: 8,
                dy: 0,
                components: vec![],
            }];
        }
        if conn.send(&ServerMessage::Frame(frame)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    position
}

/// Where the origin left each bot and the last seq it saw, by ticket.
type Handovers = Arc<Mutex<HashMap<Vec<u8>, ([u32; 2], u32)>>>;

/// Runs `bots` bots against a stand-in origin (which sends `origin_frames` frames, then a
/// Transfer) and destination (which answers `answer`); returns loadgen's JSON report.
fn run(ws: bool, bots: usize, origin_frames: u32, answer: Answer) -> serde_json::Value {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let destination = TcpListener::bind("127.0.0.1:0").unwrap();
    let destination_addr = destination.local_addr().unwrap();
    let handovers = Handovers::default();
    let unreachable = matches!(answer, Answer::Unreachable);
    let origin_handovers = handovers.clone();
    std::thread::spawn(move || {
        for bot in 0..bots as u32 {
            let Some((mut conn, mut incoming)) = accept(&origin, ws) else {
                return;
            };
            let handovers = origin_handovers.clone();
            std::thread::spawn(move || {
                assert!(matches!(incoming.recv(), Some(ClientMessage::Hello(_))));
                conn.send(&welcome(10 + bot)).unwrap();
                let acks = incoming.read_inputs(0);
                // Near the seam at x = 1000: some bots cross it into the destination.
                let start = [(985 + bot) * 8, 300 * 8];
                let at = serve_frames(
                    &mut conn,
                    10 + bot,
                    1_000,
                    start,
                    Some(origin_frames),
                    &acks,
                );
                let ticket = format!("ticket-{bot}").into_bytes();
                let seen = acks.load(Ordering::Relaxed);
                handovers.lock().unwrap().insert(ticket.clone(), (at, seen));
                let transfer = Transfer {
                    zone: "east".into(),
                    // Over WebSocket the bot must use the URL: a dead TCP address proves it.
                    address: if ws || unreachable {
                        "127.0.0.1:1".into()
                    } else {
                        destination_addr.to_string()
                    },
                    websocket: if unreachable {
                        String::new()
                    } else {
                        format!("ws://{destination_addr}/ws")
                    },
                    ticket,
                };
                let _ = conn.send(&ServerMessage::Transfer(transfer));
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    std::thread::spawn(move || {
        for bot in 0..bots as u32 {
            let Some((mut conn, mut incoming)) = accept(&destination, ws) else {
                return;
            };
            let handovers = handovers.clone();
            std::thread::spawn(move || {
                let ticket = match incoming.recv() {
                    Some(ClientMessage::Resume(resume)) => resume.ticket,
                    other => panic!("expected Resume, got {other:?}"),
                };
                let (at, seen) = handovers.lock().unwrap()[&ticket];
                let offset = match answer {
                    Answer::Refuse(reason) => {
                        let refusal = Refusal {
                            reason,
                            detail: "scripted".into(),
                        };
                        let _ = conn.send(&ServerMessage::Reject(refusal));
                        return;
                    }
                    Answer::Welcome { offset } => offset,
                    Answer::Unreachable => unreachable!("nobody connects"),
                };
                conn.send(&welcome(500 + bot)).unwrap();
                let acks = incoming.read_inputs(seen);
                let x = (at[0] as f32 / 8.0 + offset).rem_euclid(WORLD);
                let start = [(x * 8.0).round() as u32, at[1]];
                serve_frames(&mut conn, 500 + bot, 1, start, None, &acks);
            });
        }
    });

    let report_path = std::env::temp_dir().join(format!(
        "loadgen-zones-{}-{ws}-{origin_frames}-{}.json",
        std::process::id(),
        match answer {
            Answer::Welcome { .. } => "welcome",
            Answer::Refuse(_) => "refuse",
            Answer::Unreachable => "unreachable",
        }
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--transport", if ws { "ws" } else { "tcp" }])
        .args([
            if ws { "--web" } else { "--addr" },
            &origin_addr.to_string(),
        ])
        .args([
            "--bots",
            &bots.to_string(),
            "--warmup",
            "0.5",
            "--seconds",
            "2",
        ])
        .args(["--connect-timeout", "3"])
        .arg("--json")
        .arg(&report_path)
        .stdout(Stdio::null())
        .status()
        .expect("loadgen runs");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report_path);
    assert!(status.success(), "exit 0 (no protocol errors): {report}");
    report
}

fn number(report: &serde_json::Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

/// Every bot hands off, one step from where it was (across the world's seam for some),
/// and keeps playing on the destination.
fn bots_follow_transfers(ws: bool) {
    let report = run(ws, 4, 10, Answer::Welcome { offset: 5.0 });
    assert_eq!(number(&report, "bots_connected"), 4.0, "{report}");
    assert_eq!(number(&report, "handoffs"), 4.0, "{report}");
    assert_eq!(
        report["handoff_failures"],
        serde_json::json!({}),
        "{report}"
    );
    assert_eq!(number(&report, "continuity_checked"), 4.0, "{report}");
    assert_eq!(number(&report, "continuity_violations"), 0.0, "{report}");
    let worst = number(&report, "continuity_worst_jump");
    assert!((worst - 5.0).abs() < 0.2, "{report}");
    assert!(number(&report, "handoff_latency_ms_p50") > 0.0, "{report}");
    assert!(
        number(&report, "handoff_latency_ms_max") < 3_000.0,
        "{report}"
    );
    assert_eq!(number(&report, "bots_lost"), 0.0, "{report}");
    assert_eq!(number(&report, "handoffs_in_progress"), 0.0, "{report}");
    assert_eq!(number(&report, "protocol_errors"), 0.0, "{report}");
    assert!(
        number(&report, "frames_per_s_per_bot_min") > 0.0,
        "{report}"
    );
    // Stand-ins send 20 frames a second: bots between zones when the window opened count
    // among the bots, so the mean is per bot, not per bot playing at that instant.
    assert!(
        number(&report, "frames_per_s_per_bot_mean") < 21.0,
        "{report}"
    );
    assert!(number(&report, "input_ack_ms_p50") > 0.0, "{report}");
}

#[test]
fn bots_follow_transfers_over_tcp() {
    bots_follow_transfers(false);
}

#[test]
fn bots_follow_transfers_over_websocket() {
    bots_follow_transfers(true);
}

/// Hello, Welcome, then a Transfer at once (a login at a zone that does not own the
/// player): the handoff completes; there is no origin position to check.
#[test]
fn a_transfer_right_after_the_welcome_is_followed() {
    let report = run(false, 2, 0, Answer::Welcome { offset: 0.0 });
    assert_eq!(number(&report, "bots_connected"), 2.0, "{report}");
    assert_eq!(number(&report, "handoffs"), 2.0, "{report}");
    assert_eq!(number(&report, "continuity_unchecked"), 2.0, "{report}");
    assert_eq!(number(&report, "bots_lost"), 0.0, "{report}");
}

#[test]
fn a_refused_ticket_is_a_failed_handoff_and_a_lost_bot() {
    let report = run(false, 2, 3, Answer::Refuse(CloseReason::TicketUsed));
    assert_eq!(number(&report, "handoffs"), 0.0, "{report}");
    assert_eq!(
        report["handoff_failures"],
        serde_json::json!({"ticket_used": 2}),
        "{report}"
    );
    assert_eq!(number(&report, "bots_lost"), 2.0, "{report}");
}

#[test]
fn a_jump_at_the_border_is_a_continuity_violation() {
    let report = run(true, 2, 5, Answer::Welcome { offset: 40.0 });
    assert_eq!(number(&report, "handoffs"), 2.0, "{report}");
    assert_eq!(number(&report, "continuity_violations"), 2.0, "{report}");
    assert!((number(&report, "continuity_worst_jump") - 40.0).abs() < 0.2);
}

/// A destination that refuses connections: a few attempts, then `connect_failed`; over
/// WebSocket, a Transfer without a URL fails at once.
#[test]
fn an_unreachable_destination_is_a_failed_handoff() {
    let report = run(false, 1, 2, Answer::Unreachable);
    assert_eq!(
        report["handoff_failures"],
        serde_json::json!({"connect_failed": 1}),
        "{report}"
    );
    assert_eq!(number(&report, "bots_lost"), 1.0, "{report}");
    let report = run(true, 1, 2, Answer::Unreachable);
    assert_eq!(
        report["handoff_failures"],
        serde_json::json!({"no_websocket_url": 1}),
        "{report}"
    );
}
