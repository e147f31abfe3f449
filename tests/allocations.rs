//! The tick allocates nothing in steady state: a counting global allocator watches a crowd of
//! walking players, with joins, leaves and view changes excluded only by not happening.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use throng::config::ConfigLayer;
use throng::harness::Harness;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_per_tick(sim_threads: usize) -> f64 {
    let players = 2_000usize;
    let config = ConfigLayer {
        world_size: Some(40.0 * (players as f32).sqrt()),
        max_players: Some(players),
        sim_threads: Some(sim_threads),
        // Walking players only (the demo game's NPC walkers are not the tick's own code).
        game: Some(toml::from_str("[snowball]\nnpcs = 0").unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    let connections: Vec<u64> = (0..players)
        .map(|i| harness.join(&format!("p{i}")))
        .collect();
    let mut seq = 0u32;
    let mut step = |harness: &mut Harness, count: bool| {
        seq += 1;
        for (i, connection) in connections.iter().enumerate() {
            let turn = (seq / 40) as usize + i;
            harness.input(
                *connection,
                seq,
                [127, 0, -127, 0][turn % 4],
                [0, 127, 0, -127][turn % 4],
            );
        }
        COUNTING.store(count, Ordering::Relaxed);
        harness.tick();
        COUNTING.store(false, Ordering::Relaxed);
        harness.write_all_frames();
    };
    // Warm-up: buffers grow to their working size (several direction changes included).
    for _ in 0..400 {
        step(&mut harness, false);
    }
    let ticks = 200;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    for _ in 0..ticks {
        step(&mut harness, true);
    }
    ALLOCATIONS.load(Ordering::Relaxed) as f64 / f64::from(ticks)
}

#[test]
fn steady_state_ticks_do_not_allocate() {
    let single = allocations_per_tick(1);
    println!("allocations per tick with 2,000 walking players, single-threaded executor: {single}");
    assert_eq!(single, 0.0, "the tick's own code allocates in steady state");
}
