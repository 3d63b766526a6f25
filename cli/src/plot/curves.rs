//! Line figures: one line per curve (the mean), a shaded min–max band around it, and optionally a
//! ring and dashed drop line at each curve's peak. The x axis turns logarithmic when x spans more
//! than a factor of 10, since widths and learning rates are swept geometrically.

use super::aggregate::{peak, Curve};
use super::{draw_error, draw_header, fmt_num, Figure, COLORS, HEADER_HEIGHT};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// x spans more than this factor ⇒ log axis.
const LOG_SPAN: f64 = 10.0;

/// A line figure, ready to draw.
pub struct CurveFigure {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub curves: Vec<Curve>,
    /// Ring the highest mean of each curve and name it in the legend.
    pub mark_peaks: bool,
}

impl CurveFigure {
    /// Whether x is drawn on a log axis: all x positive and spanning more than [`LOG_SPAN`].
    pub fn log_x(&self) -> bool {
        let (lo, hi) = self.x_range();
        lo > 0.0 && hi / lo > LOG_SPAN
    }

    fn x_range(&self) -> (f64, f64) {
        let xs = self.curves.iter().flat_map(|c| c.points.iter().map(|p| p.x));
        xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    /// The y range with room above for the legend, which sits in the upper right.
    fn y_range(&self) -> (f64, f64) {
        let ys = self.curves.iter().flat_map(|c| c.points.iter().flat_map(|p| [p.min, p.max]));
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) * 0.1 };
        (lo - span * 0.08, hi + span * (0.12 + 0.07 * self.curves.len() as f64))
    }

    fn legend_label(&self, curve: &Curve) -> String {
        match (self.mark_peaks, peak(&curve.points)) {
            (true, Some(p)) => {
                format!("{}: peak {} at {} {}", curve.label, fmt_num(p.mean), self.x_label, fmt_num(p.x))
            }
            _ => curve.label.clone(),
        }
    }

    fn draw_on<DB: DrawingBackend, X>(&self, area: &DrawingArea<DB, Shift>, x_spec: X) -> anyhow::Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let (y_lo, y_hi) = self.y_range();
        let x_desc = if self.log_x() { format!("{} (log scale)", self.x_label) } else { self.x_label.clone() };
        let mut chart = super::line_chart(area, x_spec, y_lo..y_hi, &x_desc, &self.y_label)?;

        for (i, curve) in self.curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let upper = curve.points.iter().map(|p| (p.x, p.max));
            let lower = curve.points.iter().rev().map(|p| (p.x, p.min));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    color.mix(0.18).filled(),
                )))
                .map_err(draw_error)?;
            chart
                .draw_series(LineSeries::new(curve.points.iter().map(|p| (p.x, p.mean)), color.stroke_width(3)))
                .map_err(draw_error)?
                .label(self.legend_label(curve))
                .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 16, y)], color.stroke_width(3)));
            chart
                .draw_series(curve.points.iter().map(|p| Circle::new((p.x, p.mean), 3, color.filled())))
                .map_err(draw_error)?;
            if let (true, Some(p)) = (self.mark_peaks, peak(&curve.points)) {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(p.x, y_lo), (p.x, p.mean)],
                        6,
                        5,
                        color.mix(0.8).stroke_width(2),
                    ))
                    .map_err(draw_error)?;
                chart
                    .draw_series(std::iter::once(Circle::new((p.x, p.mean), 9, color.stroke_width(3))))
                    .map_err(draw_error)?;
            }
        }
        super::draw_legend(&mut chart)
    }
}

impl Figure for CurveFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let (lo, hi) = self.x_range();
        if !(lo.is_finite() && hi.is_finite()) {
            anyhow::bail!("figure `{}`: no points to draw", self.title);
        }
        if self.log_x() {
            self.draw_on(&body, (lo / 1.15..hi * 1.15).log_scale())
        } else {
            let pad = if hi > lo { (hi - lo) * 0.04 } else { lo.abs().max(1.0) * 0.5 };
            self.draw_on(&body, lo - pad..hi + pad)
        }
    }
}
