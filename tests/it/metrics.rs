//! The Prometheus endpoint and the probes over real sockets: what a scrape reports matches
//! what the test did, the exposition follows the naming conventions, `/healthz` sees a
//! stalled tick loop, `/readyz` sees a full server and a shutdown drain.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bevy_ecs::prelude::*;
use components::{ServerTick, TickSet};

use crate::common::*;
use throng::config::{ConfigLayer, Endpoint};
use throng::protocol::{CloseReason, ServerMessage};
use throng_scrape::{Scrape, http_get, http_status, scrape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn server_with_metrics() -> TestServer {
    start_server(ConfigLayer {
        metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    })
}

async fn scrape_now(server: &throng::ServerHandle) -> Scrape {
    let addr = server.metrics_addr().expect("metrics on");
    tokio::task::spawn_blocking(move || scrape(addr, HANG_GUARD))
        .await
        .unwrap()
        .expect("scrape answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_what_the_session_did() {
    let server = server_with_metrics();
    let mut walker = connect(&server, "walker").await;
    let mut watcher = connect(&server, "watcher").await;
    for seq in 1..=10 {
        walker.send_input(seq, 127, 0).await.unwrap();
    }
    // A third connection is refused for an undecodable Hello.
    let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
    bad.write_all(&[2, 0, 0, 0, 0xff, 0xff]).await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(HANG_GUARD, bad.read_to_end(&mut sink)).await;

    // Once the walker's last input is acknowledged, the tick has applied it.
    loop {
        if let ServerMessage::Frame(frame) = walker.recv().await.unwrap()
            && frame.ack_seq == 10
        {
            break;
        }
    }
    let mut watcher_frames = 0.0;
    while watcher_frames < 3.0 {
        if let ServerMessage::Frame(_) = watcher.recv().await.unwrap() {
            watcher_frames += 1.0;
        }
    }

    let metrics = scrape_now(&server).await;
    let value = |name: &str| metrics.value(name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(value("throng_connections_accepted_total"), 3.0);
    assert_eq!(value("throng_players_connected"), 2.0);
    assert_eq!(
        metrics.labelled(
            "throng_connections_rejected_total",
            "reason",
            CloseReason::Malformed.as_str()
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.labelled(
            "throng_kicks_total",
            "reason",
            CloseReason::Malformed.as_str()
        ),
        Some(0.0),
        "a refusal before the session opened is not a kick"
    );
    // Two Hellos, ten inputs and the bad frame.
    assert_eq!(value("throng_inbound_frames_total"), 13.0);
    assert!(value("throng_inputs_applied_total") >= 1.0);
    assert!(value("throng_inputs_applied_total") <= 10.0);
    assert!(value("throng_outbound_frames_total") >= watcher_frames + 1.0);
    assert!(value("throng_frames_written_total") >= watcher_frames);
    let ticks = value("throng_ticks_total");
    assert!(ticks >= 3.0);
    let histogram_count = value("throng_tick_duration_seconds_count");
    assert!(
        (histogram_count - ticks).abs() <= 1.0,
        "one observation per tick"
    );
    assert_eq!(
        metrics.buckets("throng_tick_duration_seconds").last(),
        Some(&(f64::INFINITY, histogram_count))
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_follows_prometheus_conventions() {
    let server = server_with_metrics();
    let addr = server.metrics_addr().unwrap();
    let text = tokio::task::spawn_blocking(move || http_get(addr, "/metrics", HANG_GUARD))
        .await
        .unwrap()
        .unwrap();
    let mut declared = HashSet::new();
    let mut kinds = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(declared.insert(name.to_owned()), "{name} declared twice");
            kinds.insert(name.to_owned(), kind.to_owned());
            assert!(
                name.starts_with("throng_") || name.starts_with("process_"),
                "{name} lacks the prefix"
            );
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name}: {kind}"
            );
            if kind == "histogram" {
                assert!(name.ends_with("_seconds") || name.ends_with("_bytes"));
            }
        }
    }
    let scrape = Scrape::parse(&text);
    for sample in &scrape.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = sample.name.strip_suffix(suffix)?;
                (kinds.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(&sample.name);
        assert!(declared.contains(family), "{} has no TYPE", sample.name);
    }
    let unknown = tokio::task::spawn_blocking(move || {
        http_get(addr, "/nope", Duration::from_secs(5)).unwrap_err()
    })
    .await
    .unwrap();
    assert!(unknown.to_string().contains("404"), "{unknown}");
}

/// A scraper that asks for OpenMetrics (as Prometheus does) gets it, with the same samples
/// under the same names; everyone else gets the Prometheus text format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_is_served_to_a_scraper_that_asks_for_it() {
    let server = server_with_metrics();
    let addr = server.metrics_addr().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE throng_ticks counter\n"));
    let open_metrics = Scrape::parse(body);
    let prometheus = scrape_now(&server).await;
    // The same series; OpenMetrics writes a histogram's sum and count before its buckets,
    // and bounds as canonical floats (`le="1.0"` for `le="1"`), which parse the same.
    let series = |scrape: &Scrape| {
        let mut series: Vec<String> = scrape
            .samples
            .iter()
            .map(|sample| {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(key, value)| match value.parse::<f64>() {
                        Ok(bound) if key == "le" => format!("{key}={bound}"),
                        _ => format!("{key}={value}"),
                    })
                    .collect();
                format!("{}{{{}}}", sample.name, labels.join(","))
            })
            .collect();
        series.sort();
        series
    };
    assert_eq!(series(&open_metrics), series(&prometheus));
    assert_eq!(
        open_metrics.buckets("throng_tick_duration_seconds").len(),
        prometheus.buckets("throng_tick_duration_seconds").len()
    );
}

/// Polls `path` until it answers `status`; panics if the hang guard passes first.
fn wait_for_status(addr: std::net::SocketAddr, path: &str, status: u16) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Ok((code, body)) = http_status(addr, path, HANG_GUARD)
            && code == status
        {
            return body;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "{path} never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn healthz_reports_a_stalled_tick_loop_and_its_recovery() {
    let server = server_with_metrics();
    let addr = server.metrics_addr().unwrap();
    assert_eq!(wait_for_status(addr, "/healthz", 200), "ok\n");
    std::thread::scope(|scope| {
        // Work run on the tick thread between ticks stalls the loop until the probe has
        // reported it (past HEALTHY_TICK_AGE), not for a fixed time.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let stall = scope.spawn(|| server.with_world(move |_| released.recv_timeout(HANG_GUARD)));
        let body = wait_for_status(addr, "/healthz", 503);
        assert!(body.contains("stalled"), "{body}");
        release.send(()).unwrap();
        stall
            .join()
            .unwrap()
            .expect("tick thread alive")
            .expect("released by the test, not by the hang guard");
    });
    wait_for_status(addr, "/healthz", 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unavailable_while_the_server_is_full() {
    let server = start_server(ConfigLayer {
        metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
        max_players: Some(1),
        ..Default::default()
    });
    let addr = server.metrics_addr().unwrap();
    let probe =
        move |status| tokio::task::spawn_blocking(move || wait_for_status(addr, "/readyz", status));
    assert_eq!(probe(200).await.unwrap(), "ready\n");
    let player = connect(&server, "only").await;
    assert_eq!(probe(503).await.unwrap(), "full\n");
    player.goodbye().await.unwrap();
    probe(200).await.unwrap();
}

/// While closed, holds the tick thread inside a tick (a gameplay system waits on it).
#[derive(Resource, Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    closed: bool,
    holding: bool,
}

impl Gate {
    /// Closes the gate and returns once the tick thread is held at it.
    fn close_and_hold(&self) {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap();
        state.closed = true;
        let (_state, timeout) = changed
            .wait_timeout_while(state, HANG_GUARD, |state| !state.holding)
            .unwrap();
        assert!(!timeout.timed_out(), "the tick never reached the gate");
    }

    fn open(&self) {
        let (state, changed) = &*self.0;
        state.lock().unwrap().closed = false;
        changed.notify_all();
    }
}

/// Waits while the gate is closed; at most the hang guard, so that a failing test does not
/// leave the tick thread (and the server's shutdown) blocked for good.
fn wait_at_gate(gate: Res<Gate>) {
    let (state, changed) = &*gate.0;
    let mut state = state.lock().unwrap();
    if state.closed {
        state.holding = true;
        changed.notify_all();
        state = changed
            .wait_timeout_while(state, HANG_GUARD, |state| state.closed)
            .unwrap()
            .0;
        state.holding = false;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unavailable_during_the_shutdown_drain() {
    // A connected player keeps the drain open until a tick has closed it. The tick thread is
    // held inside a tick from before the shutdown until the probe has seen the drain, so the
    // drain lasts exactly as long as the probe needs (it was a 1 Hz tick, a window of most
    // of a second).
    let gate = Gate::default();
    let held = gate.clone();
    let server = start_server_with(
        ConfigLayer {
            metrics: Some(Endpoint::At("127.0.0.1:0".parse().unwrap())),
            ..Default::default()
        },
        move |app| {
            app.add_plugins(systems::GamePlugins)
                .insert_resource(held)
                .add_systems(ServerTick, wait_at_gate.in_set(TickSet::Simulate));
        },
    );
    let addr = server.metrics_addr().unwrap();
    let mut player = connect(&server, "stays").await;
    tokio::task::spawn_blocking(move || wait_for_status(addr, "/readyz", 200))
        .await
        .unwrap();
    next_frame(&mut player).await;
    let closer = gate.clone();
    tokio::task::spawn_blocking(move || closer.close_and_hold())
        .await
        .unwrap();
    let stopping = tokio::task::spawn_blocking(move || server.shutdown());
    let body = tokio::task::spawn_blocking(move || wait_for_status(addr, "/readyz", 503))
        .await
        .unwrap();
    assert_eq!(body, "draining for shutdown\n");
    gate.open();
    let close = loop {
        match tokio::time::timeout(HANG_GUARD, player.recv())
            .await
            .unwrap()
        {
            Ok(ServerMessage::Close(refusal)) => break refusal,
            Ok(_) => continue,
            Err(error) => panic!("no close before the socket ended: {error}"),
        }
    };
    assert_eq!(close.reason, CloseReason::Shutdown);
    stopping.await.unwrap();
}

/// A TCP connection to `addr` from the loopback address `127.0.0.<from>`.
async fn connect_from(addr: std::net::SocketAddr, from: u8) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, from], 0)))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Issue 13, finding 1: hundreds of idle or half-sent HTTP connections held on the metrics
/// port (by a stranger, and on the probes' own address) do not keep `/healthz` and
/// `/readyz` from answering: each peer holds at most 64, and the oldest idle ones make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_hundreds_of_idle_and_half_sent_connections_are_held() {
    raise_fd_limit();
    let server = ServerProcess::start(&[]);
    let metrics = server.metrics;
    let mut held = Vec::new();
    // A stranger on 127.0.0.3: 300 connections, every other one with half a request.
    for i in 0..300 {
        let mut stream = connect_from(metrics, 3).await;
        if i % 2 == 1 {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    // 100 idle connections from the probes' own address, 127.0.0.1.
    for _ in 0..100 {
        held.push(connect_from(metrics, 1).await);
    }
    let (mut healthy, mut ready) = (0, 0);
    for _ in 0..20 {
        let (health, readiness) = tokio::task::spawn_blocking(move || {
            (
                http_status(metrics, "/healthz", HANG_GUARD),
                http_status(metrics, "/readyz", HANG_GUARD),
            )
        })
        .await
        .unwrap();
        healthy += usize::from(matches!(health, Ok((200, _))));
        ready += usize::from(matches!(readiness, Ok((200, _))));
    }
    assert_eq!((healthy, ready), (20, 20), "every probe answered 200");
    let scrape = tokio::task::block_in_place(|| server.scrape());
    let dropped = |cause| {
        scrape
            .labelled("throng_http_connections_dropped_total", "cause", cause)
            .expect("exported")
    };
    assert!(
        dropped("idle_evicted") >= (300 - 64 + 100 - 64) as f64,
        "each peer's oldest idle connections beyond 64 were closed: {}",
        dropped("idle_evicted")
    );
    assert_eq!(dropped("full"), 0.0, "no connection was refused unanswered");
    assert!(scrape.value("throng_http_connections_total") >= Some(440.0));
    drop(held);
}
