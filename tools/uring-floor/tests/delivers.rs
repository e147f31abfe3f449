//! Each mode delivers what the floor does: every connection gets whole OUT_BYTES frames, every
//! tick, and the server counts the inputs it read. (The figures the tool prints are only
//! worth something if a batched send writes what a `write` writes.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OUT_BYTES: usize = 120;
const CONNECTIONS: usize = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// Starts the server in `mode` on `port` for 3 s, 20 frames a second, its output piped.
fn start_server(mode: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_uring-floor"))
        .args([mode, &port.to_string(), &OUT_BYTES.to_string(), "20", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start uring-floor")
}

/// Runs the server in `mode` for 3 s with three clients sending an input per 50 ms; returns
/// the bytes each client received and the server's report line (`None`: io_uring refused).
fn run(mode: &str) -> Option<(Vec<usize>, String)> {
    let port = free_port();
    let server = start_server(mode, port);
    let started = Instant::now();
    let mut clients: Vec<TcpStream> = Vec::new();
    while clients.len() < CONNECTIONS && started.elapsed() < Duration::from_secs(2) {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => clients.push(stream),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut received = vec![0usize; clients.len()];
    let mut buffer = [0u8; 4096];
    for client in &clients {
        client
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
    }
    while started.elapsed() < Duration::from_millis(2500) {
        for (client, total) in clients.iter_mut().zip(&mut received) {
            let _ = client.write_all(&[1; 16]);
            while let Ok(n @ 1..) = client.read(&mut buffer) {
                assert!(
                    buffer[..n].iter().all(|&b| b == 7),
                    "frames carry the payload"
                );
                *total += n;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = server.wait_with_output().expect("uring-floor exits");
    if output.status.code() == Some(3) {
        eprintln!("{mode}: {}", String::from_utf8_lossy(&output.stderr).trim());
        return None;
    }
    assert!(output.status.success(), "{mode}: {output:?}");
    Some((received, String::from_utf8(output.stdout).unwrap()))
}

#[test]
fn every_mode_writes_whole_frames_to_every_connection_and_reads_the_inputs() {
    for mode in ["plain", "send", "both", "tokio"] {
        let Some((received, report)) = run(mode) else {
            assert!(
                !matches!(mode, "plain" | "tokio"),
                "{mode} mode needs no io_uring"
            );
            continue;
        };
        assert_eq!(received.len(), CONNECTIONS, "{mode}: all clients connected");
        for total in &received {
            // About 2.5 s at 20 frames a second, whole frames only.
            assert!(*total >= 20 * OUT_BYTES, "{mode}: {received:?}");
            assert_eq!(total % OUT_BYTES, 0, "{mode}: {received:?}");
        }
        assert!(
            report.contains(&format!("conns={CONNECTIONS} ")),
            "{report}"
        );
        assert!(report.contains("short_writes=0 "), "{report}");
        assert!(
            figure(&report, "reads/s") > 0.0,
            "{mode}: the inputs were read: {report}"
        );
    }
}

/// A figure of a report line (`name=value`).
fn figure(report: &str, name: &str) -> f64 {
    report
        .split_whitespace()
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn the_spread_client_sends_every_connection_its_inputs_and_reads_the_frames() {
    let port = free_port();
    let server = start_server("plain", port);
    let client = Command::new(env!("CARGO_BIN_EXE_uring-floor"))
        .args(["spread-client", &port.to_string(), "10", "16", "20", "2"])
        .output()
        .expect("run the spread client");
    let server = server.wait_with_output().expect("uring-floor exits");
    assert!(client.status.success(), "{client:?}");
    assert!(server.status.success(), "{server:?}");
    let client = String::from_utf8(client.stdout).unwrap();
    let server = String::from_utf8(server.stdout).unwrap();
    assert!(client.contains("conns=10 "), "{client}");
    assert_eq!(figure(&client, "short_writes"), 0.0, "{client}");
    assert!(figure(&client, "out_msgs/s") > 0.0, "inputs sent: {client}");
    assert!(figure(&client, "in_bytes/s") > 0.0, "frames read: {client}");
    assert!(server.contains("conns=10 "), "{server}");
    assert!(figure(&server, "reads/s") > 0.0, "inputs read: {server}");
}
