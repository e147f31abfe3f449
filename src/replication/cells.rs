//! Encode once per tick: every changed entity is written once into the buffers of the cell
//! it is in, whatever the number of clients that will see it.
//!
//! Per cell and tick:
//! - `left`: ids of entities that left the cell (moved out or despawned);
//! - `entered`: spawn records of entities that entered (moved in or were spawned);
//! - `updated`: update records of entities that stayed and changed;
//! - `snapshot` (only if some client starts seeing the cell this tick): spawn records of all
//!   entities in the cell;
//! - `previous` (only if some client stops seeing the cell this tick): ids of the entities the
//!   cell held at the previous tick.
//!
//! A client's frame is then a concatenation of these sections (see `frames`).

use bevy_ecs::prelude::*;
use components::TickClock;

use super::events::EventSection;
use super::grid::{CellIndex, GridGeometry};
use super::records::Section;
use super::table::{NO_CELL, ReplicaTable};
use crate::bridge::outbox::SharedBody;

/// The encoded data of one grid cell for the current tick.
#[derive(Debug)]
pub(crate) struct Cell {
    /// Wire ids of the entities in the cell.
    pub members: Vec<u32>,
    /// See the module docs.
    pub left: Section,
    /// See the module docs.
    pub entered: Section,
    /// See the module docs.
    pub updated: Section,
    /// See the module docs; valid only when `snapshot_wanted`.
    pub snapshot: Section,
    /// See the module docs; valid only when `previous_wanted`.
    pub previous: Section,
    /// A client starts seeing this cell this tick.
    pub snapshot_wanted: bool,
    /// A client stops seeing this cell this tick.
    pub previous_wanted: bool,
    /// Server events sent this tick to the viewers of an entity in this cell.
    pub events: EventSection,
    /// Some cell in this cell's view has events this tick (so clients here get events).
    pub events_in_view: bool,
    /// Index into [`CellGrid::view_bodies`] of the shared frame body for clients in this cell
    /// whose view did not change, or [`NO_BODY`].
    pub body_slot: u32,
    dirty: bool,
}

/// Marks a cell without a shared frame body this tick.
pub(crate) const NO_BODY: u32 = u32::MAX;

impl Default for Cell {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            left: Section::default(),
            entered: Section::default(),
            updated: Section::default(),
            snapshot: Section::default(),
            previous: Section::default(),
            snapshot_wanted: false,
            previous_wanted: false,
            events: EventSection::default(),
            events_in_view: false,
            body_slot: NO_BODY,
            dirty: false,
        }
    }
}

/// The grid of cells with this tick's encoded data.
#[derive(Resource)]
pub(crate) struct CellGrid {
    /// Dimensions.
    pub geometry: GridGeometry,
    /// All cells, by [`CellIndex`].
    pub cells: Vec<Cell>,
    /// Shared frame bodies (see `frames`), one per cell in `body_cells`. Kept from tick to
    /// tick and rebuilt in place once every client has written the previous tick's frames, so
    /// that building them does not allocate.
    pub view_bodies: Vec<SharedBody>,
    /// Cells that have a shared frame body this tick.
    pub body_cells: Vec<CellIndex>,
    /// Cells written to this tick, cleared at the start of the next.
    dirty: Vec<CellIndex>,
}

impl CellGrid {
    /// An empty grid.
    pub(crate) fn new(geometry: GridGeometry) -> Self {
        let cells = (0..geometry.cell_count())
            .map(|_| Cell::default())
            .collect();
        Self {
            geometry,
            cells,
            view_bodies: Vec::new(),
            body_cells: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// Asks for a shared frame body for clients in `cell` whose view did not change.
    pub(crate) fn request_body(&mut self, cell: CellIndex) {
        let slot = &mut self.cells[cell as usize].body_slot;
        if *slot == NO_BODY {
            *slot = self.body_cells.len() as u32;
            self.body_cells.push(cell);
        }
    }

    /// The shared frame body of `cell`, if one was built this tick.
    #[inline]
    pub(crate) fn body(&self, cell: CellIndex) -> Option<&SharedBody> {
        let slot = self.cells[cell as usize].body_slot;
        (slot != NO_BODY).then(|| &self.view_bodies[slot as usize])
    }

    fn clear_bodies(&mut self) {
        for index in self.body_cells.drain(..) {
            self.cells[index as usize].body_slot = NO_BODY;
        }
    }

    /// The cell at `index`, marked so its buffers are cleared next tick.
    #[inline]
    pub(crate) fn cell_mut(&mut self, index: CellIndex) -> &mut Cell {
        let cell = &mut self.cells[index as usize];
        if !cell.dirty {
            cell.dirty = true;
            self.dirty.push(index);
        }
        cell
    }

    fn clear_dirty(&mut self) {
        for index in self.dirty.drain(..) {
            let cell = &mut self.cells[index as usize];
            cell.left.clear();
            cell.entered.clear();
            cell.updated.clear();
            cell.snapshot.clear();
            cell.previous.clear();
            cell.snapshot_wanted = false;
            cell.previous_wanted = false;
            cell.events.clear();
            cell.events_in_view = false;
            cell.dirty = false;
        }
    }
}

fn remove_member(grid: &mut CellGrid, table: &mut ReplicaTable, cell: CellIndex, id: u32) {
    let slot = table.get(id).member_slot as usize;
    let members = &mut grid.cell_mut(cell).members;
    members.swap_remove(slot);
    if let Some(&moved) = members.get(slot) {
        table.get_mut(moved).member_slot = slot as u32;
    }
}

fn add_member(grid: &mut CellGrid, table: &mut ReplicaTable, cell: CellIndex, id: u32, tick: u64) {
    let members = &mut grid.cell_mut(cell).members;
    let replica = table.get_mut(id);
    replica.member_slot = members.len() as u32;
    replica.cell = cell;
    replica.entered_tick = tick;
    members.push(id);
}

/// Places every replica in its cell and writes its record into that cell's sections.
pub(crate) fn encode_cells(
    mut grid: ResMut<CellGrid>,
    mut table: ResMut<ReplicaTable>,
    clock: Res<TickClock>,
) {
    let grid = &mut *grid;
    let table = &mut *table;
    let tick = clock.tick;
    grid.clear_dirty();
    grid.clear_bodies();
    table.recycle_released();
    for id in 0..table.slots() as u32 {
        let replica = table.get(id);
        if !replica.live {
            continue;
        }
        let old_cell = replica.cell;
        if replica.despawned {
            if old_cell != NO_CELL {
                remove_member(grid, table, old_cell, id);
                grid.cell_mut(old_cell).left.push_removal(id);
            }
            table.release(id);
            continue;
        }
        let new_cell = grid.geometry.cell_of(replica.wire);
        if new_cell != old_cell {
            if old_cell != NO_CELL {
                remove_member(grid, table, old_cell, id);
                grid.cell_mut(old_cell).left.push_removal(id);
            }
            add_member(grid, table, new_cell, id, tick);
            grid.cell_mut(new_cell)
                .entered
                .push_spawn(id, table.get(id));
        } else if replica.wire != replica.sent_wire || replica.changed != 0 || replica.removed != 0
        {
            grid.cell_mut(new_cell).updated.push_update(id, replica);
        }
        let replica = table.get_mut(id);
        replica.sent_wire = replica.wire;
        replica.changed = 0;
        replica.removed = 0;
        replica.announced = replica.present;
    }
}

/// Encodes the `snapshot` and `previous` sections of the cells that clients asked for.
pub(crate) fn encode_requested_sections(grid: &mut CellGrid, table: &ReplicaTable, tick: u64) {
    for index in 0..grid.dirty.len() {
        let cell = &mut grid.cells[grid.dirty[index] as usize];
        if cell.snapshot_wanted && cell.snapshot.count == 0 {
            for &id in &cell.members {
                cell.snapshot.push_spawn(id, table.get(id));
            }
        }
        if cell.previous_wanted && cell.previous.count == 0 {
            for &id in &cell.members {
                if table.get(id).entered_tick != tick {
                    cell.previous.push_removal(id);
                }
            }
            cell.previous.bytes.extend_from_slice(&cell.left.bytes);
            cell.previous.count += cell.left.count;
        }
    }
}
