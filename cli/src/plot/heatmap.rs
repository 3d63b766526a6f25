//! Heat maps of a per-epoch metric: one cell per (row value, epoch), coloured on a viridis scale
//! shared by every heat map of the sweep, with a colour bar. Small grids print the value in each
//! cell, so a one-epoch sweep still reads as a table of numbers.

use super::aggregate::Grid;
use super::{draw_error, draw_header, fmt_num, text_style, Figure, AXIS_DESC, HEADER_HEIGHT, TICK_LABEL};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Width of the colour bar's area, labels included.
const BAR_AREA: u32 = 140;
/// Cells get their value printed when there are at most this many columns.
const MAX_COLUMNS_WITH_VALUES: usize = 12;
/// Fewest pixels between two tick labels of the row axis and of the epoch axis.
const ROW_LABEL_STEP_PX: i32 = 20;
const EPOCH_LABEL_STEP_PX: i32 = 70;
/// Colour of a cell no trial reported.
const MISSING: RGBColor = RGBColor(225, 225, 225);

/// A heat map, ready to draw.
pub struct HeatmapFigure {
    pub title: String,
    pub subtitle: String,
    pub row_label: String,
    pub value_label: String,
    pub grid: Grid,
    /// The values at the two ends of the colour scale.
    pub scale: (f64, f64),
}

/// Viridis, sampled at six stops: dark for low values, yellow for high ones, readable in grey.
const VIRIDIS: [(f64, (u8, u8, u8)); 6] = [
    (0.0, (68, 1, 84)),
    (0.2, (65, 68, 135)),
    (0.4, (42, 120, 142)),
    (0.6, (34, 168, 132)),
    (0.8, (122, 209, 81)),
    (1.0, (253, 231, 37)),
];

/// The colour of `t` in [0, 1] (clamped) on the viridis scale.
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let i = VIRIDIS.iter().position(|(s, _)| *s >= t).unwrap_or(VIRIDIS.len() - 1).max(1);
    let ((s0, a), (s1, b)) = (VIRIDIS[i - 1], VIRIDIS[i]);
    let f = (t - s0) / (s1 - s0);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

impl HeatmapFigure {
    fn normalized(&self, v: f64) -> f64 {
        let (lo, hi) = self.scale;
        if hi > lo {
            (v - lo) / (hi - lo)
        } else {
            0.5
        }
    }

    /// Indices to label on an axis of `n` cells spread over `pixels`: all when they fit, else every
    /// k-th, always starting at the first.
    fn labelled(n: usize, pixels: i32, min_step: i32) -> impl Iterator<Item = usize> {
        let fit = (pixels / min_step).max(1) as usize;
        (0..n).step_by(n.div_ceil(fit).max(1))
    }

    fn draw_cells<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
    ) -> anyhow::Result<()> {
        let (rows, cols) = (self.grid.rows.len(), self.grid.epochs.len());
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(78)
            .build_cartesian_2d(0f64..cols as f64, 0f64..rows as f64)
            .map_err(draw_error)?;
        // Tick labels are placed by hand at cell centres below; the mesh draws only the frame and
        // the axis names.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("epoch")
            .y_desc(self.row_label.as_str())
            .axis_desc_style(AXIS_DESC)
            .draw()
            .map_err(draw_error)?;
        let cells = self
            .grid
            .cells
            .iter()
            .enumerate()
            .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (r, c, *v)));
        chart
            .draw_series(cells.clone().map(|(r, c, v)| {
                let color = v.map(|v| viridis(self.normalized(v))).unwrap_or(MISSING);
                Rectangle::new([(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)], color.filled())
            }))
            .map_err(draw_error)?;

        let (x0, y_bottom) = chart.backend_coord(&(0.0, 0.0));
        let (x1, y_top) = chart.backend_coord(&(cols as f64, rows as f64));
        let cell_h = (y_bottom - y_top) / rows.max(1) as i32;
        if cols <= MAX_COLUMNS_WITH_VALUES && cell_h >= 16 {
            let size = (cell_h - 4).clamp(12, 16);
            for (r, c, v) in cells.filter_map(|(r, c, v)| Some((r, c, v?))) {
                let ink = if self.normalized(v) < 0.55 { WHITE } else { BLACK };
                let at = chart.backend_coord(&(c as f64 + 0.5, r as f64 + 0.5));
                root.draw(&Text::new(fmt_num(v), at, text_style(size, ink, HPos::Center, VPos::Center)))
                    .map_err(draw_error)?;
            }
        }
        for r in Self::labelled(rows, y_bottom - y_top, ROW_LABEL_STEP_PX) {
            let (_, y) = chart.backend_coord(&(0.0, r as f64 + 0.5));
            let label = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Right, VPos::Center);
            root.draw(&Text::new(fmt_num(self.grid.rows[r]), (x0 - 8, y), label)).map_err(draw_error)?;
        }
        for c in Self::labelled(cols, x1 - x0, EPOCH_LABEL_STEP_PX) {
            let (x, _) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
            let label = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Center, VPos::Top);
            root.draw(&Text::new(self.grid.epochs[c].to_string(), (x, y_bottom + 8), label)).map_err(draw_error)?;
        }
        Ok(())
    }

    fn draw_color_bar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (lo, hi) = self.scale;
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .margin_right(6)
            .x_label_area_size(56)
            .y_label_area_size(0)
            .right_y_label_area_size(84)
            .build_cartesian_2d(0f64..1f64, lo..hi)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(8)
            .y_desc(self.value_label.as_str())
            .axis_desc_style(AXIS_DESC)
            .label_style(TICK_LABEL)
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()
            .map_err(draw_error)?;
        const STEPS: usize = 100;
        let step = (hi - lo) / STEPS as f64;
        chart
            .draw_series((0..STEPS).map(|i| {
                let y = lo + step * i as f64;
                Rectangle::new([(0.0, y), (1.0, y + step)], viridis(i as f64 / (STEPS - 1) as f64).filled())
            }))
            .map_err(draw_error)?;
        Ok(())
    }
}

impl Figure for HeatmapFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        if self.grid.rows.is_empty() || self.grid.epochs.is_empty() {
            anyhow::bail!("heat map `{}`: no cells to draw", self.title);
        }
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let (cells, bar) = body.split_horizontally(self.size().0 - BAR_AREA);
        self.draw_cells(root, &cells)?;
        self.draw_color_bar(&bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_from_dark_purple_to_yellow() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(0.1), RGBColor(67, 35, 110));
    }

    #[test]
    fn labels_thin_out_when_cells_are_small() {
        assert_eq!(HeatmapFigure::labelled(5, 500, 20).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(HeatmapFigure::labelled(100, 400, 20).collect::<Vec<_>>().len(), 20);
    }
}
