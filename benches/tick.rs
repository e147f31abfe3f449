//! One whole tick without sockets, on the crowd-open density (world side 40 * sqrt(N),
//! interest radius 100): ingest of one input per player, movement, replication encode, and
//! frame assembly and hand-off for every client. Only the tick thread's work is timed: queuing
//! the inputs and taking the frames out of the outboxes (the network tasks' work) happen
//! outside the timed region. Prints ns per player-tick (the goal: <= 250 ns at N = 10,000),
//! bytes per client per tick, and heap allocations per tick (a counting allocator).
//! `THRONG_BENCH_RECORD=DIR` runs it with every tick recorded into DIR (an A/B of the
//! recording's cost on the tick); `THRONG_BENCH_EXECUTOR=multi` with bevy's multi-threaded
//! executor; `THRONG_BENCH_PLAYERS=N` at one size only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use throng::config::ConfigLayer;
use throng::harness::Harness;

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
            // THRONG_BENCH_CELL_SIZE compares grid cell sizes (default: the server default).
            cell_size: std::env::var("THRONG_BENCH_CELL_SIZE")
                .ok()
                .and_then(|v| v.parse().ok()),
            max_players: Some(players),
            // THRONG_BENCH_RECORD=DIR records every tick into DIR (the tick's side of
            // recording is then in the timed region; the recording thread runs beside it).
            record: std::env::var_os("THRONG_BENCH_RECORD").map(Into::into),
            // THRONG_BENCH_EXECUTOR=multi compares bevy's multi-threaded executor.
            executor: std::env::var("THRONG_BENCH_EXECUTOR")
                .ok()
                .map(|e| e.parse().expect("single or multi")),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let mut harness = Harness::new(&config);
        let connections = (0..players)
            .map(|i| harness.join(&format!("bot{i}")))
            .collect();
        let mut crowd = Crowd {
            harness,
            connections,
            directions: vec![(0, 0); players],
            seq: 0,
            rng: 1,
        };
        // Long enough for buffers to reach their working size through several direction changes.
        for _ in 0..300 {
            crowd.tick();
        }
        crowd
    }

    /// One tick of the crowd workload: a new direction every 40 inputs, one input per
    /// player queued, the tick (timed), then the frames taken out. Returns the tick's
    /// duration and the bytes of frames it produced.
    fn tick(&mut self) -> (Duration, usize) {
        if self.seq.is_multiple_of(40) {
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
        let started = Instant::now();
        self.harness.tick();
        let took = started.elapsed();
        (took, self.harness.write_all_frames())
    }
}

fn whole_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("whole_tick");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    // THRONG_BENCH_PLAYERS=N runs one size only.
    let sizes = match std::env::var("THRONG_BENCH_PLAYERS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(players) => vec![players],
        None => vec![1_000usize, 10_000, 50_000],
    };
    for players in sizes {
        let mut crowd = Crowd::new(players);
        let ticks = 100;
        let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
        let (mut busy, mut bytes) = (Duration::ZERO, 0);
        for _ in 0..ticks {
            let (took, written) = crowd.tick();
            busy += took;
            bytes += written;
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        println!(
            "whole_tick/{players}: {:.0} ns per player-tick, {:.0} bytes per client per tick, {:.1} allocations per tick",
            busy.as_nanos() as f64 / (ticks * players) as f64,
            bytes as f64 / (ticks * players) as f64,
            allocations as f64 / ticks as f64,
        );
        group.throughput(Throughput::Elements(players as u64));
        group.bench_with_input(BenchmarkId::from_parameter(players), &players, |b, _| {
            b.iter_custom(|iterations| (0..iterations).map(|_| crowd.tick().0).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, whole_tick);
criterion_main!(benches);
