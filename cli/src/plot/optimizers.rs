//! The optimizers figure: for each problem setting of the sweep (its varying parameters other than
//! the optimizer, weight decay and seed), the training loss of each optimizer at its best
//! configuration, against steps on the left and against seconds on the right, on a log scale.
//! The best configuration of an optimizer (its step size and settings) is the one that reached the
//! sweep's `target_loss` in the fewest steps, averaged over seeds, and among those that never did,
//! the lowest final training loss; a diverged run counts as infinitely bad.

use super::aggregate::{self};
use super::{draw_error, draw_header, fmt_num, render, Figure, Plotted, AXIS_DESC, COLORS, HEADER_HEIGHT};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use sweep_results::{MetricRow, TrialRow};

pub const WORKLOAD: &str = "optimizers";
const LOSS: &str = "train_loss";
const SECONDS: &str = "seconds";
const STEPS_TO_TARGET: &str = "steps_to_target";
/// Parameters that make a contender rather than a problem setting.
const CONTENDER: [&str; 3] = ["optimizer", "weight_decay", aggregate::SEED];
/// Settings drawn at most; the rest are named in a note.
const MAX_SETTINGS: usize = 6;
const ROW_HEIGHT: u32 = 340;

pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD)
}

/// One recorded point of a trial: (step, seconds, training loss).
type Point = (f64, f64, f64);

/// Per trial, per step: (training loss, seconds), as the metrics rows bring them.
type Series<'a> = BTreeMap<&'a str, BTreeMap<i64, (Option<f64>, Option<f64>)>>;

/// Per optimizer name: the best score so far, its configuration's label and runs.
type Best = BTreeMap<String, ((f64, f64), String, Vec<Run>)>;

/// A trial's points and the step it reached the target at, if it did.
#[derive(Debug, Clone, Default)]
struct Run {
    points: Vec<Point>,
    reached: Option<f64>,
}

/// One optimizer's line in one setting.
struct Line {
    label: String,
    points: Vec<Point>,
}

struct Setting {
    label: String,
    lines: Vec<Line>,
}

struct OptimizersFigure {
    title: String,
    subtitle: String,
    settings: Vec<Setting>,
}

pub fn plot(
    sweep: &str,
    done: &[&TrialRow],
    metrics: Vec<MetricRow>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let mut series: Series = BTreeMap::new();
    let mut reached: BTreeMap<&str, f64> = BTreeMap::new();
    for row in metrics.iter().filter(|r| !r.superseded) {
        let at = series.entry(&row.trial_id).or_default().entry(row.epoch as i64).or_default();
        match row.metric.as_str() {
            LOSS => at.0 = Some(row.value),
            SECONDS => at.1 = Some(row.value),
            STEPS_TO_TARGET => {
                reached.insert(&row.trial_id, row.value);
            }
            _ => {}
        }
    }
    let trial_run = |t: &TrialRow| -> Run {
        let Some(by_step) = series.get(t.trial_id.as_str()) else { return Run::default() };
        let points =
            by_step.iter().filter_map(|(step, (loss, seconds))| Some((*step as f64, (*seconds)?, (*loss)?))).collect();
        Run { points, reached: reached.get(t.trial_id.as_str()).copied() }
    };
    let varying = aggregate::varying_params(done);
    let setting_params: Vec<String> = varying.iter().filter(|p| !CONTENDER.contains(&p.as_str())).cloned().collect();
    let mut settings = Vec::new();
    for (label, trials) in aggregate::groups(done, &setting_params) {
        let lines = best_lines(&trials, &trial_run, varying.iter().any(|p| p == "weight_decay"));
        if !lines.is_empty() {
            settings.push(Setting { label, lines });
        }
    }
    if settings.is_empty() {
        anyhow::bail!("sweep `{sweep}`: no per-step training loss in its metrics files, so there is nothing to plot");
    }
    if settings.len() > MAX_SETTINGS {
        let dropped: Vec<String> = settings.drain(MAX_SETTINGS..).map(|s| s.label).collect();
        plotted.notes.push(format!("drew the first {MAX_SETTINGS} settings; left out {}", dropped.join("; ")));
    }
    let figure = OptimizersFigure {
        title: sweep.to_string(),
        subtitle:
            "training loss of each optimizer at its best configuration (fewest steps to the target loss), against steps and seconds"
                .into(),
        settings,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-optimizers"))?);
    Ok(())
}

/// For each optimizer name among `trials`, its best configuration (see the module's doc), as the
/// mean over its seeds at each recorded step.
fn best_lines(trials: &[&TrialRow], run_of: &dyn Fn(&TrialRow) -> Run, with_decay: bool) -> Vec<Line> {
    // Configuration (optimizer table and weight decay, as JSON) -> its label and its trials' runs.
    let mut configs: BTreeMap<String, (String, String, Vec<Run>)> = BTreeMap::new();
    for t in trials {
        let optimizer = t.params.get("optimizer").cloned().unwrap_or(Value::Null);
        let decay = t.params.get("weight_decay").cloned().unwrap_or(Value::Null);
        let name = optimizer.get("name").map(aggregate::plain).unwrap_or_else(|| "?".into());
        let mut label = format!("{name} lr {}", optimizer.get("lr").map(aggregate::plain).unwrap_or_default());
        if with_decay {
            label.push_str(&format!(", weight decay {}", aggregate::plain(&decay)));
        }
        let key = format!("{optimizer}|{decay}");
        configs.entry(key).or_insert_with(|| (name, label, vec![])).2.push(run_of(t));
    }
    // (mean steps to the target, infinite unless every seed reached it; mean final loss).
    let score = |runs: &[Run]| {
        let n = runs.len().max(1) as f64;
        let steps = runs.iter().map(|r| r.reached.unwrap_or(f64::INFINITY)).sum::<f64>() / n;
        let last = runs.iter().map(|r| r.points.last().map_or(f64::INFINITY, |p| p.2)).sum::<f64>() / n;
        (steps, if last.is_finite() { last } else { f64::INFINITY })
    };
    let mut best: Best = BTreeMap::new();
    for (name, label, runs) in configs.into_values() {
        let s = score(&runs);
        let better = |old: &(f64, f64)| s.0.total_cmp(&old.0).then(s.1.total_cmp(&old.1)).is_lt();
        if best.get(&name).is_none_or(|(old, _, _)| better(old)) {
            best.insert(name, (s, label, runs));
        }
    }
    best.into_values()
        .filter(|(_, _, runs)| runs.iter().any(|r| !r.points.is_empty()))
        .map(|((steps, _), label, runs)| {
            let label = if steps.is_finite() { format!("{label}: target at step {}", fmt_num(steps)) } else { label };
            let points: Vec<Vec<Point>> = runs.into_iter().map(|r| r.points).collect();
            Line { label, points: mean_by_step(&points) }
        })
        .collect()
}

/// The mean (seconds, loss) over `runs` at each step all of them recorded.
fn mean_by_step(runs: &[Vec<Point>]) -> Vec<Point> {
    let mut at: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
    for run in runs {
        for &(step, seconds, loss) in run {
            at.entry(step as i64).or_default().push((seconds, loss));
        }
    }
    at.into_iter()
        .filter(|(_, v)| v.len() == runs.len())
        .map(|(step, v)| {
            let n = v.len() as f64;
            (step as f64, v.iter().map(|p| p.0).sum::<f64>() / n, v.iter().map(|p| p.1).sum::<f64>() / n)
        })
        .collect()
}

impl Setting {
    /// The log-scale loss axis: the positive finite losses, with room above for the legend.
    fn loss_range(&self) -> (f64, f64) {
        let losses = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.2)).filter(|v| v.is_finite() && *v > 0.0);
        let (lo, hi) = losses.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo.is_finite() && hi > lo {
            (lo * 0.7, hi * 10f64.powf(0.4 + 0.12 * self.lines.len() as f64))
        } else {
            (1e-3, 10.0)
        }
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x_of: fn(&Point) -> f64,
        x_desc: &str,
        legend: bool,
    ) -> anyhow::Result<()> {
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(x_of));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (x_lo, x_hi) = if x_hi > x_lo { (x_lo.min(0.0), x_hi) } else { (0.0, 1.0) };
        let (y_lo, y_hi) = self.loss_range();
        let mut chart = super::line_chart(area, x_lo..x_hi, (y_lo..y_hi).log_scale(), x_desc, "training loss")?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points = line.points.iter().filter(|p| p.2.is_finite() && p.2 > 0.0).map(|p| (x_of(p), p.2));
            let series = chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(draw_error)?;
            if legend {
                series
                    .label(line.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 16, y)], color.stroke_width(3)));
            }
        }
        if legend {
            super::draw_legend(&mut chart)?;
        }
        Ok(())
    }
}

impl Figure for OptimizersFigure {
    fn size(&self) -> (u32, u32) {
        (1200, HEADER_HEIGHT + ROW_HEIGHT * self.settings.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let rows = body.split_evenly((self.settings.len(), 1));
        for (setting, row) in self.settings.iter().zip(&rows) {
            let row = if setting.label.is_empty() {
                row.clone()
            } else {
                row.titled(&setting.label, AXIS_DESC).map_err(draw_error)?
            };
            let (left, right) = row.split_horizontally(row.dim_in_pixel().0 / 2);
            setting.panel(&left, |p| p.0, "step", true)?;
            setting.panel(&right, |p| p.1, "seconds in training steps", false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_configuration_of_each_optimizer_is_the_lowest_mean_final_loss() {
        let row = |id: &str, optimizer: Value, seed: i64| TrialRow {
            trial_id: id.into(),
            workload: WORKLOAD.into(),
            params: [("optimizer".to_string(), optimizer), ("seed".to_string(), seed.into())].into_iter().collect(),
            ..super::super::testdata::trials().remove(0)
        };
        let sgd_small = serde_json::json!({"name": "sgd", "lr": 0.1});
        let sgd_large = serde_json::json!({"name": "sgd", "lr": 1.0});
        let shampoo = serde_json::json!({"name": "shampoo", "lr": 0.3});
        let trials = [
            row("a", sgd_small.clone(), 0),
            row("b", sgd_small, 1),
            row("c", sgd_large.clone(), 0),
            row("d", sgd_large, 1),
            row("e", shampoo, 0),
        ];
        let run = |points: Vec<Point>, reached: Option<f64>| Run { points, reached };
        let runs: BTreeMap<&str, Run> = [
            ("a", run(vec![(5.0, 0.1, 0.4), (10.0, 0.2, 0.2)], None)),
            ("b", run(vec![(5.0, 0.1, 0.4), (10.0, 0.2, 0.3)], None)),
            // The large step size is better on one seed and diverges on the other.
            ("c", run(vec![(5.0, 0.1, 0.01), (10.0, 0.2, 0.001)], None)),
            ("d", run(vec![(5.0, 0.1, f64::NAN)], None)),
            ("e", run(vec![(5.0, 0.3, 0.05), (10.0, 0.6, 0.01)], Some(10.0))),
        ]
        .into_iter()
        .collect();
        let refs: Vec<&TrialRow> = trials.iter().collect();
        let lines = best_lines(&refs, &|t| runs[t.trial_id.as_str()].clone(), false);
        let labels: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["sgd lr 0.1", "shampoo lr 0.3: target at step 10"]);
        assert_eq!(lines[0].points, vec![(5.0, 0.1, 0.4), (10.0, 0.2, 0.25)]);
        // Reaching the target first beats a lower final loss.
        let mut runs = runs;
        runs.insert("a", run(vec![(5.0, 0.1, 0.4), (10.0, 0.2, 0.2)], Some(10.0)));
        runs.insert("b", run(vec![(5.0, 0.1, 0.4), (10.0, 0.2, 0.3)], Some(20.0)));
        runs.insert("c", run(vec![(5.0, 0.1, 0.01), (10.0, 0.2, 0.0001)], None));
        runs.insert("d", run(vec![(5.0, 0.1, 0.01), (10.0, 0.2, 0.0001)], None));
        let lines = best_lines(&refs, &|t| runs[t.trial_id.as_str()].clone(), false);
        assert_eq!(lines[0].label, "sgd lr 0.1: target at step 15");
    }
}
