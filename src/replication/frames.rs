//! Copy many: each client's frame is cut from the cells around it and handed to its
//! connection task.
//!
//! A client whose previous frame was cut at its wire position `before` holds exactly the
//! entities the interest rule gave it there (the previous tick's positions). At its position
//! `now` this tick, its frame carries:
//! - spawned: the entities it sees now and did not see then (or that are new);
//! - updated: those it saw and still sees, if they changed (their record, written once per
//!   tick by `cells`);
//! - removed: those it saw and no longer sees: members that stayed in their cell, and the
//!   departures of the cells around it (entities that moved cell or were despawned).
//!
//! Candidates are the members of the cells a circle around `now` reaches (see
//! [`ViewChange::cut`]); each is tested against the rule, then and now, unless its cell is
//! wholly inside both circles. A client being resynchronised (first frame, or frames
//! dropped) gets `reset` and spawns of everything it sees.

use bevy_ecs::prelude::*;
use bevy_utils::Parallel;
use components::{TickClock, Workers};

use crate::bridge::outbox::{OutboxWriter, Publish};
use crate::bridge::{ConnectionId, TickSignal};
use crate::protocol::{CloseReason, SERVER_FRAME_KIND, begin_frame, finish_frame, put_varint};
use crate::stats::Stats;

use super::cells::{Cell, CellGrid, Departure, Member, RECORD_PAD};
use super::events::{EventRouting, EventSection};
use super::grid::{CellIndex, CellRect, RowSpan, within};
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
    /// The client's own wire position when its last frame was cut; `None` before its first
    /// frame.
    pub seen_from: Option<[u32; 2]>,
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

/// Appends to `viewer.pending_events` the events of this tick for a client at wire position
/// `now` in `cell`: everyone's, those sent to the viewers of an entity it sees, and its own,
/// in sending order.
fn gather_events(
    viewer: &mut Viewer,
    now: [u32; 2],
    cell: CellIndex,
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
    let geometry = &grid.geometry;
    if grid.cells[cell as usize].events_in_view {
        each_cell(grid, geometry.search_of(cell), |cx, cy, near| {
            let source = EventSource::Cell(geometry.index(cx, cy));
            for (index, &(order, _)) in near.events.ends.iter().enumerate() {
                if geometry.sees(now, near.event_targets[index]) {
                    scratch.push((order, source, index as u32));
                }
            }
        });
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

/// A client's entity records for one frame, cut from the cells around it.
#[derive(Default)]
pub(crate) struct ViewChange {
    removed: Section,
    spawned: Section,
    updated: UpdateRecords,
    /// The rows of the cut in progress and where each meets the circles (scratch).
    rows: Vec<(u32, RowSpan)>,
}

/// The update records of a client's frame, appended with one fixed-size copy each.
///
/// The records are `bytes[..len]`; the bytes after them are scratch (stale records, never
/// truncated away), so that [`Appender`] can copy a member's padded record into memory that
/// is already there, with its write position in a register: appending to a `Vec` instead
/// reloaded and stored the `Vec`'s length around every record (the compiler cannot tell
/// that the record bytes written do not alias it), a chain through memory from one member
/// to the next (the whole tick is 6-7% shorter without it at 10,000 players).
#[derive(Default)]
struct UpdateRecords {
    bytes: Vec<u8>,
    len: usize,
    count: u32,
    /// Kept members whose record is longer than [`RECORD_PAD`], met by an [`Appender`]:
    /// their records are appended when it is done.
    long: Vec<Member>,
}

impl UpdateRecords {
    fn clear(&mut self) {
        self.len = 0;
        self.count = 0;
    }

    /// The records and how many there are.
    fn records(&self) -> (u32, &[u8]) {
        (self.count, &self.bytes[..self.len])
    }

    /// An appender with room for a padded record of each of `members` more.
    #[inline]
    fn appender(&mut self, members: usize) -> Appender<'_> {
        // Each member moves the write position by at most RECORD_PAD.
        let room = self.len + members * RECORD_PAD;
        if self.bytes.len() < room {
            self.bytes.resize(room, 0);
        }
        Appender {
            out: &mut self.bytes,
            at: self.len,
            count: self.count,
            long: &mut self.long,
        }
    }

    /// Takes back what `appender` appended, then the long records it met.
    #[inline]
    fn finish(&mut self, appended: (usize, u32), records: &[u8]) {
        (self.len, self.count) = appended;
        if self.long.is_empty() {
            return;
        }
        self.bytes.truncate(self.len);
        for member in self.long.drain(..) {
            let record = member.record(records);
            self.bytes.extend_from_slice(record);
            self.len += record.len();
            self.count += 1;
        }
    }
}

/// Appends update records for [`UpdateRecords::appender`].
struct Appender<'b> {
    out: &'b mut [u8],
    at: usize,
    count: u32,
    long: &'b mut Vec<Member>,
}

impl Appender<'_> {
    /// Appends the member's update record if `kept` (it was seen then and is seen now).
    /// Whether a member is kept is unpredictable from one member to the next, so a short
    /// record is always copied, and only counted if kept.
    #[inline(always)]
    fn update(&mut self, member: &Member, records: &[u8], kept: bool) {
        match member.padded_record(records) {
            Some(padded) => {
                let length = member.record_len * u32::from(kept);
                self.out[self.at..self.at + RECORD_PAD].copy_from_slice(padded);
                self.at += length as usize;
                self.count += u32::from(length != 0);
            }
            None if kept => self.long.push(*member),
            None => {}
        }
    }

    fn done(self) -> (usize, u32) {
        (self.at, self.count)
    }
}

impl ViewChange {
    /// Cuts the records of a client at `now` whose previous frame was cut at `before`
    /// (`None`: it holds nothing; everything it sees is spawned). See the module docs.
    ///
    /// Row by row of the cells around it: one circle around `now` covers both circles
    /// (then and now: its radius is the interest radius plus the client's move, or a bound
    /// of it), and the cells wholly inside the radius minus that are inside both. Members
    /// of cells out of the first are never read; those of cells inside the second were seen
    /// then and are seen now unless they changed cell, so only their records are copied;
    /// the others are tested against the rule. A client that moved more than half the
    /// radius (a jump: a wrap at the world's edge, a teleport) has its view removed and
    /// spawned anew instead, so that the circle around it stays small.
    fn cut(
        &mut self,
        grid: &CellGrid,
        table: &ReplicaTable,
        before: Option<[u32; 2]>,
        now: [u32; 2],
    ) {
        self.removed.clear();
        self.spawned.clear();
        self.updated.clear();
        let geometry = &grid.geometry;
        let radius = geometry.radius_wire;
        let mut cut = Cut {
            change: self,
            grid,
            table,
            now,
            from: before.unwrap_or_default(),
            had_frame: before.is_some(),
            r2: geometry.radius_squared(),
        };
        let mut moved = 0;
        if let Some(from) = before {
            let dx = u64::from(now[0].abs_diff(from[0]));
            let dy = u64::from(now[1].abs_diff(from[1]));
            let squared = dx * dx + dy * dy;
            // More than half the radius: 4 d² > r², exactly.
            if 4 * squared > cut.r2 {
                cut.forget(from);
                cut.had_frame = false;
            } else {
                // An upper bound of the distance without a square root (one per client was
                // a dependent chain of its own): max + min / 2 is at least
                // sqrt(max² + min²), and at most 1.12 times it, so the circles stay close.
                moved = (dx.max(dy) + dx.min(dy).div_ceil(2)) as u32;
            }
        }
        let (touch, inside) = (radius + moved, radius.saturating_sub(moved));
        let (first, last) = geometry.rows_of(now, touch);
        // Every row's span first, and the start of its members asked for: the rows' slices
        // are far apart in memory, and their first loads, made row after row, were each a
        // wait of its own.
        let mut rows = std::mem::take(&mut cut.change.rows);
        rows.clear();
        for row in first..=last {
            if let Some(span) = geometry.span(now, row, touch, Some(inside)) {
                let (x0, x1) = span.touched;
                crate::prefetch::slice(grid.members.row(geometry, row, x0, x1));
                rows.push((row, span));
            }
        }
        for &(row, span) in &rows {
            let (x0, x1) = span.touched;
            let members = |x0: u32, x1: u32| grid.members.row(geometry, row, x0, x1);
            match span.inside {
                Some((in0, in1)) => {
                    if x0 < in0 {
                        cut.test(members(x0, in0 - 1));
                    }
                    cut.inside(members(in0, in1));
                    if in1 < x1 {
                        cut.test(members(in1 + 1, x1));
                    }
                }
                None => cut.test(members(x0, x1)),
            }
            if cut.had_frame {
                cut.departures(grid.departures.row(geometry, row, x0, x1));
            }
        }
        cut.change.rows = rows;
    }
}

/// One client's cut in progress (see [`ViewChange::cut`]).
struct Cut<'a> {
    change: &'a mut ViewChange,
    grid: &'a CellGrid,
    table: &'a ReplicaTable,
    now: [u32; 2],
    /// Where the client was at its previous frame (meaningless without `had_frame`).
    from: [u32; 2],
    had_frame: bool,
    /// The interest radius in wire units, squared.
    r2: u64,
}

impl Cut<'_> {
    /// Removes everything the client saw from `from` (a jump; see [`ViewChange::cut`]).
    fn forget(&mut self, from: [u32; 2]) {
        let geometry = &self.grid.geometry;
        let radius = geometry.radius_wire;
        let (first, last) = geometry.rows_of(from, radius);
        for row in first..=last {
            let Some(span) = geometry.span(from, row, radius, None) else {
                continue;
            };
            let (x0, x1) = span.touched;
            for member in self.grid.members.row(geometry, row, x0, x1) {
                // One that entered its cell is among the departures of the cell it left.
                if !member.entered && within(from, member.before, self.r2) {
                    self.change.removed.push_removal(member.id);
                }
            }
            for gone in self.grid.departures.row(geometry, row, x0, x1) {
                if within(from, gone.before, self.r2) {
                    self.change.removed.push_removal(gone.id);
                }
            }
        }
    }

    /// Departures from cells of one row: those seen then and not now are removed (those
    /// seen now are among the members of the cell they entered).
    #[inline]
    fn departures(&mut self, departures: &[Departure]) {
        for gone in departures {
            if within(self.from, gone.before, self.r2)
                && !gone
                    .wire
                    .is_some_and(|wire| within(self.now, wire, self.r2))
            {
                self.change.removed.push_removal(gone.id);
            }
        }
    }

    /// Members of cells the circles cross: each is tested against the rule, then and now.
    #[inline]
    fn test(&mut self, members: &[Member]) {
        self.members::<false>(members);
    }

    /// Members of cells wholly inside both circles: seen now, and seen then unless they
    /// entered the cell this tick (or the client had no previous frame).
    #[inline]
    fn inside(&mut self, members: &[Member]) {
        self.members::<true>(members);
    }

    /// Each member is seen now and was seen then (its update record is appended), or
    /// neither, or one of the two (a spawn or a removal). `INSIDE`: the members' cells are
    /// wholly inside both circles, so only those that entered their cell are tested.
    ///
    /// The common cases (seen then and now, or neither) take no branch, and the rule's
    /// inputs are in locals (otherwise they are reloaded for every member: the writes to the
    /// record buffers might alias them, as far as the compiler knows).
    #[inline]
    fn members<const INSIDE: bool>(&mut self, members: &[Member]) {
        let (now, from, r2, had_frame) = (self.now, self.from, self.r2, self.had_frame);
        let (records, table) = (&self.grid.records[..], self.table);
        let ViewChange {
            removed,
            spawned,
            updated,
            ..
        } = &mut *self.change;
        let mut append = updated.appender(members.len());
        for member in members {
            let known = INSIDE & had_frame & !member.entered;
            let sees = known | within(now, member.wire, r2);
            let saw = known | (had_frame & !member.new & within(from, member.before, r2));
            if sees != saw {
                enter_or_leave(removed, spawned, table, member, sees);
                continue;
            }
            append.update(member, records, sees);
        }
        let appended = append.done();
        updated.finish(appended, records);
    }
}

/// A member seen now and not then (a spawn), or then and not now (a removal).
#[cold]
#[inline(never)]
fn enter_or_leave(
    removed: &mut Section,
    spawned: &mut Section,
    table: &ReplicaTable,
    member: &Member,
    sees: bool,
) {
    if sees {
        let replica = (!member.bare).then(|| table.get(member.id));
        spawned.push_spawn(member.id, member.wire, replica);
    } else if !member.entered {
        // One that entered this cell is removed with its old cell's departures.
        removed.push_removal(member.id);
    }
}

/// Per-thread tallies of one tick's frames, summed into [`Stats`] once per tick so the
/// parallel loop does not bounce shared counters between cores, and the thread's scratch.
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
    /// Reused for cutting a client's entity records.
    change: ViewChange,
}

/// Assembles and submits every client's frame, in parallel across clients.
// A bevy system: each parameter is data it reads; bundling them would only hide that.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble_frames(
    mut viewers: Query<(&NetId, &mut Viewer, &mut Connected)>,
    grid: Res<CellGrid>,
    table: Res<ReplicaTable>,
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
    let (grid, table) = (&*grid, &*table);
    let everyone = &routing.everyone;
    let tallies_ref = &*tallies;
    // Once per run of the parallel loop, on the thread that runs it: a Tracy zone (nothing
    // without the `tracy` feature) and that thread's tally (one thread-local lookup per run
    // rather than per client; the whole tick measured the same either way).
    let per_run = || {
        let zone = crate::profiling::zone!("assemble_frames batch");
        (zone, tallies_ref.borrow_local_mut())
    };
    workers.for_each_mut_init(
        &mut viewers,
        per_run,
        |(_zone, tally), (id, mut viewer, mut client)| {
            let viewer = &mut *viewer;
            let me = table.get(id.0);
            if viewer.closing || me.cell == NO_CELL {
                viewer.personal_events.clear();
                return;
            }
            // Its outbox's counters, cold after a tick of network work (the flush task on
            // the other core wrote them), are read once the cut is done.
            client.outbox.prefetch();
            let (now, cell) = (me.wire, me.cell);
            let tally = &mut **tally;
            if !everyone.is_empty()
                || !viewer.personal_events.is_empty()
                || (grid.has_events() && grid.cells[cell as usize].events_in_view)
            {
                gather_events(viewer, now, cell, grid, everyone, &mut tally.event_scratch);
                viewer.personal_events.clear();
                if viewer.pending_events.bytes.len() > limits.max_pending_event_bytes {
                    client.outbox.request_close(CloseReason::EventBacklog);
                    viewer.closing = true;
                    return;
                }
            }
            let before = if viewer.needs_reset {
                None
            } else {
                viewer.seen_from
            };
            tally.change.cut(grid, table, before, now);
            let header = Header {
                tick,
                ack_seq: viewer.ack_seq,
                events: &viewer.pending_events,
            };
            let mut length = 0;
            let outcome = client.outbox.publish_with(|slot| {
                write_frame(&mut slot.bytes, &header, before.is_none(), &tally.change);
                length = slot.bytes.len();
                length <= max_bytes
            });
            match outcome {
                Publish::Queued => {
                    tally.frames += 1;
                    tally.bytes += length as u64;
                    tally.events += u64::from(viewer.pending_events.count);
                    if before.is_none() && viewer.seen_from.is_some() {
                        tally.resyncs += 1;
                    }
                    viewer.seen_from = Some(now);
                    viewer.needs_reset = false;
                    viewer.starved_since = None;
                    viewer.pending_events.clear();
                }
                Publish::Full => {
                    // Slow reader: every slot is in flight. Drop this frame; resync later,
                    // unless the client has not taken a single frame for too long.
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
            }
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
fn write_frame(out: &mut Vec<u8>, header: &Header, reset: bool, change: &ViewChange) {
    let start = begin_frame(out);
    out.push(SERVER_FRAME_KIND);
    put_varint(out, u64::from(header.tick));
    put_varint(out, u64::from(header.ack_seq));
    out.push(u8::from(reset));
    for (count, bytes) in [
        header.events.records(),
        change.removed.records(),
        change.spawned.records(),
        change.updated.records(),
    ] {
        put_varint(out, u64::from(count));
        out.extend_from_slice(bytes);
    }
    finish_frame(out, start);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Members whose update records have these lengths, each record filled with its index
    /// plus one, in a records buffer padded as `encode_cells` pads it.
    fn members_with_records(lengths: &[u32]) -> (Vec<Member>, Vec<u8>) {
        let mut records = Vec::new();
        let members = lengths
            .iter()
            .enumerate()
            .map(|(index, &length)| {
                let record_start = records.len() as u32;
                records.extend(std::iter::repeat_n(index as u8 + 1, length as usize));
                Member {
                    id: index as u32,
                    record_start,
                    record_len: length,
                    ..Member::default()
                }
            })
            .collect();
        records.resize(records.len() + RECORD_PAD, 0);
        (members, records)
    }

    #[test]
    fn the_kept_records_are_appended_whole_each_runs_long_ones_after_its_short_ones() {
        let (members, records) = members_with_records(&[5, 20, 7, 16, 17, 0]);
        let kept = [true, true, false, true, true, true];
        let mut expected = Vec::new();
        // Runs of 3 members: [5, 20, 7] keeps 0 and then the long 1; [16, 17, 0] keeps 3
        // and then the long 4 (5's record is empty: nothing changed).
        for index in [0, 1, 3, 4] {
            expected.extend_from_slice(members[index].record(&records));
        }
        let mut updated = UpdateRecords::default();
        // Twice: the second cut writes over the first one's scratch.
        for _ in 0..2 {
            updated.clear();
            for half in [&members[..3], &members[3..]] {
                let mut append = updated.appender(half.len());
                for member in half {
                    append.update(member, &records, kept[member.id as usize]);
                }
                let appended = append.done();
                updated.finish(appended, &records);
            }
            assert_eq!(updated.records(), (4, &expected[..]));
        }
    }
}
