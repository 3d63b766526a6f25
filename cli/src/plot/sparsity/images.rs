//! The figures drawn from checkpoints: the first layer's weights of a dense network beside those
//! of the most pruned one (magnitude pruning, same seed, when the sweep has it), and each layer's
//! mask of that pruned network. A sweep whose checkpoints are not there gets a note instead.

use super::bitmap::{self, Bitmap};
use super::checkpoint::{model_file, Checkpoint, Tensor};
use super::{about, percent, Trial, DENSE, MAGNITUDE, TEST_ACC};
use crate::plot::{
    draw_error, draw_header, render, text_style, Figure, Plotted, HEADER_HEIGHT, SUBTITLE_PX, TICK_LABEL,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Units of the first layer drawn, as a grid of `TILES_PER_ROW` columns.
const MAX_TILES: usize = 100;
const TILES_PER_ROW: usize = 10;
/// Side of a grid of tiles, and the box a mask is fitted into.
const GRID_PX: usize = 600;
const MASK_BOX: (usize, usize) = (600, 260);
/// Room for a panel's caption above its image, and around it.
const CAPTION_PX: i32 = 56;
const PAD_PX: i32 = 40;
const FOOTER_PX: i32 = 60;

/// Draws the weight and mask figures of `trials` from their checkpoints under `root`.
pub fn plot(
    sweep: &str,
    trials: &[Trial],
    root: &Path,
    title_end: &str,
    suffix: &str,
    out: &Path,
    plotted: &mut Plotted,
) -> anyhow::Result<()> {
    let folder = root.join(sweep);
    if !folder.is_dir() {
        plotted.notes.push(format!(
            "no checkpoints of sweep `{sweep}` in {}, so no weight or mask images; point --checkpoints (SWEEP_CHECKPOINT_ROOT) at the agents' checkpoint root",
            folder.display()
        ));
        return Ok(());
    }
    let (dense, pruned) = pick(trials);
    let mut read = |t: &Trial| match Checkpoint::read(&model_file(root, sweep, &t.row.trial_id)) {
        Ok(c) => Some(c),
        Err(e) => {
            plotted.notes.push(format!("{e:#}; its images are skipped"));
            None
        }
    };
    let loaded: Vec<(&Trial, Checkpoint)> =
        [dense, pruned].into_iter().flatten().filter_map(|t| Some((t, read(t)?))).collect();
    let mut panels = Vec::new();
    for (t, ckpt) in &loaded {
        match first_layer_panel(t, ckpt) {
            Ok(p) => panels.push(p),
            Err(e) => plotted.notes.push(format!("{e:#}; no weight image of trial {}", t.row.trial_id)),
        }
    }
    if !panels.is_empty() {
        let rows: Vec<_> = loaded.iter().map(|(t, _)| t.row).collect();
        let figure = WeightsFigure {
            title: format!("First-layer weights, dense beside pruned{title_end}"),
            subtitle: format!("{}; a tile per unit: its input weights, mean over colour channels", about(sweep, &rows)),
            panels,
        };
        plotted.files.extend(render(&figure, out, &format!("{sweep}-first-layer-weights{suffix}"))?);
    }
    let Some((t, ckpt)) = loaded.iter().find(|(t, _)| pruned.is_some_and(|p| std::ptr::eq(p, *t))) else {
        return Ok(());
    };
    let mut masks = ckpt.weight_masks();
    masks.sort_by(|a, b| super::natural_cmp(&a.0, &b.0));
    let mut panels = Vec::new();
    for (layer, name) in masks {
        match ckpt.tensor(&name) {
            Ok(mask) => panels.push(mask_panel(&layer, &mask)),
            Err(e) => plotted.notes.push(format!("{e:#}; its mask image is skipped")),
        }
    }
    if panels.is_empty() {
        plotted.notes.push(format!(
            "the checkpoint of trial {} holds no `mask.<layer>.weight`, so no mask image",
            t.row.trial_id
        ));
        return Ok(());
    }
    let figure = MasksFigure {
        title: format!("Pruning masks of {} at target {}{title_end}", t.label, percent(t.target)),
        subtitle: format!(
            "{}; black: kept weight, white: pruned; rows: units, columns: inputs",
            about(sweep, &[t.row])
        ),
        panels,
    };
    plotted.files.extend(render(&figure, out, &format!("{sweep}-masks{suffix}"))?);
    Ok(())
}

/// The dense trial (lowest seed) and the pruned trial to show: the most pruned magnitude trial of
/// the same seed, else the most pruned of that seed, else the most pruned.
fn pick<'t, 'a>(trials: &'t [Trial<'a>]) -> (Option<&'t Trial<'a>>, Option<&'t Trial<'a>>) {
    let dense = trials.iter().filter(|t| t.reference).min_by_key(|t| (t.seed(), &t.row.trial_id));
    let seed = dense.and_then(|d| d.seed());
    let same_seed = |t: &Trial| dense.is_none() || t.seed() == seed;
    let pruned = trials.iter().filter(|t| !t.reference && t.method != DENSE).max_by(|a, b| {
        let key = |t: &Trial| (same_seed(t) && t.method == MAGNITUDE, same_seed(t));
        key(a)
            .cmp(&key(b))
            .then(a.target.total_cmp(&b.target))
            .then(a.sparsity().total_cmp(&b.sparsity()))
            .then_with(|| b.label.cmp(&a.label))
            .then_with(|| b.row.trial_id.cmp(&a.row.trial_id))
    });
    (dense, pruned)
}

struct TilePanel {
    caption: [String; 2],
    grid: Bitmap,
}

fn first_layer_panel(t: &Trial, ckpt: &Checkpoint) -> anyhow::Result<TilePanel> {
    let name = ckpt.first_layer().ok_or_else(|| anyhow::anyhow!("no first-layer weight in the checkpoint"))?;
    let weight = ckpt.masked(&name)?;
    let tiles = bitmap::tiles(&weight, MAX_TILES);
    let (rows, _) = weight.rows_cols();
    let units = if weight.shape.len() == 4 { "filters" } else { "units" };
    let zero = weight.values.iter().filter(|v| **v == 0.0).count() as f64 / weight.values.len().max(1) as f64;
    let which = if t.reference { DENSE.to_string() } else { format!("{} at target {}", t.label, percent(t.target)) };
    let accuracy = t.last.get(TEST_ACC).map(|a| format!(", test accuracy {}", percent(*a))).unwrap_or_default();
    Ok(TilePanel {
        caption: [which, format!("{name}: {units} 1-{} of {rows}, {} zero{accuracy}", tiles.len(), percent(zero))],
        grid: bitmap::tile_grid(&tiles, TILES_PER_ROW, GRID_PX),
    })
}

struct WeightsFigure {
    title: String,
    subtitle: String,
    panels: Vec<TilePanel>,
}

impl Figure for WeightsFigure {
    fn size(&self) -> (u32, u32) {
        let width = self.panels.iter().map(|p| p.grid.width as i32 + 2 * PAD_PX).sum::<i32>();
        let height = self.panels.iter().map(|p| p.grid.height as i32).max().unwrap_or(0);
        (width.max(1000) as u32, HEADER_HEIGHT + (CAPTION_PX + height + FOOTER_PX + 20) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let (width, _) = body.dim_in_pixel();
        let used: i32 = self.panels.iter().map(|p| p.grid.width as i32 + 2 * PAD_PX).sum();
        let mut x = (width as i32 - used) / 2 + PAD_PX;
        let caption = |v| text_style(SUBTITLE_PX, BLACK, HPos::Center, v);
        for p in &self.panels {
            let centre = x + p.grid.width as i32 / 2;
            body.draw(&Text::new(p.caption[0].as_str(), (centre, 8), caption(VPos::Top))).map_err(draw_error)?;
            body.draw(&Text::new(p.caption[1].as_str(), (centre, 30), caption(VPos::Top))).map_err(draw_error)?;
            p.grid.draw(&body, (x, CAPTION_PX))?;
            x += p.grid.width as i32 + 2 * PAD_PX;
        }
        // The colour map's legend, centred under the grids.
        let bar = bitmap::colour_bar(240, 14);
        let height = self.panels.iter().map(|p| p.grid.height as i32).max().unwrap_or(0);
        let (bx, by) = (width as i32 / 2 - 120, CAPTION_PX + height + 20);
        bar.draw(&body, (bx, by))?;
        let small = |h| text_style(TICK_LABEL.1 as i32, BLACK, h, VPos::Center);
        body.draw(&Text::new("−max |w|", (bx - 10, by + 7), small(HPos::Right))).map_err(draw_error)?;
        body.draw(&Text::new("+max |w| of the tile", (bx + 250, by + 7), small(HPos::Left))).map_err(draw_error)?;
        let zero = text_style(TICK_LABEL.1 as i32, BLACK, HPos::Center, VPos::Top);
        body.draw(&Text::new("0 (white: pruned)", (bx + 120, by + 20), zero)).map_err(draw_error)?;
        Ok(())
    }
}

struct MaskPanel {
    caption: String,
    bitmap: Bitmap,
}

fn mask_panel(layer: &str, mask: &Tensor) -> MaskPanel {
    let (rows, cols) = mask.rows_cols();
    let zero = mask.values.iter().filter(|v| **v == 0.0).count() as f64 / mask.values.len().max(1) as f64;
    let (bitmap, per_px) = bitmap::mask_bitmap(mask, MASK_BOX.0, MASK_BOX.1);
    let pooled = match per_px > 1.0 {
        true => format!(" (a pixel: {0:.1} × {0:.1} weights, black if any is kept)", per_px),
        false => String::new(),
    };
    MaskPanel { caption: format!("{layer}: {rows} × {cols}, {} pruned{pooled}", percent(zero)), bitmap }
}

struct MasksFigure {
    title: String,
    subtitle: String,
    panels: Vec<MaskPanel>,
}

impl MasksFigure {
    /// Two columns once there are more than three layers, so a deep network stays on a screen.
    fn columns(&self) -> usize {
        if self.panels.len() > 3 {
            2
        } else {
            1
        }
    }

    fn column_width(&self) -> i32 {
        self.panels.iter().map(|p| p.bitmap.width).max().unwrap_or(0).max(MASK_BOX.0) as i32 + 2 * PAD_PX
    }

    /// Each row as tall as its tallest mask, so a 10 × 100 output layer takes little room.
    fn row_heights(&self) -> Vec<i32> {
        let rows = self.panels.chunks(self.columns());
        rows.map(|row| row.iter().map(|p| p.bitmap.height as i32).max().unwrap_or(0) + CAPTION_PX + 16).collect()
    }
}

impl Figure for MasksFigure {
    fn size(&self) -> (u32, u32) {
        let width = (self.column_width() * self.columns() as i32).max(1000) as u32;
        (width, HEADER_HEIGHT + self.row_heights().iter().sum::<i32>() as u32 + 20)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&head, &self.title, &self.subtitle)?;
        let cw = self.column_width();
        let left = (body.dim_in_pixel().0 as i32 - cw * self.columns() as i32) / 2;
        let tops: Vec<i32> = self.row_heights().iter().scan(0, |y, h| Some(std::mem::replace(y, *y + h))).collect();
        for (k, p) in self.panels.iter().enumerate() {
            let (x, y) = (left + cw * (k % self.columns()) as i32, tops[k / self.columns()]);
            let centre = x + cw / 2;
            let style = text_style(SUBTITLE_PX, BLACK, HPos::Center, VPos::Bottom);
            body.draw(&Text::new(p.caption.as_str(), (centre, y + CAPTION_PX - 12), style)).map_err(draw_error)?;
            p.bitmap.draw(&body, (centre - p.bitmap.width as i32 / 2, y + CAPTION_PX))?;
        }
        Ok(())
    }
}
