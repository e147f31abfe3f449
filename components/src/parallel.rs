//! Updating players in parallel without allocating: the simulation's worker threads
//! ([`Workers`], process-wide) and [`Workers::for_each_mut`], the parallel loop over a query
//! that systems use instead of bevy's `par_iter_mut`.
//!
//! Why not bevy's `par_iter_mut`: each call opens a task scope on bevy's compute pool, which
//! allocates the scope's queue and one task per batch (measured: 22 allocations per tick at
//! 1,000 players for the engine's four parallel loops, 0 with these workers). The tick allocates
//! nothing in steady state, so its parallel loops must not either. (Rayon's `join` from a
//! thread outside its pool goes through an injector queue that allocates a block every 63
//! jobs.) These workers are plain threads parked on a condition variable; a loop hands them
//! a borrowed closure and waits until they are done with it, so nothing is boxed.
//!
//! The thread that runs the loop works on it too. Work is handed out in parts claimed from
//! an atomic counter, so a worker the OS has not scheduled yet only means the others take
//! more parts: the loop never waits for a worker that has not started.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use bevy_ecs::query::{ArchetypeFilter, ArchetypeQueryData, IterQueryData, QueryIter};
use bevy_ecs::system::Query;

static GLOBAL: OnceLock<Workers> = OnceLock::new();

/// The simulation's worker threads (see the module documentation). `threads` counts the
/// thread running the loop: `Workers::new(1)` has no worker and runs loops inline.
///
/// Process-wide, like bevy's compute pool: the first simulation built sizes it
/// ([`Workers::init`]); systems reach it with [`Workers::get`]. Not a resource: in this bevy
/// a resource is an entity, and the world's layout is part of what a replay reproduces.
pub struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

/// A loop's closure, lifetime erased (see the safety argument in [`Workers::run`]).
#[derive(Clone, Copy)]
struct Job {
    task: &'static (dyn Fn(usize) + Sync),
    parts: usize,
}

struct State {
    /// The loop the workers may join; withdrawn before the loop returns.
    job: Option<Job>,
    /// Bumped for every loop, so a worker joins each one at most once.
    generation: u64,
    /// Workers inside the current loop's closure.
    active: usize,
    /// The first panic of a worker in the current loop, re-raised by the loop.
    panic: Option<Box<dyn Any + Send>>,
    stop: bool,
}

struct Shared {
    /// Held by the loop that has the workers.
    running: Mutex<()>,
    state: Mutex<State>,
    /// Workers wait here for a loop.
    start: Condvar,
    /// The loop waits here for its workers to leave its closure.
    idle: Condvar,
    /// The next part to claim.
    next: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim_parts(&self, job: Job) {
        loop {
            let part = self.next.fetch_add(1, Ordering::Relaxed);
            if part >= job.parts {
                return;
            }
            (job.task)(part);
        }
    }
}

impl Workers {
    /// `threads` threads in all: the caller of a loop and `threads - 1` workers named
    /// `name`.
    pub fn new(threads: usize, name: &str) -> Self {
        let shared = Arc::new(Shared {
            running: Mutex::new(()),
            state: Mutex::new(State {
                job: None,
                generation: 0,
                active: 0,
                panic: None,
                stop: false,
            }),
            start: Condvar::new(),
            idle: Condvar::new(),
            next: AtomicUsize::new(0),
        });
        let handles = (1..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || work(&shared))
                    .expect("cannot start a simulation worker thread")
            })
            .collect();
        Self { shared, handles }
    }

    /// Starts the process's workers with `threads` threads in all, unless they are running.
    pub fn init(threads: usize) -> &'static Workers {
        GLOBAL.get_or_init(|| Workers::new(threads, "throng-worker"))
    }

    /// The process's workers ([`Workers::init`]; one thread, the caller's, if never started).
    pub fn get() -> &'static Workers {
        GLOBAL.get_or_init(|| Workers::new(1, "throng-worker"))
    }

    /// Threads a loop runs on, the caller's included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Calls `task(part)` for every `part` in `0..parts`, spread over the threads; returns
    /// when every call has returned. A panic in any call is re-raised here.
    ///
    /// One loop at a time has the workers: a loop started while another runs (two systems
    /// under bevy's multi-threaded executor, or a loop inside a loop) runs on its own
    /// thread alone.
    pub fn run(&self, parts: usize, task: &(dyn Fn(usize) + Sync)) {
        let running = match self.shared.running.try_lock() {
            Ok(running) => Some(running),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if self.handles.is_empty() || parts <= 1 || running.is_none() {
            (0..parts).for_each(task);
            return;
        }
        // SAFETY: the job is only reachable through `State::job`, which `Finish` withdraws
        // before this function returns or unwinds, after waiting until no worker is inside
        // it (`active == 0`); a worker only calls the task between taking the job (under the
        // lock, `active += 1`) and leaving it (under the lock, `active -= 1`). So no call
        // outlives the borrow of `task`.
        let task: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
        let job = Job { task, parts };
        // A worker's panic left over from a loop whose own part panicked first, dropped
        // before the job is published (its drop could panic too).
        let stale = self.shared.lock().panic.take();
        drop(stale);
        {
            let mut state = self.shared.lock();
            self.shared.next.store(0, Ordering::Relaxed);
            state.job = Some(job);
            state.generation += 1;
        }
        self.shared.start.notify_all();
        let finish = Finish(&self.shared);
        self.shared.claim_parts(job);
        drop(finish);
        let panic = self.shared.lock().panic.take();
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }

    /// Calls `f` on every item of `query`, in parallel: the items in iteration order, cut into
    /// runs of consecutive items (see the module documentation).
    pub fn for_each_mut<D: IterQueryData + ArchetypeQueryData, F: ArchetypeFilter>(
        &self,
        query: &mut Query<'_, '_, D, F>,
        f: impl Fn(D::Item<'_, '_>) + Sync,
    ) {
        self.for_each_mut_init(query, || (), |(), item| f(item));
    }

    /// As [`Workers::for_each_mut`], with a value made by `init` once per run of items and
    /// passed to each call (a profiler zone, a scratch buffer).
    ///
    /// The runs are cut before the loop starts, on the calling thread: one iterator per run,
    /// advanced to the run's first item while nothing else touches the query (so no two
    /// threads ever hold the same item, not even while skipping). Runs are claimed as threads
    /// come free (`RUNS_PER_THREAD` per thread, at least `MIN_ITEMS_PER_RUN` items each).
    pub fn for_each_mut_init<D: IterQueryData + ArchetypeQueryData, F: ArchetypeFilter, T>(
        &self,
        query: &mut Query<'_, '_, D, F>,
        init: impl Fn() -> T + Sync,
        f: impl Fn(&mut T, D::Item<'_, '_>) + Sync,
    ) {
        // The query looks at archetypes only, not at values other runs may change, so this
        // bound is exact (and were it larger, the last runs would just find no items).
        let (low, high) = query.iter().size_hint();
        let len = high.unwrap_or(low);
        if len == 0 {
            return;
        }
        let runs = (self.threads() * RUNS_PER_THREAD)
            .min(len.div_ceil(MIN_ITEMS_PER_RUN))
            .min(MAX_RUNS);
        let per_run = len.div_ceil(runs);
        let starts: [RunStart<'_, '_, D, F>; MAX_RUNS] = std::array::from_fn(|run| {
            if run >= runs {
                return RunStart(UnsafeCell::new(None));
            }
            // SAFETY: until `run` below, only this thread uses these iterators, one at a time;
            // the items yielded while advancing are dropped at once.
            let mut items = unsafe { query.iter_unsafe() };
            if run > 0 {
                items.nth(run * per_run - 1);
            }
            RunStart(UnsafeCell::new(Some(items)))
        });
        self.run(runs, &|run| {
            // SAFETY: each run takes its own iterator, once (`run` calls each part once), and
            // the runs' items are disjoint: consecutive stretches of one iteration order
            // (nothing changes the world's layout while the query is borrowed mutably here).
            let Some(items) = (unsafe { (*starts[run].0.get()).take() }) else {
                return;
            };
            let mut value = init();
            items.take(per_run).for_each(|item| f(&mut value, item));
        });
    }
}

/// Runs per thread a query loop is cut into: a run is claimed when a thread is free, so a
/// thread the OS runs late costs the loop at most one run (measured on the whole-tick bench at
/// 10,000 players: one run per thread varied 2.40-3.08 ms between runs, four 2.41-2.47 ms),
/// while advancing the runs' iterators stays a small share of the loop.
const RUNS_PER_THREAD: usize = 4;

/// Most runs a query loop is cut into.
const MAX_RUNS: usize = 32;

/// Fewest items a run of a query loop gets (a run's hand-off costs a wake-up).
const MIN_ITEMS_PER_RUN: usize = 32;

/// A run's iterator, advanced to its first item, taken by the thread that runs it.
struct RunStart<'w, 's, D: IterQueryData, F: ArchetypeFilter>(
    UnsafeCell<Option<QueryIter<'w, 's, D, F>>>,
);

// SAFETY: each `RunStart` is taken by exactly one run, on whichever thread claims it, and the
// iterators reach disjoint items (see `for_each_mut_init`), as bevy's own parallel iteration
// hands table ranges to its task threads. A `QueryIter` is not `Send` only because its fetch
// state holds raw pointers into the world's tables; nothing in it is tied to the thread that
// made it (for bevy's own query data; a hand-written `WorldQuery` whose fetch is would break
// this).
unsafe impl<D: IterQueryData, F: ArchetypeFilter> Sync for RunStart<'_, '_, D, F> {}

/// Withdraws the current job and waits until no worker is in it (also when the loop's own
/// part panics).
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        // No part starts after this (after a panic, the loop is abandoned).
        self.0.next.store(usize::MAX / 2, Ordering::Relaxed);
        let mut state = self.0.lock();
        state.job = None;
        while state.active > 0 {
            state = self.0.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A worker thread: joins each loop it sees (at most once), until stopped.
fn work(shared: &Shared) {
    let mut seen = 0;
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                if state.generation != seen {
                    seen = state.generation;
                    if let Some(job) = state.job {
                        state.active += 1;
                        break job;
                    }
                }
                state = shared.start.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| shared.claim_parts(job)));
        let mut state = shared.lock();
        state.active -= 1;
        if let Err(payload) = outcome {
            state.panic.get_or_insert(payload);
        }
        if state.active == 0 {
            shared.idle.notify_all();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.start.notify_all();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy_ecs::prelude::*;
    use bevy_ecs::system::RunSystemOnce;

    #[derive(Component)]
    struct Value(u64);

    #[test]
    fn every_part_runs_once_across_threads() {
        let workers = Workers::new(3, "test-worker");
        for parts in [0, 1, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            workers.run(parts, &|part| {
                hits[part].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|hit| hit.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_query_loop_visits_every_item_once() {
        let mut world = World::new();
        for i in 0..1_000u64 {
            world.spawn(Value(i));
        }
        for threads in [1, 2, 4] {
            let workers = Workers::new(threads, "test-worker");
            world
                .run_system_once(move |mut values: Query<&mut Value>| {
                    workers.for_each_mut(&mut values, |mut value| value.0 += 1_000_000);
                })
                .unwrap();
        }
        let mut values: Vec<u64> = world
            .query::<&Value>()
            .iter(&world)
            .map(|value| value.0)
            .collect();
        values.sort_unstable();
        assert_eq!(values, (3_000_000..3_001_000).collect::<Vec<_>>());
    }

    #[test]
    fn loops_started_at_once_from_several_threads_each_run_every_part_once() {
        let workers = Workers::new(2, "test-worker");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let hits: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
                        workers.run(16, &|part| {
                            hits[part].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|hit| hit.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn a_panic_in_a_part_reaches_the_loop_and_the_workers_survive_it() {
        let workers = Workers::new(2, "test-worker");
        let caught = catch_unwind(AssertUnwindSafe(|| {
            workers.run(8, &|part| {
                if part == 5 {
                    panic!("part 5");
                }
            })
        }));
        assert!(caught.is_err());
        let done = AtomicUsize::new(0);
        workers.run(8, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 8);
    }
}
