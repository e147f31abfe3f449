//! The tick allocates nothing in steady state: a counting global allocator watches a crowd of
//! walking players, with joins, leaves and view changes excluded only by not happening.
//!
//! Its own test binary, not a module of tests/it: the allocator counts every thread of the
//! process, and the tick also runs on other threads (its parallel loops on the simulation's
//! workers), while other tests' servers would allocate on theirs. Counting only this test's
//! thread would miss the workers; in a process of its own, the only simulation is the one
//! measured and the count stays exact. (Under `executor = "multi"` bevy's executor allocates
//! a task per system per tick; that setting is not covered here.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use systems::snowball::Throw;
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

/// Allocations per tick over 200 ticks after a 400-tick warm-up; every player throws a
/// snowball every `throw_every` ticks if given (one `throw` action, one snowball entity, a
/// `hit` event to the viewers of whoever it hits).
fn allocations_per_tick(sim_threads: usize, throw_every: Option<u32>) -> f64 {
    let players = 2_000usize;
    let config = ConfigLayer {
        world_size: Some(40.0 * (players as f32).sqrt()),
        max_players: Some(players),
        sim_threads: Some(sim_threads),
        // No NPC walkers: their paths never repeat, so for a long while some client's frame
        // buffer still meets a frame larger than any before (traced: a few Vec growths in
        // frame assembly per 200 ticks, high-water marks rather than per-tick work).
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
            if let Some(every) = throw_every
                && (seq + i as u32).is_multiple_of(every)
            {
                let throw = Throw {
                    dir_x: 90,
                    dir_y: 90,
                };
                harness.action(*connection, seq, 0, postcard::to_stdvec(&throw).unwrap());
            }
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
    let events_before = harness.stats.events_sent.load(Ordering::Relaxed);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    for _ in 0..ticks {
        step(&mut harness, true);
    }
    let events = harness.stats.events_sent.load(Ordering::Relaxed) - events_before;
    assert_eq!(
        events > 0,
        throw_every.is_some(),
        "hit events flow exactly when players throw ({events} sent)"
    );
    assert_eq!(
        components::Workers::get().threads(),
        sim_threads,
        "the parallel loops ran on this many threads"
    );
    ALLOCATIONS.load(Ordering::Relaxed) as f64 / f64::from(ticks)
}

// One test function: the counter is process-wide, so the measurements must not run in
// parallel test threads.
#[test]
fn steady_state_ticks_do_not_allocate_walking_or_with_actions_and_events() {
    // Two simulation threads: the parallel loops run on the simulation's workers (the
    // default on this kind of machine). The workers are process-wide, sized by the first
    // simulation, so this binary measures two threads only (one thread runs the same loops
    // inline, a subset of this).
    let sim_threads = 2;
    let walking = allocations_per_tick(sim_threads, None);
    println!(
        "allocations per tick with 2,000 walking players, {sim_threads} simulation \
         thread(s): {walking}"
    );
    assert_eq!(
        walking, 0.0,
        "the tick's own code allocates in steady state ({sim_threads} thread(s))"
    );
    let throwing = allocations_per_tick(sim_threads, Some(20));
    println!(
        "allocations per tick with 2,000 players walking and throwing once a second, \
         {sim_threads} simulation thread(s): {throwing}"
    );
    assert_eq!(
        throwing, 0.0,
        "actions, snowballs, events and score saves allocate in steady state \
         ({sim_threads} thread(s))"
    );
}
