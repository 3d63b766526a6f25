//! Weights and masks as pixels: a first layer's units as image tiles on a diverging colour map
//! (blue negative, white zero, red positive), and a 0/1 mask as a black-and-white bitmap, pooled
//! by the max when it is larger than its box. The figures embed these bitmaps whole, so an SVG
//! holds one image rather than a rectangle per weight.

use super::checkpoint::Tensor;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Colour of the negative and the positive end of the diverging map (ColorBrewer's RdBu).
const NEGATIVE: [u8; 3] = [33, 102, 172];
const POSITIVE: [u8; 3] = [178, 24, 43];
/// Colour between tiles, so that an all-white (fully pruned) tile still shows its edges.
const GAP_GREY: u8 = 190;
const GAP_PX: usize = 4;

/// An RGB image, row-major, three bytes a pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Bitmap {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Bitmap {
    fn filled(width: usize, height: usize, colour: [u8; 3]) -> Self {
        Bitmap { width, height, rgb: colour.iter().copied().cycle().take(width * height * 3).collect() }
    }

    fn put(&mut self, x: usize, y: usize, colour: [u8; 3]) {
        let at = (y * self.width + x) * 3;
        self.rgb[at..at + 3].copy_from_slice(&colour);
    }

    #[cfg(test)]
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }

    /// Draws the bitmap with its top left corner at `at` on `area`, in a thin grey frame.
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, at: (i32, i32)) -> anyhow::Result<()> {
        let size = (self.width as u32, self.height as u32);
        let image = BitMapElement::with_owned_buffer(at, size, self.rgb.clone())
            .ok_or_else(|| anyhow::anyhow!("a bitmap of {} × {} has the wrong number of bytes", size.0, size.1))?;
        area.draw(&image).map_err(crate::plot::draw_error)?;
        let frame = [(at.0 - 1, at.1 - 1), (at.0 + size.0 as i32, at.1 + size.1 as i32)];
        area.draw(&Rectangle::new(frame, BLACK.mix(0.35))).map_err(crate::plot::draw_error)?;
        Ok(())
    }
}

/// `t` in [-1, 1] on the diverging map: exactly 0 is white, ±1 the full colour.
pub fn diverging(t: f32) -> [u8; 3] {
    if t == 0.0 || !t.is_finite() {
        return [255; 3];
    }
    let (end, a) = if t < 0.0 { (NEGATIVE, -t) } else { (POSITIVE, t) };
    let a = a.min(1.0);
    end.map(|c| (255.0 + (c as f32 - 255.0) * a).round() as u8)
}

/// (channels, height, width) of an input of `n` values: a square grey image, three channels of a
/// square, or else the narrowest rectangle at least as wide as it is tall.
pub fn image_shape(n: usize) -> (usize, usize, usize) {
    let side = |m: usize| {
        let s = (m as f64).sqrt().round() as usize;
        (s * s == m).then_some(s)
    };
    if let Some(s) = side(n) {
        return (1, s, s);
    }
    if let Some(s) = n.is_multiple_of(3).then(|| side(n / 3)).flatten() {
        return (3, s, s);
    }
    let w = (n as f64).sqrt().ceil() as usize;
    (1, n.div_ceil(w), w)
}

/// One unit's input weights laid out as an image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

/// The first `max` units (rows) of a first layer's weight as tiles: a fully connected layer's
/// inputs as the image they came from, a convolution's kernel as it is, either averaged over
/// the colour channels (so a weight pruned in every channel is exactly zero).
pub fn tiles(weight: &Tensor, max: usize) -> Vec<Tile> {
    let (rows, cols) = weight.rows_cols();
    let (channels, height, width) = match weight.shape.as_slice() {
        [_, c, h, w] => (*c, *h, *w),
        _ => image_shape(cols),
    };
    let plane = height * width;
    if plane == 0 || channels == 0 {
        return Vec::new();
    }
    (0..rows.min(max))
        .map(|r| {
            let row = &weight.values[r * cols..(r + 1) * cols];
            let mut values = vec![0f32; plane];
            for (i, v) in row.iter().enumerate() {
                values[i % plane] += v / channels as f32;
            }
            Tile { height, width, values }
        })
        .collect()
}

/// `tiles` in a grid of at most `per_row` columns, `box_px` wide, each tile scaled (nearest
/// neighbour, aspect kept) to its cell and to its own largest |w|.
pub fn tile_grid(tiles: &[Tile], per_row: usize, box_px: usize) -> Bitmap {
    let per_row = per_row.min((tiles.len() as f64).sqrt().ceil() as usize).max(1);
    let rows = tiles.len().div_ceil(per_row).max(1);
    let cell = (box_px.saturating_sub(GAP_PX * (per_row + 1)) / per_row).max(1);
    let side = GAP_PX + per_row * (cell + GAP_PX);
    let mut out = Bitmap::filled(side, GAP_PX + rows * (cell + GAP_PX), [GAP_GREY; 3]);
    for (k, tile) in tiles.iter().enumerate() {
        let (ox, oy) = (GAP_PX + (k % per_row) * (cell + GAP_PX), GAP_PX + (k / per_row) * (cell + GAP_PX));
        let longest = tile.height.max(tile.width) as f64;
        let (h, w) = (
            (tile.height as f64 * cell as f64 / longest) as usize,
            (tile.width as f64 * cell as f64 / longest) as usize,
        );
        let scale = tile.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        for y in 0..h {
            for x in 0..w {
                let v = tile.values[(y * tile.height / h) * tile.width + x * tile.width / w];
                out.put(ox + x, oy + y, diverging(if scale > 0.0 { v / scale } else { 0.0 }));
            }
        }
    }
    out
}

/// The diverging map from -1 to 1 as a strip `width` × `height`, for a figure's legend.
pub fn colour_bar(width: usize, height: usize) -> Bitmap {
    let mut out = Bitmap::filled(width, height, [255; 3]);
    for x in 0..width {
        let t = 2.0 * x as f32 / (width.max(2) - 1) as f32 - 1.0;
        for y in 0..height {
            out.put(x, y, diverging(t));
        }
    }
    out
}

/// A mask (kept = nonzero) as black on white, rows × the product of the other dimensions, scaled
/// to fit `max_w` × `max_h`: enlarged by a whole factor, or shrunk with a pixel black when any
/// weight it covers is kept. The max rather than the mean: at 99% sparsity a mean would wash
/// the few kept weights out to white, while the white of whole pruned rows and columns (dead
/// units and inputs) survives either way. Also the weights per pixel side (1 when enlarged).
pub fn mask_bitmap(mask: &Tensor, max_w: usize, max_h: usize) -> (Bitmap, f64) {
    let (rows, cols) = mask.rows_cols();
    let fit = (max_w as f64 / cols.max(1) as f64).min(max_h as f64 / rows.max(1) as f64);
    let scale = if fit >= 1.0 { fit.floor() } else { fit };
    let (h, w) = (((rows as f64 * scale).round() as usize).max(1), ((cols as f64 * scale).round() as usize).max(1));
    let mut out = Bitmap::filled(w, h, [255; 3]);
    let span = |i: usize, n: usize, m: usize| (i * n / m, ((i + 1) * n).div_ceil(m).max(i * n / m + 1).min(n));
    for y in 0..h {
        let (r0, r1) = span(y, rows, h);
        for x in 0..w {
            let (c0, c1) = span(x, cols, w);
            let mut block = (r0..r1).flat_map(|r| (c0..c1).map(move |c| r * cols + c));
            if block.any(|i| mask.values[i] != 0.0) {
                out.put(x, y, [0; 3]);
            }
        }
    }
    (out, (1.0 / scale).max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_laid_out_as_the_images_they_came_from() {
        assert_eq!(image_shape(784), (1, 28, 28));
        assert_eq!(image_shape(3 * 32 * 32), (3, 32, 32));
        assert_eq!(image_shape(150), (1, 12, 13));
        let weight = Tensor {
            shape: vec![2, 3, 1, 2],
            values: vec![3.0, 0.0, 3.0, 0.0, 3.0, -6.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        };
        let t = tiles(&weight, 100);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].height, t[0].width), (1, 2));
        assert_eq!(t[0].values, [3.0, -2.0]);
    }

    #[test]
    fn zero_is_white_and_the_signs_have_their_colours() {
        assert_eq!(diverging(0.0), [255; 3]);
        assert_eq!(diverging(-1.0), NEGATIVE);
        assert_eq!(diverging(2.0), POSITIVE);
        let grid = tile_grid(&[Tile { height: 2, width: 2, values: vec![0.0, -1.0, 0.5, 1.0] }], 10, 100);
        // One tile fills the box but the gaps: a cell of 92 px, 46 px a weight.
        assert_eq!((grid.width, grid.height), (100, 100));
        assert_eq!(grid.pixel(0, 0), [GAP_GREY; 3]);
        assert_eq!(grid.pixel(GAP_PX, GAP_PX), [255; 3]);
        assert_eq!(grid.pixel(GAP_PX + 60, GAP_PX), NEGATIVE);
        assert_eq!(grid.pixel(GAP_PX + 60, GAP_PX + 60), POSITIVE);
    }

    #[test]
    fn large_masks_are_pooled_by_the_max_and_small_ones_enlarged() {
        // 4 × 8, the left half kept and one weight of the right, in a 4 × 2 box: each pixel
        // covers 2 × 2 weights.
        let values = (0..32).map(|i| if i % 8 < 4 || i == 31 { 1.0 } else { 0.0 }).collect();
        let (b, per_px) = mask_bitmap(&Tensor { shape: vec![4, 8], values }, 4, 2);
        assert_eq!((b.width, b.height, per_px), (4, 2, 2.0));
        assert_eq!((b.pixel(0, 0), b.pixel(3, 0), b.pixel(3, 1)), ([0; 3], [255; 3], [0; 3]));
        let (b, per_px) = mask_bitmap(&Tensor { shape: vec![2, 2], values: vec![1.0, 0.0, 0.0, 0.5] }, 100, 10);
        assert_eq!((b.width, b.height, per_px), (10, 10, 1.0));
        assert_eq!((b.pixel(0, 0), b.pixel(9, 0), b.pixel(9, 9)), ([0; 3], [255; 3], [0; 3]));
    }
}
