//! `loadgen`: runs N bots of the crowd workload (docs/BENCHMARKS.md, shared workloads)
//! against a running throng server on a loopback address, and reports what the bots saw and
//! what the server spent over a measured window.
//!
//! Cheap by construction, because it shares the machine with the server: a few epoll
//! threads (no task or timer per bot), one read per readable burst, one write per input.
//! Bounded: connect phase, warm-up and window are fixed in length, with a hard deadline.

mod arrival;
mod bot;
mod handoff;
mod latency;
mod probe;
mod progress;
mod report;
mod tally;
mod view;
mod worker;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::probe::Probe;
use crate::progress::Progress;
use crate::report::Report;
use crate::tally::Tally;
use crate::worker::{Control, Phase, Plan};
use crate::ws::Transport;

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "Crowd-workload load generator for throng")]
struct Args {
    /// Server address (its game listener, for --transport tcp); must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// How bots connect: TCP to --addr, or WebSocket to --web's /ws.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// The server's web listener (for --transport ws); must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:7080")]
    web: SocketAddr,
    /// Number of bots.
    #[arg(long)]
    bots: usize,
    /// Seconds of warm-up after every bot has connected (not measured).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seed of the bots' random walks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Inputs per second per bot.
    #[arg(long, default_value_t = 20.0)]
    input_hz: f64,
    /// `throw` actions per second per bot, on average, each in a random direction (0: none).
    /// Needs a server whose game has a `throw` action (the demo game's snowball).
    #[arg(long, default_value_t = 0.0)]
    actions_per_s: f64,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// PID of the server, to read its CPU and memory from /proc over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's metrics endpoint (http://HOST:PORT/metrics or HOST:PORT) for tick figures.
    #[arg(long)]
    metrics: Option<String>,
    /// Worker threads [default: one per 2,500 bots, 1 to 4].
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds a bot has to be welcomed; also the bound of a zone handoff (Transfer to the
    /// destination's first frame showing the bot).
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Units a bot may move across a zone border (origin's last frame to destination's
    /// first), before the 1/8-unit wire precision is added [default: 1.5 ticks of the speed
    /// in the server's `movement` event, or 7.5 if it sends none].
    #[arg(long)]
    max_step: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) if report.protocol_errors == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<Report, String> {
    validate(args)?;
    let metrics = args.metrics.as_deref().map(metrics_addr).transpose()?;
    if let Err(error) = throng_host::fd_limit::raise_fd_limit() {
        eprintln!("loadgen: cannot raise the open-file limit: {error}");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| args.bots.div_ceil(2_500).clamp(1, 4))
        .clamp(1, args.bots);
    let control = Arc::new(Control::default());
    let connect_cap = Duration::from_secs_f64(args.connect_timeout + args.bots as f64 / 100.0);
    let hard_deadline = connect_cap + Duration::from_secs_f64(args.warmup + args.seconds + 30.0);
    spawn_watchdog(hard_deadline);

    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let first_bot = args.bots * w / threads;
            let plan = Plan {
                addr: target(args),
                transport: args.transport,
                first_bot,
                bots: args.bots * (w + 1) / threads - first_bot,
                seed: args.seed,
                input_hz: args.input_hz,
                actions_per_s: args.actions_per_s,
                connect_timeout: Duration::from_secs_f64(args.connect_timeout),
                max_step: args.max_step,
            };
            let control = control.clone();
            std::thread::Builder::new()
                .name(format!("loadgen-{w}"))
                .spawn(move || worker::run(plan, control))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;

    let mut progress = Progress::new(args.bots);
    let started = Instant::now();
    while started.elapsed() < connect_cap {
        let c = &control;
        let settled = c.connected.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed);
        progress.show("connecting", c, None);
        if settled >= args.bots as u64 || c.fatal().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(why) = control.fatal() {
        progress.finish();
        return Err(why.to_owned());
    }
    control.set_phase(Phase::WarmUp);
    pace(&mut progress, &control, "warm-up", args.warmup);

    let probe = Probe {
        server_pid: args.server_pid,
        metrics,
    };
    let start = probe.read();
    control.set_phase(Phase::Measuring);
    let window_started = Instant::now();
    pace(&mut progress, &control, "measuring", args.seconds);
    let end = probe.read();
    let seconds = window_started.elapsed().as_secs_f64();
    control.set_phase(Phase::Done);
    progress.finish();
    if let Some(why) = control.fatal() {
        return Err(why.to_owned());
    }

    let mut tally = Tally::default();
    for worker in workers {
        let result = worker.join().map_err(|_| "a worker panicked".to_owned())?;
        tally.merge(result.map_err(|e| format!("worker failed: {e}"))?);
    }
    let report = build_report(args, &tally, seconds, &probe::window(&start, &end));
    let mut reasons: Vec<(String, u64)> = tally.reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    if tally.disconnects_before_window > 0 {
        reasons.push((
            "disconnects before the window (not in the report)".into(),
            tally.disconnects_before_window,
        ));
    }
    if tally.late_input_slots > 0 {
        reasons.push((
            "input slots skipped because a worker fell behind".into(),
            tally.late_input_slots,
        ));
    }
    if tally.unstamped_reads > 0 {
        reasons.push((
            "reads without a kernel timestamp (acks timed at read time)".into(),
            tally.unstamped_reads,
        ));
    }
    print!("{}", report.summary(&reasons));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

/// The address bots connect to.
fn target(args: &Args) -> SocketAddr {
    match args.transport {
        Transport::Tcp => args.addr,
        Transport::Ws => args.web,
    }
}

fn validate(args: &Args) -> Result<(), String> {
    if !target(args).ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: load tests only target 127.0.0.0/8",
            target(args)
        ));
    }
    if args.bots == 0 || args.bots > 100_000 {
        return Err("--bots must be 1 to 100000".into());
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(args.seconds) || !positive(args.input_hz) || !positive(args.connect_timeout) {
        return Err("--seconds, --input-hz and --connect-timeout must be positive".into());
    }
    if !(args.warmup.is_finite() && args.warmup >= 0.0) || args.seconds + args.warmup > 3600.0 {
        return Err("--warmup must be >= 0 and the run at most an hour".into());
    }
    if !(args.actions_per_s.is_finite() && args.actions_per_s >= 0.0) {
        return Err("--actions-per-s must be >= 0".into());
    }
    if args
        .max_step
        .is_some_and(|step| !(step.is_finite() && step >= 0.0))
    {
        return Err("--max-step must be >= 0".into());
    }
    Ok(())
}

/// Accepts `http://HOST:PORT/metrics`, `http://HOST:PORT` or `HOST:PORT` (loopback only).
fn metrics_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("--metrics: expected http://IP:PORT/metrics, got {url:?}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("--metrics: {addr} is not a loopback address"));
    }
    Ok(addr)
}

fn build_report(args: &Args, tally: &Tally, seconds: f64, window: &probe::WindowFigures) -> Report {
    let bots_in_window = tally.per_bot_frames.len() as f64;
    let per_bot =
        |total: u64| (bots_in_window > 0.0).then(|| total as f64 / bots_in_window / seconds);
    Report {
        transport: args.transport.name(),
        bots_requested: args.bots as u64,
        bots_connected: tally.connected,
        connect_failures: tally.connect_failures,
        disconnects: tally.disconnects,
        seconds,
        frames_per_s_per_bot_mean: per_bot(tally.frames),
        frames_per_s_per_bot_min: tally
            .per_bot_frames
            .iter()
            .min()
            .map(|&frames| f64::from(frames) / seconds),
        recv_bytes_per_s_per_bot: per_bot(tally.bytes),
        events_per_s_per_bot: per_bot(tally.events),
        actions_per_s_per_bot: per_bot(tally.actions),
        visible_entities_mean: (tally.frames > 0)
            .then(|| tally.visible_sum as f64 / tally.frames as f64),
        input_ack_ms_p50: tally.acks.quantile_ms(0.5),
        input_ack_ms_p99: tally.acks.quantile_ms(0.99),
        input_ack_ms_max: (tally.acks.len() > 0).then(|| tally.acks.max_ms()),
        server_tick_ms_p50: window.tick_p50_ms,
        server_tick_ms_p99: window.tick_p99_ms,
        server_tick_ms_max: window.tick_max_ms,
        server_overruns: window.overruns,
        server_cpu_cores: window.server_cpu_cores,
        server_rss_mb: window.server_rss_mb,
        loadgen_cpu_cores: window.loadgen_cpu_cores,
        machine_busy_cores: window.machine_busy_cores,
        protocol_errors: tally.protocol_errors,
        handoffs: tally.handoffs,
        handoff_failures: tally.handoff_failures.clone(),
        handoff_latency_ms_p50: tally.handoff_latency.quantile_ms(0.5),
        handoff_latency_ms_p99: tally.handoff_latency.quantile_ms(0.99),
        handoff_latency_ms_max: (tally.handoff_latency.len() > 0)
            .then(|| tally.handoff_latency.max_ms()),
        continuity_checked: tally.continuity_checked,
        continuity_unchecked: tally.continuity_unchecked,
        continuity_violations: tally.continuity_violations,
        continuity_worst_jump: tally.continuity_worst_jump,
        bots_lost: tally.bots_lost,
        handoffs_in_progress: tally.handoffs_in_progress,
    }
}

/// Waits `seconds` (less if the run fails), refreshing the progress display.
fn pace(progress: &mut Progress, control: &Control, phase: &str, seconds: f64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        progress.show(phase, control, Some(left));
        if left.is_zero() || control.fatal().is_some() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
}

/// Exits the process if the run overstays its bounds (a hung server, a stuck worker).
fn spawn_watchdog(deadline: Duration) {
    let _ = std::thread::Builder::new()
        .name("loadgen-watchdog".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            eprintln!("loadgen: hard deadline of {deadline:?} passed; exiting");
            std::process::exit(3);
        });
}
