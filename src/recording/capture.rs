//! The tick's side of recording: the Ingest phase tells [`Capture`] what it consumed (joins
//! with their saved state, leaves, inputs and actions in arrival order), and after the
//! tick's schedule [`end_tick`] adds the state digest when one is due and hands the tick's
//! bytes to the recording thread through a lock-free queue. Nothing here touches a file,
//! waits, or wakes a thread: a tick the thread cannot take yet stays in the buffer (the next
//! tick is appended to it), up to [`MAX_BACKLOG_BYTES`]; beyond that the recording stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use bevy_ecs::prelude::*;
use components::TickClock;
use components::persistent::PersistRegistry;

use super::digest::DigestState;
use super::format::{Entry, FORMAT_VERSION, Header, push_entry, push_input};
use super::writer::{self, Link, Segments};
use crate::bridge::{ConnectionId, Join, Leave, PlayerMessage};
use crate::config::Config;
use crate::protocol::CloseReason;
use crate::replication::frames::FramesDropped;
use crate::stats::Stats;

/// Bytes of ticks the tick side keeps while the recording thread cannot take them; beyond
/// this the recording stops (the thread is stuck, and memory must stay bounded).
pub(crate) const MAX_BACKLOG_BYTES: usize = 64 << 20;

/// Tick buffers in flight between the tick and the thread (about 25 s at 20 Hz).
const QUEUE_TICKS: usize = 512;

/// Starts recording every tick of the built simulation `world` into `config.record` (called
/// by `game::build` when that is set, once the build has succeeded: every name is registered
/// and nothing is written for a simulation that does not start).
pub(crate) fn start(world: &mut World, config: &Config, stats: Arc<Stats>) {
    let session = format!(
        "throng-{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let header = Header {
        throng_version: env!("CARGO_PKG_VERSION").to_owned(),
        session: session.clone(),
        segment: 0,
        first_tick: 1,
        digest_every: config.record_digest_every,
        config: config.without_secrets().to_toml(),
        schema: crate::game::schema(world),
        persisted: world.resource::<PersistRegistry>().names(),
    };
    let segments = Segments {
        dir: config.record.clone(),
        max_bytes: u64::from(config.record_segment_mb) << 20,
        header,
    };
    let link = Arc::new(Link::new(QUEUE_TICKS));
    match writer::spawn(segments, link.clone(), stats.clone()) {
        Ok(thread) => {
            tracing::info!(
                first_segment = %writer::segment_path(&config.record, &session, 0).display(),
                format = FORMAT_VERSION,
                "recording every tick"
            );
            world.insert_resource(Capture {
                buffer: Vec::new(),
                open: false,
                last_tick: 0,
                digest_every: u64::from(config.record_digest_every.max(1)),
                digest: None,
                digest_bytes: Vec::new(),
                link,
                stats,
                thread: Some(thread),
                stopped: false,
                kicks: Vec::new(),
                close_all: None,
            });
        }
        Err(error) => {
            Stats::bump(&stats.recording_failures);
            tracing::error!(%error, "cannot start the recording thread; not recording");
        }
    }
}

/// The tick being recorded, and the way to the recording thread.
#[derive(Resource)]
pub(crate) struct Capture {
    /// Encoded entries of the ticks not yet handed off (usually just this one).
    buffer: Vec<u8>,
    /// Entries are being recorded for the current tick.
    open: bool,
    /// The last tick recorded.
    last_tick: u64,
    digest_every: u64,
    digest: Option<DigestState>,
    digest_bytes: Vec<u8>,
    link: Arc<Link>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
    /// Recording stopped (an error, or the backlog bound); nothing more is captured.
    stopped: bool,
    /// Kicks since the last tick: (name key, detail), recorded at the start of the next.
    kicks: Vec<(String, String)>,
    /// A close of every client since the last tick (its reason's index), recorded likewise.
    close_all: Option<u8>,
}

impl Capture {
    /// Opens `tick` for recording; false (nothing is to be recorded) if recording stopped,
    /// or if this is not a new tick (the shutdown's last drain, outside any tick).
    pub(crate) fn begin(&mut self, tick: u64) -> bool {
        if self.stopped || tick <= self.last_tick {
            return false;
        }
        self.open = true;
        push_entry(&mut self.buffer, &Entry::Tick(tick));
        if let Some(reason) = self.close_all.take() {
            push_entry(&mut self.buffer, &Entry::CloseAll { reason });
        }
        for (player, detail) in self.kicks.drain(..) {
            push_entry(
                &mut self.buffer,
                &Entry::Kick {
                    player: &player,
                    detail: &detail,
                },
            );
        }
        true
    }

    /// Records a join (with the saved state it brings).
    pub(crate) fn join(&mut self, join: &Join) {
        let components = join
            .saved
            .components
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect();
        push_entry(
            &mut self.buffer,
            &Entry::Join {
                connection: join.connection,
                name: &join.name,
                account: join.saved.account,
                position: join.saved.position,
                components,
                ack_seq: join.ack_seq,
            },
        );
    }

    /// Records a leave.
    pub(crate) fn leave(&mut self, leave: &Leave) {
        push_entry(
            &mut self.buffer,
            &Entry::Leave {
                connection: leave.connection,
            },
        );
    }

    /// Records an input or action, in the order the tick takes them.
    pub(crate) fn message(&mut self, connection: ConnectionId, message: &PlayerMessage) {
        match message {
            PlayerMessage::Input(input) => push_input(
                &mut self.buffer,
                connection,
                input.seq,
                input.dir_x,
                input.dir_y,
            ),
            PlayerMessage::Action(action) => push_entry(
                &mut self.buffer,
                &Entry::Action {
                    connection,
                    seq: action.seq,
                    kind: action.kind,
                    bytes: &action.bytes,
                },
            ),
        }
    }

    fn end(&mut self, world: &mut World) {
        if !self.open {
            return;
        }
        self.open = false;
        let tick = world.resource::<TickClock>().tick;
        self.last_tick = tick;
        if tick.is_multiple_of(self.digest_every) {
            let _zone = crate::profiling::zone!("record digest");
            let digest = self.digest.get_or_insert_with(|| DigestState::new(world));
            self.digest_bytes.clear();
            digest.write(world, &mut self.digest_bytes);
            push_entry(&mut self.buffer, &Entry::Digest(&self.digest_bytes));
        }
        let mut dropped = world.resource_mut::<FramesDropped>();
        // In connection order: the frames loop runs in parallel, its order is not the data.
        dropped.0.sort_unstable();
        for &connection in &dropped.0 {
            push_entry(&mut self.buffer, &Entry::FrameDropped { connection });
        }
        self.hand_off(tick);
    }

    fn hand_off(&mut self, tick: u64) {
        if self.link.failed.load(Ordering::Acquire) {
            self.stop();
            return;
        }
        let next = self
            .link
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer.len()));
        let ticks = std::mem::replace(&mut self.buffer, next);
        if let Err(ticks) = self.link.full.push(ticks) {
            // The thread is behind: keep these ticks; the next one is appended to them.
            let spare = std::mem::replace(&mut self.buffer, ticks);
            let _ = self.link.spare.push(spare);
            if self.buffer.len() > MAX_BACKLOG_BYTES {
                Stats::bump(&self.stats.recording_failures);
                tracing::error!(
                    tick,
                    "recording stopped: the recording thread fell {} MiB behind (the server keeps running)",
                    MAX_BACKLOG_BYTES >> 20
                );
                self.stop();
            }
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.buffer = Vec::new();
        // The thread writes what it was given, then idles; the recording is over.
        self.stats.recording_active.store(0, Ordering::Relaxed);
    }
}

impl Drop for Capture {
    /// The simulation is gone: the thread writes what it was given, syncs and ends.
    fn drop(&mut self) {
        // Ticks the thread could not take yet (the queue was full) go too: the tick is over,
        // so waiting for room here holds up nothing but the shutdown.
        let mut pending = std::mem::take(&mut self.buffer);
        while !self.stopped && !pending.is_empty() && !self.link.failed.load(Ordering::Acquire) {
            match self.link.full.push(pending) {
                Ok(()) => break,
                Err(back) => {
                    pending = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        self.link.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Between two ticks (a world task): asks the player named `key` to close as kicked with
/// `detail` (see `replication::welcome::kick_client`) and, when the simulation is recorded,
/// records it for the next tick, since the kick stops that player's frames at once. Its
/// registered name, or `None` if no such player is connected.
pub(crate) fn kick(world: &mut World, key: &str, detail: String) -> Option<String> {
    let kicked = crate::replication::welcome::kick_client(world, key, detail.clone())?;
    if let Some(mut capture) = world.get_resource_mut::<Capture>()
        && !capture.stopped
    {
        capture.kicks.push((key.to_owned(), detail));
    }
    Some(kicked)
}

/// Between two ticks (the shutdown): asks every client to close with `reason` (see
/// `replication::welcome::close_all_clients`) and, when the simulation is recorded, records
/// it for the next tick, since it stops every frame at once.
pub(crate) fn close_all_clients(world: &mut World, reason: CloseReason) {
    crate::replication::welcome::close_all_clients(world, reason);
    if let Some(mut capture) = world.get_resource_mut::<Capture>()
        && !capture.stopped
    {
        capture.close_all = Some(reason.index() as u8);
    }
}

/// After the tick's schedule: closes the tick's record (with a digest when due) and hands it
/// to the recording thread. Nothing to do when the simulation is not recorded.
pub(crate) fn end_tick(world: &mut World) {
    if let Some(mut capture) = world.remove_resource::<Capture>() {
        capture.end(world);
        world.insert_resource(capture);
    }
}
