//! Copy many: each client's frame is assembled from the cell sections of its view, plus
//! enter/leave sections where its view changed, and handed to its connection task.
//!
//! For a client whose view went from cell rectangle P (previous tick) to C (this tick):
//! - removed = `previous` of cells in P \ C, `left` of cells in C ∩ P;
//! - spawned = `snapshot` of cells in C \ P, `entered` of cells in C ∩ P;
//! - updated = `updated` of cells in C ∩ P.
//!
//! An entity that moves between two cells the client sees arrives as a removal followed by
//! a spawn, so the client's mirror always equals the union of the cells in its view.
//! A client being resynchronised has no P: it gets `reset` and the snapshot of all of C.
//!
//! Most clients' views do not change from one tick to the next, and then the frame body
//! depends only on the client's cell. That body is built once per such cell (in parallel
//! across cells) and each of those clients' frames is a header plus one copy of it.

use bevy_ecs::prelude::*;
use bevy_utils::Parallel;
use components::TickClock;

use crate::inbound::ConnectionId;
use std::sync::Arc;

use crate::net::flush::TickSignal;
use crate::net::outbox::{FrameSlot, OutboxWriter, Publish, SharedBody};
use crate::protocol::{
    CloseReason, SERVER_FRAME_KIND, begin_frame, finish_frame, finish_frame_followed_by, put_varint,
};
use crate::stats::Stats;

use super::cells::{CellGrid, encode_requested_sections};
use super::grid::{CellIndex, CellRect};
use super::records::Section;
use super::table::{NO_CELL, NetId, ReplicaTable};
use super::{OutboundLimits, SharedStats};

/// A connected client: where its frames go.
#[derive(Component)]
pub struct Client {
    /// Its connection.
    pub connection: ConnectionId,
    /// Its frame queue.
    pub outbox: OutboxWriter,
}

/// What a client sees and has been told.
#[derive(Component, Default, Debug)]
pub struct Viewer {
    /// The cells in view as of the last frame sent; `None` before the first frame and after
    /// dropped frames (the next frame is then a full resynchronisation).
    pub view: Option<CellRect>,
    /// This tick's view, computed before assembly.
    pub next_view: Option<CellRect>,
    /// The cell the client is in this tick.
    pub cell: u32,
    /// Last input seq applied for this client.
    pub ack_seq: u32,
    /// Frames to this client were dropped: the next frame carries `reset`.
    pub needs_reset: bool,
    /// The client was asked to close; no more frames.
    pub closing: bool,
    /// The tick since which every frame to this client was dropped (none taken since).
    pub starved_since: Option<u64>,
}

/// Computes each viewer's view for this tick and asks the cells entering or leaving some
/// view for their snapshot/previous sections, then encodes those (once per cell).
pub fn prepare_views(
    mut viewers: Query<(&NetId, &mut Viewer)>,
    mut grid: ResMut<CellGrid>,
    table: Res<ReplicaTable>,
    clock: Res<TickClock>,
) {
    let grid = &mut *grid;
    for (id, mut viewer) in &mut viewers {
        let cell = table.get(id.0).cell;
        if cell == NO_CELL || viewer.closing {
            viewer.next_view = None;
            continue;
        }
        let next = grid.geometry.view_of(cell);
        viewer.next_view = Some(next);
        viewer.cell = cell;
        let previous = if viewer.needs_reset {
            None
        } else {
            viewer.view
        };
        if previous == Some(next) {
            grid.request_body(cell);
            continue;
        }
        for (cx, cy) in next.cells() {
            if !previous.is_some_and(|p| p.contains(cx, cy)) {
                let index = grid.geometry.index(cx, cy);
                grid.cell_mut(index).snapshot_wanted = true;
            }
        }
        if let Some(previous) = previous {
            for (cx, cy) in previous.cells() {
                if !next.contains(cx, cy) {
                    let index = grid.geometry.index(cx, cy);
                    grid.cell_mut(index).previous_wanted = true;
                }
            }
        }
    }
    encode_requested_sections(grid, &table, clock.tick);
    build_view_bodies(grid);
}

/// Builds the shared body of every cell in `body_cells`, in parallel. A body still
/// referenced by a frame not yet written (a lagging connection task) is left to that frame and
/// replaced by a new one; otherwise the memory is reused.
fn build_view_bodies(grid: &mut CellGrid) {
    let mut bodies = std::mem::take(&mut grid.view_bodies);
    let wanted = grid.body_cells.len();
    if bodies.len() < wanted {
        bodies.resize_with(wanted, SharedBody::default);
    }
    let grid_ref: &CellGrid = grid;
    let build = |cells: &[CellIndex], out: &mut [SharedBody]| {
        for (&cell, body) in cells.iter().zip(out) {
            if Arc::get_mut(body).is_none() {
                *body = SharedBody::default();
            }
            let bytes = Arc::get_mut(body).expect("a body no frame refers to");
            bytes.clear();
            let view = grid_ref.geometry.view_of(cell);
            write_body(bytes, grid_ref, Some(view), view);
        }
    };
    let pool = bevy_tasks::ComputeTaskPool::get();
    let chunk = wanted.div_ceil(pool.thread_num().max(1)).max(64);
    if wanted <= chunk {
        build(&grid_ref.body_cells, &mut bodies[..wanted]);
    } else {
        pool.scope(|scope| {
            for (cells, out) in grid_ref
                .body_cells
                .chunks(chunk)
                .zip(bodies[..wanted].chunks_mut(chunk))
            {
                scope.spawn(async move { build(cells, out) });
            }
        });
    }
    grid.view_bodies = bodies;
}

/// Per-thread tallies of one tick's frames, summed into [`Stats`] once per tick so the
/// parallel loop does not bounce shared counters between cores.
#[derive(Default)]
pub struct FrameTally {
    frames: u64,
    bytes: u64,
    resyncs: u64,
    dropped: u64,
}

/// Assembles and submits every client's frame, in parallel across clients.
pub fn assemble_frames(
    mut viewers: Query<(&mut Viewer, &mut Client)>,
    grid: Res<CellGrid>,
    clock: Res<TickClock>,
    limits: Res<OutboundLimits>,
    stats: Res<SharedStats>,
    mut tallies: Local<Parallel<FrameTally>>,
    signal: Res<TickSignal>,
) {
    let tick = clock.tick as u32;
    let max_bytes = limits.max_frame_bytes as usize;
    let kick_after = limits.slow_reader_kick_ticks;
    let grid = &*grid;
    let tallies_ref = &*tallies;
    viewers.par_iter_mut().for_each(|(mut viewer, mut client)| {
        let Some(next) = viewer.next_view else { return };
        let previous = if viewer.needs_reset {
            None
        } else {
            viewer.view
        };
        let ack_seq = viewer.ack_seq;
        let mut length = 0;
        let outcome = client.outbox.publish_with(|slot| {
            let shared = (previous == Some(next))
                .then(|| grid.body(viewer.cell))
                .flatten();
            match shared {
                Some(body) => write_frame_with_shared_body(slot, body, tick, ack_seq),
                None => write_frame(&mut slot.head, grid, previous, next, tick, ack_seq),
            }
            length = slot.len();
            length <= max_bytes
        });
        tallies_ref.scope(|tally| match outcome {
            Publish::Queued => {
                tally.frames += 1;
                tally.bytes += length as u64;
                if previous.is_none() && viewer.view.is_some() {
                    tally.resyncs += 1;
                }
                viewer.view = Some(next);
                viewer.needs_reset = false;
                viewer.starved_since = None;
            }
            Publish::Full => {
                // Slow reader: every slot is in flight. Drop this frame; resync later, unless
                // the client has not taken a single frame for too long.
                tally.dropped += 1;
                viewer.needs_reset = true;
                let since = *viewer.starved_since.get_or_insert(clock.tick);
                if clock.tick - since >= kick_after {
                    client.outbox.request_close(CloseReason::SlowReader);
                    viewer.closing = true;
                }
            }
            Publish::Declined => {
                client.outbox.request_close(CloseReason::ViewTooLarge);
                viewer.closing = true;
            }
        });
    });
    let stats: &Stats = &stats.0;
    for tally in tallies.iter_mut() {
        Stats::add(&stats.frames_submitted, std::mem::take(&mut tally.frames));
        Stats::add(&stats.bytes_submitted, std::mem::take(&mut tally.bytes));
        Stats::add(&stats.resyncs, std::mem::take(&mut tally.resyncs));
        Stats::add(
            &stats.frames_dropped_slow_reader,
            std::mem::take(&mut tally.dropped),
        );
    }
    // One message per tick: the flush tasks write the new frames on the network runtime.
    signal.send();
}

/// Writes one whole state frame (length prefix included) into `out`.
pub fn write_frame(
    out: &mut Vec<u8>,
    grid: &CellGrid,
    previous: Option<CellRect>,
    next: CellRect,
    tick: u32,
    ack_seq: u32,
) {
    let start = write_header(out, tick, ack_seq, previous.is_none());
    write_body(out, grid, previous, next);
    finish_frame(out, start);
}

/// Writes a state frame (no reset) made of this client's header and a shared body.
#[inline]
fn write_frame_with_shared_body(slot: &mut FrameSlot, body: &SharedBody, tick: u32, ack_seq: u32) {
    let start = write_header(&mut slot.head, tick, ack_seq, false);
    finish_frame_followed_by(&mut slot.head, start, body.len());
    slot.shared = Some(body.clone());
}

/// Writes the frame's length prefix (to be finished) and the fields before the records.
#[inline]
fn write_header(out: &mut Vec<u8>, tick: u32, ack_seq: u32, reset: bool) -> usize {
    let start = begin_frame(out);
    out.push(SERVER_FRAME_KIND);
    put_varint(out, u64::from(tick));
    put_varint(out, u64::from(ack_seq));
    out.push(u8::from(reset));
    start
}

/// Writes the removed, spawned and updated records for a view going from `previous` to
/// `next`.
fn write_body(out: &mut Vec<u8>, grid: &CellGrid, previous: Option<CellRect>, next: CellRect) {
    let geometry = &grid.geometry;
    let cell = |cx, cy| &grid.cells[geometry.index(cx, cy) as usize];
    let in_previous = |cx, cy| previous.is_some_and(|p: CellRect| p.contains(cx, cy));
    // The sections each part of the frame is made of, in order.
    let removed_sections = || {
        let lost = previous
            .into_iter()
            .flat_map(|p| p.cells())
            .filter(move |&(cx, cy)| !next.contains(cx, cy))
            .map(move |(cx, cy)| &cell(cx, cy).previous);
        let kept = next
            .cells()
            .filter(move |&(cx, cy)| in_previous(cx, cy))
            .map(move |(cx, cy)| &cell(cx, cy).left);
        lost.chain(kept)
    };
    let spawned_sections = || {
        next.cells().map(move |(cx, cy)| {
            let c = cell(cx, cy);
            if in_previous(cx, cy) {
                &c.entered
            } else {
                &c.snapshot
            }
        })
    };
    let updated_sections = || {
        next.cells()
            .filter(move |&(cx, cy)| in_previous(cx, cy))
            .map(move |(cx, cy)| &cell(cx, cy).updated)
    };
    append_sections(out, removed_sections);
    append_sections(out, spawned_sections);
    append_sections(out, updated_sections);
}

/// Writes a postcard `Vec` made of the records of several sections: total count, then bytes.
fn append_sections<'a, I: Iterator<Item = &'a Section>>(
    out: &mut Vec<u8>,
    sections: impl Fn() -> I,
) {
    let count: u64 = sections().map(|s| u64::from(s.count)).sum();
    put_varint(out, count);
    if count > 0 {
        for section in sections() {
            out.extend_from_slice(&section.bytes);
        }
    }
}
