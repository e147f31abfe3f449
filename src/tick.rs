//! The tick thread: runs the simulation at a fixed rate on a deadline schedule.
//!
//! Deadlines advance by exactly one period per tick, so the rate does not drift with the
//! time a tick takes. A tick that ends past its deadline is an overrun: it is counted and
//! the next tick starts at once; if the loop falls more than a whole period behind it skips
//! the missed deadlines instead of running a burst of catch-up ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy_ecs::prelude::World;
use crossbeam_channel::Receiver;

use crate::game::Simulation;
use crate::profiling;
use crate::stats::Stats;

/// Work to run on the tick thread between two ticks, with the world (inspection, admin).
pub(crate) struct WorldTask {
    /// Run right after this tick (or the first tick after it, if it has passed).
    pub after_tick: u64,
    /// The work.
    pub run: Box<dyn FnOnce(&mut World) + Send>,
}

/// Runs `simulation` every `period` until `stop` is set.
pub(crate) fn run_tick_loop(
    mut simulation: Simulation,
    period: Duration,
    stop: Arc<AtomicBool>,
    tasks: Receiver<WorldTask>,
    stats: Arc<Stats>,
) -> Simulation {
    let mut deadline = Instant::now() + period;
    let mut waiting: Vec<WorldTask> = Vec::new();
    let mut plots = profiling::TickPlots::default();
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        {
            let _zone = profiling::tick_zone();
            simulation.tick();
            waiting.extend(tasks.try_iter());
            if !waiting.is_empty() {
                run_due_tasks(&mut waiting, &mut simulation);
            }
        }
        let finished = Instant::now();
        record_tick(&stats, started, finished, deadline);
        plots.tick_finished(&stats, finished - started, &simulation);
        stats
            .entities
            .store(simulation.entity_count(), Ordering::Relaxed);

        if finished > deadline + period {
            deadline = finished + period; // hopelessly behind: skip, do not burst
        } else if finished < deadline {
            std::thread::sleep(deadline - finished);
            deadline += period;
        } else {
            deadline += period;
        }
    }
    simulation
}

fn run_due_tasks(waiting: &mut Vec<WorldTask>, simulation: &mut Simulation) {
    let tick = simulation.current_tick();
    let mut index = 0;
    while index < waiting.len() {
        if waiting[index].after_tick <= tick {
            (waiting.swap_remove(index).run)(&mut simulation.world);
        } else {
            index += 1;
        }
    }
}

fn record_tick(stats: &Stats, started: Instant, finished: Instant, deadline: Instant) {
    let took = finished - started;
    let micros = took.as_micros() as u64;
    Stats::bump(&stats.ticks);
    stats.tick_last_us.store(micros, Ordering::Relaxed);
    stats.tick_max_us.fetch_max(micros, Ordering::Relaxed);
    stats
        .console_tick_max_us
        .fetch_max(micros, Ordering::Relaxed);
    stats.tick_duration.record(took);
    stats.tick_heartbeat.beat(finished);
    if finished > deadline {
        Stats::bump(&stats.tick_overruns);
    }
}

/// Makes this thread a background one (the persistence and recording threads):
/// `SCHED_BATCH` (when it wakes it does not preempt the running thread) at a lower priority
/// (nice 10). Without it, the tick's hand-off to the persistence thread (which then woke it)
/// was often descheduled for milliseconds on a 2-core machine while that thread merged the
/// batch.
pub(crate) fn yield_to_the_tick() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on the calling thread (pid 0 / who 0), with a valid param.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0 {
            tracing::debug!("cannot make a background thread SCHED_BATCH");
        }
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}
