//! `bench-crowd`: runs one crowd workload end to end and prints one line.
//!
//! `cargo run --release -p bench-crowd -- open 2000` builds the release server and loadgen,
//! starts the server with the variant's world parameters on free loopback ports, runs
//! loadgen against it (reading the server's CPU/RSS by PID and its tick figures from its
//! metrics endpoint), stops the server by PID, keeps the JSON report under `target/bench/`
//! and prints a summary line. `--sweep` runs the variant's standard sizes in order and
//! stops at the first the server cannot hold.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::Value;

/// The crowd variants (docs/BENCHMARKS.md).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Variant {
    /// World 1000 x 1000, everyone sees everyone.
    Arena,
    /// World side 40 x sqrt(N), interest radius 100: constant density.
    Open,
    /// `open`, and every bot also throws a snowball once a second (one `throw` action; a
    /// `hit` event to the target's viewers when it hits).
    Throw,
}

impl Variant {
    fn world(self, bots: usize) -> (f64, f64) {
        match self {
            // A radius beyond the world's diagonal: no interest management at all.
            Variant::Arena => (1000.0, 1500.0),
            Variant::Open | Variant::Throw => (40.0 * (bots as f64).sqrt(), 100.0),
        }
    }

    /// Player actions per second per bot.
    fn actions_per_s(self) -> f64 {
        match self {
            Variant::Throw => 1.0,
            Variant::Arena | Variant::Open => 0.0,
        }
    }

    fn sweep(self) -> &'static [usize] {
        match self {
            Variant::Arena => &[100, 250, 500, 1000],
            Variant::Open | Variant::Throw => &[500, 1000, 2000, 3000, 5000],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Variant::Arena => "arena",
            Variant::Open => "open",
            Variant::Throw => "throw",
        }
    }
}

/// How the bots reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// Length-prefixed frames on the game listener.
    Tcp,
    /// WebSocket on the web listener's `/ws` (the same messages, one per binary message).
    Ws,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }
}

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "bench-crowd",
    about = "Run a crowd benchmark against the release server"
)]
struct Args {
    /// Workload variant.
    variant: Variant,
    /// Number of bots (omit with --sweep).
    bots: Option<usize>,
    /// Run the variant's standard sizes, stopping at the first one not held.
    #[arg(long)]
    sweep: bool,
    /// Seconds of warm-up.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// How the bots connect (passed to loadgen); `ws` runs are labelled `...-ws`.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Bot seed (also the server's spawn seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The server binary to run instead of the release build's (a before/after pair: a
    /// copy of the previous build against the current one, alternating).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Extra server flags, e.g. `--server-arg=--net-threads=1`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Extra loadgen flags, e.g. `--loadgen-arg=--threads=2`.
    #[arg(long = "loadgen-arg", allow_hyphen_values = true)]
    loadgen_args: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let sizes: Vec<usize> = match (args.sweep, args.bots) {
        (true, None) => args.variant.sweep().to_vec(),
        (false, Some(n)) => vec![n],
        _ => {
            eprintln!("bench-crowd: give either N or --sweep");
            return ExitCode::from(2);
        }
    };
    let bin = match build() {
        Ok(bin) => bin,
        Err(error) => {
            eprintln!("bench-crowd: {error}");
            return ExitCode::from(2);
        }
    };
    let mut capacity = None;
    for bots in sizes {
        match run_one(&args, &bin, bots) {
            Ok(run) => {
                println!("{}", run.line);
                if !run.held {
                    break;
                }
                if run.capacity_ok {
                    capacity = Some(bots);
                }
            }
            Err(error) => {
                eprintln!("bench-crowd: crowd-{}-{bots}: {error}", args.variant.name());
                return ExitCode::from(1);
            }
        }
    }
    if args.sweep {
        match capacity {
            Some(n) => println!(
                "capacity: crowd-{} holds N = {n} (min frames/s >= 18, no disconnects, ack p99 <= 100 ms)",
                args.variant.name()
            ),
            None => println!("capacity: no size held"),
        }
    }
    ExitCode::SUCCESS
}

/// Builds the release server and loadgen; returns the directory holding them.
fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "throng",
            "-p",
            "loadgen",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build failed".into());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no executable directory")?.to_path_buf();
    if !dir.join("throng").exists() || !dir.join("loadgen").exists() {
        return Err(format!(
            "throng/loadgen not found in {} (run bench-crowd with --release)",
            dir.display()
        ));
    }
    Ok(dir)
}

struct Run {
    line: String,
    held: bool,
    capacity_ok: bool,
}

/// Stops the server if the run fails halfway.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_one(args: &Args, bin: &Path, bots: usize) -> Result<Run, String> {
    let (world, radius) = args.variant.world(bots);
    // TCP keeps the historical names; other transports are suffixed.
    let label = match args.transport {
        Transport::Tcp => format!("crowd-{}-{bots}", args.variant.name()),
        transport => format!("crowd-{}-{bots}-{}", args.variant.name(), transport.name()),
    };
    let out_dir = bin.parent().ok_or("no target directory")?.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let json = out_dir.join(format!("{label}.json"));
    let log = std::fs::File::create(out_dir.join(format!("{label}.server.log")))
        .map_err(|e| e.to_string())?;
    // Every run starts with an empty player database (persistence is part of what it costs).
    let data_dir = out_dir.join(format!("{label}.data"));
    let _ = std::fs::remove_dir_all(&data_dir);

    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| bin.join("throng"));
    let mut server = Server(
        Command::new(server_bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--web",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--world-size", &world.to_string()])
            .args(["--interest-radius", &radius.to_string()])
            .args(["--max-players", &(bots + 100).to_string()])
            // Every bot connects from 127.0.0.1.
            .args(["--max-players-per-addr", &(bots + 100).to_string()])
            .args(["--max-handshakes-per-addr", &(bots + 100).to_string()])
            .args(["--spawn-seed", &args.seed.to_string()])
            .args(&args.server_args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?,
    );
    let mut lines = BufReader::new(server.0.stdout.take().ok_or("no stdout")?).lines();
    let mut address = || -> Result<String, String> {
        let line = lines
            .next()
            .ok_or("the server exited before listening")?
            .map_err(|e| e.to_string())?;
        Ok(line.rsplit(' ').next().unwrap_or_default().to_owned())
    };
    let (addr, metrics) = (address()?, address()?);
    // `throng web on http://ADDR/` comes after the metrics line (only read when needed: with
    // `--server-arg=--web=off` there is no such line).
    let web = match args.transport {
        Transport::Tcp => None,
        Transport::Ws => {
            let url = address()?;
            let web = url.trim_start_matches("http://").trim_end_matches('/');
            Some(web.to_owned())
        }
    };

    let status = Command::new(bin.join("loadgen"))
        .args(["--addr", &addr, "--bots", &bots.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--server-pid", &server.0.id().to_string()])
        .args(["--metrics", &metrics])
        .args(["--actions-per-s", &args.variant.actions_per_s().to_string()])
        .args(["--transport", args.transport.name()])
        .args(web.iter().flat_map(|web| ["--web", web]))
        .args(&args.loadgen_args)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run loadgen: {e}"))?;
    stop(&mut server.0);
    if status.code() == Some(2) || !json.exists() {
        return Err(format!("loadgen failed ({status})"));
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    Ok(summarise(
        &label,
        args.transport,
        bots,
        &report,
        &json,
        args.seconds,
    ))
}

/// SIGTERM, then a bounded wait for the graceful exit, then SIGKILL.
fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
}

/// The summary line. Bytes are what the bots received, framing included (a 4-byte prefix
/// per TCP frame, a 2- to 4-byte header per WebSocket message), so bytes per entity-tick
/// compare across transports.
fn summarise(
    label: &str,
    transport: Transport,
    bots: usize,
    report: &Value,
    json: &Path,
    seconds: f64,
) -> Run {
    let num = |key: &str| report[key].as_f64();
    let show =
        |key: &str, digits: usize| num(key).map_or("n/a".to_owned(), |v| format!("{v:.digits$}"));
    let min_fps = num("frames_per_s_per_bot_min").unwrap_or(0.0);
    let disconnects = num("disconnects").unwrap_or(f64::INFINITY);
    let connected = num("bots_connected").unwrap_or(0.0);
    let errors = num("protocol_errors").unwrap_or(f64::INFINITY);
    let held = min_fps >= 18.0 && disconnects == 0.0 && connected == bots as f64 && errors == 0.0;
    let capacity_ok = held && num("input_ack_ms_p99").is_some_and(|p99| p99 <= 100.0);
    let per_tick = |cores: f64| cores / (bots as f64 * 20.0) * 1e6;
    let bytes_per_entity = num("recv_bytes_per_s_per_bot")
        .zip(num("visible_entities_mean"))
        .map(|(bytes, visible)| bytes / 20.0 / visible);
    let rss_per_player = num("server_rss_mb").map(|mb| mb * 1024.0 / bots as f64);
    let line = format!(
        "{label}: {} over {} | fps mean {} min {} | {} B/s/bot, {} in view, {} B/entity-tick | ack p50 {} p99 {} ms | \
         tick p50 {} p99 {} ms, overruns {} | server {} cores = {} us/player-tick, {} MiB = {} KiB/player | \
         loadgen {} cores | machine {} busy | events {}/s/bot | errors {} | {seconds} s | {}",
        if held { "held" } else { "NOT held" },
        report["transport"].as_str().unwrap_or(transport.name()),
        show("frames_per_s_per_bot_mean", 2),
        show("frames_per_s_per_bot_min", 2),
        show("recv_bytes_per_s_per_bot", 0),
        show("visible_entities_mean", 1),
        bytes_per_entity.map_or("n/a".into(), |b| format!("{b:.2}")),
        show("input_ack_ms_p50", 1),
        show("input_ack_ms_p99", 1),
        show("server_tick_ms_p50", 2),
        show("server_tick_ms_p99", 2),
        show("server_overruns", 0),
        show("server_cpu_cores", 2),
        num("server_cpu_cores").map_or("n/a".into(), |c| format!("{:.1}", per_tick(c))),
        show("server_rss_mb", 1),
        rss_per_player.map_or("n/a".into(), |k| format!("{k:.1}")),
        show("loadgen_cpu_cores", 2),
        show("machine_busy_cores", 2),
        show("events_per_s_per_bot", 2),
        show("protocol_errors", 0),
        json.display()
    );
    Run {
        line,
        held,
        capacity_ok,
    }
}
