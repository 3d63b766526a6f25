//! The accuracy-against-sparsity figure. The x axis is the share of weights left on a log scale,
//! 1 at the left down to the smallest seen, labelled as sparsity ("90%", "99%"), so each decade of
//! pruning gets the same room; with int8 results a second panel shows the quantized accuracy.

use super::{lines, percent, Line, Reference, Trial, TEST_ACC, TEST_ACC_INT8};
use crate::plot::{draw_error, draw_header, fmt_num, text_style, Figure, AXIS_DESC, COLORS, HEADER_HEIGHT, TICK_LABEL};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Weights left below this are drawn at it: the log axis has no room for an all-zero network.
const MIN_LEFT: f64 = 1e-5;
/// Sparsities that may label the x axis, most wanted first: decades, then the halves between.
const TICKS: [f64; 14] = [0.0, 0.9, 0.99, 0.999, 0.9999, 0.5, 0.95, 0.995, 0.9995, 0.8, 0.98, 0.998, 0.9998, 0.99995];
/// Fewest pixels between two x tick labels.
const TICK_GAP_PX: i32 = 64;
const PANEL_HEIGHT: u32 = 560;

/// One chart: a caption (empty for a single panel), the methods' lines and the dense references.
pub struct Panel {
    pub caption: String,
    pub lines: Vec<Line>,
    pub references: Vec<Reference>,
}

pub struct AccuracyFigure {
    pub title: String,
    pub subtitle: String,
    pub panels: Vec<Panel>,
}

/// The figure for `trials`: float accuracy, and int8 accuracy below when any trial has it.
pub fn figure(trials: &[Trial], title: &str, about: &str) -> AccuracyFigure {
    let (float_lines, float_refs) = lines(trials, TEST_ACC);
    let mut panels = vec![Panel { caption: String::new(), lines: float_lines, references: float_refs }];
    let (int8_lines, int8_refs) = lines(trials, TEST_ACC_INT8);
    if !int8_lines.is_empty() || !int8_refs.is_empty() {
        panels[0].caption = "float32 weights".into();
        panels.push(Panel {
            caption: "int8 weights (quantized after training)".into(),
            lines: int8_lines,
            references: int8_refs,
        });
    }
    AccuracyFigure {
        title: title.to_string(),
        subtitle: format!("{about}; line: median over seeds, band: min to max, dashed: dense"),
        panels,
    }
}

/// Decades of pruning: 0 for a dense network, 1 at 90% sparsity, 2 at 99%.
fn decades(sparsity: f64) -> f64 {
    -(1.0 - sparsity).max(MIN_LEFT).log10()
}

impl AccuracyFigure {
    /// The x range in decades, shared by the panels: 0 to the sparsest point, padded.
    fn x_range(&self) -> (f64, f64) {
        let points = self.panels.iter().flat_map(|p| p.lines.iter().flat_map(|l| &l.points));
        let hi = points.map(|p| decades(p.sparsity)).fold(0.0, f64::max).max(1.0);
        (-0.04 * hi, hi * 1.04)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> anyhow::Result<()> {
        let area = match panel.caption.is_empty() {
            true => area.clone(),
            false => area.titled(&panel.caption, AXIS_DESC).map_err(draw_error)?,
        };
        let ys = panel.lines.iter().flat_map(|l| l.points.iter().flat_map(|p| [p.value.min, p.value.max]));
        let ys = ys.chain(panel.references.iter().map(|r| r.value.median)).map(|v| 100.0 * v);
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 100.0) };
        let span = if hi > lo { hi - lo } else { 1.0 };
        // Room below for the legend, which sits in the lower left, where accuracy is rarely low;
        // the axis stays within 0-100% all the same.
        let entries = (panel.lines.len() + panel.references.len()) as f64;
        let y_lo = (lo - span * (0.1 + 0.09 * entries)).max(lo.min(0.0));
        let y_hi = (hi + span * 0.06).min(hi.max(100.0));
        let (x_lo, x_hi) = self.x_range();
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .margin_right(28)
            .x_label_area_size(56)
            .y_label_area_size(78)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("sparsity: weights pruned (log scale of the weights left)")
            .y_desc("test accuracy (%)")
            .axis_desc_style(AXIS_DESC)
            .label_style(TICK_LABEL)
            .y_label_formatter(&|v| fmt_num(*v))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(draw_error)?;
        // Tick labels by hand, at round sparsities that leave room between them.
        let mut placed: Vec<i32> = Vec::new();
        for s in TICKS {
            let d = decades(s);
            let (px, py) = chart.backend_coord(&(d, y_lo));
            if d < x_lo || d > x_hi || placed.iter().any(|p| (p - px).abs() < TICK_GAP_PX) {
                continue;
            }
            placed.push(px);
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(d, y_lo), (d, y_hi)], BLACK.mix(0.12))))
                .map_err(draw_error)?;
            let style = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Center, VPos::Top);
            root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK)).map_err(draw_error)?;
            root.draw(&Text::new(percent(s), (px, py + 8), style)).map_err(draw_error)?;
        }
        for (i, r) in panel.references.iter().enumerate() {
            let grey = BLACK.mix(0.75 - 0.2 * (i % 3) as f64);
            let y = 100.0 * r.value.median;
            let label = match r.value.n {
                1 => format!("{}: {}%", r.label, fmt_num(y)),
                n => format!("{}: {}% (median of {n})", r.label, fmt_num(y)),
            };
            chart
                .draw_series(DashedLineSeries::new([(x_lo, y), (x_hi, y)], 10, 6, grey.stroke_width(2)))
                .map_err(draw_error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 16, y)], grey.stroke_width(2)));
        }
        for (i, line) in panel.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let at = |p: &super::SparsityPoint, v: f64| (decades(p.sparsity), 100.0 * v);
            let upper = line.points.iter().map(|p| at(p, p.value.max));
            let lower = line.points.iter().rev().map(|p| at(p, p.value.min));
            let band: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled()))).map_err(draw_error)?;
            // A single point has no band to speak of: a whisker shows its spread.
            if line.points.len() == 1 {
                let p = &line.points[0];
                let whisker = vec![at(p, p.value.min), at(p, p.value.max)];
                chart
                    .draw_series(std::iter::once(PathElement::new(whisker, color.stroke_width(2))))
                    .map_err(draw_error)?;
            }
            chart
                .draw_series(LineSeries::new(line.points.iter().map(|p| at(p, p.value.median)), color.stroke_width(3)))
                .map_err(draw_error)?
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 16, y)], color.stroke_width(3)));
            chart
                .draw_series(line.points.iter().map(|p| Circle::new(at(p, p.value.median), 4, color.filled())))
                .map_err(draw_error)?;
        }
        super::super::draw_legend_at(&mut chart, SeriesLabelPosition::LowerLeft)
    }
}

impl Figure for AccuracyFigure {
    fn size(&self) -> (u32, u32) {
        (1000, HEADER_HEIGHT + PANEL_HEIGHT * self.panels.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        for (panel, area) in self.panels.iter().zip(body.split_evenly((self.panels.len(), 1))) {
            self.draw_panel(root, &area, panel)?;
        }
        Ok(())
    }
}
