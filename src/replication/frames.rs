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
use components::{TickClock, Workers};

use std::sync::Arc;

use crate::bridge::outbox::{FrameSlot, OutboxWriter, Publish, SharedBody};
use crate::bridge::{ConnectionId, TickSignal};
use crate::protocol::{
    CloseReason, SERVER_FRAME_KIND, begin_frame, finish_frame, finish_frame_followed_by, put_varint,
};
use crate::stats::Stats;

use super::cells::{Cell, CellGrid, encode_requested_sections};
use super::events::{EventRouting, EventSection};
use super::grid::{CellIndex, CellRect};
use super::records::Section;
use super::table::{NO_CELL, NetId, ReplicaTable};
use super::{OutboundLimits, SharedStats};

/// On a player entity: its live connection, where its frames go. (Not the Rust client
/// library's `Client`: this is the server's end.)
#[derive(Component)]
pub(crate) struct Connected {
    /// Its frame queue.
    pub outbox: OutboxWriter,
    /// The connection (what a recording names it by).
    pub connection: ConnectionId,
}

/// The connections whose frame this tick was dropped because their outbox was full (slow
/// readers), in no particular order. Whether a client's ring is full is the network's state,
/// not the world's: a recording keeps this so that a replay drops the same frames.
#[derive(Resource, Default)]
pub(crate) struct FramesDropped(pub Vec<ConnectionId>);

/// What a client sees and has been told.
#[derive(Component, Default, Debug)]
pub(crate) struct Viewer {
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
    /// Events sent this tick to this player alone.
    pub personal_events: EventSection,
    /// Event records for this client's next frame, in order: this tick's, after those of
    /// frames that were dropped (events are never dropped with their frame).
    pub pending_events: Section,
}

/// Event bytes kept for a client whose frames are being dropped (see
/// [`super::OutboundLimits::max_pending_event_bytes`]).
pub const MAX_PENDING_EVENT_BYTES: usize = 64 * 1024;

/// Where a client's events of this tick come from, for merging them in sending order.
#[derive(Clone, Copy)]
enum EventSource {
    Everyone,
    Personal,
    Cell(CellIndex),
}

/// Appends to `viewer.pending_events` the events of this tick for a client that sees
/// `view`: everyone's, those of the cells in its view and its own, in sending order.
fn gather_events(
    viewer: &mut Viewer,
    view: CellRect,
    grid: &CellGrid,
    everyone: &EventSection,
    scratch: &mut Vec<(u32, EventSource, u32)>,
) {
    scratch.clear();
    let mut add = |section: &EventSection, source: EventSource| {
        for (index, &(order, _)) in section.ends.iter().enumerate() {
            scratch.push((order, source, index as u32));
        }
    };
    add(everyone, EventSource::Everyone);
    add(&viewer.personal_events, EventSource::Personal);
    if grid.cells[viewer.cell as usize].events_in_view {
        for (cx, cy) in view.cells() {
            let index = grid.geometry.index(cx, cy);
            add(&grid.cells[index as usize].events, EventSource::Cell(index));
        }
    }
    if scratch.is_empty() {
        return;
    }
    scratch.sort_unstable_by_key(|&(order, _, _)| order);
    let Viewer {
        personal_events,
        pending_events,
        ..
    } = viewer;
    for &(_, source, index) in scratch.iter() {
        let section = match source {
            EventSource::Everyone => everyone,
            EventSource::Personal => &*personal_events,
            EventSource::Cell(cell) => &grid.cells[cell as usize].events,
        };
        pending_events
            .bytes
            .extend_from_slice(section.record(index as usize));
        pending_events.count += 1;
    }
}

/// Computes each viewer's view for this tick and asks the cells entering or leaving some
/// view for their snapshot/previous sections, then encodes those (once per cell).
pub(crate) fn prepare_views(
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
    build_view_bodies(grid, Workers::get());
}

/// Builds the shared body of every cell in `body_cells`, in parallel. A body still
/// referenced by a frame not yet written (a lagging connection task) is left to that frame and
/// replaced by a new one; otherwise the memory is reused.
fn build_view_bodies(grid: &mut CellGrid, workers: &Workers) {
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
    workers.for_each_chunk_mut(&mut bodies[..wanted], |start, out| {
        let _zone = crate::profiling::zone!("prepare_views chunk");
        build(&grid_ref.body_cells[start..start + out.len()], out);
    });
    grid.view_bodies = bodies;
}

/// Per-thread tallies of one tick's frames, summed into [`Stats`] once per tick so the
/// parallel loop does not bounce shared counters between cores.
#[derive(Default)]
pub(crate) struct FrameTally {
    frames: u64,
    bytes: u64,
    resyncs: u64,
    dropped: u64,
    /// The connections whose frame was dropped.
    dropped_for: Vec<ConnectionId>,
    events: u64,
    /// Reused for merging a client's events in order.
    event_scratch: Vec<(u32, EventSource, u32)>,
}

/// Assembles and submits every client's frame, in parallel across clients.
// A bevy system: each parameter is data it reads; bundling them would only hide that.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble_frames(
    mut viewers: Query<(&mut Viewer, &mut Connected)>,
    grid: Res<CellGrid>,
    clock: Res<TickClock>,
    limits: Res<OutboundLimits>,
    stats: Res<SharedStats>,
    mut tallies: Local<Parallel<FrameTally>>,
    mut dropped: ResMut<FramesDropped>,
    signal: Res<TickSignal>,
    routing: Res<EventRouting>,
) {
    let workers = Workers::get();
    let tick = clock.tick as u32;
    let max_bytes = limits.max_frame_bytes as usize;
    let kick_after = limits.slow_reader_kick_ticks;
    let grid = &*grid;
    let everyone = &routing.everyone;
    let tallies_ref = &*tallies;
    // One Tracy zone per parallel batch (`init` runs once per batch task; nothing without
    // the `tracy` feature).
    let batch_zone = || crate::profiling::zone!("assemble_frames batch");
    workers.for_each_mut_init(
        &mut viewers,
        batch_zone,
        |_zone, (mut viewer, mut client)| {
            let viewer = &mut *viewer;
            let Some(next) = viewer.next_view else {
                viewer.personal_events.clear();
                return;
            };
            if !everyone.is_empty()
                || !viewer.personal_events.is_empty()
                || grid.cells[viewer.cell as usize].events_in_view
            {
                tallies_ref.scope(|tally| {
                    gather_events(viewer, next, grid, everyone, &mut tally.event_scratch)
                });
                viewer.personal_events.clear();
                if viewer.pending_events.bytes.len() > limits.max_pending_event_bytes {
                    client.outbox.request_close(CloseReason::EventBacklog);
                    viewer.closing = true;
                    return;
                }
            }
            let previous = if viewer.needs_reset {
                None
            } else {
                viewer.view
            };
            let header = Header {
                tick,
                ack_seq: viewer.ack_seq,
                events: &viewer.pending_events,
            };
            let mut length = 0;
            let outcome = client.outbox.publish_with(|slot| {
                let shared = (previous == Some(next))
                    .then(|| grid.body(viewer.cell))
                    .flatten();
                match shared {
                    Some(body) => write_frame_with_shared_body(slot, body, &header),
                    None => write_frame(&mut slot.head, grid, previous, next, &header),
                }
                length = slot.len();
                length <= max_bytes
            });
            tallies_ref.scope(|tally| match outcome {
                Publish::Queued => {
                    tally.frames += 1;
                    tally.bytes += length as u64;
                    tally.events += u64::from(viewer.pending_events.count);
                    if previous.is_none() && viewer.view.is_some() {
                        tally.resyncs += 1;
                    }
                    viewer.view = Some(next);
                    viewer.needs_reset = false;
                    viewer.starved_since = None;
                    viewer.pending_events.clear();
                }
                Publish::Full => {
                    // Slow reader: every slot is in flight. Drop this frame; resync later, unless
                    // the client has not taken a single frame for too long.
                    tally.dropped += 1;
                    tally.dropped_for.push(client.connection);
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
        },
    );
    let stats: &Stats = &stats.0;
    dropped.0.clear();
    for tally in tallies.iter_mut() {
        dropped.0.append(&mut tally.dropped_for);
        Stats::add(&stats.frames_submitted, std::mem::take(&mut tally.frames));
        Stats::add(&stats.bytes_submitted, std::mem::take(&mut tally.bytes));
        Stats::add(&stats.resyncs, std::mem::take(&mut tally.resyncs));
        Stats::add(
            &stats.frames_dropped_slow_reader,
            std::mem::take(&mut tally.dropped),
        );
        Stats::add(&stats.events_sent, std::mem::take(&mut tally.events));
    }
    // One message per tick: the flush tasks write the new frames on the network runtime.
    signal.send();
}

/// The per-client fields of a state frame, before the entity records.
pub(crate) struct Header<'a> {
    /// This tick.
    pub tick: u32,
    /// The client's latest input or action seq processed.
    pub ack_seq: u32,
    /// The client's event records for this frame.
    pub events: &'a Section,
}

/// Writes one whole state frame (length prefix included) into `out`.
pub(crate) fn write_frame(
    out: &mut Vec<u8>,
    grid: &CellGrid,
    previous: Option<CellRect>,
    next: CellRect,
    header: &Header,
) {
    let start = write_header(out, header, previous.is_none());
    write_body(out, grid, previous, next);
    finish_frame(out, start);
}

/// Writes a state frame (no reset) made of this client's header and a shared body.
#[inline]
fn write_frame_with_shared_body(slot: &mut FrameSlot, body: &SharedBody, header: &Header) {
    let start = write_header(&mut slot.head, header, false);
    finish_frame_followed_by(&mut slot.head, start, body.len());
    slot.shared = Some(body.clone());
}

/// Writes the frame's length prefix (to be finished) and the fields before the entity
/// records: tick, ack, reset and the client's events.
#[inline]
fn write_header(out: &mut Vec<u8>, header: &Header, reset: bool) -> usize {
    let start = begin_frame(out);
    out.push(SERVER_FRAME_KIND);
    put_varint(out, u64::from(header.tick));
    put_varint(out, u64::from(header.ack_seq));
    out.push(u8::from(reset));
    put_varint(out, u64::from(header.events.count));
    out.extend_from_slice(&header.events.bytes);
    start
}

/// Writes the removed, spawned and updated records for a view going from `previous` to
/// `next`. Explicit loops over the rectangles rather than iterator chains: this runs for every
/// cell's shared body and every client whose view changed, and the chained adapters were
/// half of its instructions (callgrind, 10,000 players).
fn write_body(out: &mut Vec<u8>, grid: &CellGrid, previous: Option<CellRect>, next: CellRect) {
    let seen = |cx: u32, cy: u32| previous.is_some_and(|p| p.contains(cx, cy));
    // Removed: the `previous` section of every cell that left the view, then the `left`
    // section of every cell still in it.
    append_sections(out, |section| {
        if let Some(previous) = previous {
            each_cell(grid, previous, |cx, cy, cell| {
                if !next.contains(cx, cy) {
                    section(&cell.previous);
                }
            });
        }
        each_cell(grid, next, |cx, cy, cell| {
            if seen(cx, cy) {
                section(&cell.left);
            }
        });
    });
    // Spawned: what entered a cell the client saw; everything in a cell new to it.
    append_sections(out, |section| {
        each_cell(grid, next, |cx, cy, cell| {
            section(if seen(cx, cy) {
                &cell.entered
            } else {
                &cell.snapshot
            })
        });
    });
    // Updated: changes in the cells the client saw.
    append_sections(out, |section| {
        each_cell(grid, next, |cx, cy, cell| {
            if seen(cx, cy) {
                section(&cell.updated);
            }
        });
    });
}

/// Calls `visit` with every cell of `rect`, row by row.
#[inline]
fn each_cell<'g>(grid: &'g CellGrid, rect: CellRect, mut visit: impl FnMut(u32, u32, &'g Cell)) {
    let columns = grid.geometry.columns;
    for cy in rect.y0..=rect.y1 {
        let row = (cy * columns) as usize;
        for cx in rect.x0..=rect.x1 {
            visit(cx, cy, &grid.cells[row + cx as usize]);
        }
    }
}

/// Writes a postcard `Vec` made of the records of the sections `sections` visits (twice: to
/// count, then to copy): total count, then bytes.
fn append_sections(out: &mut Vec<u8>, sections: impl Fn(&mut dyn FnMut(&Section))) {
    let mut count = 0u64;
    sections(&mut |section| count += u64::from(section.count));
    put_varint(out, count);
    if count > 0 {
        sections(&mut |section| {
            if !section.bytes.is_empty() {
                out.extend_from_slice(&section.bytes);
            }
        });
    }
}
