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

use std::sync::Arc;

use bevy_ecs::prelude::*;
use components::TickClock;

use crate::inbound::ConnectionId;
use crate::net::outbox::Outbox;
use crate::protocol::{CloseReason, SERVER_FRAME_KIND, begin_frame, finish_frame, put_varint};
use crate::stats::Stats;

use super::cells::{CellGrid, encode_requested_sections};
use super::grid::CellRect;
use super::records::Section;
use super::table::{NO_CELL, NetId, ReplicaTable};
use super::{FrameLimit, SharedStats};

/// A connected client: where its frames go.
#[derive(Component)]
pub struct Client {
    /// Its connection.
    pub connection: ConnectionId,
    /// Its frame queue.
    pub outbox: Arc<Outbox>,
}

/// What a client sees and has been told.
#[derive(Component, Default, Debug)]
pub struct Viewer {
    /// The cells in view as of the last frame sent; `None` before the first frame and after
    /// dropped frames (the next frame is then a full resynchronisation).
    pub view: Option<CellRect>,
    /// This tick's view, computed before assembly.
    pub next_view: Option<CellRect>,
    /// Last input seq applied for this client.
    pub ack_seq: u32,
    /// Frames to this client were dropped: the next frame carries `reset`.
    pub needs_reset: bool,
    /// The client was asked to close; no more frames.
    pub closing: bool,
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
        let previous = if viewer.needs_reset {
            None
        } else {
            viewer.view
        };
        if previous == Some(next) {
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
}

/// Assembles and submits every client's frame, in parallel across clients.
pub fn assemble_frames(
    mut viewers: Query<(&mut Viewer, &Client)>,
    grid: Res<CellGrid>,
    clock: Res<TickClock>,
    limit: Res<FrameLimit>,
    stats: Res<SharedStats>,
) {
    let tick = clock.tick as u32;
    let max_bytes = limit.0 as usize;
    let stats: &Stats = &stats.0;
    viewers.par_iter_mut().for_each(|(mut viewer, client)| {
        let Some(next) = viewer.next_view else { return };
        let Some(mut buffer) = client.outbox.take_free() else {
            // Slow reader: its buffers are all in flight. Drop this frame; resync later.
            viewer.needs_reset = true;
            Stats::bump(&stats.frames_dropped_slow_reader);
            return;
        };
        let previous = if viewer.needs_reset {
            None
        } else {
            viewer.view
        };
        write_frame(&mut buffer, &grid, previous, next, tick, viewer.ack_seq);
        if buffer.len() > max_bytes {
            client.outbox.give_back(buffer);
            client.outbox.request_close(CloseReason::ViewTooLarge);
            viewer.closing = true;
            return;
        }
        if previous.is_none() && viewer.view.is_some() {
            Stats::bump(&stats.resyncs);
        }
        Stats::bump(&stats.frames_submitted);
        Stats::add(&stats.bytes_submitted, buffer.len() as u64);
        client.outbox.submit(buffer);
        viewer.view = Some(next);
        viewer.needs_reset = false;
    });
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

    let start = begin_frame(out);
    out.push(SERVER_FRAME_KIND);
    put_varint(out, u64::from(tick));
    put_varint(out, u64::from(ack_seq));
    out.push(u8::from(previous.is_none()));
    append_sections(out, removed_sections);
    append_sections(out, spawned_sections);
    append_sections(out, updated_sections);
    finish_frame(out, start);
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
