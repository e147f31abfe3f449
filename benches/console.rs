//! The live console's cost on the tick: the world task that copies every position (into a
//! reused buffer) for the once-a-second snapshot, at 10,000 players on the crowd-open
//! density. Prints the median of several runs. Not a CI timing test.

use std::time::{Duration, Instant};

use throng::PositionCopy;
use throng::config::ConfigLayer;
use throng::harness::Harness;

fn main() {
    let players = 10_000;
    let config = ConfigLayer {
        world_size: Some(40.0 * (players as f32).sqrt()),
        interest_radius: Some(100.0),
        max_players: Some(players),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    for i in 0..players {
        harness.join(&format!("bot{i}"));
    }
    for _ in 0..5 {
        harness.tick();
    }
    let mut copy = PositionCopy::default();
    copy.copy_from(&mut harness.simulation.world); // the query state is built once
    let mut runs: Vec<Duration> = (0..51)
        .map(|_| {
            let started = Instant::now();
            copy.copy_from(&mut harness.simulation.world);
            started.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "console position copy: {} entities, median {:?} (min {:?}, max {:?}) per snapshot",
        copy.positions.len(),
        runs[runs.len() / 2],
        runs[0],
        runs[runs.len() - 1]
    );
}
