//! The multimodal figure: grouped bars per fusion (and any other setting that varies), the final
//! test accuracy with both modalities next to the accuracy with the image, then the caption,
//! removed from every test example: which fusion beats each modality alone, and how much it leans
//! on each.

use super::aggregate;
use super::bars::BarsFigure;
use super::{averaged_over, render, Plotted};
use std::path::Path;
use sweep_results::TrialRow;

pub const WORKLOAD: &str = "multimodal";
/// Bars of each fusion, top to bottom: (metric, legend).
const INPUTS: [(&str, &str); 3] = [
    ("test_acc", "image and caption"),
    ("test_acc/no_image", "image removed"),
    ("test_acc/no_text", "caption removed"),
];

pub fn applies(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| t.workload == WORKLOAD) && done.iter().any(|t| t.finals.contains_key(INPUTS[0].0))
}

pub fn plot(sweep: &str, done: &[&TrialRow], out: &Path, plotted: &mut Plotted) -> anyhow::Result<()> {
    let varying = aggregate::varying_params(done);
    let methods: Vec<String> = varying.iter().filter(|p| *p != aggregate::SEED).cloned().collect();
    let over = averaged_over(done, &varying, &methods, &[]);
    let bars = BarsFigure::of_final_percent(
        sweep.to_string(),
        format!(
            "final test accuracy (%) of each {}, with each modality removed at test time; bar: mean over {over}, whisker: min to max",
            methods.iter().map(|m| m.replace('_', " ")).collect::<Vec<_>>().join(" / ")
        ),
        done,
        &methods,
        &INPUTS,
    );
    plotted.files.extend(render(&bars, out, &format!("{sweep}-fusions"))?);
    Ok(())
}
