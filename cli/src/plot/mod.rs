//! `sweep plot`: a sweep's signature figures, as PNG and SVG, from its Parquet results. This module
//! picks the figures from the workload and the parameters that vary; `aggregate` computes every
//! number they show, `curves` and `heatmap` draw them, `font` supplies the text.

pub mod aggregate;
mod bars;
pub mod chosen;
mod curves;
mod edge_of_stability;
pub mod font;
mod heatmap;
mod long_tail;
mod multimodal;
mod optimizers;
pub mod schedule;
mod seq2seq;
mod sparsity;
#[cfg(test)]
mod testdata;
mod xmc;

use aggregate::{Curve, Grid};
use curves::CurveFigure;
use heatmap::HeatmapFigure;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use sweep_results::{MetricRow, TrialRow};

/// Workloads whose sweeps get the double-descent figures when `width` varies.
const DOUBLE_DESCENT_WORKLOADS: [&str; 2] = ["mlp", "double_descent"];
const WIDTH: &str = "width";
const LABEL_NOISE: &str = "label_noise";
const WEIGHT_DECAY: &str = "weight_decay";
const TEST_ERROR: &str = "test_error";
const SUCCEEDED: &str = "succeeded";
/// A generic sweep gets a figure for each of its first few final metrics, in name order.
const MAX_METRIC_FIGURES: usize = 4;
/// Heat maps merge neighbouring epochs beyond this many columns.
const MAX_HEATMAP_COLUMNS: usize = 200;

/// Height of the title and subtitle band above every chart.
const HEADER_HEIGHT: u32 = 78;
const TITLE_PX: i32 = 28;
const SUBTITLE_PX: i32 = 17;
const AXIS_DESC: (&str, u32) = (font::FAMILY, 20);
const TICK_LABEL: (&str, u32) = (font::FAMILY, 16);
/// Line colours, distinct in colour and in lightness (matplotlib's tab10, reordered).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// What `sweep plot` produced: the files in order, and remarks for the reader.
#[derive(Debug, Default)]
pub struct Plotted {
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// A figure that draws itself on any plotters backend, so one code path writes PNG and SVG.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// Draws the figures of `sweep` into `out`. `trials` is the sweep's trials table; the per-epoch
/// metrics are read through `load_metrics` only when a figure needs them, and the trials' final
/// models from `checkpoints` (`<checkpoints>/<sweep>/<trial>/latest/`) only by the figures that
/// show weights.
pub fn plot_sweep(
    sweep: &str,
    trials: &[TrialRow],
    load_metrics: impl FnOnce() -> anyhow::Result<Vec<MetricRow>>,
    checkpoints: &Path,
    out: &Path,
    font_file: &Path,
) -> anyhow::Result<Plotted> {
    let mut plotted = Plotted::default();
    let done = prepare(sweep, trials, out, font_file, &mut plotted)?;
    if xmc::applies(&done) {
        xmc::figures(sweep, &done, out, &mut plotted)?;
    } else if edge_of_stability::applies(&done) {
        edge_of_stability::plot(sweep, &done, load_metrics()?, out, &mut plotted)?;
    } else if optimizers::applies(&done) {
        optimizers::plot(sweep, &done, load_metrics()?, out, &mut plotted)?;
    } else if is_double_descent(&done) {
        double_descent(sweep, &done, load_metrics, out, &mut plotted)?;
    } else if long_tail::applies(&done) {
        long_tail::plot(sweep, &done, out, &mut plotted)?;
    } else if multimodal::applies(&done) {
        multimodal::plot(sweep, &done, out, &mut plotted)?;
    } else if seq2seq::applies(&done) {
        seq2seq::plot(sweep, &done, load_metrics()?, out, &mut plotted)?;
    } else if sparsity::applies(&done) {
        sparsity::plot(sweep, &done, load_metrics()?, checkpoints, out, &mut plotted)?;
    } else {
        final_metrics(sweep, &done, out, &mut plotted)?;
    }
    Ok(plotted)
}

/// Draws the one figure `axes` picks (`sweep plot --x --y --curves`) instead of the usual ones.
pub fn plot_chosen(
    sweep: &str,
    trials: &[TrialRow],
    axes: &chosen::Axes,
    load_metrics: impl FnOnce() -> anyhow::Result<Vec<MetricRow>>,
    out: &Path,
    font_file: &Path,
) -> anyhow::Result<Plotted> {
    let mut plotted = Plotted::default();
    let done = prepare(sweep, trials, out, font_file, &mut plotted)?;
    chosen::figure(sweep, &done, axes, load_metrics, out, &mut plotted)?;
    Ok(plotted)
}

/// The succeeded trials (a note counts the others), with the font loaded and `out` created.
fn prepare<'a>(
    sweep: &str,
    trials: &'a [TrialRow],
    out: &Path,
    font_file: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<Vec<&'a TrialRow>> {
    let done: Vec<&TrialRow> = trials.iter().filter(|t| t.status == SUCCEEDED).collect();
    if done.len() < trials.len() {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for t in trials.iter().filter(|t| t.status != SUCCEEDED) {
            match counts.iter_mut().find(|(s, _)| *s == t.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((t.status.clone(), 1)),
            }
        }
        let counts = counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
        if done.is_empty() {
            anyhow::bail!("sweep `{sweep}` has no succeeded trials yet ({counts}); plot it once some finish");
        }
        plotted.notes.push(format!("left out {} trials that have not succeeded ({counts})", trials.len() - done.len()));
    }
    font::load(font_file)?;
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the plots folder: {e}", out.display()))?;
    Ok(done)
}

/// A width sweep of a double-descent workload that reports test error.
fn is_double_descent(done: &[&TrialRow]) -> bool {
    done.iter().all(|t| DOUBLE_DESCENT_WORKLOADS.contains(&t.workload.as_str()))
        && aggregate::varying_numeric_params(done).iter().any(|p| p == WIDTH)
        && done.iter().any(|t| t.finals.contains_key(TEST_ERROR))
}

/// Test error vs width, one line per (label noise, weight decay), and a width × epoch heat map
/// per line, all on one colour scale so their colours compare.
fn double_descent(
    sweep: &str,
    done: &[&TrialRow],
    load_metrics: impl FnOnce() -> anyhow::Result<Vec<MetricRow>>,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let varying = aggregate::varying_params(done);
    let group_by: Vec<String> =
        [LABEL_NOISE, WEIGHT_DECAY].iter().filter(|p| varying.iter().any(|v| v == *p)).map(|p| p.to_string()).collect();
    let over = averaged_over(done, &varying, &[WIDTH.to_string()], &group_by);
    let groups = aggregate::groups(done, &group_by);
    // One line with no grouping parameter: say the noise level anyway, it is what the curve is about.
    let single_label = match aggregate::distinct_values(done, LABEL_NOISE).as_slice() {
        [noise] => format!("noise {}", aggregate::plain(noise)),
        _ => "test error".to_string(),
    };
    let curves: Vec<Curve> = groups
        .iter()
        .map(|(label, members)| Curve {
            label: if label.is_empty() { single_label.clone() } else { label.clone() },
            points: aggregate::curve(members, WIDTH, TEST_ERROR),
        })
        .collect();
    for c in &curves {
        if let (Some(p), Some(first), Some(last)) = (aggregate::peak(&c.points), c.points.first(), c.points.last()) {
            if c.points.len() > 2 && (p.x == first.x || p.x == last.x) {
                let end = if p.x == first.x { "smallest" } else { "largest" };
                plotted.notes.push(format!(
                    "{}: test error is highest at the {end} width ({}), so these widths show no interior peak",
                    c.label,
                    fmt_num(p.x)
                ));
            }
        }
    }
    let figure = CurveFigure {
        title: sweep.to_string(),
        subtitle: format!("final test error; line: mean over {over}, band: min to max, ring: peak"),
        x_label: WIDTH.to_string(),
        y_label: "test error".to_string(),
        curves,
        mark_peaks: true,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-test-error-vs-width"))?);

    let metrics = load_metrics()?;
    let grids: Vec<(String, Grid)> = groups
        .iter()
        .map(|(label, members)| (label.clone(), aggregate::grid(members, &metrics, WIDTH, TEST_ERROR)))
        .filter(|(_, g)| !g.rows.is_empty())
        .collect();
    let Some(scale) = grids.iter().filter_map(|(_, g)| g.value_range()).reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    else {
        plotted.notes.push(format!("no per-epoch {TEST_ERROR} in the metrics files, so no heat map"));
        return Ok(());
    };
    let epochs = grids.iter().map(|(_, g)| g.epochs.len()).max().unwrap_or(0);
    if epochs == 1 {
        plotted.notes.push("trials have one epoch each (e.g. random features fitted in closed form), so the width × epoch heat map is a single column".into());
    } else if epochs > MAX_HEATMAP_COLUMNS {
        plotted.notes.push(format!("heat map: {epochs} epochs merged into at most {MAX_HEATMAP_COLUMNS} columns, each named by its first epoch"));
    }
    let several = grids.len() > 1;
    for (label, grid) in grids {
        let name = match several {
            true => format!("{sweep}-test-error-heatmap-{}", slug(&label)),
            false => format!("{sweep}-test-error-heatmap"),
        };
        let figure = HeatmapFigure {
            title: if several { format!("{sweep}: {label}") } else { sweep.to_string() },
            subtitle: format!("test error per width and epoch, mean over {over}"),
            row_label: WIDTH.to_string(),
            value_label: "mean test error".to_string(),
            grid: aggregate::bin_epochs(grid, MAX_HEATMAP_COLUMNS),
            scale,
        };
        plotted.files.extend(render(&figure, out, &name)?);
    }
    Ok(())
}

/// Any other sweep: each of the first final metrics against the first numeric parameter that
/// varies (seeds aside), averaged over everything else.
fn final_metrics(sweep: &str, done: &[&TrialRow], out: &Path, plotted: &mut Plotted) -> anyhow::Result<()> {
    let varying = aggregate::varying_params(done);
    let Some(x) = aggregate::varying_numeric_params(done).into_iter().find(|p| p != aggregate::SEED) else {
        let what = match varying.is_empty() {
            true => "no parameter varies".to_string(),
            false => format!("only {} vary, and none is a number an x axis could show", varying.join(", ")),
        };
        anyhow::bail!(
            "sweep `{sweep}`: {what} across its {} succeeded trials, so there is nothing to plot; read the numbers with `sweep results {sweep} --results DIR`",
            done.len()
        );
    };
    let names: std::collections::BTreeSet<&String> = done.iter().flat_map(|t| t.finals.keys()).collect();
    if names.is_empty() {
        anyhow::bail!("sweep `{sweep}`: its trials report no metrics, so there is nothing to plot");
    }
    if names.len() > MAX_METRIC_FIGURES {
        let rest: Vec<&str> = names.iter().skip(MAX_METRIC_FIGURES).map(|s| s.as_str()).collect();
        plotted
            .notes
            .push(format!("plotted the first {MAX_METRIC_FIGURES} metrics by name; not plotted: {}", rest.join(", ")));
    }
    let over = averaged_over(done, &varying, std::slice::from_ref(&x), &[]);
    for metric in names.into_iter().take(MAX_METRIC_FIGURES) {
        let points = aggregate::curve(done, &x, metric);
        if points.is_empty() {
            plotted.notes.push(format!("no trial has both `{x}` and a final `{metric}`; skipped"));
            continue;
        }
        let figure = CurveFigure {
            title: sweep.to_string(),
            subtitle: format!("final {metric}; line: mean over {over}, band: min to max"),
            x_label: x.clone(),
            y_label: metric.replace('_', " "),
            curves: vec![Curve { label: format!("mean {}", metric.replace('_', " ")), points }],
            mark_peaks: false,
        };
        plotted.files.extend(render(&figure, out, &format!("{sweep}-{}-vs-{}", slug(metric), slug(&x)))?);
    }
    Ok(())
}

/// What a line averages over, for the subtitle: "3 seeds", "3 seeds and lr (4 values)", or
/// "1 trial" when every point is a single trial.
fn averaged_over(done: &[&TrialRow], varying: &[String], shown: &[String], grouped: &[String]) -> String {
    let hidden: Vec<&String> = varying.iter().filter(|p| !shown.contains(p) && !grouped.contains(p)).collect();
    let count = |p: &str| aggregate::distinct_values(done, p).len();
    let mut parts: Vec<String> = Vec::new();
    if hidden.iter().any(|p| *p == aggregate::SEED) {
        parts.push(format!("{} seeds", count(aggregate::SEED)));
    }
    for p in hidden.iter().filter(|p| **p != aggregate::SEED) {
        parts.push(format!("{p} ({} values)", count(p)));
    }
    match parts.len() {
        0 => "1 trial".to_string(),
        _ => parts.join(" and "),
    }
}

/// A file-name piece: lowercase letters, digits and dots; anything else becomes one hyphen.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Writes `figure` as `<out>/<name>.png` and `<out>/<name>.svg`.
fn render(figure: &impl Figure, out: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let png = out.join(format!("{name}.png"));
    let svg = out.join(format!("{name}.svg"));
    {
        let root = BitMapBackend::new(&png, figure.size()).into_drawing_area();
        figure.draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{}: cannot write the figure: {e}", png.display()))?;
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, figure.size()).into_drawing_area();
        figure.draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{}: cannot write the figure: {e}", svg.display()))?;
    }
    // plotters-svg gives an embedded bitmap (the sparsity study's weight images) the media type
    // `png`, which is no media type; `image/png` is the one SVG viewers are required to read.
    let text = text.replace("href=\"data:png;base64,", "href=\"data:image/png;base64,");
    std::fs::write(&svg, text).map_err(|e| anyhow::anyhow!("{}: cannot write the figure: {e}", svg.display()))?;
    Ok(vec![png, svg])
}

/// The chart [`line_chart`] builds.
type LineChart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

/// A chart of lines on `area` over the axes `x` and `y` (each a range, or a log-scale range), with
/// the figures' margins, axis descriptions, tick labels and light grid drawn.
fn line_chart<'a, DB: DrawingBackend, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<LineChart<'a, DB, X::CoordDescType, Y::CoordDescType>>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .margin_right(28)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d(x, y)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(AXIS_DESC)
        .label_style(TICK_LABEL)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(draw_error)?;
    Ok(chart)
}

/// The legend of a line figure, in its upper right corner.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()> {
    draw_legend_at(chart, SeriesLabelPosition::UpperRight)
}

/// The legend of a line figure, where the lines leave room for it.
fn draw_legend_at<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(TICK_LABEL)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .margin(12)
        .draw()
        .map_err(draw_error)
}

/// Plotters' drawing errors as anyhow errors.
fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the figure: {e}")
}

/// Title and subtitle, centred.
fn draw_header<DB: DrawingBackend>(head: &DrawingArea<DB, Shift>, title: &str, subtitle: &str) -> anyhow::Result<()> {
    let centre = head.dim_in_pixel().0 as i32 / 2;
    let title_style = TextStyle::from((font::FAMILY, TITLE_PX).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Center, VPos::Top));
    head.draw(&Text::new(title, (centre, 12), title_style)).map_err(draw_error)?;
    let subtitle_style = text_style(SUBTITLE_PX, RGBColor(70, 70, 70), HPos::Center, VPos::Top);
    head.draw(&Text::new(subtitle, (centre, 50), subtitle_style)).map_err(draw_error)?;
    Ok(())
}

/// Text in the figures' font at `size` px, coloured and anchored as given.
fn text_style(size: i32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle { font: (font::FAMILY, size).into_font(), color: color.to_backend_color(), pos: Pos::new(h, v) }
}

/// A number as an axis or a legend shows it: integers whole, others to 3 significant digits.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    if !(1e-3..1e7).contains(&a) {
        return format!("{v:.2e}");
    }
    if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        return format!("{}", v.round() as i64);
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
