//! `RawSet`: one split as plain bytes, the common currency of every reader and writer.
//!
//! Readers fill it and writers drain it in Rust, so the per-channel statistics are computed once
//! over the bytes, before (or without) any tensor exists.

use super::ImageSet;
use tch::Tensor;

/// Images u8 in [N, C, H, W] order (the CIFAR plane order), labels in 0..classes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: i64,
}

impl RawSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn chw(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    pub fn image_bytes(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The bytes of image `i`, planes in channel order.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_bytes();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// Per-channel mean and population standard deviation of the pixels scaled to [0, 1]. Counted
    /// through a 256-bin histogram per channel: exact, and free of float accumulation over millions
    /// of pixels.
    pub fn channel_stats(&self) -> (Vec<f64>, Vec<f64>) {
        let plane = self.height * self.width;
        let mut hist = vec![[0u64; 256]; self.channels];
        for image in self.pixels.chunks_exact(self.image_bytes().max(1)) {
            for (c, values) in image.chunks_exact(plane.max(1)).enumerate() {
                for &v in values {
                    hist[c][v as usize] += 1;
                }
            }
        }
        let mut means = Vec::with_capacity(self.channels);
        let mut stds = Vec::with_capacity(self.channels);
        for h in &hist {
            let count = h.iter().sum::<u64>().max(1) as f64;
            let mean = h.iter().enumerate().map(|(v, &k)| v as f64 * k as f64).sum::<f64>() / count;
            let var = h.iter().enumerate().map(|(v, &k)| (v as f64 - mean).powi(2) * k as f64).sum::<f64>() / count;
            means.push(mean / 255.0);
            stds.push(var.sqrt() / 255.0);
        }
        (means, stds)
    }

    pub fn into_image_set(self) -> ImageSet {
        let shape = [self.len() as i64, self.channels as i64, self.height as i64, self.width as i64];
        ImageSet {
            images: Tensor::from_slice(&self.pixels).view(shape),
            labels: Tensor::from_slice(&self.labels),
            classes: self.classes,
        }
    }
}
