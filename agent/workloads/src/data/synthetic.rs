//! Synthetic image sets, drawn from a seed and written in the real on-disk formats, so tests and the
//! quickstart exercise the same readers as real downloads. Each class is a random low-frequency
//! pattern (colour, or grey for MNIST); an image is its class pattern shifted, rescaled, brightened
//! and noised. A second
//! generator draws a Gaussian mixture, stored as one-row grey images of `image_size` features,
//! the small long-tail problem. Either can be written long-tailed (`imbalance_ratio`).

use super::long_tail::take_long_tail;
use super::raw::RawSet;
use super::{cifar, image_folder, imagenet_lt, mnist, npy, DataError};
use crate::rng::{Rng, Stream};
use std::f64::consts::TAU;
use std::path::Path;

/// What `write_synthetic` generates; every byte is a function of these fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    pub train: usize,
    pub test: usize,
    pub classes: i64,
    /// Side of the square images (CIFAR formats need 32; `default_image_size` gives each format's
    /// usual side); features per point of a mixture.
    pub image_size: i64,
    pub seed: u64,
    /// Cut the training split to the exponential long-tail profile with this ratio of the largest
    /// to the smallest class (`long_tail`); 1 keeps it balanced.
    pub imbalance_ratio: f64,
    pub generator: Generator,
}

impl Default for SynthOptions {
    fn default() -> SynthOptions {
        SynthOptions {
            train: 5000,
            test: 1000,
            classes: 10,
            image_size: 32,
            seed: 0,
            imbalance_ratio: 1.0,
            generator: Generator::Patterns,
        }
    }
}

/// What the classes of a synthetic set look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// Shifted patterns that a CNN can learn: images of `image_size` squares, in colour (grey for
    /// mnist).
    Patterns,
    /// Isotropic unit Gaussians around random class means, `image_size` features stored as a
    /// [1, 1, image_size] grey image (one byte per 1/16 standard deviation around 128).
    GaussianMixture,
}

impl Generator {
    pub const NAMES: [&'static str; 2] = ["patterns", "gaussian_mixture"];

    pub fn parse(s: &str) -> Result<Generator, String> {
        match s {
            "patterns" => Ok(Generator::Patterns),
            "gaussian_mixture" => Ok(Generator::GaussianMixture),
            other => Err(format!("expected \"patterns\" or \"gaussian_mixture\", got \"{other}\"")),
        }
    }
}

/// Cosine components per channel of a class pattern.
const COMPONENTS: usize = 3;
/// Highest spatial frequency, in cycles per image: low enough that the pattern survives the noise
/// at CIFAR scale, high enough that a shift changes pixels substantially.
const MAX_FREQUENCY: u64 = 3;
/// Shifts are uniform in [-side/SHIFT_FRACTION, side/SHIFT_FRACTION] pixels on each axis (circular),
/// so the mean image of a class is blurred and a linear model on pixels does poorly.
const SHIFT_FRACTION: usize = 4;
/// Each image also carries another class's pattern, independently shifted, at a weight uniform in
/// [0, DISTRACTOR]: per-pixel noise averages away over a receptive field, this does not, so even a
/// shift-invariant model confuses classes now and then.
const DISTRACTOR: f64 = 0.8;
/// Per-pixel Gaussian noise, relative to the unit standard deviation of a pattern.
const NOISE_STD: f64 = 0.6;
/// Per-image contrast factor in [1 - C, 1 + C] and additive brightness in [-B, B].
const CONTRAST: f64 = 0.3;
const BRIGHTNESS: f64 = 0.4;
/// Bytes per unit of pattern value, around mid-grey: keeps +-2.6 standard deviations unclipped.
const BYTE_SCALE: f64 = 48.0;

/// The side of a format's images when the user names none: MNIST's digits are 28x28, everything
/// else defaults to CIFAR's 32.
pub fn default_image_size(format: &str) -> i64 {
    match format {
        "mnist" => mnist::SIDE as i64,
        _ => 32,
    }
}

/// Channels of the images a format holds: MNIST is grey, the others colour.
fn channels_of(format: &str) -> usize {
    match format {
        "mnist" => 1,
        _ => 3,
    }
}

/// The coarse class of a fine class in synthetic CIFAR-100: consecutive fine classes share one of
/// min(20, classes) coarse classes, as in the real set (5 fine classes per coarse class).
fn coarse_of(fine: i64, classes: i64) -> i64 {
    fine * classes.min(20) / classes
}

/// Writes a synthetic data set in the real on-disk format of `format`, into `out`, readable by
/// `load` with the same format (image_folder with `image_size` = `opts.image_size`).
pub fn write_synthetic(format: &str, out: &Path, opts: &SynthOptions) -> Result<(), DataError> {
    let bad = |message: String| Err(DataError::invalid(out, message));
    if opts.train == 0 || opts.test == 0 {
        return bad(format!("synthetic sets need train and test >= 1, got {} and {}", opts.train, opts.test));
    }
    if opts.classes < 1 || opts.image_size < 1 {
        return bad(format!(
            "synthetic sets need classes >= 1 and image_size >= 1, got {} and {}",
            opts.classes, opts.image_size
        ));
    }
    let limit = match format {
        "cifar10" => 10,
        "cifar100" => 100,
        _ => 256,
    };
    if opts.classes > limit {
        return bad(format!("synthetic {format} holds at most {limit} classes, got {}", opts.classes));
    }
    if format.starts_with("cifar") && opts.image_size != 32 {
        return bad(format!("{format} images are 32x32, got image_size {}", opts.image_size));
    }
    if !(opts.imbalance_ratio >= 1.0 && opts.imbalance_ratio.is_finite()) {
        return bad(format!("imbalance_ratio: expected a number >= 1, got {}", opts.imbalance_ratio));
    }
    match (format, opts.generator) {
        ("cifar10" | "cifar100" | "image_folder" | "npy" | "imagenet_lt" | "mnist", Generator::Patterns) => {}
        ("npy", Generator::GaussianMixture) => {}
        ("cifar10" | "cifar100" | "image_folder" | "imagenet_lt" | "mnist", Generator::GaussianMixture) => {
            return bad(format!("gaussian_mixture sets are feature rows, written as npy; {format} holds images"))
        }
        (other, _) => return Err(DataError::UnknownFormat { got: other.to_string() }),
    }
    let (train, test) = match opts.generator {
        Generator::Patterns => generate(opts, channels_of(format)),
        Generator::GaussianMixture => gaussian_mixture(opts),
    };
    let train = if opts.imbalance_ratio > 1.0 { take_long_tail(train, opts.imbalance_ratio) } else { train };
    match format {
        "imagenet_lt" => imagenet_lt::write(out, &train, &test),
        "cifar10" => cifar::write_cifar10(out, &train, &test),
        "cifar100" => {
            let coarse: Vec<i64> = (0..opts.classes).map(|f| coarse_of(f, opts.classes)).collect();
            cifar::write_cifar100(out, &train, &test, &coarse)
        }
        "image_folder" => image_folder::write(out, &train, &test),
        "mnist" => mnist::write(out, &train, &test),
        _ => {
            cifar::create_dir(out)?;
            npy::write_split(out, "train", &train)?;
            npy::write_split(out, "test", &test)
        }
    }
}

/// The train and test sets of `opts` with `channels` channels (3 for colour formats, 1 for grey),
/// before any file format. Train and test draw from separate streams, so changing the train size
/// leaves the test set as it was.
pub(crate) fn generate(opts: &SynthOptions, channels: usize) -> (RawSet, RawSet) {
    let side = opts.image_size as usize;
    let mut rng = Rng::new(opts.seed, Stream::ImageTemplates);
    let patterns: Vec<Vec<f64>> = (0..opts.classes).map(|_| pattern(&mut rng, side, channels)).collect();
    let train = draw_set(&patterns, opts, channels, opts.train, Stream::ImageTrain);
    let test = draw_set(&patterns, opts, channels, opts.test, Stream::ImageTest);
    (train, test)
}

/// One class pattern, [channels, side, side], each channel a sum of integer-frequency cosines (so
/// circular shifts stay smooth), scaled to unit standard deviation over the whole pattern.
fn pattern(rng: &mut Rng, side: usize, channels: usize) -> Vec<f64> {
    let plane = side * side;
    let mut values = vec![0.0; channels * plane];
    for c in 0..channels {
        for _ in 0..COMPONENTS {
            // (0, 0) would be a constant: the brightness jitter already covers that.
            let (fx, fy) = loop {
                let f = (rng.below(MAX_FREQUENCY + 1), rng.below(MAX_FREQUENCY + 1));
                if f != (0, 0) {
                    break f;
                }
            };
            let (amplitude, phase) = (rng.normal(), TAU * rng.uniform());
            for y in 0..side {
                for x in 0..side {
                    let angle = TAU * (fx as f64 * x as f64 + fy as f64 * y as f64) / side as f64;
                    values[c * plane + y * side + x] += amplitude * (angle + phase).cos();
                }
            }
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    values.iter().map(|v| (v - mean) / std.max(1e-9)).collect()
}

/// Spread of the class means of a mixture, per feature, in units of the within-class deviation.
const MIXTURE_SEPARATION: f64 = 0.6;
/// Bytes per unit of a mixture feature, around 128: keeps +-7.9 deviations unclipped.
const MIXTURE_BYTE_SCALE: f64 = 16.0;

/// A Gaussian mixture: class means drawn once, points = mean + unit noise; balanced classes in
/// random order, like the image sets.
fn gaussian_mixture(opts: &SynthOptions) -> (RawSet, RawSet) {
    let dim = opts.image_size as usize;
    let mut rng = Rng::new(opts.seed, Stream::ImageTemplates);
    let means: Vec<Vec<f64>> =
        (0..opts.classes).map(|_| (0..dim).map(|_| MIXTURE_SEPARATION * rng.normal()).collect()).collect();
    let draw = |n: usize, stream: Stream| {
        let mut rng = Rng::new(opts.seed, stream);
        let labels: Vec<i64> = rng.permutation(n).into_iter().map(|i| i % opts.classes).collect();
        let pixels = labels
            .iter()
            .flat_map(|&l| means[l as usize].iter().map(|m| m + rng.normal()).collect::<Vec<_>>())
            .map(|v| (128.0 + MIXTURE_BYTE_SCALE * v).round().clamp(0.0, 255.0) as u8)
            .collect();
        RawSet { pixels, labels, channels: 1, height: 1, width: dim, classes: opts.classes }
    };
    (draw(opts.train, Stream::ImageTrain), draw(opts.test, Stream::ImageTest))
}

fn draw_set(patterns: &[Vec<f64>], opts: &SynthOptions, channels: usize, n: usize, stream: Stream) -> RawSet {
    let side = opts.image_size as usize;
    let plane = side * side;
    let mut rng = Rng::new(opts.seed, stream);
    // Balanced classes in random order.
    let labels: Vec<i64> = rng.permutation(n).into_iter().map(|i| i % opts.classes).collect();
    let max_shift = (side / SHIFT_FRACTION) as u64;
    let classes = opts.classes as u64;
    let mut pixels = Vec::with_capacity(n * channels * plane);
    for &label in &labels {
        let template = &patterns[label as usize];
        let dx = side + rng.below(2 * max_shift + 1) as usize - max_shift as usize;
        let dy = side + rng.below(2 * max_shift + 1) as usize - max_shift as usize;
        let contrast = 1.0 + CONTRAST * (2.0 * rng.uniform() - 1.0);
        let brightness = BRIGHTNESS * (2.0 * rng.uniform() - 1.0);
        // With one class there is no other pattern: the distractor is the class's own.
        let other = if classes > 1 { (label as u64 + 1 + rng.below(classes - 1)) % classes } else { 0 };
        let distractor = &patterns[other as usize];
        let weight = DISTRACTOR * rng.uniform();
        let ex = side + rng.below(2 * max_shift + 1) as usize - max_shift as usize;
        let ey = side + rng.below(2 * max_shift + 1) as usize - max_shift as usize;
        for c in 0..channels {
            for y in 0..side {
                for x in 0..side {
                    let t = template[c * plane + (y + dy) % side * side + (x + dx) % side];
                    let d = distractor[c * plane + (y + ey) % side * side + (x + ex) % side];
                    let v = contrast * (t + weight * d) + brightness + NOISE_STD * rng.normal();
                    pixels.push((128.0 + BYTE_SCALE * v).round().clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    RawSet { pixels, labels, channels, height: side, width: side, classes: opts.classes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(seed: u64) -> SynthOptions {
        SynthOptions { train: 300, test: 100, classes: 5, image_size: 16, seed, ..SynthOptions::default() }
    }

    #[test]
    fn same_seed_same_set_other_seed_other_set() {
        assert_eq!(generate(&opts(1), 3), generate(&opts(1), 3));
        assert_ne!(generate(&opts(1), 3).0.pixels, generate(&opts(2), 3).0.pixels);
        // More training images leave the test set untouched.
        let bigger = SynthOptions { train: 400, ..opts(1) };
        assert_eq!(generate(&bigger, 3).1, generate(&opts(1), 3).1);
    }

    /// Nearest class mean in a feature space; returns the test accuracy.
    fn nearest_mean_accuracy(features: impl Fn(&[u8]) -> Vec<f64>, train: &RawSet, test: &RawSet) -> f64 {
        let classes = train.classes as usize;
        let mut means: Vec<Vec<f64>> = vec![Vec::new(); classes];
        let mut counts = vec![0usize; classes];
        for i in 0..train.len() {
            let (l, f) = (train.labels[i] as usize, features(train.image(i)));
            means[l].resize(f.len(), 0.0);
            means[l].iter_mut().zip(&f).for_each(|(m, v)| *m += v);
            counts[l] += 1;
        }
        for (m, &c) in means.iter_mut().zip(&counts) {
            m.iter_mut().for_each(|v| *v /= c as f64);
        }
        let correct = (0..test.len())
            .filter(|&i| {
                let f = features(test.image(i));
                let dist = |m: &Vec<f64>| -> f64 { m.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum() };
                let best = (0..classes).min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b]))).unwrap();
                best as i64 == test.labels[i]
            })
            .count();
        correct as f64 / test.len() as f64
    }

    /// Magnitudes of the low-frequency Fourier coefficients of each channel: invariant to circular
    /// shifts, the kind of feature a convolutional network with pooling can build.
    fn spectrum(image: &[u8], side: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for plane in image.chunks_exact(side * side) {
            for fy in 0..=MAX_FREQUENCY as usize {
                for fx in 0..=MAX_FREQUENCY as usize {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (p, &v) in plane.iter().enumerate() {
                        let angle = TAU * (fx * (p % side) + fy * (p / side)) as f64 / side as f64;
                        re += v as f64 * angle.cos();
                        im += v as f64 * angle.sin();
                    }
                    out.push((re * re + im * im).sqrt() / (side * side) as f64);
                }
            }
        }
        out
    }

    /// Learnable, but not by a template match: nearest class mean on raw pixels (which shifts blur)
    /// is far from perfect, while the same rule on shift-invariant features is nearly always right.
    #[test]
    fn classes_are_learnable_but_not_by_pixel_means() {
        let o = SynthOptions { classes: 10, train: 500, ..opts(3) };
        let (train, test) = generate(&o, 3);
        let mut counts = [0usize; 10];
        train.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(counts.iter().all(|&c| c == 50), "balanced classes: {counts:?}");
        let pixels = nearest_mean_accuracy(|im| im.iter().map(|&v| v as f64).collect(), &train, &test);
        let invariant = nearest_mean_accuracy(|im| spectrum(im, 16), &train, &test);
        eprintln!("nearest class mean accuracy: pixels {pixels}, shift-invariant features {invariant}");
        assert!((0.15..0.8).contains(&pixels), "pixels {pixels}");
        assert!(invariant > 0.9, "shift-invariant features {invariant}");
    }

    #[test]
    fn bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_synthetic("cifar10", dir.path(), &opts(0)).unwrap_err().to_string();
        assert!(err.contains("32x32"), "{err}");
        let err = write_synthetic("svhn", dir.path(), &opts(0)).unwrap_err().to_string();
        assert!(err.starts_with("data.format: expected one of cifar10"), "{err}");
        let many = SynthOptions { classes: 11, image_size: 32, ..opts(0) };
        assert!(write_synthetic("cifar10", dir.path(), &many).is_err());
    }
}
