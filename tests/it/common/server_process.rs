//! The real `throng` binary as a child process: its addresses, its metrics, its memory and
//! file descriptors as the kernel reports them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use throng_scrape::{Scrape, scrape};

use super::TempDir;

/// The `throng` binary on ephemeral loopback ports (players, metrics, web) with its data in
/// `data_dir`: what every test that runs the real process starts from.
pub fn throng_command(data_dir: &std::path::Path) -> Command {
    throng_command_on(data_dir, "127.0.0.1:0", "127.0.0.1:0")
}

/// [`throng_command`] with players listening on `listen` (TCP) and `web` (a zone server's
/// addresses must be known before it starts: the zones file names them).
pub fn throng_command_on(data_dir: &std::path::Path, listen: &str, web: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_throng"));
    command
        .args(["--listen", listen, "--metrics", "127.0.0.1:0", "--web", web])
        .arg("--data-dir")
        .arg(data_dir);
    command
}

/// A running server process; killed if the test ends before it exits, and then its
/// temporary data directory (if it owns one) removed.
pub struct ServerProcess {
    child: Child,
    /// Where players connect.
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics: SocketAddr,
    /// The web listener (the page, WebSocket players).
    pub web: SocketAddr,
    /// Dropped after `Drop::drop` has killed and reaped the child.
    data_dir: Option<TempDir>,
}

impl ServerProcess {
    /// Starts the binary on ephemeral loopback ports with `args` added (its log is
    /// discarded).
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_with_fd_limit(args, None)
    }

    /// Like [`ServerProcess::start`], with the process's open-file limit (soft and hard)
    /// set to `max_fds` if given.
    pub fn start_with_fd_limit(args: &[&str], max_fds: Option<u64>) -> ServerProcess {
        let data_dir = super::fresh_data_dir("process");
        let mut server = Self::spawn(
            data_dir.path(),
            ("127.0.0.1:0", "127.0.0.1:0"),
            args,
            max_fds,
        );
        server.data_dir = Some(data_dir);
        server
    }

    /// Like [`ServerProcess::start`], on the player database in `data_dir` (to restart a
    /// server on the same data; the caller owns the directory).
    pub fn start_in(data_dir: &std::path::Path, args: &[&str]) -> ServerProcess {
        Self::spawn(data_dir, ("127.0.0.1:0", "127.0.0.1:0"), args, None)
    }

    /// Like [`ServerProcess::start_in`], with players listening on `listen` (TCP) and `web`.
    pub fn start_on(
        data_dir: &std::path::Path,
        (listen, web): (&str, &str),
        args: &[&str],
    ) -> ServerProcess {
        Self::spawn(data_dir, (listen, web), args, None)
    }

    fn spawn(
        data_dir: &std::path::Path,
        (listen, web): (&str, &str),
        args: &[&str],
        max_fds: Option<u64>,
    ) -> ServerProcess {
        use std::os::unix::process::CommandExt;
        let mut command = throng_command_on(data_dir, listen, web);
        command.args(["--stats-interval-s", "0"]);
        // Every test client connects from 127.0.0.1: no per-address caps unless a test
        // sets them.
        for flag in ["--max-players-per-addr", "--max-handshakes-per-addr"] {
            if !args.contains(&flag) {
                command.args([flag, "1048576"]);
            }
        }
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(max) = max_fds {
            let limit = libc::rlimit {
                rlim_cur: max,
                rlim_max: max,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads `limit`.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        // Owned by a ServerProcess from here on, so a panic below (an unexpected line)
        // still kills the server instead of leaving it running after the test.
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut process = ServerProcess {
            child,
            addr: unknown,
            metrics: unknown,
            web: unknown,
            data_dir: None,
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut address = |prefix: &str| -> SocketAddr {
            let line = lines.next().expect("a line").expect("utf-8");
            assert!(line.starts_with(prefix), "unexpected line {line:?}");
            let last = line.rsplit(' ').next().unwrap();
            last.trim_start_matches("http://")
                .trim_end_matches("/metrics")
                .trim_end_matches('/')
                .parse()
                .expect("an address")
        };
        process.addr = address("throng listening on");
        process.metrics = address("throng metrics on");
        // All three lines are read: a server must not depend on it, but a reader that stops
        // early closes the pipe under the server's last line.
        process.web = address("throng web on");
        process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A scrape of `/metrics` now.
    pub fn scrape(&self) -> Scrape {
        scrape(self.metrics, Duration::from_secs(10)).expect("metrics scrape")
    }

    /// A metric's value now (0 if absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.scrape().value(name).unwrap_or(0.0)
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        throng_host::proc_stats::sample(&self.pid().to_string())
            .expect("/proc readable")
            .rss_bytes
    }

    /// Open file descriptors, from /proc.
    pub fn open_fds(&self) -> usize {
        throng_host::proc_stats::open_fds(&self.pid().to_string()).expect("/proc readable")
    }

    /// The process's sockets on the metrics port other than its listener (HTTP connections
    /// it has not closed yet: the server drops its side of a scrape just after the scraper
    /// has read the answer), from /proc.
    pub fn open_metrics_connections(&self) -> usize {
        let inodes: std::collections::HashSet<u64> =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .expect("/proc readable")
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect();
        let port = format!(":{:04X}", self.metrics.port());
        std::fs::read_to_string("/proc/net/tcp")
            .expect("/proc readable")
            .lines()
            .skip(1)
            .filter(|line| {
                // sl local_address rem_address st ... inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 9
                    && fields[1].ends_with(&port)
                    && fields[3] != "0A" // LISTEN
                    && fields[9].parse().is_ok_and(|inode| inodes.contains(&inode))
            })
            .count()
    }

    /// Sends `signal` (such as "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to exit (bounded by the test's hang guard).
    pub fn wait(&mut self) -> ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < super::HANG_GUARD,
                "the server did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls the metrics until `condition` holds for a scrape (bounded by the hang guard).
    pub fn until(&self, what: &str, condition: impl Fn(&Scrape) -> bool) -> Scrape {
        let started = std::time::Instant::now();
        loop {
            let scrape = self.scrape();
            if condition(&scrape) {
                return scrape;
            }
            assert!(
                started.elapsed() < super::HANG_GUARD,
                "never happened: {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
