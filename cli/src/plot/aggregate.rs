//! The numbers behind the figures, with no drawing: which parameters vary, trials split into the
//! groups a figure shows as separate lines, final metrics reduced to mean and min–max band per x,
//! the peak of a curve, and the row × epoch grid of a per-epoch metric (latest attempt wins).

use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use sweep_results::{MetricRow, TrialRow};

/// The parameter that names a replicate rather than a configuration; never an x axis.
pub const SEED: &str = "seed";

/// A parameter's value as a number; booleans, strings and objects are not numbers.
pub fn numeric(value: &Value) -> Option<f64> {
    value.as_f64()
}

/// Parameters whose value differs across `trials` (a missing value counts as a value), sorted.
pub fn varying_params(trials: &[&TrialRow]) -> Vec<String> {
    let names: BTreeSet<&String> = trials.iter().flat_map(|t| t.params.keys()).collect();
    names
        .into_iter()
        .filter(|name| {
            let first = trials.first().and_then(|t| t.params.get(*name));
            trials.iter().any(|t| t.params.get(*name) != first)
        })
        .cloned()
        .collect()
}

/// Varying parameters that are a number in every trial, sorted by name.
pub fn varying_numeric_params(trials: &[&TrialRow]) -> Vec<String> {
    varying_params(trials)
        .into_iter()
        .filter(|name| trials.iter().all(|t| t.params.get(name).and_then(numeric).is_some()))
        .collect()
}

/// The distinct values of a parameter, as they print (`0.1`, `"adam"`), in sorted order.
pub fn distinct_values(trials: &[&TrialRow], name: &str) -> Vec<Value> {
    let mut values: Vec<Value> = Vec::new();
    for v in trials.iter().filter_map(|t| t.params.get(name)) {
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    values.sort_by(compare_values);
    values
}

/// Numbers compare as numbers, anything else by its JSON text, numbers first.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

/// A value as a person reads it: `0.1`, `200`, `adam` (no quotes).
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How a grouping parameter reads in a legend: `label_noise` is "noise", others lose underscores.
pub fn short_name(param: &str) -> String {
    match param {
        "label_noise" => "noise".to_string(),
        other => other.replace('_', " "),
    }
}

/// Trials that share the values of `group_by`, with a legend label such as "noise 0.1, weight
/// decay 0"; one unnamed group when `group_by` is empty. Groups are in sorted order of values.
pub fn groups<'a>(trials: &[&'a TrialRow], group_by: &[String]) -> Vec<(String, Vec<&'a TrialRow>)> {
    let mut out: Vec<(Vec<Value>, Vec<&'a TrialRow>)> = Vec::new();
    for &t in trials {
        let key: Vec<Value> = group_by.iter().map(|p| t.params.get(p).cloned().unwrap_or(Value::Null)).collect();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(t),
            None => out.push((key, vec![t])),
        }
    }
    out.sort_by(|(a, _), (b, _)| {
        a.iter().zip(b).map(|(x, y)| compare_values(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    });
    out.into_iter()
        .map(|(key, members)| {
            let label = group_by
                .iter()
                .zip(&key)
                .map(|(p, v)| format!("{} {}", short_name(p), plain(v)))
                .collect::<Vec<_>>()
                .join(", ");
            (label, members)
        })
        .collect()
}

/// One x of a curve: the mean, min and max of y over the `n` trials at that x.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// A line of a figure: its legend label and its points in increasing x.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
}

/// The final `metric` against parameter `x`, aggregated over every trial at the same x. Trials
/// without the parameter or the metric are skipped.
pub fn curve(trials: &[&TrialRow], x: &str, metric: &str) -> Vec<Point> {
    let mut xy: Vec<(f64, f64)> = trials
        .iter()
        .filter_map(|t| Some((t.params.get(x).and_then(numeric)?, *t.finals.get(metric)?)))
        .filter(|(_, y)| y.is_finite())
        .collect();
    xy.sort_by(|a, b| a.0.total_cmp(&b.0));
    xy.chunk_by(|a, b| a.0 == b.0).map(|same_x| summarize(same_x[0].0, same_x.iter().map(|p| p.1))).collect()
}

/// Mean, min and max of `ys` at `x`; `ys` must not be empty.
pub fn summarize(x: f64, ys: impl Iterator<Item = f64>) -> Point {
    let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
    for y in ys {
        n += 1;
        sum += y;
        min = min.min(y);
        max = max.max(y);
    }
    Point { x, mean: sum / n as f64, min, max, n }
}

/// The point with the highest mean (the first one on a tie), if the curve has any.
pub fn peak(points: &[Point]) -> Option<&Point> {
    points.iter().reduce(|best, p| if p.mean > best.mean { p } else { best })
}

/// A per-epoch metric laid out as rows (values of a parameter, increasing) × columns (epochs,
/// increasing); `cells[row][col]` is the mean over the trials of that row, `None` where no trial
/// reported that epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub rows: Vec<f64>,
    pub epochs: Vec<i32>,
    pub cells: Vec<Vec<Option<f64>>>,
}

impl Grid {
    /// Smallest and largest cell value, if any cell has one.
    pub fn value_range(&self) -> Option<(f64, f64)> {
        self.cells.iter().flatten().flatten().fold(None, |r, &v| match r {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    }
}

/// The value of `metric` per (trial, epoch), from the highest attempt that reported it: a retried
/// trial's earlier attempts were cut short and are not part of its result.
pub fn latest_per_epoch<'a>(metrics: &'a [MetricRow], metric: &str) -> HashMap<(&'a str, i32), f64> {
    let mut best: HashMap<(&str, i32), &MetricRow> = HashMap::new();
    for m in metrics.iter().filter(|m| m.metric == metric && m.value.is_finite()) {
        let slot = best.entry((m.trial_id.as_str(), m.epoch)).or_insert(m);
        if (m.attempt, m.step, m.recorded_at_us) > (slot.attempt, slot.step, slot.recorded_at_us) {
            *slot = m;
        }
    }
    best.into_iter().map(|(k, m)| (k, m.value)).collect()
}

/// The row × epoch grid of `metric` over `trials`, rows keyed by numeric parameter `row_param`.
pub fn grid(trials: &[&TrialRow], metrics: &[MetricRow], row_param: &str, metric: &str) -> Grid {
    let row_of: HashMap<&str, f64> =
        trials.iter().filter_map(|t| Some((t.trial_id.as_str(), t.params.get(row_param).and_then(numeric)?))).collect();
    let values: Vec<(f64, i32, f64)> = latest_per_epoch(metrics, metric)
        .into_iter()
        .filter_map(|((trial, epoch), v)| Some((*row_of.get(trial)?, epoch, v)))
        .collect();
    let mut rows: Vec<f64> = values.iter().map(|v| v.0).collect();
    rows.sort_by(f64::total_cmp);
    rows.dedup();
    let epochs: Vec<i32> = values.iter().map(|v| v.1).collect::<BTreeSet<_>>().into_iter().collect();
    let mut sums = vec![vec![(0.0, 0usize); epochs.len()]; rows.len()];
    for (row, epoch, v) in values {
        let r = rows.partition_point(|x| *x < row);
        let c = epochs.partition_point(|e| *e < epoch);
        sums[r][c].0 += v;
        sums[r][c].1 += 1;
    }
    let cells =
        sums.into_iter().map(|row| row.into_iter().map(|(s, n)| (n > 0).then(|| s / n as f64)).collect()).collect();
    Grid { rows, epochs, cells }
}

/// Merges neighbouring epochs so the grid has at most `max_cols` columns, each the mean of the
/// cells it covers and named by its first epoch: thousands of one-pixel columns read no better
/// and make the SVG heavy.
pub fn bin_epochs(grid: Grid, max_cols: usize) -> Grid {
    let n = grid.epochs.len();
    if n <= max_cols || max_cols == 0 {
        return grid;
    }
    let per_bin = n.div_ceil(max_cols);
    let epochs = grid.epochs.chunks(per_bin).map(|c| c[0]).collect();
    let cells = grid
        .cells
        .iter()
        .map(|row| {
            row.chunks(per_bin)
                .map(|bin| {
                    let seen: Vec<f64> = bin.iter().flatten().copied().collect();
                    (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
                })
                .collect()
        })
        .collect();
    Grid { rows: grid.rows, epochs, cells }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testdata;

    #[test]
    fn varying_and_numeric_params() {
        let trials = testdata::trials();
        let refs: Vec<&TrialRow> = trials.iter().collect();
        assert_eq!(varying_params(&refs), ["label_noise", "seed", "width"]);
        assert_eq!(varying_numeric_params(&refs), ["label_noise", "seed", "width"]);
        assert_eq!(distinct_values(&refs, "label_noise"), [serde_json::json!(0.1), serde_json::json!(0.2)]);
    }

    #[test]
    fn groups_are_sorted_and_labelled() {
        let trials = testdata::trials();
        let refs: Vec<&TrialRow> = trials.iter().collect();
        let g = groups(&refs, &["label_noise".to_string()]);
        assert_eq!(
            g.iter().map(|(l, m)| (l.as_str(), m.len())).collect::<Vec<_>>(),
            [("noise 0.1", 15), ("noise 0.2", 15)]
        );
        let one = groups(&refs, &[]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, "");
    }

    #[test]
    fn curve_has_mean_and_min_max_band_over_seeds_and_the_right_peak() {
        let trials = testdata::trials();
        let refs: Vec<&TrialRow> = trials.iter().filter(|t| t.params["label_noise"] == 0.2).collect();
        let points = curve(&refs, "width", "test_error");
        assert_eq!(points.iter().map(|p| p.x).collect::<Vec<_>>(), testdata::WIDTHS.map(f64::from));
        let at_peak = &points[2];
        // testdata: error(w=40, noise 0.2) = 0.6 + 0.2 * 0.5 = 0.7, seeds add -0.02, 0, +0.02.
        assert!((at_peak.mean - 0.7).abs() < 1e-12, "{at_peak:?}");
        assert!((at_peak.min - 0.68).abs() < 1e-12 && (at_peak.max - 0.72).abs() < 1e-12, "{at_peak:?}");
        assert_eq!(at_peak.n, 3);
        assert_eq!(peak(&points).map(|p| p.x), Some(40.0));
        assert_eq!(peak(&[]), None);
    }

    #[test]
    fn grid_takes_the_latest_attempt_and_averages_over_trials() {
        let trials = testdata::trials();
        let mut metrics = testdata::metrics(&trials);
        // A first attempt of one trial that was cut short reported a wild value; it must not count.
        let mut stale = metrics.iter().find(|m| m.attempt == 2).expect("testdata has a retried trial").clone();
        stale.attempt = 1;
        stale.value = 100.0;
        metrics.push(stale);
        let refs: Vec<&TrialRow> = trials.iter().filter(|t| t.params["label_noise"] == 0.1).collect();
        let g = grid(&refs, &metrics, "width", "test_error");
        assert_eq!(g.rows, testdata::WIDTHS.map(f64::from));
        assert_eq!(g.epochs, [1, 2, 3]);
        // Last epoch equals the final value: mean over seeds of 0.6 + 0.1 * 0.5 at the peak width.
        let last = g.cells[2][2].expect("cell");
        assert!((last - 0.65).abs() < 1e-12, "{last}");
        let (lo, hi) = g.value_range().expect("cells");
        assert!(lo > 0.0 && hi < 1.0, "{lo} {hi}");
    }

    #[test]
    fn binning_caps_columns_and_averages() {
        let g = Grid {
            rows: vec![1.0],
            epochs: (1..=10).collect(),
            cells: vec![(1..=10).map(|e| Some(e as f64)).collect()],
        };
        let b = bin_epochs(g, 4);
        assert_eq!(b.epochs, [1, 4, 7, 10]);
        assert_eq!(b.cells[0], [Some(2.0), Some(5.0), Some(8.0), Some(10.0)]);
    }
}
