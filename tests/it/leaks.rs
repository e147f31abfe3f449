//! No leaks: after 10,000 connections that end every way a connection can end (Goodbye,
//! reset, a drop in the middle of a frame, a drop in the middle of the Hello, a handshake
//! timeout), the real server process is back to its baseline: live tasks, connection tasks,
//! players, entities and open file descriptors exactly, resident memory within a margin
//! (SQLite's page cache, which fills as the 10,000 new players are saved).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use throng::protocol::{ClientMessage, CloseReason, Input, frame_bytes};
use throng_client::Client;
use throng_scrape::Scrape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How a cycle's connection ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Goodbye,
    Reset,
    MidFrame,
    MidHello,
    HandshakeTimeout,
}

const ENDINGS: [Ending; 5] = [
    Ending::Goodbye,
    Ending::Reset,
    Ending::MidFrame,
    Ending::MidHello,
    Ending::HandshakeTimeout,
];

/// Connects, opens a session and reads its Welcome, returning the raw stream.
async fn joined(addr: SocketAddr, name: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(&hello(name)).await.unwrap();
    let mut first = [0u8; 5];
    stream.read_exact(&mut first).await.expect("a Welcome");
    assert_eq!(first[4], 0, "the first message is a Welcome");
    stream
}

async fn cycle(addr: SocketAddr, n: usize) {
    let name = format!("cycle{n}");
    match ENDINGS[n % ENDINGS.len()] {
        Ending::Goodbye => {
            let client = Client::connect(addr, &name, &secret_of(&name))
                .await
                .expect("welcomed");
            client.goodbye().await.expect("goodbye");
        }
        Ending::Reset => {
            let stream = joined(addr, &name).await;
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(stream); // RST
        }
        Ending::MidFrame => {
            let mut stream = joined(addr, &name).await;
            let input = frame_bytes(&ClientMessage::Input(Input {
                seq: 1,
                dir_x: 1,
                dir_y: 1,
            }));
            stream.write_all(&input[..input.len() - 2]).await.unwrap();
        }
        Ending::MidHello => {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            let hello = hello(&name);
            stream.write_all(&hello[..hello.len() / 2]).await.unwrap();
        }
        Ending::HandshakeTimeout => {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            let _ = read_to_refusal(&mut stream).await;
        }
    }
}

/// Runs `count` cycles starting at number `from`, at most 100 at a time.
async fn cycles(addr: SocketAddr, from: usize, count: usize) {
    let limit = Arc::new(Semaphore::new(100));
    let mut tasks = Vec::with_capacity(count);
    for n in from..from + count {
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            cycle(addr, n).await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.expect("cycle");
    }
}

/// The figures that must return to baseline, once the server has nothing live.
#[derive(Debug, PartialEq)]
struct Live {
    runtime_tasks: f64,
    entities: f64,
    open_fds: usize,
}

fn settled(server: &ServerProcess) -> (Live, Scrape) {
    let scrape = server.until("every connection gone", |s| {
        s.value("throng_connection_tasks") == Some(0.0)
            && s.value("throng_players_connected") == Some(0.0)
    });
    // Once two more ticks have completed, the tick that despawns the last players has run:
    // the entity count below is that tick's (or a later one's).
    let ticks = scrape.value("throng_ticks_total").expect("exported");
    server.until("two more ticks", |s| {
        s.value("throng_ticks_total") >= Some(ticks + 2.0)
    });
    // Descriptors are counted once the server has closed its side of every scrape so far,
    // and before the next scrape, whose own connection would count.
    let started = std::time::Instant::now();
    while server.open_metrics_connections() > 0 {
        assert!(
            started.elapsed() < HANG_GUARD,
            "a scrape's connection stays open"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let open_fds = server.open_fds();
    let scrape2 = server.scrape();
    let live = Live {
        runtime_tasks: scrape2.value("throng_runtime_tasks").unwrap(),
        entities: scrape2.value("throng_entities").unwrap(),
        open_fds,
    };
    (live, scrape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak (tens of seconds): .ci/run runs it with --ignored"]
async fn ten_thousand_connections_of_every_ending_leave_nothing_behind() {
    let _alone = soak_alone().await;
    let server = ServerProcess::start(&["--handshake-timeout-s", "0.2"]);
    // Warm-up: the allocator and the runtime reach their working size.
    cycles(server.addr, 0, 1000).await;
    let (baseline, _) = tokio::task::block_in_place(|| settled(&server));
    let rss_baseline = server.rss_bytes();

    let started = std::time::Instant::now();
    cycles(server.addr, 1000, 10_000).await;
    let took = started.elapsed();
    let (after, scrape) = tokio::task::block_in_place(|| settled(&server));
    let rss_after = server.rss_bytes();

    let accepted = scrape.value("throng_connections_accepted_total").unwrap();
    let timeouts = rejected(&scrape, CloseReason::HandshakeTimeout);
    eprintln!(
        "leaks: 10,000 cycles in {:.1} s; baseline {baseline:?}, RSS {:.2} MiB; after {after:?}, \
         RSS {:.2} MiB ({:+.2} MiB); {accepted} accepted, {timeouts} handshake timeouts",
        took.as_secs_f64(),
        rss_baseline as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        (rss_after as f64 - rss_baseline as f64) / 1048576.0
    );
    assert_eq!(accepted, 11_000.0, "every cycle reached the server");
    assert_eq!(
        after, baseline,
        "tasks, entities and descriptors back to baseline"
    );
    // Each cycle claims a new name, so the database gains 10,000 players: SQLite's page
    // cache (2 MiB by default) fills as they are written. That, not a leak, is the margin.
    assert!(
        rss_after <= rss_baseline + 4 * 1024 * 1024,
        "resident memory within 4 MiB of its baseline: {rss_baseline} -> {rss_after}"
    );
}
