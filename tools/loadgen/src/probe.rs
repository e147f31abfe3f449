//! Readings taken at the start and end of the measured window: the server's CPU and memory
//! (from /proc, given its PID), its tick statistics (from its metrics endpoint), this
//! process's CPU and the whole machine's busy time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use throng_host::proc_stats::{self, ProcessSample};
use throng_scrape::{self as scrape, Scrape, max_between, quantile_between};

const TICK_HISTOGRAM: &str = "throng_tick_duration_seconds";
const OVERRUNS: &str = "throng_tick_overruns_total";

/// What to read besides this process.
pub struct Probe {
    /// The server's PID, if given.
    pub server_pid: Option<u32>,
    /// The server's metrics endpoint, if given.
    pub metrics: Option<SocketAddr>,
}

/// One set of readings.
pub struct Reading {
    at: Instant,
    server: Option<ProcessSample>,
    own: Option<ProcessSample>,
    machine: Option<(u64, u64)>,
    scrape: Option<Scrape>,
}

/// Figures over a window between two readings.
#[derive(Default, Debug)]
pub struct WindowFigures {
    /// Server CPU, cores.
    pub server_cpu_cores: Option<f64>,
    /// Server RSS at the end, MiB.
    pub server_rss_mb: Option<f64>,
    /// This process's CPU, cores.
    pub loadgen_cpu_cores: Option<f64>,
    /// Busy cores of the machine.
    pub machine_busy_cores: Option<f64>,
    /// Server tick p50, ms.
    pub tick_p50_ms: Option<f64>,
    /// Server tick p99, ms.
    pub tick_p99_ms: Option<f64>,
    /// Server tick max (bucket upper bound), ms.
    pub tick_max_ms: Option<f64>,
    /// Overruns in the window.
    pub overruns: Option<f64>,
}

impl Probe {
    /// Takes every reading now; readings that fail are `None` (and reported as null).
    pub fn read(&self) -> Reading {
        let server_pid = self.server_pid.map(|pid| pid.to_string());
        Reading {
            at: Instant::now(),
            server: server_pid.and_then(|pid| proc_stats::sample(&pid).ok()),
            own: proc_stats::sample("self").ok(),
            machine: proc_stats::machine_jiffies().ok(),
            scrape: self
                .metrics
                .and_then(|addr| scrape::scrape(addr, Duration::from_secs(5)).ok()),
        }
    }
}

/// The figures between `start` and `end`.
pub fn window(start: &Reading, end: &Reading) -> WindowFigures {
    let seconds = (end.at - start.at).as_secs_f64();
    let cores = |a: Option<ProcessSample>, b: Option<ProcessSample>| {
        Some((b?.cpu_seconds - a?.cpu_seconds) / seconds)
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine = match (start.machine, end.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(cpus * (b1 - b0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    };
    let mut figures = WindowFigures {
        server_cpu_cores: cores(start.server, end.server),
        server_rss_mb: end.server.map(|s| s.rss_bytes as f64 / (1024.0 * 1024.0)),
        loadgen_cpu_cores: cores(start.own, end.own),
        machine_busy_cores: machine,
        ..Default::default()
    };
    if let (Some(a), Some(b)) = (&start.scrape, &end.scrape) {
        let (before, after) = (a.buckets(TICK_HISTOGRAM), b.buckets(TICK_HISTOGRAM));
        let ms = |v: Option<f64>| v.map(|s| s * 1000.0);
        figures.tick_p50_ms = ms(quantile_between(&before, &after, 0.5));
        figures.tick_p99_ms = ms(quantile_between(&before, &after, 0.99));
        figures.tick_max_ms = ms(max_between(&before, &after));
        figures.overruns = b.value(OVERRUNS).zip(a.value(OVERRUNS)).map(|(b, a)| b - a);
    }
    figures
}
