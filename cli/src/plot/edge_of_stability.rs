//! The edge-of-stability figure (Cohen et al. 2021, Figure 1): the sharpness of each trial against
//! the step, with its stability threshold (2/eta for gradient descent) as a dashed line of the same
//! colour, and the training loss beneath on the same step axis. Trials are drawn one line each, not
//! averaged: at the edge the trajectories are chaotic, and a mean would smooth away the effect.

use super::aggregate::{self};
use super::{draw_error, draw_header, fmt_num, render, Figure, Plotted, COLORS, HEADER_HEIGHT};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use sweep_results::{MetricRow, TrialRow};

pub const WORKLOAD: &str = "edge_of_stability";
const SHARPNESS: &str = "sharpness";
/// Adam's trials are compared through the preconditioned sharpness.
const PRECONDITIONED: &str = "preconditioned_sharpness";
const THRESHOLD: &str = "stability_threshold";
const LOSS: &str = "train_loss";

pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD)
}

/// One trial's line: (step, value) in step order.
struct Line {
    label: String,
    sharpness: Vec<(f64, f64)>,
    threshold: Option<f64>,
    loss: Vec<(f64, f64)>,
}

struct EdgeFigure {
    title: String,
    subtitle: String,
    sharpness_label: String,
    lines: Vec<Line>,
}

/// One trial's curves by metric: (step, value) points.
type Series<'a> = BTreeMap<&'a str, Vec<(f64, f64)>>;

pub fn plot(
    sweep: &str,
    done: &[&TrialRow],
    metrics: Vec<MetricRow>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let varying: Vec<String> = aggregate::varying_params(done);
    let mut by_trial: BTreeMap<&str, Series> = BTreeMap::new();
    for row in metrics.iter().filter(|r| !r.superseded) {
        if [SHARPNESS, PRECONDITIONED, THRESHOLD, LOSS].contains(&row.metric.as_str()) {
            by_trial
                .entry(&row.trial_id)
                .or_default()
                .entry(&row.metric)
                .or_default()
                .push((row.epoch as f64, row.value));
        }
    }
    let preconditioned = by_trial.values().any(|m| m.contains_key(PRECONDITIONED));
    let measured = if preconditioned { PRECONDITIONED } else { SHARPNESS };
    let mut lines: Vec<Line> = Vec::new();
    for t in done {
        let Some(series) = by_trial.get_mut(t.trial_id.as_str()) else { continue };
        for points in series.values_mut() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let label = match varying.is_empty() {
            true => t.trial_id.clone(),
            false => varying
                .iter()
                .map(|p| format!("{p} {}", t.params.get(p).map(aggregate::plain).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        lines.push(Line {
            label,
            sharpness: series.remove(measured).unwrap_or_default(),
            threshold: series.get(THRESHOLD).and_then(|v| v.first()).map(|p| p.1),
            loss: series.remove(LOSS).unwrap_or_default(),
        });
    }
    lines.retain(|l| !l.sharpness.is_empty() || !l.loss.is_empty());
    if lines.is_empty() {
        anyhow::bail!(
            "sweep `{sweep}`: no per-step sharpness or training loss in its metrics files, so there is nothing to plot"
        );
    }
    // Largest threshold first: the legend then reads top to bottom as the dashed lines do.
    lines.sort_by(|a, b| b.threshold.unwrap_or(0.0).total_cmp(&a.threshold.unwrap_or(0.0)));
    if lines.len() > COLORS.len() {
        let dropped: Vec<String> = lines.drain(COLORS.len()..).map(|l| l.label).collect();
        plotted.notes.push(format!("drew the first {} trials; left out {}", COLORS.len(), dropped.join("; ")));
    }
    let what = if preconditioned {
        "preconditioned sharpness (top eigenvalue of P^-1 H)"
    } else {
        "sharpness (top Hessian eigenvalue)"
    };
    let figure = EdgeFigure {
        title: sweep.to_string(),
        subtitle: format!("{what} per step, dashed: each trial's stability threshold; below: training loss"),
        sharpness_label: if preconditioned { "preconditioned sharpness".into() } else { "sharpness".into() },
        lines,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-sharpness"))?);
    Ok(())
}

impl EdgeFigure {
    fn steps(&self) -> (f64, f64) {
        let xs = self.lines.iter().flat_map(|l| l.sharpness.iter().chain(&l.loss).map(|p| p.0));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        }
    }

    /// The sharpness axis: up to the highest value, and the thresholds within twice that (a small
    /// step size's far-away threshold would squash every curve to the bottom; its legend entry
    /// says so instead), with room for the legend.
    fn sharpness_range(&self) -> (f64, f64) {
        let highest = self.lines.iter().flat_map(|l| l.sharpness.iter().map(|p| p.1)).filter(|v| v.is_finite());
        let highest = highest.fold(0.0, f64::max);
        let near = self.lines.iter().filter_map(|l| l.threshold).filter(|t| t.is_finite() && *t <= 2.0 * highest);
        let top = near.fold(highest, f64::max);
        (0.0, (top * (1.15 + 0.06 * self.lines.len() as f64)).max(1e-9))
    }

    fn loss_range(&self) -> (f64, f64) {
        let ys = self.lines.iter().flat_map(|l| l.loss.iter().map(|p| p.1)).filter(|v| v.is_finite());
        let hi = ys.fold(0.0, f64::max);
        (0.0, (hi * 1.05).max(1e-9))
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y_label: &str,
        (y_lo, y_hi): (f64, f64),
        lines: &dyn Fn(&Line) -> &[(f64, f64)],
        thresholds: bool,
    ) -> anyhow::Result<()> {
        let (x_lo, x_hi) = self.steps();
        let mut chart = super::line_chart(area, x_lo..x_hi, y_lo..y_hi, "step", y_label)?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points = lines(line).iter().copied().filter(|p| p.1.is_finite());
            let series = chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(draw_error)?;
            if thresholds {
                let label = match line.threshold {
                    Some(t) if t > y_hi => format!("{}: threshold {} (above the chart)", line.label, fmt_num(t)),
                    Some(t) => format!("{}: threshold {}", line.label, fmt_num(t)),
                    None => line.label.clone(),
                };
                series
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 16, y)], color.stroke_width(3)));
                if let Some(t) = line.threshold.filter(|t| *t <= y_hi) {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(x_lo, t), (x_hi, t)],
                            8,
                            6,
                            color.mix(0.9).stroke_width(2),
                        ))
                        .map_err(draw_error)?;
                }
            }
        }
        if thresholds {
            super::draw_legend(&mut chart)?;
        }
        Ok(())
    }
}

impl Figure for EdgeFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 960)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let height = body.dim_in_pixel().1;
        let (top, bottom) = body.split_vertically(height * 3 / 5);
        self.panel(&top, &self.sharpness_label, self.sharpness_range(), &|l| &l.sharpness, true)?;
        self.panel(&bottom, "training loss", self.loss_range(), &|l| &l.loss, false)
    }
}
