//! Random-features mode of `mlp` (`hidden_trainable = false`): a fixed random ReLU layer and an
//! output layer fitted in closed form. With `weight_decay = 0` the fit is the minimum-norm least
//! squares solution, whose test error peaks where width == n (double descent).

use super::data::Dataset;
use super::{error_rate, MlpParams};
use crate::error::TrialError;
use crate::rng::{Rng, Stream};
use crate::Sink;
use std::time::Instant;
use sweep_spec::EpochRecord;
use tch::{Device, Kind, Tensor};

/// The closed-form fit and its metrics: train/test mean squared error against one-hot targets
/// (averaged over points and classes) and argmax error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub train_loss: f64,
    pub train_error: f64,
    pub test_loss: f64,
    pub test_error: f64,
    pub seconds: f64,
}

/// Fits and reports one record: epoch 1, step 1.
pub fn fit(
    p: &MlpParams,
    data: &Dataset,
    device: Device,
    sink: &mut Sink<'_>,
) -> Result<(), TrialError> {
    let f = fit_features(p, data, device);
    let metrics = [
        ("train_loss", f.train_loss),
        ("train_error", f.train_error),
        ("test_loss", f.test_loss),
        ("test_error", f.test_error),
        ("epoch_seconds", f.seconds),
        ("samples_per_second", p.data.n as f64 / f.seconds.max(1e-9)),
    ];
    sink(EpochRecord {
        epoch: 1,
        step: Some(1),
        metrics: metrics.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
    })?;
    Ok(())
}

pub fn fit_features(p: &MlpParams, data: &Dataset, device: Device) -> Fit {
    let t = data.to_tensors(device);
    let start = Instant::now();
    let w1 = hidden_weights(p.seed, data.dim, p.width, device);
    let features = |x: &Tensor| x.to_kind(Kind::Double).mm(&w1).relu();
    let phi = features(&t.train_x);
    let targets = t.train_y.one_hot(data.classes as i64).to_kind(Kind::Double);
    let beta = output_layer(&phi, &targets, p.weight_decay);
    let train_scores = phi.mm(&beta);
    let seconds = seconds_since(start, device);

    let test_scores = features(&t.test_x).mm(&beta);
    let test_targets = t.test_y.one_hot(data.classes as i64).to_kind(Kind::Double);
    let mse = |scores: &Tensor, targets: &Tensor| {
        scores
            .mse_loss(targets, tch::Reduction::Mean)
            .double_value(&[])
    };
    Fit {
        train_loss: mse(&train_scores, &targets),
        train_error: error_rate(&train_scores, &t.train_y),
        test_loss: mse(&test_scores, &test_targets),
        test_error: error_rate(&test_scores, &t.test_y),
        seconds,
    }
}

/// W1 / sqrt(dim), shape dim x width, in f64. Drawn as width rows of dim so that for one seed the
/// features of a narrower model are a prefix of a wider one's: a width grid then varies only the
/// number of features, which makes the curve over width smooth.
fn hidden_weights(seed: u64, dim: usize, width: usize, device: Device) -> Tensor {
    let w = Rng::new(seed, Stream::Features).normals(width * dim);
    (Tensor::from_slice(&w)
        .view([width as i64, dim as i64])
        .to_kind(Kind::Double)
        / (dim as f64).sqrt())
    .tr()
    .to_device(device)
}

/// argmin ||phi beta - Y||^2 + lambda ||beta||^2; for lambda = 0 the minimum-norm solution.
/// f64 throughout: near width == n phi is nearly singular, and that is exactly where the peak lives.
fn output_layer(phi: &Tensor, targets: &Tensor, lambda: f64) -> Tensor {
    let (n, width) = (phi.size()[0], phi.size()[1]);
    if lambda == 0.0 {
        // Relative cutoff as in torch.linalg.pinv's default: max(n, width) * machine epsilon.
        let rcond = n.max(width) as f64 * f64::EPSILON;
        return phi.linalg_pinv(rcond, false).mm(targets);
    }
    let opts = (Kind::Double, phi.device());
    if width <= n {
        let gram = phi.tr().mm(phi) + Tensor::eye(width, opts) * lambda;
        Tensor::linalg_solve(&gram, &phi.tr().mm(targets), true)
    } else {
        // The dual form solves an n x n system instead of width x width; the answer is the same.
        let kernel = phi.mm(&phi.tr()) + Tensor::eye(n, opts) * lambda;
        phi.tr().mm(&Tensor::linalg_solve(&kernel, targets, true))
    }
}

fn seconds_since(start: Instant, device: Device) -> f64 {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::data::DataParams;
    use crate::mlp::Optimizer;

    fn params(width: usize, weight_decay: f64, seed: u64) -> MlpParams {
        MlpParams {
            width,
            depth: 1,
            hidden_trainable: false,
            data: DataParams {
                n: 160,
                n_test: 1000,
                dim: 10,
                classes: 4,
                label_noise: 0.15,
            },
            epochs: 1,
            batch_size: 1,
            optimizer: Optimizer::Adam { lr: 1e-3 },
            weight_decay,
            seed,
        }
    }

    fn mean_test_error(width: usize, weight_decay: f64) -> f64 {
        let seeds = [0, 1, 2];
        seeds
            .iter()
            .map(|&seed| {
                let p = params(width, weight_decay, seed);
                fit_features(&p, &Dataset::generate(&p.data, seed), Device::Cpu).test_error
            })
            .sum::<f64>()
            / seeds.len() as f64
    }

    #[test]
    fn test_error_peaks_at_the_interpolation_threshold() {
        let n = 160;
        let (narrow, at_n, wide) = (
            mean_test_error(n / 8, 0.0),
            mean_test_error(n, 0.0),
            mean_test_error(8 * n, 0.0),
        );
        eprintln!("test error: width n/8 {narrow:.3}, n {at_n:.3}, 8n {wide:.3}");
        assert!(
            at_n > narrow && at_n > wide,
            "no peak: n/8 {narrow:.3}, n {at_n:.3}, 8n {wide:.3}"
        );
    }

    #[test]
    fn ridge_lowers_the_peak() {
        let n = 160;
        let (pinv, ridge) = (mean_test_error(n, 0.0), mean_test_error(n, 1.0));
        eprintln!("test error at width n: min-norm {pinv:.3}, ridge {ridge:.3}");
        assert!(
            ridge < pinv,
            "ridge {ridge:.3} did not lower the peak {pinv:.3}"
        );
    }

    #[test]
    fn wide_min_norm_fit_interpolates_the_noisy_labels() {
        let p = params(640, 0.0, 0);
        let f = fit_features(&p, &Dataset::generate(&p.data, 0), Device::Cpu);
        assert_eq!(f.train_error, 0.0);
        assert!(f.train_loss < 1e-12, "train mse {}", f.train_loss);
    }

    #[test]
    fn ridge_primal_and_dual_agree() {
        let phi = Tensor::from_slice(&Rng::new(5, Stream::Features).normals(6 * 9))
            .view([6, 9])
            .to_kind(Kind::Double);
        let y = Tensor::from_slice(&Rng::new(6, Stream::Features).normals(6 * 2))
            .view([6, 2])
            .to_kind(Kind::Double);
        let dual = output_layer(&phi, &y, 0.3);
        let gram = phi.tr().mm(&phi) + Tensor::eye(9, (Kind::Double, Device::Cpu)) * 0.3;
        let primal = Tensor::linalg_solve(&gram, &phi.tr().mm(&y), true);
        assert!((dual - primal).abs().max().double_value(&[]) < 1e-10);
    }

    #[test]
    fn same_seed_same_metrics() {
        let p = params(100, 0.0, 4);
        let a = fit_features(&p, &Dataset::generate(&p.data, 4), Device::Cpu);
        let b = fit_features(&p, &Dataset::generate(&p.data, 4), Device::Cpu);
        assert_eq!(
            (a.train_loss, a.train_error, a.test_loss, a.test_error),
            (b.train_loss, b.train_error, b.test_loss, b.test_error)
        );
    }
}
