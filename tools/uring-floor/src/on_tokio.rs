//! Mode `tokio`: the floor's server on the runtime model throng's network side uses, with
//! none of throng's own work. A tokio multi-threaded runtime (a worker per core); a task per
//! connection that reads its inputs as they come (woken by readiness, as throng's
//! connection tasks are); one flush task per worker that writes every frame of its share of
//! the connections each tick with non-blocking writes (throng's flush tasks, without the
//! io_uring batch). What this costs over `plain` (the floor's own loop, one thread) is what
//! the task-per-connection model costs before throng decodes anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;

use crate::{READ_BUFFER, process_cpu};

/// Counters over the measured window, shared atomics bumped by every task (as throng's
/// inputs all go through one shared queue to the tick).
#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    read_bytes: AtomicU64,
    frames: AtomicU64,
    short_writes: AtomicU64,
}

impl Counters {
    fn reset(&self) {
        for counter in [
            &self.reads,
            &self.read_bytes,
            &self.frames,
            &self.short_writes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// The connections' write halves, one list per flush task.
type Shards = Arc<Vec<Mutex<Vec<OwnedWriteHalf>>>>;

/// Runs the server for `seconds` and prints the floor's figures over its last two thirds.
pub(crate) fn run(port: u16, out_bytes: usize, hz: f64, seconds: f64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let counters = Arc::new(Counters::default());
    let shards: Shards = Arc::new((0..workers).map(|_| Mutex::new(Vec::new())).collect());
    let period = Duration::from_secs_f64(1.0 / hz);
    let start = Instant::now();
    runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        tokio::spawn(accept(listener, shards.clone(), counters.clone()));
        let payload: Arc<[u8]> = vec![7u8; out_bytes].into();
        for shard in 0..workers {
            tokio::spawn(flush(
                shards.clone(),
                shard,
                payload.clone(),
                period,
                counters.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds / 3.0)).await;
        counters.reset();
        let (cpu0, t0) = (process_cpu(), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(seconds).saturating_sub(start.elapsed())).await;
        let (wall, used) = (t0.elapsed().as_secs_f64(), process_cpu() - cpu0);
        let n: usize = shards.iter().map(|shard| shard.lock().unwrap().len()).sum();
        let rate = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / wall;
        println!(
            "uring-floor tokio conns={n} cpu={:.3}core reads/s={:.0} in_bytes/s={:.0} \
             out_msgs/s={:.0} short_writes={} us_per_conn_tick={:.2}",
            used / wall,
            rate(&counters.reads),
            rate(&counters.read_bytes),
            rate(&counters.frames),
            counters.short_writes.load(Ordering::Relaxed),
            used / (wall * hz * n.max(1) as f64) * 1e6,
        );
    });
    // The reading tasks are still waiting on their sockets: stop without waiting for them.
    runtime.shutdown_background();
}

/// Accepts connections: a reading task each, its write half to a flush task's list.
async fn accept(listener: TcpListener, shards: Shards, counters: Arc<Counters>) {
    let mut next = 0;
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        shards[next % shards.len()].lock().unwrap().push(writer);
        next += 1;
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; READ_BUFFER];
            while let Ok(read) = reader.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                counters.reads.fetch_add(1, Ordering::Relaxed);
                counters
                    .read_bytes
                    .fetch_add(read as u64, Ordering::Relaxed);
            }
        });
    }
}

/// Each tick, one non-blocking write of the frame to every connection of `shard`.
async fn flush(
    shards: Shards,
    shard: usize,
    payload: Arc<[u8]>,
    period: Duration,
    counters: Arc<Counters>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (mut frames, mut short) = (0, 0);
        for writer in shards[shard].lock().unwrap().iter() {
            match writer.try_write(&payload) {
                Ok(written) if written == payload.len() => frames += 1,
                _ => short += 1,
            }
        }
        counters.frames.fetch_add(frames, Ordering::Relaxed);
        counters.short_writes.fetch_add(short, Ordering::Relaxed);
    }
}
