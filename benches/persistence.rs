//! Persistence costs: rows per second written one transaction per record vs one transaction
//! per batch (the seed's "2,000 vs 18,000 ops/s" question, on this machine), on SQLite and on
//! PostgreSQL (a throwaway local cluster, fsync on, started by `throng-testdb`), and
//! the tick's cost of a hand-off (collecting the players whose position changed, with bevy
//! change detection, and handing the batch to the persistence thread) with 10,000 players
//! all moving. Prints medians; run with `cargo bench --bench persistence`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_ecs::schedule::{Schedule, SingleThreadedExecutor};
use throng::config::ConfigLayer;
use throng::harness::Harness;
use throng::persistence::handoff::{self, PendingSaves};
use throng::persistence::postgres::PostgresStore;
use throng::persistence::sqlite::SqliteStore;
use throng::persistence::store::{PlayerRecord, Store};
use throng::persistence::writer;
use throng::stats::Stats;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("throng-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `count` players claimed in a fresh store; returns the store and their records.
fn players(tag: &str, count: usize) -> (SqliteStore, Vec<PlayerRecord>, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let mut store = SqliteStore::open(&dir).expect("store");
    let records = claim(&mut store, count);
    (store, records, dir)
}

/// Claims `count` players in `store`; returns their records.
fn claim(store: &mut impl Store, count: usize) -> Vec<PlayerRecord> {
    (0..count)
        .map(|i| {
            let saved = store
                .login(&format!("p{i}"), "bench-secret-token")
                .expect("login");
            PlayerRecord {
                account: saved.account,
                position: Some([i as f32, 2.0 * i as f32]),
                components: Vec::new(),
            }
        })
        .collect()
}

/// Rows per second on `store` (holding the players of `records`), one transaction per row
/// (each record in its own `save`) vs one per batch of 10,000.
fn rows_per_second<S: Store>(label: &str, store: &mut S, mut records: Vec<PlayerRecord>) {
    let kinds: Vec<String> = Vec::new();
    let mut one_by_one = Vec::new();
    let mut batched = Vec::new();
    for round in 0..5 {
        for record in &mut records {
            record.position = Some([round as f32, record.position.unwrap()[1]]);
        }
        let started = Instant::now();
        // The slow way: each record in its own transaction.
        for record in &records[..2_000] {
            store.save(std::slice::from_ref(record), &kinds).unwrap();
        }
        one_by_one.push(started.elapsed() / 2_000);
        let started = Instant::now();
        store.save(&records, &kinds).unwrap();
        batched.push(started.elapsed() / 10_000);
    }
    let (one, batch) = (median(one_by_one), median(batched));
    println!(
        "{label}, position rows: one transaction per row {:.0} rows/s ({:?} each), \
         one transaction per 10,000 rows {:.0} rows/s ({:?} each): {:.0}x",
        1.0 / one.as_secs_f64(),
        one,
        1.0 / batch.as_secs_f64(),
        batch,
        one.as_secs_f64() / batch.as_secs_f64()
    );
}

fn rows_per_second_sqlite() {
    let (mut store, records, dir) = players("rows", 10_000);
    rows_per_second("sqlite", &mut store, records);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

fn rows_per_second_postgres() {
    let url = throng_testdb::TestPostgres::shared().fresh_database();
    let mut store = PostgresStore::connect(&url, "default").expect("store");
    let records = claim(&mut store, 10_000);
    rows_per_second("postgres", &mut store, records);
}

fn hand_off_cost() {
    let players = 10_000usize;
    let config = ConfigLayer {
        world_size: Some(40.0 * (players as f32).sqrt()),
        max_players: Some(players),
        sim_threads: Some(2),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut harness = Harness::new(&config);
    let connections: Vec<u64> = (0..players)
        .map(|i| harness.join(&format!("p{i}")))
        .collect();
    let (store, _, dir) = self::players("handoff", 0);
    let stats = Arc::new(Stats::default());
    let (handle, thread) = writer::spawn(Box::new(store), Vec::new(), 16, stats.clone()).unwrap();
    harness
        .simulation
        .world
        .resource_mut::<PendingSaves>()
        .connect(handle.clone());
    // The two systems the tick runs at the end of a save interval, as their own schedule
    // (so change detection works as in the server: changed since their last run).
    let mut flush = Schedule::default();
    flush.set_executor(SingleThreadedExecutor::default());
    flush.add_systems(handoff::collect_positions);
    let mut send = Schedule::default();
    send.set_executor(SingleThreadedExecutor::default());
    send.add_systems(handoff::hand_off);
    let mut collect_samples = Vec::new();
    let mut samples = Vec::new();
    for round in 0..30u32 {
        // Everyone moves this tick.
        for (i, connection) in connections.iter().enumerate() {
            let turn = round as usize + i;
            harness.input(*connection, round + 1, [127, -127][turn % 2], 0);
        }
        harness.tick();
        harness.write_all_frames();
        let world = &mut harness.simulation.world;
        let started = Instant::now();
        flush.run(world);
        let collected = started.elapsed();
        send.run(world);
        samples.push(started.elapsed());
        collect_samples.push(collected);
        std::thread::sleep(Duration::from_millis(50)); // let the writer commit
    }
    println!(
        "hand-off with {players} players all moving: median {:?} per flush (collect {:?} + \
         hand to the persistence thread), {} rows written in {} transactions",
        median(samples),
        median(collect_samples),
        stats
            .persist_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .persist_transactions
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    drop(harness);
    handle.finish(Duration::from_secs(10));
    let _ = thread.join();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    rows_per_second_sqlite();
    rows_per_second_postgres();
    hand_off_cost();
}
