//! Why the tick-duration histogram is ours and not prometheus-client's: the cost of one
//! observation on the tick, alone and while a scrape is encoding. prometheus-client's
//! `Histogram` keeps its buckets behind a `parking_lot::Mutex` that an encode also takes, so a
//! tick's observation can wait behind a scrape on the network side; ours is one relaxed
//! atomic add per observation and a scrape only loads atomics. Plain timing loops (no
//! criterion: the figure is a mean over millions of calls); `cargo bench --bench histogram`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use throng::stats::Stats;

const CALLS: u32 = 5_000_000;

fn per_call(started: Instant) -> f64 {
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// Mean nanoseconds per observation of ours and of the library's, with `scraping` a thread
/// encoding the library's registry (and snapshotting ours) in a loop.
fn run(scraping: bool) -> (f64, f64) {
    let stats = Arc::new(Stats::default());
    let buckets = [
        0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1,
    ];
    let library = Histogram::new(buckets);
    let mut registry = Registry::default();
    registry.register("tick_duration_seconds", "tick", library.clone());
    let registry = Arc::new(registry);
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = scraping.then(|| {
        let (stop, stats, registry) = (stop.clone(), stats.clone(), registry.clone());
        std::thread::spawn(move || {
            let mut text = String::new();
            while !stop.load(Ordering::Relaxed) {
                text.clear();
                encode(&mut text, &registry).unwrap();
                std::hint::black_box(stats.tick_duration.snapshot());
            }
        })
    });
    let took = Duration::from_micros(1700);
    let started = Instant::now();
    for _ in 0..CALLS {
        stats.tick_duration.record(std::hint::black_box(took));
    }
    let ours = per_call(started);
    let started = Instant::now();
    for _ in 0..CALLS {
        library.observe(std::hint::black_box(took.as_secs_f64()));
    }
    let theirs = per_call(started);
    stop.store(true, Ordering::Relaxed);
    if let Some(scraper) = scraper {
        scraper.join().unwrap();
    }
    (ours, theirs)
}

fn main() {
    for scraping in [false, true] {
        let (ours, theirs) = run(scraping);
        println!(
            "histogram observation{}: ours {ours:.1} ns, prometheus-client {theirs:.1} ns",
            if scraping {
                " while a scrape encodes in a loop"
            } else {
                ""
            }
        );
    }
}
