//! The `tracy` feature cannot rot: the instrumented server (built by
//! `cargo test -p throng --features tracy --test it tracy::`) ticks, serves, waits for a
//! profiler on 127.0.0.1:8086 only, and shuts down cleanly, with no profiler attached (none
//! can be installed on CI machines). Without the feature this module is not compiled
//! (main.rs).

use std::collections::HashSet;

use crate::common::*;

/// Socket inodes of process `pid`.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Local addresses (`hex ip:hex port`) of the TCP sockets in LISTEN state owned by `pid`.
fn listening(pid: u32) -> Vec<String> {
    let inodes = socket_inodes(pid);
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields[1], fields[3], fields[9].parse::<u64>().ok()?);
            (state == "0A" && inodes.contains(&inode)).then(|| local.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instrumented_server_ticks_serves_and_waits_for_a_profiler_on_localhost() {
    let mut server = ServerProcess::start(&["--tick-hz", "50"]);
    let mut client =
        throng_client::Client::connect(server.addr, "profiled", &secret_of("profiled"))
            .await
            .expect("welcomed");
    let mut frames = 0;
    while frames < 20 {
        if let throng::protocol::ServerMessage::Frame(_) = client.recv().await.unwrap() {
            frames += 1;
        }
    }
    let sockets = tokio::task::block_in_place(|| {
        server.until("20 ticks", |s| s.value("throng_ticks_total") >= Some(20.0));
        listening(server.pid())
    });
    // Tracy takes 8086, or the next free port (this test process links the Tracy client
    // too, and it may have taken 8086 first).
    let tracy_port = |socket: &String| {
        let port = u16::from_str_radix(socket.rsplit(':').next().unwrap(), 16).unwrap();
        (8086..8106).contains(&port)
    };
    let tracy: Vec<_> = sockets.iter().filter(|s| tracy_port(s)).collect();
    assert!(
        !tracy.is_empty(),
        "Tracy listens for a profiler: {sockets:?}"
    );
    assert!(
        tracy.iter().all(|s| s.starts_with("0100007F:")),
        "on 127.0.0.1 only (only-localhost): {tracy:?}"
    );
    server.signal("TERM");
    let exit = tokio::task::block_in_place(|| server.wait());
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_instrumented_binary_replays_a_recording_as_tracy_frames_on_localhost() {
    let dir = TempDir::new().unwrap();
    let path = crate::recording::small_recording(dir.path());
    // At the recorded rate (40 ticks at 20 Hz), so it is still running when looked at.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_throng"))
        .arg("replay")
        .arg(&path)
        .arg("--realtime")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let tracy = loop {
        let sockets = listening(replay.id());
        if !sockets.is_empty() {
            break sockets;
        }
        assert!(started.elapsed() < HANG_GUARD, "Tracy never listened");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(
        tracy.iter().all(|s| s.starts_with("0100007F:")),
        "on 127.0.0.1 only: {tracy:?}"
    );
    let output = replay.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("matched the recording"), "{said}");
}
