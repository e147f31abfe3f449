//! Encode once per tick: every changed entity's update record is written once, whatever the
//! number of clients that will see it, and every entity is listed under the cell it is in.
//!
//! Per tick:
//! - `members`: every entity, cell after cell in row-major order (so the cells of one row
//!   from one column to another are one slice), each with its wire position this tick and
//!   at the previous tick's frames, and where its update record is (see [`Member`]);
//! - `departures`: the entities that left a cell this tick (moved out or despawned), under
//!   the cell they left, with the position the previous tick's frames gave them;
//! - per cell, `events`: server events sent this tick to the viewers of an entity in it.
//!
//! Both lists are rebuilt every tick by a counting sort over the cells (O(entities +
//! cells)). A client's frame is then cut from the slices of the rows around it (see
//! `frames`).

use bevy_ecs::prelude::*;

use super::events::EventSection;
use super::grid::{CellIndex, GridGeometry};
use super::records::push_update;
use super::table::{NO_CELL, ReplicaTable};

/// An entity in a cell, as this tick's frames need it: kept inline so that cutting a
/// client's view reads the member slices of the rows around it and nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Member {
    /// Wire id.
    pub id: u32,
    /// Wire position this tick.
    pub wire: [u32; 2],
    /// Wire position as of the previous tick's frames (meaningless when `new`).
    pub before: [u32; 2],
    /// Where its update record starts in [`CellGrid::records`].
    pub record_start: u32,
    /// Length of its update record (0: nothing changed).
    pub record_len: u32,
    /// Registered this tick: no earlier frame named it.
    pub new: bool,
    /// Moved into this cell this tick (its old cell lists it among its departures), or new.
    pub entered: bool,
    /// It has no replicated component: its spawn record is its id and position, and a cut
    /// that spawns it need not read its replica (a cache miss per spawn).
    pub bare: bool,
}

impl Member {
    /// Its update record, followed by the bytes after it up to [`RECORD_PAD`] in all (a
    /// fixed-size copy, for a cut without a branch per member), or `None` if the record is
    /// longer than that.
    #[inline]
    pub(crate) fn padded_record<'r>(&self, records: &'r [u8]) -> Option<&'r [u8; RECORD_PAD]> {
        if self.record_len as usize > RECORD_PAD {
            return None;
        }
        let start = self.record_start as usize;
        records[start..start + RECORD_PAD].try_into().ok()
    }

    /// Its whole update record.
    #[inline]
    pub(crate) fn record<'r>(&self, records: &'r [u8]) -> &'r [u8] {
        let start = self.record_start as usize;
        &records[start..start + self.record_len as usize]
    }
}

/// An entity that left a cell this tick.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Departure {
    /// Wire id.
    pub id: u32,
    /// Wire position as of the previous tick's frames.
    pub before: [u32; 2],
    /// Wire position this tick; `None`: despawned.
    pub wire: Option<[u32; 2]>,
}

/// The events of one grid cell for the current tick.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    /// Server events sent this tick to the viewers of an entity in this cell.
    pub events: EventSection,
    /// Per record of `events`: the wire position of the entity whose viewers get it.
    pub event_targets: Vec<[u32; 2]>,
    /// Some cell in this cell's search square has events this tick (so clients here may
    /// get events).
    pub events_in_view: bool,
    dirty: bool,
}

/// Bytes every update record can be read as (see [`Member::padded_record`]): a walker's
/// record is 5 to 7 bytes.
pub(crate) const RECORD_PAD: usize = 16;

/// Items listed by cell: all of cell `c`'s are `items[starts[c]..starts[c + 1]]`.
#[derive(Debug, Default)]
pub(crate) struct ByCell<T> {
    items: Vec<T>,
    starts: Vec<u32>,
    /// This tick's items with their cells, in id order, before the sort.
    unsorted: Vec<(CellIndex, T)>,
}

impl<T: Copy + Default> ByCell<T> {
    /// The items of the cells `x0..=x1` of row `row` (one slice: cells are row-major).
    #[inline]
    pub(crate) fn row(&self, geometry: &GridGeometry, row: u32, x0: u32, x1: u32) -> &[T] {
        let first = geometry.index(x0, row) as usize;
        let last = geometry.index(x1, row) as usize;
        &self.items[self.starts[first] as usize..self.starts[last + 1] as usize]
    }

    fn clear(&mut self) {
        self.unsorted.clear();
    }

    fn push(&mut self, cell: CellIndex, item: T) {
        self.unsorted.push((cell, item));
    }

    /// Counting sort of this tick's items by cell; within a cell they keep their order (id
    /// order), so the lists, and the frames cut from them, are the same in a replay.
    fn sort(&mut self, cells: usize) {
        self.starts.clear();
        self.starts.resize(cells + 1, 0);
        for &(cell, _) in &self.unsorted {
            self.starts[cell as usize] += 1;
        }
        let mut end = 0;
        for start in &mut self.starts[..cells] {
            end += *start;
            *start = end;
        }
        self.starts[cells] = end;
        self.items.clear();
        self.items.resize(self.unsorted.len(), T::default());
        // Backwards, each cell's end moves down to its start: a stable placement.
        for &(cell, item) in self.unsorted.iter().rev() {
            let slot = &mut self.starts[cell as usize];
            *slot -= 1;
            self.items[*slot as usize] = item;
        }
    }
}

/// The grid of cells with this tick's encoded data.
#[derive(Resource)]
pub(crate) struct CellGrid {
    /// Dimensions and the interest rule.
    pub geometry: GridGeometry,
    /// Every entity, by the cell it is in.
    pub members: ByCell<Member>,
    /// This tick's departures, by the cell they left.
    pub departures: ByCell<Departure>,
    /// All cells' events, by [`CellIndex`].
    pub cells: Vec<Cell>,
    /// This tick's update records of every entity that changed, each written once (a
    /// [`Member`] says where its own is), then [`RECORD_PAD`] zero bytes.
    pub records: Vec<u8>,
    /// Cells with events this tick, cleared at the start of the next.
    dirty: Vec<CellIndex>,
}

impl CellGrid {
    /// An empty grid.
    pub(crate) fn new(geometry: GridGeometry) -> Self {
        let cells = (0..geometry.cell_count())
            .map(|_| Cell::default())
            .collect();
        let mut grid = Self {
            geometry,
            members: ByCell::default(),
            departures: ByCell::default(),
            cells,
            records: Vec::new(),
            dirty: Vec::new(),
        };
        grid.members.sort(geometry.cell_count());
        grid.departures.sort(geometry.cell_count());
        grid
    }

    /// The cell at `index`, marked so its events are cleared next tick.
    #[inline]
    pub(crate) fn cell_mut(&mut self, index: CellIndex) -> &mut Cell {
        let cell = &mut self.cells[index as usize];
        if !cell.dirty {
            cell.dirty = true;
            self.dirty.push(index);
        }
        cell
    }

    /// Some cell has events this tick (frame assembly then looks at each client's cell; a
    /// lookup per client in the large `cells` was a cache miss each).
    #[inline]
    pub(crate) fn has_events(&self) -> bool {
        !self.dirty.is_empty()
    }

    fn clear_dirty(&mut self) {
        for index in self.dirty.drain(..) {
            let cell = &mut self.cells[index as usize];
            cell.events.clear();
            cell.event_targets.clear();
            cell.events_in_view = false;
            cell.dirty = false;
        }
    }
}

/// Lists every replica under its cell, writes the update record of every one that changed
/// and lists the departures.
pub(crate) fn encode_cells(mut grid: ResMut<CellGrid>, mut table: ResMut<ReplicaTable>) {
    let grid = &mut *grid;
    let table = &mut *table;
    grid.clear_dirty();
    grid.records.clear();
    grid.members.clear();
    grid.departures.clear();
    table.recycle_released();
    for id in 0..table.slots() as u32 {
        let replica = table.get(id);
        if !replica.live {
            continue;
        }
        let old_cell = replica.cell;
        let before = replica.sent_wire;
        if replica.despawned {
            if old_cell != NO_CELL {
                let departure = Departure {
                    id,
                    before,
                    wire: None,
                };
                grid.departures.push(old_cell, departure);
            }
            table.release(id);
            continue;
        }
        let new = old_cell == NO_CELL;
        let start = grid.records.len() as u32;
        if !new && (replica.wire != before || replica.changed != 0 || replica.removed != 0) {
            push_update(&mut grid.records, id, replica);
        }
        let cell = grid.geometry.cell_of(replica.wire);
        if cell != old_cell && !new {
            let departure = Departure {
                id,
                before,
                wire: Some(replica.wire),
            };
            grid.departures.push(old_cell, departure);
        }
        let member = Member {
            id,
            wire: replica.wire,
            before,
            record_start: start,
            record_len: grid.records.len() as u32 - start,
            new,
            entered: cell != old_cell,
            bare: replica.present == 0,
        };
        grid.members.push(cell, member);
        let replica = table.get_mut(id);
        replica.cell = cell;
        replica.sent_wire = replica.wire;
        replica.changed = 0;
        replica.removed = 0;
        replica.announced = replica.present;
    }
    let cells = grid.geometry.cell_count();
    grid.members.sort(cells);
    grid.departures.sort(cells);
    grid.records.resize(grid.records.len() + RECORD_PAD, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_listed_by_cell_in_their_order_and_rows_are_slices() {
        let geometry = GridGeometry::new(300.0, 100.0, 100.0, 8.0);
        let mut by_cell = ByCell::<u32>::default();
        for (cell, item) in [(4, 1), (0, 2), (4, 3), (8, 4), (3, 5), (5, 6), (4, 7)] {
            by_cell.push(cell, item);
        }
        by_cell.sort(geometry.cell_count());
        assert_eq!(by_cell.row(&geometry, 0, 0, 2), [2]);
        assert_eq!(by_cell.row(&geometry, 1, 0, 2), [5, 1, 3, 7, 6]);
        assert_eq!(by_cell.row(&geometry, 1, 1, 1), [1, 3, 7]);
        assert_eq!(by_cell.row(&geometry, 1, 2, 2), [6]);
        assert_eq!(by_cell.row(&geometry, 2, 1, 2), [4]);
        assert!(by_cell.row(&geometry, 2, 0, 1).is_empty());
    }
}
