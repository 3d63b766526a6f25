//! Random-features regression: a fixed random ReLU layer and an output layer fitted in closed
//! form. With no ridge the fit is the minimum-norm least-squares solution, whose test error peaks
//! where the number of features equals the number of training points (double descent). Used by
//! the `mlp` workload (`hidden_trainable = false`) and by `double_descent` (`model = "random_features"`).

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

/// Inputs as rows (any float kind), labels as class indices.
pub struct Problem<'a> {
    pub train_x: &'a Tensor,
    pub train_y: &'a Tensor,
    pub test_x: &'a Tensor,
    pub test_y: &'a Tensor,
    pub classes: i64,
}

impl Fit {
    /// The fit as the trial's one record: epoch 1, step 1.
    pub fn report(&self, n_train: usize, sink: &mut Sink<'_>) -> Result<(), TrialError> {
        let metrics = [
            ("train_loss", self.train_loss),
            ("train_error", self.train_error),
            ("test_loss", self.test_loss),
            ("test_error", self.test_error),
            ("interpolated", if self.train_error == 0.0 { 1.0 } else { 0.0 }),
            ("epoch_seconds", self.seconds),
            ("samples_per_second", n_train as f64 / self.seconds.max(1e-9)),
        ];
        sink(EpochRecord {
            epoch: 1,
            step: Some(1),
            metrics: metrics.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        })?;
        Ok(())
    }
}

/// Fits `width` random features with ridge coefficient `lambda` (0: minimum norm), drawn from `seed`.
pub fn fit(p: &Problem<'_>, width: usize, lambda: f64, seed: u64, device: Device) -> Fit {
    let train_x = p.train_x.to_device(device).to_kind(Kind::Double);
    let dim = train_x.size()[1] as usize;
    let start = Instant::now();
    let w1 = hidden_weights(seed, dim, width, device);
    let features = |x: &Tensor| x.mm(&w1).relu();
    let phi = features(&train_x);
    let train_y = p.train_y.to_device(device);
    let targets = train_y.one_hot(p.classes).to_kind(Kind::Double);
    let beta = output_layer(&phi, &targets, lambda);
    let train_scores = phi.mm(&beta);
    let seconds = seconds_since(start, device);

    let test_y = p.test_y.to_device(device);
    let test_scores = features(&p.test_x.to_device(device).to_kind(Kind::Double)).mm(&beta);
    let test_targets = test_y.one_hot(p.classes).to_kind(Kind::Double);
    let mse = |scores: &Tensor, targets: &Tensor| scores.mse_loss(targets, tch::Reduction::Mean).double_value(&[]);
    Fit {
        train_loss: mse(&train_scores, &targets),
        train_error: error_rate(&train_scores, &train_y),
        test_loss: mse(&test_scores, &test_targets),
        test_error: error_rate(&test_scores, &test_y),
        seconds,
    }
}

/// Fraction of rows whose highest score is not the label.
pub fn error_rate(scores: &Tensor, labels: &Tensor) -> f64 {
    scores.argmax(-1, false).ne_tensor(labels).to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

/// W1 / sqrt(dim), shape dim x width, in f64. Drawn as width rows of dim so that for one seed the
/// features of a narrower model are a prefix of a wider one's: a width grid then varies only the
/// number of features, which makes the curve over width smooth.
fn hidden_weights(seed: u64, dim: usize, width: usize, device: Device) -> Tensor {
    let w = Rng::new(seed, Stream::Features).normals(width * dim);
    (Tensor::from_slice(&w).view([width as i64, dim as i64]).to_kind(Kind::Double) / (dim as f64).sqrt())
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

    #[test]
    fn ridge_primal_and_dual_agree() {
        let phi = Tensor::from_slice(&Rng::new(5, Stream::Features).normals(6 * 9)).view([6, 9]).to_kind(Kind::Double);
        let y = Tensor::from_slice(&Rng::new(6, Stream::Features).normals(6 * 2)).view([6, 2]).to_kind(Kind::Double);
        let dual = output_layer(&phi, &y, 0.3);
        let gram = phi.tr().mm(&phi) + Tensor::eye(9, (Kind::Double, Device::Cpu)) * 0.3;
        let primal = Tensor::linalg_solve(&gram, &phi.tr().mm(&y), true);
        assert!((dual - primal).abs().max().double_value(&[]) < 1e-10);
    }
}
