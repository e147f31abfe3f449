//! A panic in a gameplay system stops the server instead of leaving a zombie that accepts
//! players but never ticks: the log names the system, every player gets
//! Close{InternalError}, and the server reports `TickDied` (the binary then exits non-zero).

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::*;
use bevy_ecs::prelude::*;
use components::{ServerTick, TickClock, TickSet};
use throng::ServerHandle;
use throng::config::ConfigLayer;
use throng::protocol::{CloseReason, ServerMessage};
use throng::server::StopCause;

/// Log output, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn explode_at_tick_40(clock: bevy_ecs::prelude::Res<TickClock>) {
    if clock.tick == 40 {
        panic!("boom at tick {}", clock.tick);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_system_is_named_in_the_log_and_stops_the_server() {
    // The subscriber is process-wide: in the one test binary it also captures the other
    // tests' logs from here on, which only adds lines to the text searched below. No other
    // test installs one.
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let data_dir = fresh_data_dir("panic");
    let config = ConfigLayer {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tick_hz: Some(50),
        metrics: Some(throng::config::Endpoint::Off),
        web: Some(throng::config::Endpoint::Off),
        stats_interval_s: Some(0.0),
        data_dir: Some(data_dir.path().to_owned()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let server = ServerHandle::start_with(config, |app| {
        app.add_plugins(systems::GamePlugins)
            .add_systems(ServerTick, explode_at_tick_40.in_set(TickSet::Simulate));
    })
    .unwrap();
    let mut client = connect(&server, "witness").await;
    let stopped = tokio::task::spawn_blocking(move || server.run_until_signal());

    let close = loop {
        match client.recv().await.expect("a close before the socket ends") {
            ServerMessage::Close(refusal) => break refusal,
            // bevy's executor finishes the tick's other systems before re-raising the panic,
            // so the frame of tick 40 may still go out; no later tick runs.
            ServerMessage::Frame(frame) => {
                assert!(frame.tick <= 40, "a tick after the panic: {}", frame.tick)
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.reason, CloseReason::InternalError);
    assert_eq!(stopped.await.unwrap(), StopCause::TickDied);
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("explode_at_tick_40") && log.contains("boom at tick 40"),
        "the log names the system and its panic:\n{log}"
    );
}
