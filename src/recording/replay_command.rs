//! `throng replay FILE`: runs a recording through [`Replay`] and says how it went.
//!
//! Exit status: 0 the replay matched every recorded digest to the end (or to `--until`);
//! 1 it diverged (where is printed); 2 it could not start (not a recording, another format
//! version, other gameplay, an invalid recorded configuration); 3 it stopped at damage (a
//! cut or corrupted chunk, a missing segment) after replaying every whole tick before it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bevy_app::App;

use super::dump;
use super::replay::{DigestCheck, Replay};

/// `throng replay`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// A segment of the recording (`SESSION-NNNN.rec`); its session is replayed from
    /// segment 0 through every segment that follows.
    pub file: PathBuf,
    /// Stop after this tick and print the world's entities as JSON on stdout.
    #[arg(long)]
    pub until: Option<u64>,
    /// Run at the recorded tick rate instead of as fast as the machine allows.
    #[arg(long)]
    pub realtime: bool,
    /// Wait for a Tracy profiler to connect before the first tick (needs a build with the
    /// `tracy` feature).
    #[arg(long)]
    pub wait_for_profiler: bool,
}

/// Exit status: the replay matched.
pub const MATCHED: u8 = 0;
/// Exit status: the replay diverged.
pub const DIVERGED: u8 = 1;
/// Exit status: the replay could not start.
pub const UNREADABLE: u8 = 2;
/// Exit status: the replay stopped at damage after the whole ticks before it.
pub const STOPPED: u8 = 3;

/// Runs `throng replay` with the gameplay `game` registers (the server's own).
pub fn run(args: &ReplayArgs, game: impl FnOnce(&mut App)) -> ExitCode {
    let mut replay = match Replay::open(&args.file, game) {
        Ok(replay) => replay,
        Err(error) => {
            eprintln!("throng replay: {error}");
            return ExitCode::from(UNREADABLE);
        }
    };
    let header = replay.header().clone();
    let tick_hz = replay.tick_hz();
    eprintln!(
        "throng replay: session {} ({} segment(s)), recorded by throng {}, {tick_hz:.0} Hz, a \
         digest every {} tick(s)",
        header.session,
        replay.segments().len(),
        header.throng_version,
        header.digest_every
    );
    if args.wait_for_profiler {
        eprintln!("throng replay: waiting for a Tracy profiler to connect");
        if !crate::profiling::wait_for_profiler() {
            eprintln!("throng replay: this build has no Tracy (build with --features tracy)");
            return ExitCode::from(UNREADABLE);
        }
    }
    let period = Duration::from_secs_f64(1.0 / tick_hz);
    let started = Instant::now();
    let mut digests = 0u64;
    let mut player_ticks = 0u64;
    let status = loop {
        if args.until.is_some_and(|until| replay.tick() >= until) {
            break MATCHED;
        }
        let check = replay.next_tick();
        replay.discard_frames();
        player_ticks += replay.players();
        match check {
            Ok(Some(DigestCheck::NotRecorded)) => {}
            Ok(Some(DigestCheck::Matched)) => digests += 1,
            Ok(Some(DigestCheck::Diverged(divergence))) => {
                eprintln!(
                    "throng replay: DIVERGED at {divergence} (the {} digest(s) before it matched)",
                    digests
                );
                break DIVERGED;
            }
            Ok(None) => break MATCHED,
            // Whatever stops a replay that has started (a cut or damaged chunk, a missing or
            // unreadable later segment) comes after the whole ticks before it.
            Err(error) => {
                eprintln!(
                    "throng replay: stopped after tick {}: {error}",
                    replay.tick()
                );
                break STOPPED;
            }
        }
        if args.realtime {
            let due = started + period * replay.tick() as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = replay.tick();
    let rate = ticks as f64 / elapsed.max(1e-9);
    eprintln!(
        "throng replay: {} tick(s) 1..={ticks} in {elapsed:.2} s ({rate:.0} ticks/s, {:.1}x real \
         time); {digests} digest(s) matched",
        ticks,
        rate / tick_hz,
    );
    if player_ticks > 0 {
        let bytes = replay.recorded_bytes();
        let per_player_tick = bytes as f64 / player_ticks as f64;
        eprintln!(
            "throng replay: {bytes} bytes for {player_ticks} player-ticks: {per_player_tick:.1} \
             bytes per player-tick, {:.0} KiB per player-hour at {tick_hz:.0} Hz",
            per_player_tick * tick_hz * 3600.0 / 1024.0
        );
    }
    if status == MATCHED {
        match args.until {
            Some(until) => {
                if ticks < until {
                    eprintln!("throng replay: the recording ends at tick {ticks}, before {until}");
                }
                println!("{}", dump::entities(replay.world()));
            }
            None => eprintln!("throng replay: matched the recording"),
        }
    }
    ExitCode::from(status)
}
