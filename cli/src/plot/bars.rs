//! Grouped bar figures, drawn horizontally so that long group names stay readable: one row per
//! group, one bar per series in it (the mean), with a whisker from the min to the max.

use super::aggregate::{self, Point};
use super::{draw_error, draw_header, fmt_num, text_style, Figure, AXIS_DESC, COLORS, HEADER_HEIGHT, TICK_LABEL};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use sweep_results::TrialRow;

/// Pixels per group row.
const ROW_PX: u32 = 64;
/// Room for the group names left of the bars.
const NAME_AREA_PX: u32 = 300;
/// Room for the legend right of the bars.
const LEGEND_AREA_PX: i32 = 240;

pub struct BarsFigure {
    pub title: String,
    pub subtitle: String,
    pub value_label: String,
    /// Names of the bars within a group, in drawing order (top to bottom), with the legend.
    pub series: Vec<String>,
    /// Group name and one summary per series (`None`: the group has no value for that series).
    /// The bar is drawn to `mean`; a figure of medians puts the median there and says so.
    pub groups: Vec<(String, Vec<Option<Point>>)>,
}

impl BarsFigure {
    /// Final metrics in percent: one group per method (the values of `methods` a trial has, the
    /// rest averaged), one bar per `(metric, legend)` of `series`.
    pub fn of_final_percent(
        title: String,
        subtitle: String,
        done: &[&TrialRow],
        methods: &[String],
        series: &[(&str, &str)],
    ) -> BarsFigure {
        let groups = aggregate::groups(done, methods)
            .iter()
            .map(|(_, members)| {
                let name = match methods.is_empty() {
                    true => "all trials".to_string(),
                    false => {
                        methods.iter().map(|m| aggregate::plain(&members[0].params[m])).collect::<Vec<_>>().join(" / ")
                    }
                };
                (name, series.iter().map(|(metric, _)| percent(members, metric)).collect())
            })
            .collect();
        BarsFigure {
            title,
            subtitle,
            value_label: "accuracy (%)".into(),
            series: series.iter().map(|(_, legend)| legend.to_string()).collect(),
            groups,
        }
    }
}

/// Mean, min and max of a final metric over `members`, in percent.
fn percent(members: &[&TrialRow], metric: &str) -> Option<Point> {
    let values: Vec<f64> = members.iter().filter_map(|t| t.finals.get(metric)).map(|v| 100.0 * v).collect();
    (!values.is_empty()).then(|| aggregate::summarize(0.0, values.into_iter()))
}

impl Figure for BarsFigure {
    fn size(&self) -> (u32, u32) {
        (1200, HEADER_HEIGHT + 110 + ROW_PX * self.groups.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let hi = self.groups.iter().flat_map(|(_, s)| s.iter().flatten().map(|p| p.max)).fold(0.0, f64::max);
        let x_hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
        let rows = self.groups.len() as f64;
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .margin_right(LEGEND_AREA_PX)
            .x_label_area_size(56)
            .y_label_area_size(NAME_AREA_PX)
            .build_cartesian_2d(0.0..x_hi, rows..0.0)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(self.value_label.as_str())
            .axis_desc_style(AXIS_DESC)
            .label_style(TICK_LABEL)
            .x_label_formatter(&|v| fmt_num(*v))
            .disable_y_mesh()
            .y_labels(0)
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(draw_error)?;
        let n = self.series.len().max(1) as f64;
        let band = 0.8 / n;
        for k in 0..self.series.len() {
            let color = COLORS[k % COLORS.len()];
            let top = |g: usize| g as f64 + 0.1 + band * k as f64;
            let bars = self.groups.iter().enumerate().filter_map(|(g, (_, s))| s[k].as_ref().map(|p| (g, p)));
            chart
                .draw_series(bars.clone().map(|(g, p)| {
                    Rectangle::new([(0.0, top(g)), (p.mean, top(g) + band * 0.9)], color.mix(0.85).filled())
                }))
                .map_err(draw_error)?;
            chart
                .draw_series(bars.map(|(g, p)| {
                    let y = top(g) + band * 0.45;
                    PathElement::new(vec![(p.min, y), (p.max, y)], BLACK.mix(0.7).stroke_width(2))
                }))
                .map_err(draw_error)?;
        }
        // Group names in the label area, right-aligned against the axis.
        let name_style = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Right, VPos::Center);
        for (g, (name, _)) in self.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, g as f64 + 0.5));
            root.draw(&Text::new(name.as_str(), (px - 10, py), name_style.clone())).map_err(draw_error)?;
        }
        // The legend in the right margin, level with the first row.
        let (right, top) = chart.backend_coord(&(x_hi, 0.0));
        let legend_style = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Left, VPos::Center);
        for (k, name) in self.series.iter().enumerate() {
            let (x, y) = (right + 24, top + 14 + 26 * k as i32);
            let color = COLORS[k % COLORS.len()];
            root.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], color.mix(0.85).filled())).map_err(draw_error)?;
            root.draw(&Text::new(name.as_str(), (x + 26, y), legend_style.clone())).map_err(draw_error)?;
        }
        Ok(())
    }
}
