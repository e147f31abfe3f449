//! Geometry of the replication grid: which cell a position is in, and which cells a client
//! at a given cell sees.
//!
//! The interest rule (also in docs/PROTOCOL.md): a client sees every entity whose cell is at
//! most `view_cells = ceil(interest_radius / cell_size)` cells away from the client's own
//! cell on both axes. That square always contains the interest circle, and because it depends
//! only on the client's cell, views change only when a client crosses a cell edge.

/// Cell coordinates packed as one index: `cy * columns + cx`.
pub(crate) type CellIndex = u32;

/// An inclusive rectangle of cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CellRect {
    /// First column.
    pub x0: u32,
    /// First row.
    pub y0: u32,
    /// Last column (inclusive).
    pub x1: u32,
    /// Last row (inclusive).
    pub y1: u32,
}

impl CellRect {
    /// Whether cell `(cx, cy)` is inside.
    #[inline]
    pub(crate) fn contains(&self, cx: u32, cy: u32) -> bool {
        cx >= self.x0 && cx <= self.x1 && cy >= self.y0 && cy <= self.y1
    }

    /// Every cell inside, row by row.
    pub(crate) fn cells(self) -> impl Iterator<Item = (u32, u32)> {
        (self.y0..=self.y1).flat_map(move |cy| (self.x0..=self.x1).map(move |cx| (cx, cy)))
    }
}

/// The grid's dimensions, in wire units (positions times the wire scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GridGeometry {
    /// Cells per side.
    pub columns: u32,
    /// Side of a cell in wire units.
    pub cell_wire: u32,
    /// How many cells away a client sees on each axis.
    pub view_cells: u32,
}

impl GridGeometry {
    /// The grid for a world of `world_size` units with `cell_size`-unit cells, guaranteeing
    /// `interest_radius`; positions are scaled by `scale` on the wire.
    pub(crate) fn new(world_size: f32, cell_size: f32, interest_radius: f32, scale: f32) -> Self {
        let cell_wire = ((cell_size * scale).round() as u32).max(1);
        let world_wire = (world_size * scale).round() as u32;
        let columns = world_wire.div_ceil(cell_wire).max(1);
        let view_cells = (interest_radius / cell_size).ceil().max(0.0) as u32;
        Self {
            columns,
            cell_wire,
            view_cells: view_cells.min(columns),
        }
    }

    /// Number of cells.
    pub(crate) fn cell_count(&self) -> usize {
        (self.columns as usize) * (self.columns as usize)
    }

    /// Column and row of a wire position (positions past the edge clamp to the last cell).
    #[inline]
    pub(crate) fn cell_xy(&self, wire: [u32; 2]) -> (u32, u32) {
        let last = self.columns - 1;
        (
            (wire[0] / self.cell_wire).min(last),
            (wire[1] / self.cell_wire).min(last),
        )
    }

    /// Index of the cell holding a wire position.
    #[inline]
    pub(crate) fn cell_of(&self, wire: [u32; 2]) -> CellIndex {
        let (cx, cy) = self.cell_xy(wire);
        self.index(cx, cy)
    }

    /// Index of cell `(cx, cy)`.
    #[inline]
    pub(crate) fn index(&self, cx: u32, cy: u32) -> CellIndex {
        cy * self.columns + cx
    }

    /// Column and row of a cell index.
    #[inline]
    pub(crate) fn xy(&self, cell: CellIndex) -> (u32, u32) {
        (cell % self.columns, cell / self.columns)
    }

    /// The cells a client in `cell` sees.
    pub(crate) fn view_of(&self, cell: CellIndex) -> CellRect {
        let (cx, cy) = self.xy(cell);
        let k = self.view_cells;
        let last = self.columns - 1;
        CellRect {
            x0: cx.saturating_sub(k),
            y0: cy.saturating_sub(k),
            x1: (cx + k).min(last),
            y1: (cy + k).min(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn view_is_clamped_at_the_world_edges() {
        let grid = GridGeometry::new(1000.0, 50.0, 100.0, 8.0);
        assert_eq!((grid.columns, grid.view_cells), (20, 2));
        assert_eq!(
            grid.view_of(grid.index(0, 0)),
            CellRect {
                x0: 0,
                y0: 0,
                x1: 2,
                y1: 2
            }
        );
        assert_eq!(
            grid.view_of(grid.index(19, 10)),
            CellRect {
                x0: 17,
                y0: 8,
                x1: 19,
                y1: 12
            }
        );
        assert_eq!(grid.view_of(grid.index(19, 10)).cells().count(), 15);
    }

    #[test]
    fn a_radius_beyond_the_world_sees_everything() {
        let grid = GridGeometry::new(1000.0, 1000.0, 2000.0, 8.0);
        assert_eq!(grid.columns, 1);
        assert_eq!(
            grid.view_of(0),
            CellRect {
                x0: 0,
                y0: 0,
                x1: 0,
                y1: 0
            }
        );
    }

    proptest! {
        /// The promise of the interest rule: everything within the radius is in view.
        #[test]
        fn the_view_covers_the_interest_circle(
            viewer in (0.0f32..1000.0, 0.0f32..1000.0),
            angle in 0.0f32..std::f32::consts::TAU,
            distance in 0.0f32..100.0,
        ) {
            let grid = GridGeometry::new(1000.0, 50.0, 100.0, 8.0);
            let other = (viewer.0 + distance * angle.cos(), viewer.1 + distance * angle.sin());
            prop_assume!(other.0 >= 0.0 && other.1 >= 0.0 && other.0 < 1000.0 && other.1 < 1000.0);
            let wire = |p: (f32, f32)| [(p.0 * 8.0).round() as u32, (p.1 * 8.0).round() as u32];
            let view = grid.view_of(grid.cell_of(wire(viewer)));
            let (cx, cy) = grid.cell_xy(wire(other));
            prop_assert!(view.contains(cx, cy));
        }
    }
}
