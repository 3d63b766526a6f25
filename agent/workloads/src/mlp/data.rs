//! The synthetic noisy classification set of the `mlp` workload, generated on the CPU from the seed.
//!
//! Inputs are standard normal, labels come from a random linear teacher, and a chosen fraction of
//! training labels is replaced by a different class; the test set stays clean, so test error
//! measures how much of the noise a model memorised.

use crate::rng::{Rng, Stream};
use tch::{Device, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct DataParams {
    pub n: usize,
    pub n_test: usize,
    pub dim: usize,
    pub classes: usize,
    pub label_noise: f64,
}

/// Row-major inputs and class labels. Everything here is a function of (params, seed) alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub dim: usize,
    pub classes: usize,
    pub train_x: Vec<f32>,
    /// Training labels after the noise.
    pub train_y: Vec<i64>,
    /// The teacher's training labels, before the noise.
    pub train_y_clean: Vec<i64>,
    /// Indices of the training points whose label was replaced.
    pub noisy: Vec<usize>,
    pub test_x: Vec<f32>,
    pub test_y: Vec<i64>,
}

/// The dataset as tensors on the device the model runs on.
pub struct Tensors {
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub test_x: Tensor,
    pub test_y: Tensor,
}

impl Dataset {
    pub fn generate(p: &DataParams, seed: u64) -> Dataset {
        let teacher = Rng::new(seed, Stream::Teacher).normals(p.dim * p.classes);
        let train_x = Rng::new(seed, Stream::TrainInputs).normals(p.n * p.dim);
        let test_x = Rng::new(seed, Stream::TestInputs).normals(p.n_test * p.dim);
        let train_y_clean = teacher_labels(&train_x, &teacher, p.dim, p.classes);
        let test_y = teacher_labels(&test_x, &teacher, p.dim, p.classes);

        // Exactly round(label_noise * n) points, each moved to one of the other classes uniformly.
        let mut rng = Rng::new(seed, Stream::LabelNoise);
        let flips = ((p.label_noise * p.n as f64).round() as usize).min(p.n);
        let mut noisy: Vec<usize> = rng.permutation(p.n)[..flips].iter().map(|&i| i as usize).collect();
        noisy.sort_unstable();
        let mut train_y = train_y_clean.clone();
        for &i in &noisy {
            let shift = 1 + rng.below(p.classes as u64 - 1) as i64;
            train_y[i] = (train_y[i] + shift) % p.classes as i64;
        }
        Dataset { dim: p.dim, classes: p.classes, train_x, train_y, train_y_clean, noisy, test_x, test_y }
    }

    pub fn to_tensors(&self, device: Device) -> Tensors {
        let rows = |x: &[f32]| Tensor::from_slice(x).view([-1, self.dim as i64]).to_device(device);
        Tensors {
            train_x: rows(&self.train_x),
            train_y: Tensor::from_slice(&self.train_y).to_device(device),
            test_x: rows(&self.test_x),
            test_y: Tensor::from_slice(&self.test_y).to_device(device),
        }
    }
}

/// argmax over classes of x · W; computed in plain Rust so labels never depend on a BLAS's
/// summation order.
fn teacher_labels(x: &[f32], teacher: &[f32], dim: usize, classes: usize) -> Vec<i64> {
    x.chunks_exact(dim)
        .map(|row| {
            let score = |c: usize| -> f64 {
                row.iter().enumerate().map(|(d, &v)| v as f64 * teacher[d * classes + c] as f64).sum()
            };
            (0..classes)
                .map(|c| (c, score(c)))
                .fold((0, f64::NEG_INFINITY), |best, cur| if cur.1 > best.1 { cur } else { best })
                .0 as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(label_noise: f64) -> DataParams {
        DataParams { n: 500, n_test: 300, dim: 10, classes: 4, label_noise }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = Dataset::generate(&params(0.2), 7);
        assert_eq!(a, Dataset::generate(&params(0.2), 7));
        let b = Dataset::generate(&params(0.2), 8);
        assert_ne!(a.train_x, b.train_x);
        assert_ne!(a.noisy, b.noisy);
    }

    #[test]
    fn noise_flips_exactly_the_requested_count_to_other_classes() {
        for (noise, expected) in [(0.0, 0), (0.1, 50), (0.137, 69), (1.0, 500)] {
            let d = Dataset::generate(&params(noise), 3);
            assert_eq!(d.noisy.len(), expected, "label_noise {noise}");
            let changed: Vec<usize> = (0..d.train_y.len()).filter(|&i| d.train_y[i] != d.train_y_clean[i]).collect();
            // Every chosen label moved to another class, and no other label moved.
            assert_eq!(changed, d.noisy, "label_noise {noise}");
            assert!(d.train_y.iter().all(|&y| (0..4).contains(&y)));
        }
        // The replacement class is spread over the other classes, not always the next one.
        let d = Dataset::generate(&params(1.0), 3);
        let shifts: std::collections::BTreeSet<i64> =
            d.noisy.iter().map(|&i| (d.train_y[i] - d.train_y_clean[i]).rem_euclid(4)).collect();
        assert_eq!(shifts.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn test_labels_are_clean_and_use_every_class() {
        let d = Dataset::generate(&params(0.5), 1);
        let teacher = Rng::new(1, Stream::Teacher).normals(10 * 4);
        assert_eq!(d.test_y, teacher_labels(&d.test_x, &teacher, 10, 4));
        for c in 0..4 {
            assert!(d.test_y.contains(&c), "class {c} never appears");
        }
    }

    #[test]
    fn tensors_have_the_expected_shapes() {
        let t = Dataset::generate(&params(0.1), 4).to_tensors(Device::Cpu);
        assert_eq!(t.train_x.size(), vec![500, 10]);
        assert_eq!(t.test_y.size(), vec![300]);
    }
}
