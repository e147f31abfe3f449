//! The live operator console's data: one JSON snapshot per second for every viewer.
//!
//! One task on the network runtime ([`run_snapshots`]) takes the snapshot while anyone
//! watches (a `watch` channel's receivers are the viewers' streams): counters and the tick
//! histogram are read lock-free, positions are copied by one world task on the tick thread
//! (into a reused buffer, nothing else: the JSON is written here, on the network side). The
//! JSON is published as an `Arc<String>`; the `watch` keeps only the latest, so a viewer
//! that never reads holds one snapshot at most.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use components::{NetId, Player, PlayerName, Position, TickClock};
use serde::Serialize;
use systems::snowball::Npc;
use throng_host::proc_stats;
use tokio::sync::{oneshot, watch};

use super::histogram::{HistogramSnapshot, TICK_BUCKETS_US};
use crate::bridge::InboundSender;
use crate::protocol::{CloseReason, name_key};
use crate::stats::{Stats, StatsSnapshot};
use crate::tick::WorldTask;

/// How often a snapshot is taken (while anyone watches).
pub(crate) const SNAPSHOT_PERIOD: Duration = Duration::from_secs(1);
/// How long a world task may take to answer before the console gives up on it.
pub(crate) const WORLD_TASK_PATIENCE: Duration = Duration::from_secs(2);

/// Kind of a position in the snapshot: a player.
pub(crate) const KIND_PLAYER: u8 = 0;
/// Kind of a position in the snapshot: an NPC.
pub(crate) const KIND_NPC: u8 = 1;
/// Kind of a position in the snapshot: anything else.
pub(crate) const KIND_OTHER: u8 = 2;

/// What the console reads, shared by the snapshot task and the routes.
pub(crate) struct Console {
    /// The latest snapshot's JSON (empty before the first).
    pub snapshots: watch::Sender<Arc<String>>,
    /// To run work on the tick thread between ticks.
    pub world_tasks: crossbeam_channel::Sender<WorldTask>,
    /// The world's fixed settings, reported in every snapshot.
    pub tick_hz: u16,
    /// Side of the world.
    pub world_size: f32,
    /// Side of a grid cell.
    pub cell_size: f32,
}

impl Console {
    /// A console with no snapshot yet.
    pub(crate) fn new(
        world_tasks: crossbeam_channel::Sender<WorldTask>,
        tick_hz: u16,
        world_size: f32,
        cell_size: f32,
    ) -> Console {
        Console {
            snapshots: watch::Sender::new(Arc::new(String::new())),
            world_tasks,
            tick_hz,
            world_size,
            cell_size,
        }
    }

    /// Runs `work` on the tick thread between two ticks; `None` if the tick thread is gone
    /// or does not answer within [`WORLD_TASK_PATIENCE`].
    pub(crate) async fn with_world<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut World) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        let run = Box::new(move |world: &mut World| {
            let _ = reply.send(work(world));
        });
        self.world_tasks
            .send(WorldTask { after_tick: 0, run })
            .ok()?;
        tokio::time::timeout(WORLD_TASK_PATIENCE, answer)
            .await
            .ok()?
            .ok()
    }

    /// The player named `name` (case-insensitive), as `/console/player` answers it.
    pub(crate) async fn find_player(&self, name: &str) -> Option<FoundPlayer> {
        let key = name_key(name);
        self.with_world(move |world| {
            let mut players =
                world.query_filtered::<(&PlayerName, &NetId, &Position), With<Player>>();
            players
                .iter(world)
                .find(|(name, _, _)| name_key(&name.0) == key)
                .map(|(name, id, position)| FoundPlayer {
                    name: name.0.clone(),
                    id: id.0,
                    x: position.x,
                    y: position.y,
                })
        })
        .await
        .flatten()
    }

    /// Closes the session of the player named `name` (case-insensitive) with
    /// [`CloseReason::Kicked`] and `reason` as the Close's detail; its registered name, or
    /// `None` if no such player is connected (or the tick thread does not answer).
    pub(crate) async fn kick(&self, name: &str, reason: String) -> Option<String> {
        let key = name_key(name);
        self.with_world(move |world| crate::recording::capture::kick(world, &key, reason))
            .await
            .flatten()
    }
}

/// `/console/player`'s answer.
#[derive(Debug, Serialize)]
pub(crate) struct FoundPlayer {
    pub name: String,
    pub id: u32,
    pub x: f32,
    pub y: f32,
}

/// What a position copy reads of each entity.
type PositionQuery = (&'static Position, Has<Player>, Has<Npc>);

/// The positions of every entity, copied on the tick thread into buffers reused from one
/// snapshot to the next (the query state too: matched archetypes are cached).
#[derive(Default)]
pub struct PositionCopy {
    query: Option<QueryState<PositionQuery>>,
    /// `(x, y, kind)` of every entity with a [`Position`].
    pub positions: Vec<(f32, f32, u8)>,
    /// The world's tick when copied.
    pub tick: u64,
}

impl PositionCopy {
    /// The world task's body: copies every position (and the tick) out of `world`.
    pub fn copy_from(&mut self, world: &mut World) {
        self.tick = world
            .get_resource::<TickClock>()
            .map_or(0, |clock| clock.tick);
        let query = self.query.get_or_insert_with(|| world.query());
        query.update_archetypes(world);
        self.positions.clear();
        self.positions
            .extend(query.iter_manual(world).map(|(position, player, npc)| {
                let kind = if player {
                    KIND_PLAYER
                } else if npc {
                    KIND_NPC
                } else {
                    KIND_OTHER
                };
                (position.x, position.y, kind)
            }));
    }
}

/// What the snapshot task remembers from its previous snapshot, for the rates.
struct Previous {
    at: Instant,
    stats: StatsSnapshot,
    cpu_seconds: Option<f64>,
}

/// Takes a snapshot every [`SNAPSHOT_PERIOD`] while anyone watches, until the runtime stops.
pub(crate) async fn run_snapshots(
    console: Arc<Console>,
    stats: Arc<Stats>,
    inbound: InboundSender,
) {
    let mut interval = tokio::time::interval(SNAPSHOT_PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<Previous> = None;
    let mut copy = Some(Box::new(PositionCopy::default()));
    let mut json = String::new();
    loop {
        interval.tick().await;
        if console.snapshots.receiver_count() == 0 {
            previous = None;
            continue;
        }
        let at = Instant::now();
        let now = stats.snapshot();
        let interval_max_us = stats.console_tick_max_us.swap(0, Ordering::Relaxed);
        let process = proc_stats::sample("self").ok();
        let Some(before) = previous.replace(Previous {
            at,
            stats: now.clone(),
            cpu_seconds: process.as_ref().map(|p| p.cpu_seconds),
        }) else {
            continue; // the baseline of the rates: the first snapshot follows in a second
        };
        let mut taken = copy.take().unwrap_or_default();
        let copied = console
            .with_world(move |world| {
                taken.copy_from(world);
                taken
            })
            .await;
        let Some(copied) = copied else {
            continue; // the tick thread is gone or stalled: nothing new to show
        };
        let seconds = (at - before.at).as_secs_f64().max(1e-3);
        let cpu_cores = match (process.as_ref(), before.cpu_seconds) {
            (Some(process), Some(before)) => (process.cpu_seconds - before).max(0.0) / seconds,
            _ => 0.0,
        };
        let view = SnapshotView {
            console: &console,
            now: &now,
            before: &before.stats,
            seconds,
            interval_max_us,
            input_queue: inbound.queued_inputs() as u64,
            cpu_cores,
            rss_bytes: process.map_or(0, |p| p.rss_bytes),
            copied: &copied,
        };
        json.clear();
        view.write_json(&mut json);
        copy = Some(copied);
        console.snapshots.send_replace(Arc::new(json.clone()));
    }
}

/// Everything one snapshot's JSON is written from.
pub(crate) struct SnapshotView<'a> {
    console: &'a Console,
    now: &'a StatsSnapshot,
    before: &'a StatsSnapshot,
    seconds: f64,
    interval_max_us: u64,
    input_queue: u64,
    cpu_cores: f64,
    rss_bytes: u64,
    copied: &'a PositionCopy,
}

impl SnapshotView<'_> {
    /// Writes the snapshot's JSON object into `out`.
    fn write_json(&self, out: &mut String) {
        let (now, before) = (self.now, self.before);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / self.seconds;
        let interval = histogram_delta(&now.tick_duration, &before.tick_duration);
        let max_ms = self.interval_max_us as f64 / 1e3;
        let quantile = |q: f64| quantile_us(&interval, q, self.interval_max_us) / 1e3;
        let tick_ms = serde_json::json!({
            "p50": quantile(0.5),
            "p99": quantile(0.99),
            "max": max_ms,
            "budget": 1000.0 / f64::from(self.console.tick_hz.max(1)),
        });
        let mut fields = serde_json::Map::new();
        fields.insert("tick".into(), self.copied.tick.into());
        fields.insert("tick_hz".into(), self.console.tick_hz.into());
        fields.insert("world_size".into(), self.console.world_size.into());
        fields.insert("cell_size".into(), self.console.cell_size.into());
        fields.insert("players".into(), now.players_connected.into());
        fields.insert("entities".into(), now.entities.into());
        fields.insert("tick_ms".into(), tick_ms);
        fields.insert("joins_per_s".into(), rate(now.logins, before.logins).into());
        fields.insert(
            "leaves_per_s".into(),
            rate(now.leaves, before.leaves).into(),
        );
        fields.insert("rejects".into(), by_reason(&now.rejects_by_reason));
        fields.insert("kicks".into(), by_reason(&now.kicks_by_reason));
        fields.insert("input_queue".into(), self.input_queue.into());
        let inbound = rate(now.inbound_bytes, before.inbound_bytes);
        fields.insert("inbound_bytes_per_s".into(), inbound.into());
        let outbound = rate(now.bytes_submitted, before.bytes_submitted);
        fields.insert("outbound_bytes_per_s".into(), outbound.into());
        let lag_ms = now.persist_lag_us as f64 / 1e3;
        fields.insert("persistence_lag_ms".into(), lag_ms.into());
        fields.insert("cpu_cores".into(), self.cpu_cores.into());
        fields.insert("rss_bytes".into(), self.rss_bytes.into());
        // Written by hand, last: tens of thousands of small arrays, without a Value each.
        let head = serde_json::to_string(&fields).expect("a JSON map serialises");
        out.push_str(head.strip_suffix('}').unwrap_or(&head));
        out.push(',');
        out.push_str("\"positions\":[");
        for (i, (x, y, kind)) in self.copied.positions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{:.1},{:.1},{kind}]", tenths(*x), tenths(*y));
        }
        out.push_str("]}");
    }
}

/// `value` rounded to 0.1, as written in JSON (a finite number; non-finite ones are 0).
fn tenths(value: f32) -> f64 {
    if value.is_finite() {
        (f64::from(value) * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// The non-zero counters of `counts` by reason name.
fn by_reason(counts: &[u64; CloseReason::ALL.len()]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = CloseReason::ALL
        .iter()
        .filter(|reason| counts[reason.index()] > 0)
        .map(|reason| (reason.as_str().to_owned(), counts[reason.index()].into()))
        .collect();
    map.into()
}

/// The observations between two snapshots of one histogram.
fn histogram_delta(now: &HistogramSnapshot, before: &HistogramSnapshot) -> HistogramSnapshot {
    HistogramSnapshot {
        counts: std::array::from_fn(|i| now.counts[i].saturating_sub(before.counts[i])),
        sum_us: now.sum_us.saturating_sub(before.sum_us),
    }
}

/// The `q` quantile of `histogram`, microseconds, interpolated linearly inside its bucket;
/// the last (`+Inf`) bucket, and every estimate, is capped at `max_us` (the largest
/// observation) when that is known. 0 when empty.
pub(crate) fn quantile_us(histogram: &HistogramSnapshot, q: f64, max_us: u64) -> f64 {
    let total = histogram.count();
    if total == 0 {
        return 0.0;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    let mut estimate = 0.0;
    for (i, &count) in histogram.counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        if (below + count) as f64 >= rank {
            let lower = if i == 0 { 0 } else { TICK_BUCKETS_US[i - 1] } as f64;
            let upper = TICK_BUCKETS_US
                .get(i)
                .map_or(max_us.max(TICK_BUCKETS_US[i - 1]) as f64, |&b| b as f64);
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            estimate = lower + (upper - lower) * within;
            break;
        }
        below += count;
    }
    if max_us > 0 {
        estimate.min(max_us as f64)
    } else {
        estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(observations_us: &[u64]) -> HistogramSnapshot {
        let histogram = crate::metrics::histogram::Histogram::default();
        for &us in observations_us {
            histogram.record(Duration::from_micros(us));
        }
        histogram.snapshot()
    }

    #[test]
    fn quantiles_interpolate_inside_buckets_and_stay_under_the_max() {
        assert_eq!(quantile_us(&HistogramSnapshot::default(), 0.5, 0), 0.0);
        // 10 ticks in (1000, 2000]: the median halfway through the bucket.
        let even = histogram(&[1500; 10]);
        assert_eq!(quantile_us(&even, 0.5, 0), 1500.0);
        assert_eq!(quantile_us(&even, 0.5, 1400), 1400.0);
        // 99 fast ticks and one slow one: p99 among the fast, the slow one past them.
        let mut ticks = vec![400; 99];
        ticks.push(60_000);
        let tail = histogram(&ticks);
        assert!(quantile_us(&tail, 0.99, 60_000) <= 500.0);
        assert!(quantile_us(&tail, 1.0, 60_000) > 50_000.0);
        // Beyond the last bound: capped by the max.
        let huge = histogram(&[3_000_000]);
        assert_eq!(quantile_us(&huge, 0.5, 3_000_000), 2_000_000.0);
    }

    #[test]
    fn a_snapshot_is_one_json_object_with_the_console_fields() {
        let console = Console::new(crossbeam_channel::unbounded().0, 20, 1000.0, 100.0);
        let mut now = StatsSnapshot {
            players_connected: 2,
            logins: 10,
            tick_duration: histogram(&[1500; 20]),
            ..Default::default()
        };
        now.kicks_by_reason[CloseReason::ALL[1].index()] = 3;
        let copied = PositionCopy {
            positions: vec![(1.04, 2.25, KIND_PLAYER), (3.0, 4.0, KIND_NPC)],
            tick: 42,
            ..Default::default()
        };
        let view = SnapshotView {
            console: &console,
            now: &now,
            before: &StatsSnapshot::default(),
            seconds: 2.0,
            interval_max_us: 1800,
            input_queue: 0,
            cpu_cores: 0.5,
            rss_bytes: 7,
            copied: &copied,
        };
        let mut out = String::new();
        view.write_json(&mut out);
        let json: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(json["tick"], 42);
        assert_eq!(json["players"], 2);
        assert_eq!(json["joins_per_s"], 5.0);
        assert_eq!(json["tick_ms"]["budget"], 50.0);
        assert_eq!(json["tick_ms"]["max"], 1.8);
        assert_eq!(json["kicks"][CloseReason::ALL[1].as_str()], 3);
        assert_eq!(json["rejects"], serde_json::json!({}));
        assert_eq!(
            json["positions"],
            serde_json::json!([[1.0, 2.3, 0], [3.0, 4.0, 1]])
        );
        let fields = json.as_object().unwrap().len();
        assert_eq!(fields, 18, "{out}");
    }
}
