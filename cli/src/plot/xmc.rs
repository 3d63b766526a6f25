//! The label-tree study's figures (workload `xmc_tree`): P@1/3/5 against tree build + training
//! seconds, one line per partitioner (METIS split by label graph) with a point per tree
//! configuration; and recall@5 per label-frequency bucket, which shows where in the long tail a
//! tree loses its labels.

use super::aggregate::{Curve, Point};
use super::curves::CurveFigure;
use super::{render, Plotted};
use std::collections::BTreeMap;
use std::path::Path;
use sweep_results::TrialRow;

const WORKLOAD: &str = "xmc_tree";
const RECALL_PREFIX: &str = "recall_at_5_freq_";
/// Parameters that name a replicate or only the legend line, not a point of a line.
const NOT_A_POINT: [&str; 3] = ["seed", "partitioner", "label_graph"];

pub(super) fn applies(done: &[&TrialRow]) -> bool {
    !done.is_empty() && done.iter().all(|t| t.workload == WORKLOAD)
}

/// Legend line of a trial: its partitioner, and for METIS the label graph too.
fn line_of(t: &TrialRow) -> String {
    let get = |k: &str| t.params.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    match get("partitioner").as_str() {
        "metis" => format!("metis ({})", get("label_graph")),
        other => other.to_string(),
    }
}

fn summarize(x: f64, ys: &[f64]) -> Point {
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let min = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Point { x, mean, min, max, n: ys.len() }
}

pub(super) fn figures(sweep: &str, done: &[&TrialRow], out: &Path, plotted: &mut Plotted) -> anyhow::Result<()> {
    let mut lines: BTreeMap<String, BTreeMap<String, Vec<&TrialRow>>> = BTreeMap::new();
    for &t in done {
        let config: Vec<String> = t
            .params
            .iter()
            .filter(|(k, _)| !NOT_A_POINT.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.entry(line_of(t)).or_default().entry(config.join(",")).or_default().push(t);
    }
    let seconds = |t: &TrialRow| Some(t.finals.get("build_seconds")? + t.finals.get("train_seconds")?);
    for k in [1, 3, 5] {
        let metric = format!("p_at_{k}");
        let curves: Vec<Curve> = lines
            .iter()
            .map(|(label, configs)| {
                let mut points: Vec<Point> = configs
                    .values()
                    .filter_map(|members| {
                        let xs: Vec<f64> = members.iter().filter_map(|t| seconds(t)).collect();
                        let ys: Vec<f64> = members.iter().filter_map(|t| t.finals.get(&metric).copied()).collect();
                        (!xs.is_empty() && !ys.is_empty())
                            .then(|| summarize(xs.iter().sum::<f64>() / xs.len() as f64, &ys))
                    })
                    .collect();
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                Curve { label: label.clone(), points }
            })
            .filter(|c| !c.points.is_empty())
            .collect();
        if curves.is_empty() {
            plotted.notes.push(format!("no trial reports {metric} with build and train seconds; skipped"));
            continue;
        }
        let figure = CurveFigure {
            title: sweep.to_string(),
            subtitle: format!("P@{k} against tree build + training time; a point per tree configuration, mean over seeds, band: min to max"),
            x_label: "build + train seconds".into(),
            y_label: format!("P@{k}"),
            curves,
            mark_peaks: false,
        };
        plotted.files.extend(render(&figure, out, &format!("{sweep}-p-at-{k}-vs-time"))?);
    }

    // Buckets are decades of training frequency: `1_9`, `10_99`, ...; unseen labels (`0`) have no x on a log axis.
    let bucket_start =
        |name: &str| -> Option<f64> { name.strip_prefix(RECALL_PREFIX)?.split('_').next()?.parse().ok() };
    let curves: Vec<Curve> = lines
        .iter()
        .map(|(label, configs)| {
            let mut per_bucket: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for t in configs.values().flatten() {
                for (name, &v) in &t.finals {
                    if let Some(start) = bucket_start(name).filter(|s| *s >= 1.0) {
                        per_bucket.entry(start as u64).or_default().push(v);
                    }
                }
            }
            Curve { label: label.clone(), points: per_bucket.iter().map(|(&x, ys)| summarize(x as f64, ys)).collect() }
        })
        .filter(|c| !c.points.is_empty())
        .collect();
    if curves.is_empty() {
        plotted.notes.push(format!("no trial reports {RECALL_PREFIX}* metrics, so no recall-by-frequency figure"));
        return Ok(());
    }
    let figure = CurveFigure {
        title: sweep.to_string(),
        subtitle: "recall@5 of test labels by their training frequency (decade buckets); mean over every trial of a line, band: min to max".into(),
        x_label: "label frequency in training (bucket start)".into(),
        y_label: "recall@5".into(),
        curves,
        mark_peaks: false,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-recall-by-label-frequency"))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{font, plot_sweep};
    use serde_json::{json, Map};
    use std::collections::BTreeMap;
    use sweep_results::TrialRow;

    fn trial(partitioner: &str, branching: i64, seed: i64, p1: f64, secs: f64) -> TrialRow {
        let mut params = Map::new();
        params.insert("partitioner".into(), json!(partitioner));
        params.insert("label_graph".into(), json!("cooccurrence"));
        params.insert("branching".into(), json!(branching));
        params.insert("seed".into(), json!(seed));
        let finals = BTreeMap::from([
            ("p_at_1".to_string(), p1),
            ("p_at_3".to_string(), p1 / 2.0),
            ("p_at_5".to_string(), p1 / 3.0),
            ("build_seconds".to_string(), secs / 4.0),
            ("train_seconds".to_string(), secs * 3.0 / 4.0),
            ("recall_at_5_freq_0".to_string(), 0.0),
            ("recall_at_5_freq_1_9".to_string(), p1 / 4.0),
            ("recall_at_5_freq_10_99".to_string(), p1 / 2.0),
            ("recall_at_5_freq_100_999".to_string(), p1),
        ]);
        TrialRow {
            sweep: "xmc".into(),
            trial_id: format!("{partitioner}-{branching}-{seed}"),
            workload: "xmc_tree".into(),
            status: "succeeded".into(),
            attempts: 1,
            agent: None,
            started_at_us: None,
            finished_at_us: None,
            duration_s: Some(secs),
            params,
            finals,
            last_error: None,
            exit_code: None,
            version: 0,
            rung: None,
            epochs_budget: None,
            parent_trial_id: None,
            copied_epoch: None,
            generation: 0,
        }
    }

    #[test]
    fn p_at_k_against_time_and_recall_by_frequency() {
        let mut trials = Vec::new();
        for (p, base) in [("kmeans_balanced", 0.8), ("random", 0.7), ("metis", 0.78)] {
            for b in [2, 8] {
                for s in [0, 1] {
                    trials.push(trial(p, b, s, base + 0.01 * s as f64, 10.0 / b as f64));
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let plotted = plot_sweep(
            "xmc",
            &trials,
            || Ok(Vec::new()),
            dir.path(),
            dir.path(),
            std::path::Path::new(font::DEFAULT_FONT),
        )
        .unwrap();
        let names: Vec<String> =
            plotted.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "xmc-p-at-1-vs-time.png",
                "xmc-p-at-1-vs-time.svg",
                "xmc-p-at-3-vs-time.png",
                "xmc-p-at-3-vs-time.svg",
                "xmc-p-at-5-vs-time.png",
                "xmc-p-at-5-vs-time.svg",
                "xmc-recall-by-label-frequency.png",
                "xmc-recall-by-label-frequency.svg",
            ]
        );
        let svg = std::fs::read_to_string(&plotted.files[1]).unwrap();
        for text in ["build + train seconds", "P@1", "kmeans_balanced", "random", "metis (cooccurrence)"] {
            assert!(svg.contains(text), "P@1 figure lacks {text:?}");
        }
        let svg = std::fs::read_to_string(&plotted.files[7]).unwrap();
        assert!(svg.contains("recall@5") && svg.contains("label frequency in training"));
    }
}
