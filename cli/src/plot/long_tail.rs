//! The long-tail study's figures: accuracy on the many-, medium- and few-shot classes and overall,
//! as grouped bars per method (loss x sampler x any other setting that varies), and each class's
//! accuracy against its number of training images, one line per method.

use super::aggregate::{self, Curve, Point};
use super::bars::BarsFigure;
use super::curves::CurveFigure;
use super::{averaged_over, render, slug, Plotted, COLORS};
use std::collections::BTreeMap;
use std::path::Path;
use sweep_results::TrialRow;

pub const WORKLOAD: &str = "long_tail";
const SAMPLER: &str = "sampler";
/// Bars of each method, top to bottom: (metric, legend).
const SHOT_GROUPS: [(&str, &str); 4] = [
    ("test_acc_many", "many-shot (> 100 images)"),
    ("test_acc_medium", "medium-shot (20-100)"),
    ("test_acc_few", "few-shot (< 20)"),
    ("test_acc", "overall"),
];
const CLASS_ACC: &str = "class_acc/";
const CLASS_COUNT: &str = "class_train_count/";

/// Sweeps of the long-tail workload that report accuracy.
pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD) && done.iter().any(|t| t.finals.contains_key("test_acc"))
}

pub fn plot(sweep: &str, done: &[&TrialRow], out: &Path, plotted: &mut Plotted) -> anyhow::Result<()> {
    let varying = aggregate::varying_params(done);
    let methods: Vec<String> = varying.iter().filter(|p| *p != aggregate::SEED).cloned().collect();
    let over = averaged_over(done, &varying, &methods, &[]);
    let mut bars = BarsFigure::of_final_percent(
        sweep.to_string(),
        format!(
            "final top-1 accuracy (%) of each {}; bar: mean over {over}, whisker: min to max",
            methods.iter().map(|m| m.replace('_', " ")).collect::<Vec<_>>().join(" / ")
        ),
        done,
        &methods,
        &SHOT_GROUPS,
    );
    bars.value_label = "top-1 accuracy (%)".into();
    for (metric, legend) in SHOT_GROUPS {
        if !done.iter().any(|t| t.finals.contains_key(metric)) {
            plotted.notes.push(format!("no trial has {legend} classes, so those bars are absent"));
        }
    }
    plotted.files.extend(render(&bars, out, &format!("{sweep}-shot-groups"))?);

    // Per-class accuracy against class size: one figure per sampler, one line per other setting.
    let by_sampler: Vec<String> = methods.iter().filter(|p| *p == SAMPLER).cloned().collect();
    let lines: Vec<String> = methods.iter().filter(|p| *p != SAMPLER).cloned().collect();
    for (sampler, members) in aggregate::groups(done, &by_sampler) {
        let mut curves: Vec<Curve> = aggregate::groups(&members, &lines)
            .into_iter()
            .map(|(label, ms)| Curve {
                label: if label.is_empty() { "mean".into() } else { label },
                points: by_class_size(&ms),
            })
            .filter(|c| !c.points.is_empty())
            .collect();
        if curves.is_empty() {
            plotted.notes.push("no per-class accuracy in the trials, so no per-class figure".into());
            break;
        }
        if curves.len() > COLORS.len() {
            let dropped: Vec<String> = curves.drain(COLORS.len()..).map(|c| c.label).collect();
            plotted.notes.push(format!(
                "per-class figure shows the first {} methods; not shown: {}",
                COLORS.len(),
                dropped.join("; ")
            ));
        }
        let name = match sampler.is_empty() {
            true => format!("{sweep}-class-accuracy"),
            false => format!("{sweep}-class-accuracy-{}", slug(&sampler)),
        };
        let figure = CurveFigure {
            title: if sampler.is_empty() { sweep.to_string() } else { format!("{sweep}: {sampler}") },
            subtitle: format!("final accuracy of each class against its training images; line: mean over {over} and classes of that size, band: min to max"),
            x_label: "training images of the class".into(),
            y_label: "class accuracy".into(),
            curves,
            mark_peaks: false,
        };
        plotted.files.extend(render(&figure, out, &name)?);
    }
    Ok(())
}

/// Class accuracy by class training size: every (trial, class) pair is one value at x = the size.
fn by_class_size(members: &[&TrialRow]) -> Vec<Point> {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for t in members {
        for (name, &acc) in t.finals.iter().filter(|(k, _)| k.starts_with(CLASS_ACC)) {
            let class = &name[CLASS_ACC.len()..];
            if let Some(&size) = t.finals.get(&format!("{CLASS_COUNT}{class}")) {
                at.entry(size as u64).or_default().push(acc);
            }
        }
    }
    at.into_iter().map(|(size, accs)| aggregate::summarize(size as f64, accs.into_iter())).collect()
}
