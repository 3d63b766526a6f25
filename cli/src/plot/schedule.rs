//! The learning curves of an adaptive sweep (`[schedule]`): every trial's value of the schedule's
//! metric per epoch, whatever became of it, with each decision marked where it was made: a pause
//! (ring), a promotion (triangle) and a stop (cross). Under PBT a replaced trial is marked with a
//! purple cross, and each copy's curve starts from its parent's at the epoch it copied (a filled
//! dot there). Trials that trained to their end are drawn in colour, the others in grey, so where
//! the schedule spent its epochs shows at a glance.

use super::{draw_error, draw_header, render, Figure, Plotted, COLORS, HEADER_HEIGHT, SUCCEEDED};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use sweep_results::{DecisionRow, MetricRow, TrialRow};

/// Trials that did not train to their end.
const GREY: RGBColor = RGBColor(150, 150, 150);
const PAUSE: RGBColor = RGBColor(255, 127, 14);
const PROMOTE: RGBColor = RGBColor(44, 160, 44);
const STOP: RGBColor = RGBColor(214, 39, 40);
const EXPLOIT: RGBColor = RGBColor(148, 103, 189);
const COPY: RGBColor = RGBColor(23, 190, 207);

/// One trial's curve: (epoch, value) in epoch order, and whether it trained to its end.
struct Line {
    points: Vec<(f64, f64)>,
    finished: bool,
}

/// A decision where it was made: the trial's value at the rung.
struct Mark {
    epoch: f64,
    value: f64,
    action: String,
}

struct ScheduleFigure {
    title: String,
    subtitle: String,
    metric: String,
    lines: Vec<Line>,
    marks: Vec<Mark>,
    /// Where PBT copies branch from their parents' curves.
    copies: Vec<(f64, f64)>,
}

/// Draws `<sweep>-schedule.png/svg` when the sweep's schedule made decisions.
pub fn plot(
    sweep: &str,
    trials: &[TrialRow],
    decisions: &[DecisionRow],
    metrics: &[MetricRow],
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let Some(metric) = decisions.first().map(|d| d.metric.clone()) else { return Ok(()) };
    // The latest attempt's value of each (trial, epoch): a retried epoch replaces the one before.
    let mut curves: BTreeMap<&str, BTreeMap<i32, (i32, f64)>> = BTreeMap::new();
    for m in metrics.iter().filter(|m| m.metric == metric && m.value.is_finite()) {
        let at = curves.entry(m.trial_id.as_str()).or_default().entry(m.epoch).or_insert((m.attempt, m.value));
        if m.attempt >= at.0 {
            *at = (m.attempt, m.value);
        }
    }
    let finished = |id: &str| trials.iter().any(|t| t.trial_id == id && t.status == SUCCEEDED);
    // A PBT copy's curve starts at its parent's value at the epoch it copied.
    let branch = |id: &str| -> Option<(f64, f64)> {
        let t = trials.iter().find(|t| t.trial_id == id)?;
        let (parent, epoch) = (t.parent_trial_id.as_deref()?, t.copied_epoch?);
        curves.get(parent)?.get(&epoch).map(|(_, v)| (epoch as f64, *v))
    };
    let copies: Vec<(f64, f64)> = curves.keys().filter_map(|id| branch(id)).collect();
    let mut lines: Vec<Line> = curves
        .iter()
        .map(|(id, points)| Line {
            points: branch(id).into_iter().chain(points.iter().map(|(e, (_, v))| (*e as f64, *v))).collect(),
            finished: finished(id),
        })
        .collect();
    // Grey first, so the finished trials are drawn over them.
    lines.sort_by_key(|l| l.finished);
    let marks: Vec<Mark> = decisions
        .iter()
        .filter(|d| d.action != "continue")
        .filter_map(|d| {
            let value = d.value.or_else(|| curves.get(d.trial_id.as_str())?.get(&d.epoch).map(|v| v.1))?;
            Some(Mark { epoch: d.epoch as f64, value, action: d.action.clone() })
        })
        .collect();
    if lines.is_empty() {
        plotted.notes.push(format!("no per-epoch `{metric}` in the metrics files, so no learning curves"));
        return Ok(());
    }
    let count = |a: &str| decisions.iter().filter(|d| d.action == a).count();
    let decided = if count("exploit") > 0 {
        format!("{} replaced by copies of better trials (PBT)", count("exploit"))
    } else {
        format!("{} paused, {} promoted, {} stopped", count("pause"), count("promote"), count("stop"))
    };
    let figure = ScheduleFigure {
        title: format!("{sweep}: learning curves under the schedule"),
        subtitle: format!(
            "{} trials, {} trained to the end (colour); {decided}",
            lines.len(),
            lines.iter().filter(|l| l.finished).count(),
        ),
        metric,
        lines,
        marks,
        copies,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-schedule"))?);
    Ok(())
}

impl ScheduleFigure {
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let points = self.lines.iter().flat_map(|l| l.points.iter().copied());
        let (mut x, mut y) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
        for (px, py) in points {
            x = (x.0.min(px), x.1.max(px));
            y = (y.0.min(py), y.1.max(py));
        }
        let span = if y.1 > y.0 { y.1 - y.0 } else { y.0.abs().max(1.0) * 0.1 };
        ((x.0 - 0.5, x.1 + 0.5), (y.0 - span * 0.05, y.1 + span * 0.3))
    }
}

impl Figure for ScheduleFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let ((x_lo, x_hi), (y_lo, y_hi)) = self.ranges();
        let mut chart = super::line_chart(&body, x_lo..x_hi, y_lo..y_hi, "epoch", &self.metric.replace('_', " "))?;
        let mut finished = 0;
        for line in &self.lines {
            let style = if line.finished {
                finished += 1;
                COLORS[(finished - 1) % COLORS.len()].stroke_width(3)
            } else {
                GREY.mix(0.6).stroke_width(1)
            };
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style)).map_err(draw_error)?;
            // A trial judged at its first epoch has a single point: a dot, not an invisible line.
            if let [only] = line.points.as_slice() {
                chart.draw_series(std::iter::once(Circle::new(*only, 2, style.color.filled()))).map_err(draw_error)?;
            }
        }
        let of =
            |action: &'static str| self.marks.iter().filter(move |m| m.action == action).map(|m| (m.epoch, m.value));
        // Only the kinds of decision the sweep made get a legend entry.
        let made = |action: &str| self.marks.iter().any(|m| m.action == action);
        if made("pause") {
            chart
                .draw_series(of("pause").map(|p| Circle::new(p, 6, PAUSE.stroke_width(2))))
                .map_err(draw_error)?
                .label("paused")
                .legend(|(x, y)| Circle::new((x + 6, y), 6, PAUSE.stroke_width(2)));
        }
        if made("promote") {
            chart
                .draw_series(of("promote").map(|p| TriangleMarker::new(p, 8, PROMOTE.filled())))
                .map_err(draw_error)?
                .label("promoted")
                .legend(|(x, y)| TriangleMarker::new((x + 6, y), 8, PROMOTE.filled()));
        }
        if made("stop") {
            chart
                .draw_series(of("stop").map(|p| Cross::new(p, 6, STOP.stroke_width(2))))
                .map_err(draw_error)?
                .label("stopped")
                .legend(|(x, y)| Cross::new((x + 6, y), 6, STOP.stroke_width(2)));
        }
        if made("exploit") {
            chart
                .draw_series(of("exploit").map(|p| Cross::new(p, 6, EXPLOIT.stroke_width(2))))
                .map_err(draw_error)?
                .label("replaced (PBT)")
                .legend(|(x, y)| Cross::new((x + 6, y), 6, EXPLOIT.stroke_width(2)));
        }
        if !self.copies.is_empty() {
            chart
                .draw_series(self.copies.iter().map(|p| Circle::new(*p, 4, COPY.filled())))
                .map_err(draw_error)?
                .label("copied from (PBT)")
                .legend(|(x, y)| Circle::new((x + 6, y), 4, COPY.filled()));
        }
        super::draw_legend(&mut chart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(seq: i64, trial: &str, epoch: i32, action: &str, value: f64) -> DecisionRow {
        DecisionRow {
            seq,
            sweep: "s".into(),
            trial_id: trial.into(),
            decided_at_us: seq,
            epoch,
            rung: 0,
            action: action.into(),
            metric: "val_error".into(),
            value: Some(value),
            threshold: Some(0.5),
            reached: 2,
            kept: 1,
        }
    }

    #[test]
    fn an_adaptive_sweep_gets_its_curves_with_each_decision_marked() {
        let dir = tempfile::tempdir().unwrap();
        super::super::font::load(Path::new(super::super::font::DEFAULT_FONT)).unwrap();
        let mut trials = super::super::testdata::trials();
        trials.truncate(3);
        trials[2].status = "stopped_early".into();
        let metrics = super::super::testdata::metrics(&trials)
            .into_iter()
            .map(|mut m| {
                m.metric = "val_error".into();
                m
            })
            .filter(|m| m.trial_id != trials[2].trial_id || m.epoch == 1)
            .collect::<Vec<_>>();
        let decisions = [
            decision(1, &trials[0].trial_id, 1, "continue", 0.5),
            decision(2, &trials[1].trial_id, 1, "pause", 0.6),
            decision(3, &trials[2].trial_id, 1, "pause", 0.9),
            decision(4, &trials[1].trial_id, 1, "promote", 0.6),
            decision(5, &trials[2].trial_id, 1, "stop", 0.9),
        ];
        let mut plotted = Plotted::default();
        plot("s", &trials, &decisions, &metrics, dir.path(), &mut plotted).unwrap();
        assert_eq!(plotted.files.len(), 2);
        let svg = std::fs::read_to_string(&plotted.files[1]).unwrap();
        for text in [
            "learning curves under the schedule",
            "3 trials, 2 trained to the end",
            "2 paused, 1 promoted, 1 stopped",
            "promoted",
            "val error",
        ] {
            assert!(svg.contains(text), "the SVG lacks {text:?}");
        }
        // Without decisions there is no figure.
        let mut none = Plotted::default();
        plot("s", &trials, &[], &metrics, dir.path(), &mut none).unwrap();
        assert!(none.files.is_empty());
    }

    #[test]
    fn a_pbt_copy_branches_from_its_parent_and_the_replaced_trial_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        super::super::font::load(Path::new(super::super::font::DEFAULT_FONT)).unwrap();
        let mut trials = super::super::testdata::trials();
        trials.truncate(3);
        trials[1].status = "stopped_early".into();
        trials[2].parent_trial_id = Some(trials[0].trial_id.clone());
        trials[2].copied_epoch = Some(1);
        trials[2].generation = 1;
        let metrics: Vec<MetricRow> = super::super::testdata::metrics(&trials)
            .into_iter()
            .map(|mut m| {
                m.metric = "val_error".into();
                m
            })
            .filter(|m| {
                (m.trial_id != trials[1].trial_id || m.epoch == 1) && (m.trial_id != trials[2].trial_id || m.epoch > 1)
            })
            .collect();
        let decisions =
            [decision(1, &trials[0].trial_id, 1, "continue", 0.5), decision(2, &trials[1].trial_id, 1, "exploit", 0.9)];
        let mut plotted = Plotted::default();
        plot("s", &trials, &decisions, &metrics, dir.path(), &mut plotted).unwrap();
        let svg = std::fs::read_to_string(&plotted.files[1]).unwrap();
        for text in ["1 replaced by copies of better trials (PBT)", "replaced (PBT)", "copied from (PBT)"] {
            assert!(svg.contains(text), "the SVG lacks {text:?}");
        }
    }
}
