//! Replay speed: ticks per second replaying a recording of 10,000 walking players on the
//! crowd-open density (a 4000 x 4000 world, interest radius 100; an input per player per
//! tick, a new direction every 40 inputs), recorded without sockets through the same
//! recording path as a live server. Prints the median of several replays and the multiple of
//! real time at the recorded 20 Hz. Also the recording's size per player-tick. Not a CI
//! timing test.

use std::time::Instant;

use throng::config::ConfigLayer;
use throng::harness::Harness;
use throng::recording::{DigestCheck, Replay};

const PLAYERS: usize = 10_000;
const TICKS: u32 = 200;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = ConfigLayer {
        world_size: Some(40.0 * (PLAYERS as f32).sqrt()),
        interest_radius: Some(100.0),
        max_players: Some(PLAYERS),
        record: Some(dir.path().to_owned()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut live = Harness::new(&config);
    let players: Vec<_> = (0..PLAYERS)
        .map(|i| live.join(&format!("bot{i}")))
        .collect();
    let directions = [(127, 0), (0, 127), (-127, 0), (0, -127)];
    for seq in 1..=TICKS {
        for (i, &player) in players.iter().enumerate() {
            let (x, y) = directions[(i + seq as usize / 40) % 4];
            live.input(player, seq, x, y);
        }
        live.tick();
        live.write_all_frames();
    }
    drop(live); // the recording thread writes the rest and ends
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .expect("a segment")
        .unwrap()
        .path();
    let bytes = std::fs::metadata(&path).unwrap().len();

    let game = |app: &mut bevy_app::App| {
        app.add_plugins(systems::GamePlugins);
    };
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            let mut replay = Replay::open(&path, game).expect("the recording opens");
            let started = Instant::now();
            while let Some(check) = replay.next_tick().expect("a whole recording") {
                assert!(!matches!(check, DigestCheck::Diverged(_)), "{check:?}");
                replay.discard_frames();
            }
            assert_eq!(replay.tick(), u64::from(TICKS));
            f64::from(TICKS) / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "replay of {PLAYERS} players x {TICKS} ticks: median {median:.0} ticks/s = {:.1}x real \
         time at 20 Hz (min {:.0}, max {:.0}); recording {bytes} bytes = {:.1} bytes per \
         player-tick",
        median / 20.0,
        rates[0],
        rates[rates.len() - 1],
        bytes as f64 / (PLAYERS as f64 * f64::from(TICKS))
    );
}
