//! The sparsity study's figures: test accuracy against sparsity, one line per pruning method with
//! the dense network as a dashed reference; each layer's sparsity at the sweep's highest target;
//! and, from the checkpoints, the first layer's weights (dense beside pruned) and the pruned
//! network's masks. Every number is a trial's last evaluated epoch. Lines show the median over
//! seeds: a pruned run that collapses on one seed would drag a mean away from the method's usual.

mod accuracy;
mod bitmap;
mod checkpoint;
mod images;

use super::aggregate::{self, Point};
use super::bars::BarsFigure;
use super::{render, slug, Plotted};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use sweep_results::{MetricRow, TrialRow};

pub const WORKLOAD: &str = "sparsity";
const METHOD: &str = "method";
const PRUNING: &str = "pruning";
const SCOPE: &str = "scope";
const FINAL_SPARSITY: &str = "final_sparsity";
const MODEL: &str = "model";
const QUANTIZE: &str = "quantize";
const DENSE: &str = "dense";
const MAGNITUDE: &str = "magnitude";
/// Methods whose schedule (one-shot or gradual) is part of their name in a legend.
const SCHEDULED: [&str; 3] = [MAGNITUDE, "random", "structured"];
/// Parameters a figure shows by its lines, points or files; any other that varies joins the label
/// of a line. `quantize` only adds the int8 evaluation, so it makes no line of its own.
const SHOWN: [&str; 7] = [METHOD, PRUNING, SCOPE, FINAL_SPARSITY, aggregate::SEED, QUANTIZE, MODEL];
const TEST_ACC: &str = "test_acc";
const TEST_ACC_INT8: &str = "test_acc_int8";
const SPARSITY: &str = "sparsity";
const LAYER_SPARSITY: &str = "sparsity/";

/// Sweeps of the sparsity workload.
pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD)
}

/// One succeeded trial as the figures see it.
#[derive(Clone, Debug)]
pub struct Trial<'a> {
    pub row: &'a TrialRow,
    /// Its line's legend label: "magnitude, gradual", "l1", "dense".
    pub label: String,
    /// The varying parameters outside [`SHOWN`], as they end a label (", lr 0.1"), or empty.
    pub extras: String,
    /// Trained without pruning: method `dense`, or with no such trial in the sweep, target 0.
    pub reference: bool,
    pub method: String,
    /// The `final_sparsity` parameter, the target (0 when absent).
    pub target: f64,
    /// Its metrics at its last evaluated epoch.
    pub last: BTreeMap<String, f64>,
}

impl Trial<'_> {
    /// The fraction of prunable weights that is zero at the end, as measured, else the target.
    fn sparsity(&self) -> f64 {
        self.last.get(SPARSITY).copied().filter(|v| v.is_finite()).unwrap_or(self.target)
    }

    fn seed(&self) -> Option<i64> {
        self.row.params.get(aggregate::SEED).and_then(Value::as_i64)
    }
}

pub fn plot(
    sweep: &str,
    done: &[&TrialRow],
    metrics: Vec<MetricRow>,
    checkpoints: &Path,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let trials = trials(done, &metrics);
    if !trials.iter().any(|t| t.last.contains_key(TEST_ACC)) {
        anyhow::bail!(
            "sweep `{sweep}`: no trial reports `{TEST_ACC}` in its metrics files, so there is nothing to plot"
        );
    }
    // Different models get their own figures: their accuracies and layers do not compare.
    let split: Vec<String> = aggregate::varying_params(done).into_iter().filter(|p| p == MODEL).collect();
    for (setting, rows) in aggregate::groups(done, &split) {
        let members: Vec<Trial> =
            trials.iter().filter(|t| rows.iter().any(|r| std::ptr::eq(*r, t.row))).cloned().collect();
        let (suffix, title_end) = match setting.is_empty() {
            true => (String::new(), String::new()),
            false => (format!("-{}", slug(&setting)), format!(", {setting}")),
        };
        let about = about(sweep, &rows);
        let figure = accuracy::figure(&members, &format!("Test accuracy against sparsity{title_end}"), &about);
        plotted.files.extend(render(&figure, out, &format!("{sweep}-accuracy-vs-sparsity{suffix}"))?);
        match layer_bars(&members, &title_end, sweep) {
            Some(bars) => plotted.files.extend(render(&bars, out, &format!("{sweep}-layer-sparsity{suffix}"))?),
            None => {
                plotted.notes.push(format!("no pruned trial reports `{LAYER_SPARSITY}<layer>`, so no per-layer figure"))
            }
        }
        images::plot(sweep, &members, checkpoints, &title_end, &suffix, out, plotted)?;
    }
    Ok(())
}

/// The sweep's succeeded trials with their last epoch's metrics and their labels.
pub fn trials<'a>(done: &[&'a TrialRow], metrics: &[MetricRow]) -> Vec<Trial<'a>> {
    let varying = aggregate::varying_params(done);
    let extras: Vec<&String> = varying.iter().filter(|p| !SHOWN.contains(&p.as_str())).collect();
    let scope_varies = varying.iter().any(|p| p == SCOPE);
    let mut last = last_epoch(metrics);
    let text = |t: &TrialRow, p: &str| t.params.get(p).map(aggregate::plain).unwrap_or_default();
    let any_dense = done.iter().any(|t| text(t, METHOD) == DENSE);
    done.iter()
        .map(|&row| {
            let method = text(row, METHOD);
            let target = row.params.get(FINAL_SPARSITY).and_then(aggregate::numeric).unwrap_or(0.0);
            let mut parts = vec![method.clone()];
            if SCHEDULED.contains(&method.as_str()) && row.params.contains_key(PRUNING) {
                parts.push(text(row, PRUNING).replace('_', "-"));
            }
            if scope_varies && method != DENSE {
                parts.push(if text(row, SCOPE) == "layer" { "per layer".into() } else { text(row, SCOPE) });
            }
            let extras: String =
                extras.iter().map(|p| format!(", {} {}", aggregate::short_name(p), text(row, p))).collect();
            Trial {
                row,
                label: format!("{}{extras}", parts.join(", ")),
                extras,
                reference: if any_dense { method == DENSE } else { target == 0.0 },
                method,
                target,
                // A trial with no metric rows (results written before the metrics files) keeps
                // the trials table's final values.
                last: last.remove(row.trial_id.as_str()).unwrap_or_else(|| row.finals.clone()),
            }
        })
        .collect()
}

/// Per trial, each metric at the trial's last epoch: superseded rows (an earlier attempt's, redone
/// by a later one) are left out, and of the rest the latest attempt's row wins.
fn last_epoch(metrics: &[MetricRow]) -> HashMap<&str, BTreeMap<String, f64>> {
    let current = || metrics.iter().filter(|m| !m.superseded && m.value.is_finite());
    let mut last: HashMap<&str, i32> = HashMap::new();
    for m in current() {
        let e = last.entry(m.trial_id.as_str()).or_insert(m.epoch);
        *e = (*e).max(m.epoch);
    }
    let mut rows: HashMap<(&str, &str), &MetricRow> = HashMap::new();
    for m in current().filter(|m| last.get(m.trial_id.as_str()) == Some(&m.epoch)) {
        let slot = rows.entry((m.trial_id.as_str(), m.metric.as_str())).or_insert(m);
        if (m.attempt, m.step, m.recorded_at_us) > (slot.attempt, slot.step, slot.recorded_at_us) {
            *slot = m;
        }
    }
    let mut out: HashMap<&str, BTreeMap<String, f64>> = HashMap::new();
    for ((trial, metric), m) in rows {
        out.entry(trial).or_default().insert(metric.to_string(), m.value);
    }
    out
}

/// The median, min and max of some trials' values, and how many there were.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The spread of the finite `values`, if there is one.
pub fn spread(values: impl Iterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Some(Spread { median, min: v[0], max: v[n - 1], n })
}

/// The trials of one target sparsity on a line.
#[derive(Clone, Debug, PartialEq)]
pub struct SparsityPoint {
    /// The `final_sparsity` parameter the trials share.
    pub target: f64,
    /// The median measured sparsity of the trials, where the point is drawn.
    pub sparsity: f64,
    pub value: Spread,
}

/// One method's line: its points by increasing target.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<SparsityPoint>,
}

/// A dense network's value, drawn across the figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub label: String,
    pub value: Spread,
}

/// `metric` per method label and target sparsity (the median over seeds, band min to max), and
/// the dense networks' values. Trials of method `dense` are references only; without any, the
/// target-0 trials are the references and also start their method's line.
pub fn lines(trials: &[Trial], metric: &str) -> (Vec<Line>, Vec<Reference>) {
    let value = |t: &&Trial| t.last.get(metric).copied().filter(|v| v.is_finite());
    let mut by_label: BTreeMap<&str, BTreeMap<u64, Vec<&Trial>>> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.method != DENSE && value(t).is_some()) {
        by_label.entry(&t.label).or_default().entry(t.target.to_bits()).or_default().push(t);
    }
    let lines = by_label
        .into_iter()
        .map(|(label, by_target)| {
            let mut points: Vec<SparsityPoint> = by_target
                .into_values()
                .filter_map(|ts| {
                    Some(SparsityPoint {
                        target: ts[0].target,
                        sparsity: spread(ts.iter().map(|t| t.sparsity()))?.median,
                        value: spread(ts.iter().filter_map(value))?,
                    })
                })
                .collect();
            points.sort_by(|a, b| a.target.total_cmp(&b.target));
            Line { label: label.to_string(), points }
        })
        .collect();
    let mut by_extras: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.reference) {
        if let Some(v) = value(&t) {
            by_extras.entry(&t.extras).or_default().push(v);
        }
    }
    let references = by_extras
        .into_iter()
        .filter_map(|(extras, vs)| {
            Some(Reference { label: format!("{DENSE}{extras}"), value: spread(vs.into_iter())? })
        })
        .collect();
    (lines, references)
}

/// Each layer's sparsity (in %) at the highest target of the pruned trials, a bar per method:
/// what a global threshold does to each layer. `None` when no pruned trial reports its layers.
fn layer_bars(trials: &[Trial], title_end: &str, sweep: &str) -> Option<BarsFigure> {
    let pruned: Vec<&Trial> = trials.iter().filter(|t| !t.reference && t.method != DENSE).collect();
    let highest = pruned.iter().map(|t| t.target).fold(f64::NEG_INFINITY, f64::max);
    let at: Vec<&Trial> = pruned.into_iter().filter(|t| t.target == highest).collect();
    let mut layers: Vec<&str> =
        at.iter().flat_map(|t| t.last.keys()).filter_map(|k| k.strip_prefix(LAYER_SPARSITY)).collect();
    layers.sort_by(|a, b| natural_cmp(a, b));
    layers.dedup();
    if layers.is_empty() {
        return None;
    }
    let mut labels: Vec<&str> = at.iter().map(|t| t.label.as_str()).collect();
    labels.sort();
    labels.dedup();
    let bar = |metric: &str, label: &str| {
        let s = spread(at.iter().filter(|t| t.label == label).filter_map(|t| t.last.get(metric).copied()))?;
        Some(Point { x: 0.0, mean: 100.0 * s.median, min: 100.0 * s.min, max: 100.0 * s.max, n: s.n })
    };
    let mut groups: Vec<(String, Vec<Option<Point>>)> = layers
        .iter()
        .map(|layer| {
            let metric = format!("{LAYER_SPARSITY}{layer}");
            (layer.to_string(), labels.iter().map(|l| bar(&metric, l)).collect())
        })
        .collect();
    groups.push(("all prunable weights".into(), labels.iter().map(|l| bar(SPARSITY, l)).collect()));
    let rows: Vec<&TrialRow> = at.iter().map(|t| t.row).collect();
    Some(BarsFigure {
        title: format!("Sparsity of each layer at target {}{title_end}", percent(highest)),
        subtitle: format!("{}; bar: median over seeds, whisker: min to max", about(sweep, &rows)),
        value_label: "weights that are zero (%)".into(),
        series: labels.iter().map(|l| l.to_string()).collect(),
        groups,
    })
}

/// The subtitle's start: "sweep s · 13 trials · seeds 0, 1".
fn about(sweep: &str, rows: &[&TrialRow]) -> String {
    let seeds: Vec<String> = aggregate::distinct_values(rows, aggregate::SEED).iter().map(aggregate::plain).collect();
    let trials = if rows.len() == 1 { "1 trial".to_string() } else { format!("{} trials", rows.len()) };
    match seeds.as_slice() {
        [] => format!("sweep {sweep} · {trials}"),
        [one] => format!("sweep {sweep} · {trials} · seed {one}"),
        _ => format!("sweep {sweep} · {trials} · seeds {}", seeds.join(", ")),
    }
}

/// A fraction as a percentage with at most two decimals: "0%", "90%", "99.5%", "99.99%".
pub fn percent(fraction: f64) -> String {
    let s = format!("{:.2}", 100.0 * fraction);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Names in the order people count them: `conv2` before `conv10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in s.char_indices().skip(1) {
            let prev = s[..i].chars().next_back().is_some_and(|p| p.is_ascii_digit());
            if c.is_ascii_digit() != prev {
                out.push((prev, &s[start..i]));
                start = i;
            }
        }
        if !s.is_empty() {
            out.push((s[start..].starts_with(|c: char| c.is_ascii_digit()), &s[start..]));
        }
        out
    }
    let (x, y) = (chunks(a), chunks(b));
    for ((xd, xs), (yd, ys)) in x.iter().zip(&y) {
        let o = match (xd, yd) {
            (true, true) => xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys)),
            _ => xs.cmp(ys),
        };
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

#[cfg(test)]
mod tests;
