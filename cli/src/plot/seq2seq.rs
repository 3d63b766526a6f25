//! The sequence-to-sequence figures: learning curves per model, each at its best learning rate.
//! For chess, the legal-move rate and the next-move accuracy against epoch (the study's point: the
//! first climbs long before the second); for other sequences, token accuracy and loss on the test
//! split. A model is every setting that varies but the optimizer and the seed; its line is the mean
//! over seeds of the optimizer setting with the best final value of the figure's first metric.

use super::aggregate::{self, Curve};
use super::chosen::per_epoch_mean;
use super::curves::CurveFigure;
use super::{render, slug, Plotted};
use std::path::Path;
use sweep_results::{MetricRow, TrialRow};

pub const WORKLOAD: &str = "seq2seq";
const OPTIMIZER: &str = "optimizer";
const CHESS: [&str; 2] = ["legal_move_rate", "next_move_acc"];
const SEQUENCES: [&str; 2] = ["val_token_acc", "val_loss"];

/// `{ name = "adamw", lr = 0.003 }` as "adamw lr 0.003"; other values as they are written.
fn optimizer_label(value: &serde_json::Value) -> String {
    match (value.get("name").and_then(|n| n.as_str()), value.get("lr").and_then(|l| l.as_f64())) {
        (Some(name), Some(lr)) => format!("{name} lr {}", super::fmt_num(lr)),
        _ => value.to_string(),
    }
}

pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD)
}

pub fn plot(
    sweep: &str,
    done: &[&TrialRow],
    metrics: Vec<MetricRow>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let chess = done.iter().any(|t| t.finals.contains_key(CHESS[0]));
    let shown = if chess { CHESS } else { SEQUENCES };
    let varying = aggregate::varying_params(done);
    let model_keys: Vec<String> =
        varying.iter().filter(|p| *p != aggregate::SEED && *p != OPTIMIZER).cloned().collect();
    // The best optimizer setting of each model, by the final value of the first metric.
    let (judge, higher) = (shown[0], shown[0] != "val_loss");
    let mut lines: Vec<(String, Vec<&TrialRow>)> = Vec::new();
    for (model, members) in aggregate::groups(done, &model_keys) {
        let tuned = aggregate::groups(&members, &[OPTIMIZER.to_string()]);
        let score = |trials: &Vec<&TrialRow>| {
            let values: Vec<f64> = trials.iter().filter_map(|t| t.finals.get(judge).copied()).collect();
            let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
            if higher {
                mean
            } else {
                -mean
            }
        };
        let Some((_, best)) = tuned.into_iter().max_by(|a, b| score(&a.1).total_cmp(&score(&b.1))) else {
            continue;
        };
        let setting = best.first().and_then(|t| t.params.get(OPTIMIZER)).map(optimizer_label).unwrap_or_default();
        let label = match (model.is_empty(), varying.iter().any(|p| p == OPTIMIZER)) {
            (true, true) => format!("best: {setting}"),
            (false, true) => format!("{model}, best: {setting}"),
            (true, false) => "mean".to_string(),
            (false, false) => model,
        };
        lines.push((label, best));
    }
    let seeds = aggregate::distinct_values(done, aggregate::SEED).len();
    for metric in shown {
        let per_epoch = aggregate::latest_per_epoch(&metrics, metric);
        if per_epoch.is_empty() {
            plotted.notes.push(format!("no per-epoch {metric} in the metrics, so its figure is left out"));
            continue;
        }
        let curves: Vec<Curve> = lines
            .iter()
            .map(|(label, members)| Curve { label: label.clone(), points: per_epoch_mean(&per_epoch, members) })
            .filter(|c| !c.points.is_empty())
            .collect();
        let figure = CurveFigure {
            title: sweep.to_string(),
            subtitle: format!(
                "each model at its optimizer setting with the best final {}; mean over {seeds} seed{}, band: min to max",
                judge.replace('_', " "),
                if seeds == 1 { "" } else { "s" }
            ),
            x_label: "epoch".to_string(),
            y_label: metric.replace('_', " "),
            curves,
            mark_peaks: false,
        };
        plotted.files.extend(render(&figure, out, &format!("{sweep}-{}-per-epoch", slug(metric)))?);
    }
    Ok(())
}
