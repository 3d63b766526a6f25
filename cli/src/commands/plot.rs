//! `sweep plot SWEEP`: reads `<results>/<sweep>/` and writes the sweep's figures as PNG and SVG,
//! printing one path per line on stdout and remarks on stderr, so `sweep plot s | xargs open` works.

use crate::plot;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use sweep_results as results;

pub fn run(
    sweep: &str,
    results_root: &Path,
    out: Option<&Path>,
    checkpoints: &Path,
    font: &Path,
    axes: &plot::chosen::Axes,
) -> anyhow::Result<()> {
    let dir = results::checked_sweep_dir(results_root, sweep)?;
    let trials_file = dir.join(results::TRIALS_FILE);
    if !trials_file.exists() {
        anyhow::bail!(
            "{}: no results for sweep `{sweep}`; run it first with `sweep local FILE`, or point --results at the folder that holds {sweep}/{}",
            trials_file.display(),
            results::TRIALS_FILE
        );
    }
    let trials = results::read_trials_table(&trials_file)?;
    let out: PathBuf = out.map(Path::to_path_buf).unwrap_or_else(|| dir.join("plots"));
    let load_metrics = || -> anyhow::Result<Vec<results::MetricRow>> {
        let metrics_dir = dir.join(results::METRICS_DIR);
        if !metrics_dir.is_dir() {
            return Ok(Vec::new());
        }
        results::read_metrics(&dir).with_context(|| format!("reading the metrics of sweep `{sweep}`"))
    };
    let plotted = if axes.any() {
        plot::plot_chosen(sweep, &trials, axes, load_metrics, &out, font)?
    } else {
        let mut plotted = plot::plot_sweep(sweep, &trials, load_metrics, checkpoints, &out, font)?;
        // An adaptive sweep also gets its learning curves with the schedule's decisions marked.
        let decisions = results::read_decisions_table(&dir)?;
        if !decisions.is_empty() {
            plot::schedule::plot(sweep, &trials, &decisions, &load_metrics()?, &out, &mut plotted)?;
        }
        plotted
    };
    for note in &plotted.notes {
        // Notes name metrics and parameters, which come from the results files.
        eprintln!("note: {}", sweep_spec::text::escape(note));
    }
    // A reader that stops early (`| head -1`) is not an error: the figures are written already.
    let mut stdout = std::io::stdout().lock();
    for file in &plotted.files {
        match writeln!(stdout, "{}", file.display()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            other => other.context("writing the figure paths to stdout")?,
        }
    }
    Ok(())
}
