//! `sweep plot --x PARAM --y METRIC [--curves]`: the axes the user picked, instead of the figures
//! chosen from the workload. Without `--curves`, the final METRIC against PARAM; with it, METRIC
//! against epoch (learning curves), one line per value of PARAM. Drawn by `curves` like the rest.

use super::aggregate::{self, Curve};
use super::curves::CurveFigure;
use super::{render, slug, Plotted};
use std::collections::BTreeSet;
use std::path::Path;
use sweep_results::{MetricRow, TrialRow};

/// Learning-curve figures show at most this many lines; more values of `--x` are left out, named.
pub const MAX_LINES: usize = 10;

/// What the user asked to see.
#[derive(Debug, Clone, Default)]
pub struct Axes {
    /// A parameter: the x axis, or with `curves` the one line per value.
    pub x: Option<String>,
    /// A metric: the y axis [default: the first final metric by name].
    pub y: Option<String>,
    /// Draw the metric per epoch instead of its final value.
    pub curves: bool,
}

impl Axes {
    /// Whether the user picked anything, so the chosen figure replaces the usual ones.
    pub fn any(&self) -> bool {
        self.x.is_some() || self.y.is_some() || self.curves
    }
}

/// Draws the figure `axes` asks for from the succeeded trials `done`.
pub fn figure(
    sweep: &str,
    done: &[&TrialRow],
    axes: &Axes,
    load_metrics: impl FnOnce() -> anyhow::Result<Vec<MetricRow>>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let finals: BTreeSet<&String> = done.iter().flat_map(|t| t.finals.keys()).collect();
    let y = match &axes.y {
        Some(y) => y.clone(),
        None => {
            let first = finals.first().ok_or_else(|| {
                anyhow::anyhow!("sweep `{sweep}`: its trials report no metrics, so there is nothing to plot")
            })?;
            plotted.notes.push(format!("y axis: {first} (the first metric by name; choose one with --y)"));
            first.to_string()
        }
    };
    if !axes.curves && !finals.contains(&y) {
        anyhow::bail!("sweep `{sweep}`: --y `{y}` is not a metric its trials report; they report {}", listed(&finals));
    }
    if let Some(x) = &axes.x {
        let params: BTreeSet<&String> = done.iter().flat_map(|t| t.params.keys()).collect();
        if !params.contains(x) {
            anyhow::bail!("sweep `{sweep}`: --x `{x}` is not a parameter of its trials; they have {}", listed(&params));
        }
    }
    match (axes.curves, &axes.x) {
        (true, x) => learning_curves(sweep, done, x.as_deref(), &y, load_metrics()?, out, plotted),
        (false, Some(x)) => final_against(sweep, done, x, &y, out, plotted),
        (false, None) => anyhow::bail!(
            "sweep `{sweep}`: --y needs --x PARAM (the final value against a parameter) or --curves (against epoch)"
        ),
    }
}

/// The final `y` against numeric parameter `x`, averaged over the other parameters.
fn final_against(
    sweep: &str,
    done: &[&TrialRow],
    x: &str,
    y: &str,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let points = aggregate::curve(done, x, y);
    if points.is_empty() {
        anyhow::bail!(
            "sweep `{sweep}`: no succeeded trial has a numeric `{x}` and a final `{y}`; numeric parameters that vary: {}",
            aggregate::varying_numeric_params(done).join(", ")
        );
    }
    let n = done.len();
    let figure = CurveFigure {
        title: sweep.to_string(),
        subtitle: format!("final {y} over {n} trials; line: mean at each {x}, band: min to max"),
        x_label: x.to_string(),
        y_label: y.replace('_', " "),
        curves: vec![Curve { label: format!("mean {}", y.replace('_', " ")), points }],
        mark_peaks: false,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-{}-vs-{}", slug(y), slug(x)))?);
    Ok(())
}

/// `y` per epoch, one line per value of `by` (or one line over every trial), each the mean over
/// its trials with a min–max band. A retried trial counts with its latest attempt.
fn learning_curves(
    sweep: &str,
    done: &[&TrialRow],
    by: Option<&str>,
    y: &str,
    metrics: Vec<MetricRow>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let per_epoch = aggregate::latest_per_epoch(&metrics, y);
    if per_epoch.is_empty() {
        let reported: BTreeSet<&String> = metrics.iter().map(|m| &m.metric).collect();
        anyhow::bail!("sweep `{sweep}`: no per-epoch `{y}` in its metrics files; they hold {}", listed(&reported));
    }
    let group_by: Vec<String> = by.map(|p| vec![p.to_string()]).unwrap_or_default();
    let mut groups = aggregate::groups(done, &group_by);
    if groups.len() > MAX_LINES {
        let left: Vec<String> = groups.drain(MAX_LINES..).map(|(label, _)| label).collect();
        plotted.notes.push(format!("drew the first {MAX_LINES} lines; left out {}", left.join("; ")));
    }
    let curves: Vec<Curve> = groups
        .into_iter()
        .map(|(label, members)| Curve {
            label: if label.is_empty() { format!("mean {}", y.replace('_', " ")) } else { label },
            points: per_epoch_mean(&per_epoch, &members),
        })
        .filter(|c: &Curve| !c.points.is_empty())
        .collect();
    let name = match by {
        Some(p) => format!("{sweep}-{}-per-epoch-by-{}", slug(y), slug(p)),
        None => format!("{sweep}-{}-per-epoch", slug(y)),
    };
    let figure = CurveFigure {
        title: sweep.to_string(),
        subtitle: format!("{y} per epoch; line: mean over the trials of each line, band: min to max"),
        x_label: "epoch".to_string(),
        y_label: y.replace('_', " "),
        curves,
        mark_peaks: false,
    };
    plotted.files.extend(render(&figure, out, &name)?);
    Ok(())
}

/// The mean of `members`' values at each epoch any of them reported, with the min-max band.
pub(super) fn per_epoch_mean(
    per_epoch: &std::collections::HashMap<(&str, i32), f64>,
    members: &[&TrialRow],
) -> Vec<aggregate::Point> {
    let epochs: BTreeSet<i32> =
        per_epoch.keys().filter(|(trial, _)| members.iter().any(|t| t.trial_id == *trial)).map(|(_, e)| *e).collect();
    epochs
        .into_iter()
        .map(|e| {
            let ys = members.iter().filter_map(|t| per_epoch.get(&(t.trial_id.as_str(), e)).copied());
            aggregate::summarize(e as f64, ys)
        })
        .collect()
}

/// Names for an error message, at most a dozen.
fn listed(names: &BTreeSet<&String>) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<&str> = names.iter().take(12).map(|s| s.as_str()).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
