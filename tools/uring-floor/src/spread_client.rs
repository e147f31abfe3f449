//! The floor's client with its inputs spread over the period, as throng's bots send them
//! (`tools/loadgen`: ten slots per period, a connection's slot its index modulo ten).
//!
//! Why: the floor's own client sends every connection's input in one burst per period, and
//! where that burst falls in the server's period is set by the run. The server's cost per
//! input depends on it: a connection whose input arrives just after its frame leaves the
//! kernel's delayed-ACK "pingpong" mode (its delayed-ACK timer fires before the next frame
//! can carry the ACK), and from then on every read of its inputs sends an ACK of its own.
//! A burst lands all connections on one phase, good or bad; spread inputs put a share of
//! them on each, as real players and the bots do. So this client makes the floor comparable
//! with throng under bots: the same arrival pattern, the same server.
//!
//! One difference from the load generator: a client that falls a whole period behind sends
//! the slots it missed late (the load generator skips them). It kept up where checked: at
//! 1,000 and 2,000 connections it sent 19,993 and 39,986 inputs a second, no short write.
//!
//! Prints, over the window [SECONDS/3, SECONDS] as the floor does, its own CPU per
//! connection-tick and the bytes it read.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::{MAX_EVENTS, watch};

/// Input slots per period (the load generator's figure).
const SLOTS: usize = 10;

/// How long a connect is retried: the server may still be starting.
const CONNECT_PATIENCE: Duration = Duration::from_secs(2);

/// A connection to the server on `port`, retried while it is not listening yet.
fn connect(port: u16) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(error) if started.elapsed() > CONNECT_PATIENCE => panic!("connect: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `connections` connections to `port` for `seconds`, each sending `in_bytes` once a
/// period (`hz` per second) in its slot, and reading everything the server sends.
pub fn run(port: u16, connections: usize, in_bytes: usize, hz: f64, seconds: f64) {
    let mut streams: Vec<TcpStream> = (0..connections)
        .map(|_| {
            let stream = connect(port);
            stream.set_nodelay(true).expect("TCP_NODELAY");
            stream.set_nonblocking(true).expect("non-blocking");
            stream
        })
        .collect();
    // SAFETY: plain syscall.
    let epoll = unsafe { libc::epoll_create1(0) };
    assert!(epoll >= 0, "epoll_create1");
    for (index, stream) in streams.iter().enumerate() {
        assert_eq!(
            watch(epoll, stream.as_raw_fd(), index as u64),
            0,
            "epoll_ctl"
        );
    }

    let input = vec![1u8; in_bytes];
    let mut buffer = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let slot_period = Duration::from_secs_f64(1.0 / hz / SLOTS as f64);
    let started = Instant::now();
    let window_start = started + Duration::from_secs_f64(seconds / 3.0);
    let end = started + Duration::from_secs_f64(seconds);
    let mut slot = 0;
    let mut next_slot_at = started;
    let (mut sent, mut short_writes, mut read_bytes) = (0u64, 0u64, 0u64);
    let mut window_cpu_start = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= window_start && window_cpu_start.is_none() {
            window_cpu_start = Some(crate::process_cpu());
            (sent, short_writes, read_bytes) = (0, 0, 0);
        }
        if now >= next_slot_at {
            for stream in streams.iter_mut().skip(slot).step_by(SLOTS) {
                match stream.write(&input) {
                    Ok(n) if n == input.len() => sent += 1,
                    Ok(_) => short_writes += 1,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => short_writes += 1,
                    Err(error) => panic!("write: {error}"),
                }
            }
            slot = (slot + 1) % SLOTS;
            next_slot_at += slot_period;
        }
        let wait = next_slot_at.saturating_duration_since(Instant::now());
        // Rounded up to whole milliseconds (epoll's unit): a slot is never sent early.
        let timeout = wait.as_micros().div_ceil(1000) as i32;
        // SAFETY: `events` is a live buffer of MAX_EVENTS entries.
        let ready =
            unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), MAX_EVENTS as i32, timeout) };
        for event in &events[..ready.max(0) as usize] {
            let stream = &mut streams[event.u64 as usize];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => panic!("the server closed a connection"),
                    Ok(n) => read_bytes += n as u64,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => panic!("read: {error}"),
                }
            }
        }
    }
    let window = end.duration_since(window_start).as_secs_f64();
    let cpu = crate::process_cpu() - window_cpu_start.unwrap_or(0.0);
    println!(
        "spread client conns={connections} cpu={:.3}core in_bytes/s={:.0} out_msgs/s={:.0} short_writes={short_writes} us_per_conn_tick={:.2}",
        cpu / window,
        read_bytes as f64 / window,
        sent as f64 / window,
        cpu * 1e6 / (connections as f64 * hz * window),
    );
}
