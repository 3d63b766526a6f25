//! `sweep plot SWEEP`: reads `<results>/<sweep>/` and writes the sweep's figures as PNG and SVG,
//! printing one path per line on stdout and remarks on stderr, so `sweep plot s | xargs open` works.

use crate::plot;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use sweep_results as results;

/// Where the figures' inputs beyond the results are: checkpoints and a font.
#[derive(clap::Args, Debug, Clone)]
pub struct FigureArgs {
    /// The agents' checkpoint root, which holds `<sweep>/<trial>/latest/model.safetensors`; the
    /// sparsity study's weight and mask images are drawn from it and skipped with a note when
    /// it has no folder for the sweep. The default is where `sweep local` puts them (its
    /// `--state` folder's `agents/checkpoints`); on a cluster, the agents' --checkpoint-root.
    #[arg(long, env = "SWEEP_CHECKPOINT_ROOT", default_value = ".sweep/agents/checkpoints")]
    pub checkpoints: PathBuf,
    /// TrueType font for the text; on Debian it comes with the fonts-dejavu-core package.
    #[arg(long, env = "SWEEP_PLOT_FONT", default_value = plot::font::DEFAULT_FONT)]
    pub font: PathBuf,
}

pub fn run(
    sweep: &str,
    results_root: &Path,
    out: Option<&Path>,
    checkpoints: &Path,
    font: &Path,
    axes: &plot::chosen::Axes,
) -> anyhow::Result<()> {
    let plotted = draw(sweep, results_root, out, checkpoints, font, axes)?;
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

#[cfg(feature = "embedded-agent")]
/// The dashboard's figures of a sweep: what `sweep plot` draws, as (file name, SVG), drawn into a
/// folder of their own that is removed afterwards.
pub fn dashboard_figures(
    results_root: PathBuf,
    checkpoints: PathBuf,
    font: PathBuf,
) -> sweep_coordinator::dashboard::DrawPlots {
    std::sync::Arc::new(move |sweep: &str| {
        let out = tempfile::tempdir().context("a folder to draw the figures in")?;
        let plotted =
            draw(sweep, &results_root, Some(out.path()), &checkpoints, &font, &plot::chosen::Axes::default())?;
        let mut figures = Vec::new();
        for file in plotted.files.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")) {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            figures.push((name, std::fs::read(file).with_context(|| format!("reading {}", file.display()))?));
        }
        Ok(figures)
    })
}

/// Draws the figures of `sweep` into `out` (default `<results>/<sweep>/plots`).
fn draw(
    sweep: &str,
    results_root: &Path,
    out: Option<&Path>,
    checkpoints: &Path,
    font: &Path,
    axes: &plot::chosen::Axes,
) -> anyhow::Result<plot::Plotted> {
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
    Ok(plotted)
}
