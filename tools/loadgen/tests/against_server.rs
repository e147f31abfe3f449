//! A short loadgen run against the real server process: correctness only (every bot joins,
//! every frame verifies, frames arrive, inputs are acknowledged, actions are sent and events
//! counted), never speed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Kills the server if the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `throng` binary next to this package's `loadgen` binary (the workspace test command
/// builds both into the same target directory).
fn server_binary() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let server = loadgen.with_file_name("throng");
    assert!(
        server.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace) or cargo build -p throng",
        server.display()
    );
    server
}

#[test]
fn fifty_bots_join_verify_every_frame_and_get_their_inputs_acknowledged() {
    fifty_bots_over("tcp");
}

#[test]
fn fifty_bots_over_websocket_do_the_same() {
    fifty_bots_over("ws");
}

/// Starts the server, runs 50 bots over `transport` for a few seconds and checks the report.
fn fifty_bots_over(transport: &str) {
    let ws = transport == "ws";
    let mut server = Server(
        Command::new(server_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--web",
                if ws { "127.0.0.1:0" } else { "off" },
                "--world-size",
                "283",
                "--stats-interval-s",
                "0",
            ])
            .arg("--data-dir")
            .arg(std::env::temp_dir().join(format!(
                "loadgen-test-data-{}-{transport}",
                std::process::id()
            )))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let mut next_address = || {
        let line = lines.next().expect("a line").expect("utf-8");
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let addr = next_address();
    let metrics = next_address();
    // `throng web on http://ADDR/`, after the metrics line.
    let web = if ws {
        let url = next_address();
        let web = url.trim_start_matches("http://").trim_end_matches('/');
        web.to_owned()
    } else {
        "127.0.0.1:1".to_owned()
    };
    let report_path =
        std::env::temp_dir().join(format!("loadgen-{}-{transport}.json", std::process::id()));

    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--addr",
            &addr,
            "--web",
            &web,
            "--transport",
            transport,
            "--bots",
            "50",
            "--warmup",
            "1",
            "--seconds",
            "3",
            "--actions-per-s",
            "2",
        ])
        .args([
            "--server-pid",
            &server.0.id().to_string(),
            "--metrics",
            &metrics,
        ])
        .arg("--json")
        .arg(&report_path)
        .stdout(Stdio::null())
        .status()
        .expect("loadgen runs");
    assert!(
        status.success(),
        "loadgen exits 0 (no protocol errors): {status:?}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report_path);
    assert_eq!(report["transport"], transport, "{report}");
    let number = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} measured: {report}"))
    };
    assert_eq!(number("bots_connected"), 50.0);
    assert_eq!(number("connect_failures"), 0.0);
    assert_eq!(number("protocol_errors"), 0.0);
    assert_eq!(number("disconnects"), 0.0);
    assert!(
        number("frames_per_s_per_bot_min") > 0.0,
        "every bot got frames"
    );
    assert!(number("recv_bytes_per_s_per_bot") > 0.0);
    assert!(number("visible_entities_mean") > 1.0, "bots see each other");
    assert!(number("input_ack_ms_max") >= number("input_ack_ms_p50"));
    assert!(number("input_ack_ms_p50") > 0.0, "inputs were acknowledged");
    // Throws with actions mixed into the input seqs: acks and frames still verify (above);
    // whether a snowball hits within 3 s is up to chance, so only the count is checked.
    assert!(number("events_per_s_per_bot") >= 0.0);
    // The server-side figures were read from its metrics endpoint and /proc.
    assert!(number("server_tick_ms_p50") > 0.0);
    assert!(number("server_rss_mb") > 0.0);
}
