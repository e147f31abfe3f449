//! One whole tick without sockets, on the crowd-open density (world side 40 * sqrt(N),
//! interest radius 100): ingest of one input per player, movement, replication encode, and
//! frame assembly and hand-off for every client. Prints ns per player-tick, the figure the
//! tick-server goal is stated in (<= 250 ns at N = 10,000), and bytes per client per tick.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use throng::config::ConfigLayer;
use throng::harness::Harness;

/// A crowd-open world of `players` random walkers, joined and warmed up.
pub struct Crowd {
    harness: Harness,
    connections: Vec<u64>,
    directions: Vec<(i8, i8)>,
    seq: u32,
    rng: u64,
}

impl Crowd {
    fn new(players: usize) -> Self {
        let config = ConfigLayer {
            world_size: Some(40.0 * (players as f32).sqrt()),
            interest_radius: Some(100.0),
            max_players: Some(players),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let mut harness = Harness::new(&config);
        let connections = (0..players).map(|i| harness.join(&format!("bot{i}"))).collect();
        let mut crowd = Crowd { harness, connections, directions: vec![(0, 0); players], seq: 0, rng: 1 };
        for _ in 0..60 {
            crowd.tick();
        }
        crowd
    }

    /// One tick of the crowd workload: a new direction every 40 inputs, one input per player.
    fn tick(&mut self) -> usize {
        if self.seq % 40 == 0 {
            for direction in &mut self.directions {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                *direction = ((self.rng as i8) | 1, ((self.rng >> 8) as i8) | 1);
            }
        }
        self.seq += 1;
        for (connection, (x, y)) in self.connections.iter().zip(&self.directions) {
            self.harness.input(*connection, self.seq, *x, *y);
        }
        self.harness.tick();
        self.harness.write_all_frames()
    }
}

fn whole_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("whole_tick");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    for players in [1_000usize, 10_000, 50_000] {
        let mut crowd = Crowd::new(players);
        let (ticks, started) = (50, Instant::now());
        let bytes: usize = (0..ticks).map(|_| crowd.tick()).sum();
        let per_player_ns = started.elapsed().as_nanos() as f64 / (ticks * players) as f64;
        println!(
            "whole_tick/{players}: {per_player_ns:.0} ns per player-tick (quick estimate), {:.0} bytes per client per tick",
            bytes as f64 / (ticks * players) as f64
        );
        group.throughput(Throughput::Elements(players as u64));
        group.bench_with_input(BenchmarkId::from_parameter(players), &players, |b, _| b.iter(|| crowd.tick()));
    }
    group.finish();
}

criterion_group!(benches, whole_tick);
criterion_main!(benches);
