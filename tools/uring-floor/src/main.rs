//! The bare-socket floor's server (`../shared/floor/floor.c`: epoll, a read per ready
//! connection, a write of OUT_BYTES to every connection per tick) with its syscalls batched
//! through io_uring, to measure what batching saves the kernel on this machine: is a
//! frame's cost the syscall's entry and exit (which one `io_uring_enter` for a whole tick
//! would share out) or the TCP and loopback work inside it (which no batching removes)?
//!
//! Usage: `uring-floor MODE PORT OUT_BYTES HZ SECONDS`, against the floor's client
//! (`floor client PORT N IN_BYTES HZ SECONDS`; `run.sh` runs the pair). MODE:
//! - `plain`: a `write` per connection per tick and a `read` per ready connection, as the
//!   floor (the same binary's baseline);
//! - `send`: each tick's writes as one batch of io_uring sends (one enter per 4,096);
//! - `both`: and each epoll wake-up's reads as one batch of io_uring receives;
//! - `tokio`: no io_uring, but throng's runtime model: a tokio task per connection and a
//!   flush task per worker (see `on_tokio`); it prints the process figures only, not the
//!   per-burst thread times below.
//!
//! `uring-floor spread-client PORT N IN_BYTES HZ SECONDS` is a client instead: the floor's,
//! with each connection's input in its own slot of the period, as throng's bots send them
//! (see `spread_client`); `run.sh` uses it when `CLIENT=spread`.
//!
//! Prints the floor's figures over the window [SECONDS/3, SECONDS] (process CPU per
//! connection-tick), and the thread CPU time of the write bursts per frame written and of
//! the read passes per read: the parts batching changes, apart from the epoll waits.

use std::net::TcpListener;
use std::os::fd::IntoRawFd;
use std::time::Instant;

use io_uring::{IoUring, opcode, types};

mod on_tokio;
mod spread_client;

/// As many connections as the floor keeps.
const MAX_CONNECTIONS: usize = 20_000;
/// Submission queue entries: a tick's sends go in batches of this many.
const RING_ENTRIES: usize = 4096;
/// Ready connections per epoll wake-up (the floor's figure).
const MAX_EVENTS: usize = 1024;
const READ_BUFFER: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Send,
    Both,
}

/// CPU seconds of this thread (the only one).
fn thread_cpu() -> f64 {
    // SAFETY: a zeroed timespec is valid; clock_gettime writes into the live local.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// CPU seconds of the process (user and system), as the floor reports.
fn process_cpu() -> f64 {
    // SAFETY: a zeroed rusage is valid; getrusage writes into the live local.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Counters over the measured window.
#[derive(Default)]
struct Window {
    reads: u64,
    read_bytes: u64,
    frames: u64,
    short_writes: u64,
    write_cpu: f64,
    read_cpu: f64,
}

/// The server's sockets and buffers.
struct Server {
    mode: Mode,
    epoll: i32,
    listener: i32,
    ring: IoUring,
    connections: Vec<i32>,
    payload: Vec<u8>,
    read_buffers: Vec<[u8; READ_BUFFER]>,
}

/// Asks `epoll` to report `fd` readable, as `token`; the `epoll_ctl` result.
fn watch(epoll: i32, fd: i32, token: u64) -> i32 {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: plain syscall on descriptors this process owns; `event` is a live local.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }
}

impl Server {
    fn watch(&self, fd: i32) {
        watch(self.epoll, fd, fd as u64);
    }

    fn accept_all(&mut self) {
        loop {
            // SAFETY: plain syscalls on the listener and the new descriptor.
            let fd = unsafe {
                libc::accept4(
                    self.listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK,
                )
            };
            if fd < 0 {
                return;
            }
            let one: libc::c_int = 1;
            // SAFETY: setsockopt reads an int from a live local.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            self.watch(fd);
            if self.connections.len() < MAX_CONNECTIONS {
                self.connections.push(fd);
            }
        }
    }

    /// One read per ready connection: a `read` each, or one batch of receives.
    fn read_ready(&mut self, ready: &[i32], window: &mut Window) {
        let epoll = self.epoll;
        let got = |window: &mut Window, fd: i32, result: isize| {
            if result > 0 {
                window.reads += 1;
                window.read_bytes += result as u64;
            } else if result == 0 {
                // SAFETY: plain syscalls on a descriptor this process owns.
                unsafe {
                    libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
                    libc::close(fd);
                }
            }
        };
        if self.mode != Mode::Both {
            for &fd in ready {
                let buffer = &mut self.read_buffers[0];
                // SAFETY: reads at most the buffer's length into it.
                let result = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), READ_BUFFER) };
                got(window, fd, result);
            }
            return;
        }
        for (i, &fd) in ready.iter().enumerate() {
            let recv = opcode::Recv::new(
                types::Fd(fd),
                self.read_buffers[i].as_mut_ptr(),
                READ_BUFFER as u32,
            )
            .flags(libc::MSG_DONTWAIT)
            .build()
            .user_data(i as u64);
            // SAFETY: each buffer belongs to one entry and outlives the wait below.
            unsafe { self.ring.submission().push(&recv).expect("ring has room") };
        }
        self.ring
            .submit_and_wait(ready.len())
            .expect("io_uring_enter");
        for completion in self.ring.completion() {
            let fd = ready[completion.user_data() as usize];
            got(window, fd, completion.result() as isize);
        }
    }

    /// The tick: OUT_BYTES to every connection.
    fn write_all(&mut self, window: &mut Window) {
        let length = self.payload.len();
        let wrote = |window: &mut Window, result: isize| {
            if result == length as isize {
                window.frames += 1;
            } else {
                window.short_writes += 1;
            }
        };
        if self.mode == Mode::Plain {
            for &fd in &self.connections {
                // SAFETY: writes the payload's bytes from a live buffer.
                let result = unsafe { libc::write(fd, self.payload.as_ptr().cast(), length) };
                wrote(window, result);
            }
            return;
        }
        for batch in self.connections.chunks(RING_ENTRIES) {
            for &fd in batch {
                let send = opcode::Send::new(types::Fd(fd), self.payload.as_ptr(), length as u32)
                    .flags(libc::MSG_DONTWAIT)
                    .build();
                // SAFETY: the payload outlives the wait below.
                unsafe { self.ring.submission().push(&send).expect("ring has room") };
            }
            self.ring
                .submit_and_wait(batch.len())
                .expect("io_uring_enter");
            for completion in self.ring.completion() {
                wrote(window, completion.result() as isize);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: uring-floor plain|send|both|tokio PORT OUT_BYTES HZ SECONDS\n       uring-floor spread-client PORT N IN_BYTES HZ SECONDS";
    let number = |text: &str| -> f64 { text.parse().expect(usage) };
    if let [_, mode, port, connections, in_bytes, hz, seconds] = &args[..]
        && mode == "spread-client"
    {
        spread_client::run(
            number(port) as u16,
            number(connections) as usize,
            number(in_bytes) as usize,
            number(hz),
            number(seconds),
        );
        return;
    }
    let [_, mode, port, out_bytes, hz, seconds] = &args[..] else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mode = match mode.as_str() {
        "plain" => Mode::Plain,
        "send" => Mode::Send,
        "both" => Mode::Both,
        "tokio" => {
            on_tokio::run(
                number(port) as u16,
                number(out_bytes) as usize,
                number(hz),
                number(seconds),
            );
            return;
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let (port, out_bytes) = (number(port) as u16, number(out_bytes) as usize);
    let (hz, seconds) = (number(hz), number(seconds));
    // SAFETY: ignoring SIGPIPE, as the floor does (a closed peer fails a write instead).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut server = Server {
        mode,
        // SAFETY: plain syscall.
        epoll: unsafe { libc::epoll_create1(0) },
        listener: listener.into_raw_fd(),
        ring: match IoUring::new(RING_ENTRIES as u32) {
            Ok(ring) => ring,
            Err(error) => {
                // Kernels can refuse it (io_uring_disabled, a container's seccomp profile).
                eprintln!("io_uring unavailable: {error}");
                std::process::exit(3);
            }
        },
        connections: Vec::with_capacity(MAX_CONNECTIONS),
        payload: vec![7; out_bytes],
        read_buffers: vec![[0; READ_BUFFER]; MAX_EVENTS],
    };
    server.watch(server.listener);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut ready = Vec::with_capacity(MAX_EVENTS);
    let mut window = Window::default();
    let start = Instant::now();
    let now = || start.elapsed().as_secs_f64();
    let period = 1.0 / hz;
    let mut next = period;
    let mut measured_from: Option<(f64, f64)> = None;
    while now() < seconds {
        let wait = ((next - now()) * 1000.0).max(0.0) as i32;
        // SAFETY: the kernel writes at most MAX_EVENTS events into the live buffer.
        let count =
            unsafe { libc::epoll_wait(server.epoll, events.as_mut_ptr(), MAX_EVENTS as i32, wait) };
        let reading = thread_cpu();
        ready.clear();
        for event in &events[..count.max(0) as usize] {
            let fd = event.u64 as i32;
            if fd == server.listener {
                server.accept_all();
            } else {
                ready.push(fd);
            }
        }
        if !ready.is_empty() {
            server.read_ready(&ready, &mut window);
            window.read_cpu += thread_cpu() - reading;
        }
        if now() >= next {
            next += period;
            let writing = thread_cpu();
            server.write_all(&mut window);
            window.write_cpu += thread_cpu() - writing;
            if measured_from.is_none() && now() >= seconds / 3.0 {
                measured_from = Some((process_cpu(), now()));
                window = Window::default();
            }
        }
    }
    let (cpu0, t0) = measured_from.expect("the run outlasts a third of itself");
    let (wall, used) = (now() - t0, process_cpu() - cpu0);
    let n = server.connections.len();
    println!(
        "uring-floor {mode_name} conns={n} cpu={:.3}core reads/s={:.0} in_bytes/s={:.0} \
         out_msgs/s={:.0} short_writes={} us_per_conn_tick={:.2} write_us_per_frame={:.3} \
         read_us_per_read={:.3}",
        used / wall,
        window.reads as f64 / wall,
        window.read_bytes as f64 / wall,
        window.frames as f64 / wall,
        window.short_writes,
        used / (wall * hz * n.max(1) as f64) * 1e6,
        window.write_cpu / window.frames.max(1) as f64 * 1e6,
        window.read_cpu / window.reads.max(1) as f64 * 1e6,
        mode_name = args[1],
    );
}
