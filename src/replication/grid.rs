//! Geometry of the replication grid and the interest rule.
//!
//! The interest rule (also in docs/PROTOCOL.md): a client sees every entity whose wire
//! position is at most `radius_wire` (the interest radius times the wire scale, rounded)
//! from its own, in wire units: the circle the radius promises, and nothing beyond it.
//!
//! The grid only narrows the search: frame assembly reads the members of the cells a circle
//! reaches, row by row ([`GridGeometry::rows_of`], [`GridGeometry::span`]), and no other
//! entity. Every entity in a client's circle is in a cell at most
//! `view_cells = ceil(radius_wire / cell_wire)` cells away from the client's own cell on both
//! axes ([`GridGeometry::search_of`], the cells whose events a client may get).

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
    /// Every cell inside, row by row.
    pub(crate) fn cells(self) -> impl Iterator<Item = (u32, u32)> {
        (self.y0..=self.y1).flat_map(move |cy| (self.x0..=self.x1).map(move |cx| (cx, cy)))
    }
}

/// `floor(sqrt(n))`: the float square root (several times faster here than `u64::isqrt`,
/// which was a quarter of the cut with fine cells), corrected to the exact integer where it
/// may need it.
#[inline]
fn floor_sqrt(n: u64) -> u64 {
    let mut root = (n as f64).sqrt() as u64;
    // Below 2^51 (every interest radius squared: at most (2^25)^2) the float is already
    // exact: `n` converts exactly, and the correctly rounded root of n = (k + 1)^2 - 1, the
    // closest below an integer, is about k + 1 - 1/(2(k + 1)), more than half an ulp under
    // k + 1. The corrections below were a dependent multiply and compare each, per row of
    // every cut.
    if n < 1 << 51 {
        return root;
    }
    while root * root > n {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= n {
        root += 1;
    }
    root
}

/// Whether two wire positions are at most `sqrt(r2)` apart: the interest rule's test (see
/// [`GridGeometry::sees`]). Signed 64-bit differences (wire coordinates are below 2^24, so
/// nothing overflows) take fewer instructions than `abs_diff`; frame assembly runs it for
/// every candidate, twice.
#[inline(always)]
pub(crate) fn within(a: [u32; 2], b: [u32; 2], r2: u64) -> bool {
    let dx = i64::from(a[0]) - i64::from(b[0]);
    let dy = i64::from(a[1]) - i64::from(b[1]);
    (dx * dx + dy * dy) as u64 <= r2
}

/// Half the chord of a circle of `radius` at `dy` from its centre (`None` beyond it).
#[inline]
fn half_chord(radius: u32, dy: u32) -> Option<u32> {
    if dy == 0 {
        // The row the centre is in: no square root needed.
        return Some(radius);
    }
    let (r2, dy2) = (u64::from(radius).pow(2), u64::from(dy).pow(2));
    (dy2 <= r2).then(|| floor_sqrt(r2 - dy2) as u32)
}

/// Where one row of cells meets a client's circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowSpan {
    /// The columns of the cells that hold some point of the circle (inclusive).
    pub touched: (u32, u32),
    /// The columns of the cells that lie wholly inside the circle (inclusive), if any.
    pub inside: Option<(u32, u32)>,
}

/// The grid's dimensions, in wire units (positions times the wire scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GridGeometry {
    /// Cells per side.
    pub columns: u32,
    /// Side of a cell in wire units.
    pub cell_wire: u32,
    /// How many cells away (on each axis) an entity in a client's circle can be.
    pub view_cells: u32,
    /// The interest radius in wire units (at most twice the world: beyond its diagonal a
    /// larger radius sees nothing more).
    pub radius_wire: u32,
    /// The largest wire coordinate: a position just short of the world's side rounds to it,
    /// and is in the last cell (which thus reaches it, even when the cells divide the world).
    pub world_wire: u32,
}

impl GridGeometry {
    /// The grid for a world of `world_size` units with `cell_size`-unit cells, guaranteeing
    /// `interest_radius`; positions are scaled by `scale` on the wire.
    pub(crate) fn new(world_size: f32, cell_size: f32, interest_radius: f32, scale: f32) -> Self {
        let cell_wire = ((cell_size * scale).round() as u32).max(1);
        let world_wire = (world_size * scale).round() as u32;
        let columns = world_wire.div_ceil(cell_wire).max(1);
        let radius_wire = (interest_radius * scale)
            .round()
            .clamp(0.0, 2.0 * world_wire as f32);
        let radius_wire = radius_wire as u32;
        let view_cells = radius_wire.div_ceil(cell_wire);
        Self {
            columns,
            cell_wire,
            view_cells: view_cells.min(columns),
            radius_wire,
            world_wire,
        }
    }

    /// The first and last wire coordinate of row (or column) `index` of cells.
    #[inline]
    fn extent(&self, index: u32) -> (u32, u32) {
        let end = (index + 1) * self.cell_wire - 1;
        let end = if index + 1 == self.columns {
            end.max(self.world_wire)
        } else {
            end
        };
        (index * self.cell_wire, end)
    }

    /// The interest rule: whether an entity at wire position `other` is in the view of a
    /// client at `viewer` (at most `radius_wire` apart).
    #[inline]
    pub(crate) fn sees(&self, viewer: [u32; 2], other: [u32; 2]) -> bool {
        within(viewer, other, self.radius_squared())
    }

    /// `radius_wire` squared, for [`within`] in a loop.
    #[inline]
    pub(crate) fn radius_squared(&self) -> u64 {
        u64::from(self.radius_wire).pow(2)
    }

    /// The rows of cells that hold some point of the circle of `radius` (wire units) around
    /// `center` (inclusive).
    pub(crate) fn rows_of(&self, center: [u32; 2], radius: u32) -> (u32, u32) {
        let last = self.columns - 1;
        let low = center[1].saturating_sub(radius) / self.cell_wire;
        let high = center[1].saturating_add(radius) / self.cell_wire;
        (low.min(last), high.min(last))
    }

    /// Where row `row` meets the circles around `center`: the cells it touches of the circle
    /// of radius `touch`, and the cells of it wholly inside the circle of radius `inside`
    /// (none if `None`); `None` if the row is out of the first circle.
    pub(crate) fn span(
        &self,
        center: [u32; 2],
        row: u32,
        touch: u32,
        inside: Option<u32>,
    ) -> Option<RowSpan> {
        let (top, bottom) = self.extent(row);
        let y = center[1];
        let near = if y < top {
            top - y
        } else {
            y.saturating_sub(bottom)
        };
        let far = y.abs_diff(top).max(y.abs_diff(bottom));
        let last = self.columns - 1;
        let x = center[0];
        let reach = half_chord(touch, near)?;
        let touched = (
            (x.saturating_sub(reach) / self.cell_wire).min(last),
            (x.saturating_add(reach) / self.cell_wire).min(last),
        );
        // Cells wholly inside: every point of the row within `half` of x on the axis.
        let inside = inside
            .and_then(|radius| half_chord(radius, far))
            .and_then(|half| {
                let first = if x < half {
                    0
                } else {
                    (x - half).div_ceil(self.cell_wire)
                };
                let end = (u64::from(x) + u64::from(half) + 1) / u64::from(self.cell_wire);
                let mut last_inside = (end as u32).checked_sub(1)?.min(last);
                if self.extent(last_inside).1 > x + half {
                    // The last column, reaching past its nominal end.
                    last_inside = last_inside.checked_sub(1)?;
                }
                (first <= last_inside).then_some((first, last_inside))
            });
        Some(RowSpan { touched, inside })
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

    /// The cells that can hold an entity seen by a client in `cell`: the square of
    /// `view_cells` cells around it, cut at the world's edges.
    pub(crate) fn search_of(&self, cell: CellIndex) -> CellRect {
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
    fn the_search_square_is_cut_at_the_world_edges() {
        let grid = GridGeometry::new(1000.0, 50.0, 100.0, 8.0);
        assert_eq!((grid.columns, grid.view_cells), (20, 2));
        assert_eq!(
            grid.search_of(grid.index(0, 0)),
            CellRect {
                x0: 0,
                y0: 0,
                x1: 2,
                y1: 2
            }
        );
        assert_eq!(
            grid.search_of(grid.index(19, 10)),
            CellRect {
                x0: 17,
                y0: 8,
                x1: 19,
                y1: 12
            }
        );
        assert_eq!(grid.search_of(grid.index(19, 10)).cells().count(), 15);
    }

    #[test]
    fn a_radius_beyond_the_world_sees_everything() {
        let grid = GridGeometry::new(1000.0, 1000.0, 2000.0, 8.0);
        assert_eq!(grid.columns, 1);
        assert_eq!(
            grid.search_of(0),
            CellRect {
                x0: 0,
                y0: 0,
                x1: 0,
                y1: 0
            }
        );
    }

    #[test]
    fn the_circle_is_inclusive_and_nothing_beyond_it() {
        let grid = GridGeometry::new(1000.0, 100.0, 100.0, 8.0);
        assert_eq!(grid.radius_wire, 800);
        assert!(grid.sees([1000, 1000], [1800, 1000]));
        assert!(!grid.sees([1000, 1000], [1801, 1000]));
        // (480, 640) is exactly 800 away; one unit more on either axis is not.
        assert!(grid.sees([1000, 1000], [1480, 1640]));
        assert!(!grid.sees([1000, 1000], [1481, 1640]));
        // The corner of the 3 x 3 square is outside the circle.
        assert!(!grid.sees([1000, 1000], [1700, 1700]));
    }

    #[test]
    fn a_row_through_the_centre_is_inside_where_the_circle_is_wide_enough() {
        // Cells of 100 wire units, radius 800: the row of the centre, from y 1000 to 1099.
        let grid = GridGeometry::new(1000.0, 12.5, 100.0, 8.0);
        assert_eq!((grid.cell_wire, grid.radius_wire), (100, 800));
        let span = grid.span([1050, 1050], 10, 800, Some(800)).unwrap();
        assert_eq!(span.touched, (2, 18));
        // Farthest y of the row is 50 away: the chord there is 798 wide each side.
        assert_eq!(span.inside, Some((3, 17)));
        assert_eq!(grid.span([1050, 1050], 10, 800, None).unwrap().inside, None);
        assert_eq!(grid.span([1050, 1050], 19, 800, Some(800)), None);
        assert_eq!(grid.rows_of([1050, 1050], 800), (2, 18));
    }

    #[test]
    fn the_far_edge_belongs_to_the_last_cells_and_a_huge_radius_is_the_worlds() {
        // Cells divide the world (8000 wire units in 10 cells of 800): 8000 is in cell 9.
        let grid = GridGeometry::new(1000.0, 100.0, 100.0, 8.0);
        assert_eq!(grid.cell_xy([8000, 8000]), (9, 9));
        // From (800, 8000) the entity at (1600, 8000) is exactly 800 away: its column is
        // touched (the row reaches 8000, so the viewer is in it, not one unit below it).
        let span = grid.span([800, 8000], 9, 800, Some(800)).unwrap();
        assert!(span.touched.0 <= 2 && 2 <= span.touched.1);
        // From (7433, 7434) the nominal cell (9, 9) is inside but (8000, 7999) is not.
        assert!(!grid.sees([7433, 7434], [8000, 7999]));
        let inside = grid.span([7433, 7434], 9, 800, Some(800)).unwrap().inside;
        assert!(inside.is_none_or(|(_, last)| last < 9), "{inside:?}");
        let huge = GridGeometry::new(1000.0, 100.0, 1e9, 8.0);
        assert_eq!(huge.radius_wire, 16_000);
        assert!(huge.sees([0, 0], [8000, 8000]));
    }

    #[test]
    fn floor_sqrt_is_exact_around_squares() {
        // 47_453_132 and 47_453_133: the squares around 2^51, where the corrections start.
        let small = [0u64, 1, 2, 799, 800, 65_535, 8_000_000, 33_554_432];
        for root in small
            .into_iter()
            .chain([47_453_132, 47_453_133, 94_906_265])
        {
            let square = root * root;
            assert_eq!(floor_sqrt(square), root);
            assert_eq!(floor_sqrt(square + 2 * root), root);
            if root > 0 {
                assert_eq!(floor_sqrt(square - 1), root - 1);
            }
        }
    }

    proptest! {
        /// The float square root, corrected or not, is the integer one (up to 2^56: the
        /// cut's squares stay below 2^52).
        #[test]
        fn floor_sqrt_is_the_integer_square_root(n in prop_oneof![0u64..1 << 52, 0u64..1 << 56]) {
            prop_assert_eq!(floor_sqrt(n), n.isqrt());
        }

        /// What frame assembly relies on: everything a client sees is in its search square.
        #[test]
        fn the_search_square_covers_the_interest_circle(
            viewer in (0u32..=8000, 0u32..=8000),
            offset in (-800i64..=800, -800i64..=800),
            cell_size in 10.0f32..200.0,
        ) {
            let grid = GridGeometry::new(1000.0, cell_size, 100.0, 8.0);
            let other = (i64::from(viewer.0) + offset.0, i64::from(viewer.1) + offset.1);
            prop_assume!((0..=8000).contains(&other.0) && (0..=8000).contains(&other.1));
            let (viewer, other) = ([viewer.0, viewer.1], [other.0 as u32, other.1 as u32]);
            prop_assume!(grid.sees(viewer, other));
            let square = grid.search_of(grid.cell_of(viewer));
            let (cx, cy) = grid.cell_xy(other);
            prop_assert!(square.x0 <= cx && cx <= square.x1 && square.y0 <= cy && cy <= square.y1);
        }

        /// What the cut relies on: a point the client sees is in its rows and in the cells its
        /// row's span touches; every point of a cell the span has inside is seen.
        #[test]
        fn a_row_span_holds_every_point_seen_and_its_inside_holds_only_such(
            viewer in (0u32..=8000, 0u32..=8000),
            other in (0u32..=8000, 0u32..=8000),
            cell_size in prop_oneof![5.0f32..200.0, Just(100.0f32), Just(50.0f32), Just(25.0f32)],
        ) {
            // The world is 8000 wire units: positions round up to 8000 at its far edge.
            let grid = GridGeometry::new(1000.0, cell_size, 100.0, 8.0);
            let (viewer, other) = ([viewer.0, viewer.1], [other.0, other.1]);
            let (cx, cy) = grid.cell_xy(other);
            let r = grid.radius_wire;
            let rows = grid.rows_of(viewer, r);
            let span = grid.span(viewer, cy, r, Some(r));
            if grid.sees(viewer, other) {
                prop_assert!(rows.0 <= cy && cy <= rows.1);
                let span = span.expect("the row of a point seen meets the circle");
                prop_assert!(span.touched.0 <= cx && cx <= span.touched.1);
            }
            if let Some((first, last)) = span.and_then(|span| span.inside) {
                let c = grid.cell_wire;
                if first <= cx && cx <= last {
                    prop_assert!(grid.sees(viewer, other));
                }
                // The corners of the first and last inside cells too, the last row and column
                // reaching the world's far edge.
                let far_edge = |index: u32| {
                    let end = (index + 1) * c - 1;
                    if index + 1 == grid.columns { end.max(8000) } else { end }
                };
                for corner in [[first * c, cy * c], [far_edge(last), far_edge(cy)]] {
                    prop_assert!(grid.sees(viewer, corner));
                }
            }
        }
    }
}
